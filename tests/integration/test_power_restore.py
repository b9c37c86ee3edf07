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
            key, _, value = line[len("Environment="):].partition("=")
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
