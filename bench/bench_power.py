# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""node_power benchmarks (make bench). Prints figures; asserts nothing about speed.

1. playbooks/power.yml (switch on with stagger 0, then the no-op re-run) and playbooks/status.yml
   (lines and console logs, no health) against a play of ansible.builtin.ping delegated to the
   controller, on the same simulated hosts with the same forks, for 14, 100 and 400 nodes: wall
   time of each ansible-playbook run (best of BENCH_RUNS, default 2) and the ratio to ping, and
   the same for the CPU time of the run (user + system of ansible-playbook and its forks and
   modules; the simulator's own is not counted), steadier than wall time on a shared machine.
   BENCH_NODES (a comma list) picks the sizes.
   Beside them, Ansible's floor for one per-host task (ansible.builtin.debug, no module run) on the
   same hosts: the least any per-node result costs.
2. Bus transactions to switch all 10 backplane slots on (stagger 0), counted by the simulator,
   against the minimum of one read, one write and one read-back per chip touched.
"""

from __future__ import annotations

import json
import os
import resource
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
FORKS = 16  # ansible.cfg's

PING = """
- hosts: carrier_nodes
  gather_facts: false
  tasks:
    - name: ping
      ansible.builtin.ping:
      delegate_to: "{{ carrier_controller }}"
"""

# Ansible's own floor for one per-host task: an action plugin that runs no module and touches
# nothing, over the same hosts with the same forks (what any per-node result costs, however cheap
# the work behind it).
FLOOR = """
- hosts: carrier_nodes
  gather_facts: false
  tasks:
    - name: nothing
      ansible.builtin.debug:
        msg: ok
"""


def sim_topology(workdir, nodes=14):
    """The embedded cluster (14 nodes) or ``nodes`` nodes on 10-slot backplanes, simulated under ``workdir``."""
    data = yaml.safe_load((REPO / "inventory" / "sim" / "cluster.carrier.yml").read_text())
    if nodes != 14:
        template = data["boards"]["rack1"]
        data["boards"] = {}
        for index in range((nodes + 9) // 10):
            slots = {n: {"host": "n%03d" % (index * 10 + n), "model": "cm4"}
                     for n in range(1, 11) if index * 10 + n <= nodes}
            data["boards"]["rack%d" % (index + 1)] = dict(template, slots=slots)
    for index, (name, board) in enumerate(sorted(data["boards"].items())):
        board["bus"] = "sim:%s/b%d.sock" % (workdir, index)
        board["console"] = "%s/console/{host}" % workdir
    path = Path(workdir) / ("bench%d.carrier.yml" % nodes)
    path.write_text(yaml.safe_dump(data))
    return path, data


def _cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _play(env, topology, playbook, *args):
    """(wall time, CPU time) of one ansible-playbook run."""
    started, cpu = time.monotonic(), _cpu()
    subprocess.run([str(BIN / "ansible-playbook"), "-i", str(topology), str(playbook),
                    "-e", "ansible_python_interpreter=%s" % sys.executable] + list(args),
                   check=True, env=env, stdout=subprocess.DEVNULL, cwd=str(REPO))
    return time.monotonic() - started, _cpu() - cpu


def fleet(nodes, runs):
    """Wall times of ping, switch-on, no-op and status on ``nodes`` simulated nodes; prints the ratios."""
    workdir = tempfile.mkdtemp(prefix="pcf-", dir="/tmp")
    topology, _data = sim_topology(workdir, nodes)
    state = os.path.join(workdir, "state")
    started = time.monotonic()
    subprocess.run(SIM + ["start", "--topology", str(topology), "--state-dir", state], check=True,
                   stdout=subprocess.DEVNULL)
    start_time = time.monotonic() - started
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
               ANSIBLE_FORKS=str(FORKS), PATH="%s:%s" % (BIN, os.environ["PATH"]))
    lock = "carrier_lock_dir=%s" % os.path.join(workdir, "locks")
    ping_book = Path(workdir) / "ping.yml"
    ping_book.write_text(PING)
    power = REPO / "playbooks" / "power.yml"
    floor_book = Path(workdir) / "floor.yml"
    floor_book.write_text(FLOOR)
    times = {"ping": [], "floor": [], "on": [], "noop": [], "status": []}
    try:
        for _run in range(runs):
            times["ping"].append(_play(env, topology, ping_book))
            times["floor"].append(_play(env, topology, floor_book))
            _play(env, topology, power, "-e", lock, "-e", "power_state=off", "-e", "power_stagger=0")
            times["on"].append(_play(env, topology, power, "-e", lock, "-e", "power_state=on", "-e", "power_stagger=0"))
            times["noop"].append(_play(env, topology, power, "-e", lock, "-e", "power_state=on"))
            times["status"].append(_play(env, topology, REPO / "playbooks" / "status.yml", "-e", lock,
                                         "-e", "status_health=false", "-e", "status_log_dir=%s" % workdir))
    finally:
        subprocess.run(SIM + ["stop", "--state-dir", state], stdout=subprocess.DEVNULL, check=False)
    for index, label in ((0, "wall"), (1, "CPU ")):
        best = {name: min(value[index] for value in values) for name, values in times.items()}
        figures = (nodes, label, best["ping"], best["on"], best["on"] / best["ping"], best["noop"],
                   best["noop"] / best["ping"], best["status"], best["status"] / best["ping"])
        print("   %4d nodes %s  ping %6.1f s   on %6.1f s %5.2fx   no-op %6.1f s %5.2fx"
              "   status %6.1f s %5.2fx" % figures)
        print("              %s  Ansible's floor (one debug task per node) %6.1f s %5.2fx ping; no-op %.2fx the floor"
              % (label, best["floor"], best["floor"] / best["ping"], best["noop"] / best["floor"]))
    print("        (sim start %.1f s)" % start_time)
    sys.stdout.flush()


def main():
    sizes = [int(n) for n in os.environ.get("BENCH_NODES", "14,100,400").split(",")]
    runs = int(os.environ.get("BENCH_RUNS", "2"))
    print("1. power.yml and status.yml vs ansible.builtin.ping, same hosts, forks %d, wall time best of %d runs"
          % (FORKS, runs))
    for nodes in sizes:
        fleet(nodes, runs)
    workdir = tempfile.mkdtemp(prefix="pcb-", dir="/tmp")
    topology, data = sim_topology(workdir)
    subprocess.run(SIM + ["start", "--topology", str(topology), "--state-dir", workdir], check=True,
                   stdout=subprocess.DEVNULL)
    try:
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
