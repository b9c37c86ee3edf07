# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""node_status run as Ansible runs it: lines from a simulated board, consoles from log files or live."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from modrun import run_module

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "sim"))
from simkit import SimThread, fill, gpio_topology  # noqa: E402

from ansible_collections.picluster.carrier.plugins.module_utils._board import Board  # noqa: E402

BOOT = ("  0.96 RPi: BOOTLOADER release VERSION:5f18ffb6 DATE: 2024/07/30 TIME: 14:02:35\r\n"
        "[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x410fd083]\r\n")
LOGIN = "\r\nDebian GNU/Linux 12 n1 ttyS0\r\n\r\nn1 login: "
PANIC = "[    2.1] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(179,2)\r\n"
UNDERVOLT = "[  100.1] Under-voltage detected! (0x00050005)\r\n"


@pytest.fixture
def rig():
    directory = tempfile.mkdtemp(prefix="pcs-", dir="/tmp")
    topology = fill(gpio_topology(nodes={1: "n1", 2: "n2", 3: "n3", 4: "n4"}), directory)
    sim = SimThread(topology, os.path.join(directory, "state"), boot_time=0.3, baud=1152000)
    board = Board("b1", "itx4", "sim:%s/bus.sock" % directory, lock_dir=directory)
    board.set_lines({1: {"power": True}, 2: {"power": True}, 3: {"power": True}})
    sim.dir = directory
    yield sim
    sim.stop()
    shutil.rmtree(directory, ignore_errors=True)


def status(sim, tmp_path, check=False, **args):
    base = {"board": "b1", "profile": "itx4", "bus": "sim:%s/bus.sock" % sim.dir, "lock_dir": sim.dir,
            "log_dir": str(tmp_path / "logs")}
    return run_module("node_status", dict(base, **args), tmp_path, check=check)


def test_states_from_the_logs_and_a_history_between_runs(rig, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "n1.log").write_text("2026/12/02 17:40:08 OPEN (ipv4,127.0.0.1,35004)\n" + BOOT + UNDERVOLT + LOGIN)
    (logs / "n2.log").write_text(BOOT + PANIC)
    (logs / "n3.log").write_text(BOOT)
    os.utime(logs / "n3.log", (1_000_000, 1_000_000))  # silent for a long time: hung
    nodes = {"1": "n1", "2": "n2", "3": {"host": "n3", "model": "cm5"}, "4": "n4"}
    result = status(rig, tmp_path, check=True, nodes=nodes)
    assert result.exit_status == 0, result
    states = {entry["host"]: entry["state"] for entry in result["slots"]}
    assert states == {"n1": "login", "n2": "panic", "n3": "hung", "n4": "off"}
    n1 = result["slots"][0]
    assert n1["warnings"] == ["undervoltage"] and n1["boots"] == 1 and n1["console"] == "log" and n1["power"] is True
    assert result["slots"][1]["panic"].startswith("[    2.1] Kernel panic")
    assert result["summary"] == {"login": 1, "panic": 1, "hung": 1, "off": 1}
    assert result["changed"] is False
    # the history: the next run reads only what is new; a new boot of n1 counts as its second
    with open(logs / "n1.log", "a") as fh:
        fh.write("pi\r\n" + BOOT)
    again = status(rig, tmp_path, nodes=nodes)
    assert again["slots"][0]["state"] == "kernel" and again["slots"][0]["boots"] == 2
    assert again["slots"][0]["warnings"] == []
    history = Path(rig.dir) / "node-state" / "n1.json"
    assert history.stat().st_mode & 0o777 == 0o600


def test_one_node_without_a_log_and_the_lines_only(rig, tmp_path):
    result = status(rig, tmp_path, slot=2, node="n2")
    assert result["slots"][0]["state"] == "on" and "no console log" in result["slots"][0]["console_error"]
    (tmp_path / "logs" / "n2.log").mkdir(parents=True)  # a log that cannot be read: the lines still count
    result = status(rig, tmp_path, slot=2, node="n2")
    assert result.exit_status == 0 and result["slots"][0]["state"] == "on"
    assert result["slots"][0]["console_error"].startswith("log_dir: cannot read ")
    result = status(rig, tmp_path, console="none")
    assert [e["state"] for e in result["slots"]] == ["on", "on", "on", "off"]
    assert all(e["host"] is None and e["console"] is None for e in result["slots"])


def test_a_live_console(rig, tmp_path):
    rig.wait_state("n1", "login")
    port = os.path.join(rig.state_dir, "console", "n1")
    result = status(rig, tmp_path, slot=1, node="n1", console="live", port=port, listen=0.5)
    assert result.exit_status == 0, result
    assert result["slots"][0]["state"] == "login" and result["slots"][0]["console"] == "live"
    result = status(rig, tmp_path, slot=1, node="n1", console="live", listen=0.1)
    assert "needs the node's port" in result["slots"][0]["console_error"]


@pytest.mark.parametrize("args, message", [
    ({"node": "n1"}, "node: 'n1' names one node"),
    ({"nodes": {"x": "n1"}}, "nodes: 'x' is not a slot number"),
    ({"nodes": {"1": {"host": "n1", "colour": "red"}}}, "nodes.1: "),
    ({"nodes": {"1": "../etc"}}, "nodes.1.host: '../etc'"),
    ({"nodes": {"1": {"host": "n1", "model": "cm9"}}}, "nodes.1.model"),
    ({"loop_boots": 0}, "loop_boots"),
    ({"listen": "nan"}, "listen"),
])
def test_bad_options_are_named(rig, tmp_path, args, message):
    result = status(rig, tmp_path, **args)
    assert result.exit_status == 1 and message in result["msg"], result


def test_the_return_block_names_what_is_returned(rig, tmp_path):
    import yaml

    from ansible_collections.picluster.carrier.plugins.modules import node_status

    documented = yaml.safe_load(node_status.RETURN)
    result = status(rig, tmp_path, slot=1, node="n1", board_sensors=True)
    assert set(result) - {"changed", "invocation"} == set(documented)
    entry = result["slots"][0]
    assert set(entry) <= set(documented["slots"]["contains"]), set(entry) - set(documented["slots"]["contains"])
