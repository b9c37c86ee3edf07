# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""node_power benchmarks (make bench). Prints figures; asserts nothing about speed.

1. A no-op node_power task against ansible.builtin.ping on the same 14 hosts in the same run
   (both delegated to the controller, forks 14): mean task time and the ratio.
2. Bus transactions to switch all 10 backplane slots on (stagger 0), counted by the simulator,
   against the minimum of one read, one write and one read-back per chip touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import collection_link  # noqa: E402

COLLECTIONS = collection_link.activate()

from ansible_collections.picluster.carrier.plugins.module_utils._board import Board  # noqa: E402
from ansible_collections.picluster.carrier.plugins.module_utils._power import PowerRequest, execute  # noqa: E402

SIM = [sys.executable, str(REPO / "sim" / "carrier-sim")]
BIN = Path(sys.executable).parent

PLAYBOOK = """
- hosts: carrier_nodes
  gather_facts: false
  tasks:
    - name: ping
      ansible.builtin.ping:
      delegate_to: "{{ carrier_controller }}"
    - name: node_power no-op
      picluster.carrier.node_power:
        board: "{{ carrier_board }}"
        profile: "{{ carrier_profile }}"
        bus: "{{ carrier_bus }}"
        slot: "{{ carrier_slot }}"
        state: "on"
        stagger: 0
      delegate_to: "{{ carrier_controller }}"
"""

CALLBACK = '''
import json, time
from ansible.plugins.callback import CallbackBase

class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.start = {}
        self.times = {}

    def v2_runner_on_start(self, host, task):
        self.start[(host.name, task.get_name())] = time.monotonic()

    def _done(self, result):
        key = (result._host.name, result._task.get_name())
        self.times.setdefault(key[1], []).append(time.monotonic() - self.start.pop(key))

    v2_runner_on_ok = _done
    v2_runner_on_failed = lambda self, result, ignore_errors=False: self._done(result)

    def v2_playbook_on_stats(self, stats):
        with open(__import__("os").environ["BENCH_TIMES"], "w") as handle:
            json.dump(self.times, handle)
'''


def sim_topology(workdir):
    data = yaml.safe_load((REPO / "inventory" / "sim" / "cluster.carrier.yml").read_text())
    for name, board in data["boards"].items():
        board["bus"] = "sim:%s/%s.sock" % (workdir, name)
        board["console"] = "%s/console/{host}" % workdir
    path = Path(workdir) / "bench.carrier.yml"
    path.write_text(yaml.safe_dump(data))
    return path, data


def main():
    workdir = tempfile.mkdtemp(prefix="pcb-", dir="/tmp")
    topology, data = sim_topology(workdir)
    subprocess.run(SIM + ["start", "--topology", str(topology), "--state-dir", workdir], check=True,
                   stdout=subprocess.DEVNULL)
    try:
        # --- 1: no-op node_power vs ping ---------------------------------------------------------
        cb_dir = Path(workdir) / "callback_plugins"
        cb_dir.mkdir()
        (cb_dir / "bench_timer.py").write_text(CALLBACK)
        playbook = Path(workdir) / "bench.yml"
        playbook.write_text(PLAYBOOK)
        env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
                   ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_CALLBACK_PLUGINS=str(cb_dir),
                   ANSIBLE_CALLBACKS_ENABLED="bench_timer", ANSIBLE_FORKS="14",
                   BENCH_TIMES=str(Path(workdir) / "times.json"), PATH="%s:%s" % (BIN, os.environ["PATH"]))
        subprocess.run([str(BIN / "ansible-playbook"), "-i", str(topology), str(playbook), "-e", "power_state=on",
                        "-e", "ansible_python_interpreter=%s" % sys.executable], check=True, env=env,
                       stdout=subprocess.DEVNULL, cwd=str(REPO))  # first run powers the nodes on
        rows = []
        for _run in range(3):
            subprocess.run([str(BIN / "ansible-playbook"), "-i", str(topology), str(playbook)], check=True, env=env,
                           stdout=subprocess.DEVNULL, cwd=str(REPO))
            times = json.loads((Path(workdir) / "times.json").read_text())
            ping = sum(times["ping"]) / len(times["ping"])
            noop = sum(times["node_power no-op"]) / len(times["node_power no-op"])
            rows.append((ping, noop))
        ping = min(r[0] for r in rows)
        noop = min(r[1] for r in rows)
        print("1. no-op node_power vs ansible.builtin.ping, 14 hosts, forks 14, best of 3 runs")
        print("   ping           %.3f s per host-task" % ping)
        print("   node_power     %.3f s per host-task (state already on: changed=false)" % noop)
        print("   ratio          %.2f" % (noop / ping))

        # --- 2: bus transactions for all 10 backplane slots on -----------------------------------
        board = data["boards"]["rack1"]
        rack = Board("rack1", board["profile"], board["bus"], lock_dir=workdir)
        execute(PowerRequest(rack, "all", "off", stagger=0))

        def counters():
            out = subprocess.run(SIM + ["status", "--json", "--state-dir", workdir], check=True,
                                 capture_output=True, text=True).stdout
            return json.loads(out)["buses"][board["bus"][4:]]

        before = counters()
        started = time.monotonic()
        result = execute(PowerRequest(rack, "all", "on", stagger=0))
        elapsed = time.monotonic() - started
        after = counters()
        chips = len(rack.chips)
        total = after["transactions"] - before["transactions"]
        writes = after["writes"] - before["writes"]
        assert all(s["after"]["state"] == "on" for s in result["slots"])
        print("2. switch all 10 backplane slots on (stagger 0), steady state, through the simulator's socket")
        print("   transactions   %d (%d writes, %d reads) on %d chips in %.1f ms"
              % (total, writes, total - writes, chips, elapsed * 1000))
        print("   minimum        %d (one read, one write, one read-back per chip)" % (3 * chips))
        print("   ratio          %.2f  (extra reads per chip: polarity and direction, to interpret the pins"
              " and keep first use glitch-free)" % (total / (3.0 * chips)))
    finally:
        subprocess.run(SIM + ["stop", "--state-dir", workdir], stdout=subprocess.DEVNULL, check=False)


if __name__ == "__main__":
    main()
