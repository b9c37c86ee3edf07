# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""board_sensors, power_restore and node_power's identify, run as module processes against a simulator
of the itx4_hwmon profile."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile

import pytest

from modrun import run_module

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "sim"))

from simkit import SimThread  # noqa: E402


@pytest.fixture(scope="module")
def lab():
    path = tempfile.mkdtemp(prefix="pcm-", dir="/tmp")
    topology = {"controllers": {"c": {}},
                "boards": {"b1": {"profile": "itx4_hwmon", "bus": "sim:%s/bus.sock" % path,
                                  "sim": {"thermal_tau": 0},
                                  "slots": {1: "m1", 2: "m2", 3: "m3", 4: "m4"}}}}
    sim = SimThread(topology, os.path.join(path, "state"), boot_time=0.05)
    yield {"dir": path, "sim": sim}
    sim.stop()
    shutil.rmtree(path, ignore_errors=True)


def board(lab, **args):
    return dict(board="b1", profile="itx4_hwmon", bus="sim:%s/bus.sock" % lab["dir"], lock_dir=lab["dir"], **args)


def test_board_sensors_reads_everything(lab, tmp_path):
    result = run_module("board_sensors", board(lab), tmp_path)
    assert result["changed"] is False and result["board"] == "b1"
    assert set(result["sensors"]) == {"ina3221_1", "ina3221_2", "board_temp"}
    assert result["sensors"]["board_temp"]["ok"] is True
    assert set(result["slots"]) == {"1", "2", "3", "4"} and result["slots"]["4"]["sensor"] == "ina3221_2"
    assert result["fans"]["fan"]["type"] == "emc2301" and result["fan_changes"] == []
    assert set(result) >= {"sensors", "slots", "fans", "fan_changes", "board", "changed"}


def test_board_sensors_duty_check_mode_then_change_then_idempotent(lab, tmp_path):
    args = board(lab, duty=40)
    check = run_module("board_sensors", args, tmp_path, check=True)
    assert check["changed"] is True and check["fan_changes"] == [{"fan": "fan", "before": 0, "after": 102}]
    assert check["fans"]["fan"]["setting"] == 0
    first = run_module("board_sensors", args, tmp_path)
    assert first["changed"] is True and first["fans"]["fan"]["setting"] == 102
    assert first["diff"] == {"before": "fan fan: 0.0 %\n", "after": "fan fan: 40.0 %\n"}
    assert first["fans"]["fan"]["rpm"] == pytest.approx(2000, rel=0.01)
    second = run_module("board_sensors", args, tmp_path)
    assert second["changed"] is False and second["fan_changes"] == []
    curve = run_module("board_sensors", board(lab, follow_curve=True), tmp_path)
    assert curve["fans"]["fan"]["setting"] == 77  # all nodes off: 25 C, below the first point: 30 %


@pytest.mark.parametrize("args,message", [
    (dict(duty=float("nan")), "duty: nan is not a duty cycle"),
    (dict(duty=101), "duty: 101"),
    (dict(duty=10, fans=["nope"]), "fans: ['nope'] are not fans"),
    (dict(sensors=["nope"]), "sensors: nope not sensors or fans"),
])
def test_board_sensors_refusals(lab, tmp_path, args, message):
    result = run_module("board_sensors", board(lab, **args), tmp_path)
    assert result.get("failed") is True and message in result["msg"]


def test_node_power_identify_and_recorded_intent(lab, tmp_path):
    state_file = str(tmp_path / "power-state.json")
    args = board(lab, slot=2, identify=True, restore_state_file=state_file)
    check = run_module("node_power", args, tmp_path, check=True)
    assert check["changed"] is True and check["slots"][0]["after"]["led"] is True
    assert check["slots"][0]["before"]["led"] is False
    first = run_module("node_power", args, tmp_path)
    assert first["changed"] is True and first["state"] is None and "restore_state" not in first
    assert first["diff"]["after"] == "slot 2: off, identify on\n"
    assert lab["sim"].sim.boards["b1"].line_levels(2)["led"] is True
    assert run_module("node_power", args, tmp_path)["changed"] is False
    on = run_module("node_power", board(lab, slot=[1, 3], state="on", identify=False, stagger=0,
                                        restore_state_file=state_file), tmp_path)
    assert on["changed"] is True and on["restore_state"] == {"path": state_file, "changed": True}
    assert json.loads(open(state_file).read())["boards"] == {"b1": {"slots": {"1": "on", "3": "on"}}}
    off = run_module("node_power", board(lab, slot=2, identify=False), tmp_path)
    assert off["changed"] is True and lab["sim"].sim.boards["b1"].line_levels(2)["led"] is False


def test_node_power_identify_refusals(lab, tmp_path):
    none = run_module("node_power", board(lab, slot=1), tmp_path)
    assert none["failed"] is True and "one of the following is required: state, identify" in none["msg"]
    itx4 = run_module("node_power", dict(board(lab, slot=1, identify=True), profile="itx4"), tmp_path)
    assert itx4["failed"] is True and "identify: slot(s) 1 of board b1 (profile itx4) have no led line" in itx4["msg"]


def test_node_power_unwritable_state_file_is_a_warning(lab, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run_module("node_power", board(lab, slot=4, state="off", restore_state_file=str(blocker / "s.json")),
                        tmp_path)
    assert result.get("failed") is not True
    assert "intended power state was not recorded" in json.dumps(result.get("warnings"))  # 2.19: structured


def test_power_restore_module(lab, tmp_path):
    state_file = tmp_path / "power-state.json"
    state_file.write_text(json.dumps({"version": 1, "boards": {"b1": {"slots": {"4": "on", "2": "off"}}}}))
    run_module("node_power", board(lab, slot=4, state="off", restore_state_file=""), tmp_path)
    args = board(lab, state_file=str(state_file))
    check = run_module("power_restore", args, tmp_path, check=True)
    assert check["changed"] is True and check["policy"] == "last"
    assert [s["action"] for s in check["slots"]] == ["none", "none", "none", "on"]
    assert lab["sim"].sim.boards["b1"].line_levels(4)["power"] is False
    first = run_module("power_restore", args, tmp_path)
    assert first["changed"] is True and first["slots"][3]["power_after"] is True
    assert "slot 4: on" in first["diff"]["after"]
    assert lab["sim"].sim.boards["b1"].line_levels(4)["power"] is True
    again = run_module("power_restore", args, tmp_path)
    assert again["changed"] is False and again["slots"][3]["reason"] == "already on: not touched"
    bad = run_module("power_restore", dict(args, policy="sometimes"), tmp_path)
    assert bad["failed"] is True and "policy" in bad["msg"]


def test_node_status_reads_the_sensors_in_its_own_run(lab, tmp_path):
    """The status playbook's one module run per board: node_status with board_sensors gives what board_sensors
    reads (no fan driven); without the option there is no board_sensors in its result."""
    alone = run_module("board_sensors", board(lab), tmp_path)
    status = run_module("node_status", board(lab, slot="all", console="none", board_sensors=True), tmp_path)
    assert not status.get("failed") and [s["slot"] for s in status["slots"]] == [1, 2, 3, 4]
    inside = status["board_sensors"]
    assert set(inside["sensors"]) == set(alone["sensors"]) and set(inside["fans"]) == set(alone["fans"])
    assert inside["fan_changes"] == [] and "diff" not in inside and inside["changed"] is False
    assert "board_sensors" not in run_module("node_status", board(lab, slot=1, console="none"), tmp_path)
