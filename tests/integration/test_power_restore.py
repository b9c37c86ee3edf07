# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The power_restore role: it installs the boot-time playbook and unit (idempotent), and the unit's
command, run as systemd would run it, powers on the nodes last intended on against the simulator
and leaves the others alone."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO / "tests" / "unit" / "sim"))

from simkit import SimThread  # noqa: E402


@pytest.fixture
def lab():
    path = tempfile.mkdtemp(prefix="pcp-", dir="/tmp")
    topology = {"controllers": {"c": {}},
                "boards": {"b1": {"profile": "itx4", "bus": "sim:%s/bus.sock" % path,
                                  "slots": {1: "r1", 2: "r2", 3: "r3"}}}}
    sim = SimThread(topology, os.path.join(path, "state"), boot_time=0.05)
    yield Path(path), sim
    sim.stop()
    shutil.rmtree(path, ignore_errors=True)


def env():
    out = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    out.update(ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_INVENTORY_UNPARSED_WARNING="False")
    return out


def test_role_installs_the_unit_and_the_unit_restores(lab, tmp_path):
    path, sim = lab
    state_file = tmp_path / "lib" / "power-state.json"
    state_file.parent.mkdir()
    state_file.write_text(json.dumps({"version": 1, "boards": {"b1": {"slots": {"1": "on", "2": "off"}}}}))
    (tmp_path / "units").mkdir()  # /etc/systemd/system is always there
    play = tmp_path / "play.yml"
    play.write_text(json.dumps([{
        "hosts": "localhost", "connection": "local", "gather_facts": False,
        "vars": {"ansible_python_interpreter": sys.executable},
        "roles": [{"role": "picluster.carrier.power_restore",
                   "power_restore_boards": [{"name": "b1", "profile": "itx4", "bus": "sim:%s/bus.sock" % path,
                                             "policy": "last"}],
                   "power_restore_state_file": str(state_file),
                   "power_restore_config_dir": str(tmp_path / "etc"),
                   "power_restore_unit_dir": str(tmp_path / "units"),
                   "power_restore_manage_service": False}]}]))
    cmd = [str(BIN / "ansible-playbook"), "-i", "localhost,", str(play)]
    first = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env(), timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    assert re.search(r"changed=[1-9]", first.stdout)
    again = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env(), timeout=300)
    assert again.returncode == 0 and re.search(r"changed=0 ", again.stdout), again.stdout
    unit = (tmp_path / "units" / "picluster-power-restore.service").read_text()
    assert "Type=oneshot" in unit and "WantedBy=multi-user.target" in unit
    restore_play = (tmp_path / "etc" / "power-restore.yml").read_text()
    assert "picluster.carrier.power_restore" in restore_play
    # What systemd would run at boot: the unit's Environment= lines and ExecStart=.
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    for line in unit.splitlines():
        if line.startswith("Environment="):
            key, _sep, value = line[len("Environment="):].partition("=")
            environment[key] = value
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))[len("ExecStart="):]
    assert sim.node("r1")["state"] == "off"
    boot = subprocess.run(shlex.split(exec_start), check=False, capture_output=True, text=True, env=environment,
                          timeout=300)
    assert boot.returncode == 0, boot.stdout + boot.stderr
    assert "changed=1" in boot.stdout
    sim.wait_state("r1", "login")
    assert sim.node("r2")["state"] == "off" and sim.node("r3")["state"] == "off"
    # at the next boot the node is on: nothing is done
    second_boot = subprocess.run(shlex.split(exec_start), check=False, capture_output=True, text=True, env=environment,
                                 timeout=300)
    assert second_boot.returncode == 0 and "changed=0" in second_boot.stdout, second_boot.stdout


def test_role_refuses_no_boards(tmp_path):
    play = tmp_path / "play.yml"
    play.write_text(json.dumps([{"hosts": "localhost", "connection": "local", "gather_facts": False,
                                 "vars": {"ansible_python_interpreter": sys.executable},
                                 "roles": [{"role": "picluster.carrier.power_restore",
                                            "power_restore_config_dir": str(tmp_path / "etc"),
                                            "power_restore_manage_service": False}]}]))
    run = subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", str(play)], check=False,
                         capture_output=True, text=True, env=env(), timeout=300)
    assert run.returncode != 0 and "power_restore needs at least one board" in run.stdout
    assert not (tmp_path / "etc").exists()


def test_controller_restart_of_the_simulator_daemon_writes_nothing(sim_cluster_factory, tmp_path):
    """The simulator process itself stopped and started again (carrier-sim stop/start) with its latches
    kept: the nodes that were on are on, and power_restore reads the board and writes nothing."""
    from ansible_collections.picluster.carrier.plugins.module_utils import _restore
    from ansible_collections.picluster.carrier.plugins.module_utils._power import PowerRequest, execute

    topology = {"controllers": {"ctrl0": {}},
                "boards": {"b1": {"profile": "itx4_hwmon", "bus": "sim:{dir}/bus.sock",
                                  "sim": {"latch_file": "{dir}/latches.json"},
                                  "slots": {1: {"host": "d1"}, 2: {"host": "d2"}, 3: {"host": "d3"}}}}}
    cluster = sim_cluster_factory(topology, boot_time=0.2)
    intents = str(tmp_path / "power-state.json")
    req = PowerRequest(cluster.board("b1"), [1, 3], "on", stagger=0, identify=True)
    _restore.record_request(intents, req, execute(req, sleep=lambda s: None))
    cluster.wait_state("d1", "login")
    cluster.stop()
    cluster.start()
    socket = cluster.boards["b1"]["socket"]
    assert cluster.status()["buses"][socket]["transactions"] == 0
    assert cluster.node("d1")["state"] != "off" and cluster.node("d3")["state"] != "off"
    result = _restore.restore(cluster.board("b1"), state_file=intents, sleep=lambda s: None)
    assert result["changed"] is False
    none = "policy last: no intended state recorded"
    assert [s["reason"] for s in result["slots"]] == ["already on: not touched", none, "already on: not touched", none]
    counters = cluster.status()["buses"][socket]
    assert counters["writes"] == 0 and counters["reads"] > 0
    assert cluster.board("b1").read_state([1])[1]["led"] is True  # the identify LED kept its latch too
    # the sensors see the two running nodes
    from ansible_collections.picluster.carrier.plugins.module_utils._sensors import SensorReader
    slots = SensorReader(cluster.board("b1")).read()["slots"]
    assert slots[1]["current"] > 0.5 and slots[3]["current"] > 0.5 and slots[2]["current"] == 0.0
    missing = cluster.fault("--board", "b1", "--sensor", "board_temp", "--missing", "true")
    assert missing.returncode == 0
    assert "sensor board_temp missing" in cluster.cli("status").stdout
    readings = SensorReader(cluster.board("b1"), retries=1).read()
    assert readings["sensors"]["board_temp"]["missing"] is True
