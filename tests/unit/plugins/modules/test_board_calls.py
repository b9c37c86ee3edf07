# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""board_calls run as Ansible runs it: two simulated boards of one controller in one module run."""

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
from simkit import SimThread, fill  # noqa: E402

from ansible_collections.picluster.carrier.plugins.module_utils._board import Board  # noqa: E402

SECRET = "hunter2-board-secret"


def topology():
    def board(sock, hosts):
        return {"profile": "itx4", "controller": "ctrl0", "bus": "sim:{dir}/%s" % sock,
                "slots": {slot: {"host": host, "model": "cm4"} for slot, host in hosts.items()}}
    return {"controllers": {"ctrl0": {}},
            "boards": {"b1": board("bus.sock", {1: "n1", 2: "n2", 3: "n3"}),
                       "b2": board("bus2.sock", {1: "m1", 2: "m2"})}}


@pytest.fixture
def rig():
    directory = tempfile.mkdtemp(prefix="pcs-", dir="/tmp")
    sim = SimThread(fill(topology(), directory), os.path.join(directory, "state"), boot_time=0.3)
    sim.dir = directory
    yield sim
    sim.stop()
    shutil.rmtree(directory, ignore_errors=True)


def call(sim, board, sock, **args):
    return dict({"board": board, "profile": "itx4", "bus": "sim:%s/%s" % (sim.dir, sock), "lock_dir": sim.dir}, **args)


def powered(sim, board, sock, slots):
    state = Board(board, "itx4", "sim:%s/%s" % (sim.dir, sock), lock_dir=sim.dir).read_state(slots)
    return {slot: state[slot]["power"] for slot in slots}


def power(sim, tmp_path, calls, check=False, **extra):
    return run_module("board_calls", dict({"module": "node_power", "calls": calls}, **extra), tmp_path, check=check)


def test_two_boards_switched_in_one_run_then_unchanged(rig, tmp_path):
    state_file = str(tmp_path / "power-state.json")
    calls = [call(rig, "b1", "bus.sock", slot=[1, 3], state="on", stagger=0.1, restore_state_file=state_file),
             call(rig, "b2", "bus2.sock", slot=[1, 2], state="on", stagger=0.1, restore_state_file=state_file)]
    checked = power(rig, tmp_path, calls, check=True)
    assert checked.exit_status == 0 and checked["changed"] is True, checked
    assert [c["diff"]["after"] for c in checked["calls"]] == ["slot 1: on\nslot 3: on\n", "slot 1: on\nslot 2: on\n"]
    assert powered(rig, "b1", "bus.sock", [1, 3]) == {1: False, 3: False}  # check mode wrote nothing
    done = power(rig, tmp_path, calls)
    assert done.exit_status == 0 and [c["board"] for c in done["calls"]] == ["b1", "b2"], done
    assert powered(rig, "b1", "bus.sock", [1, 2, 3]) == {1: True, 2: False, 3: True}
    assert powered(rig, "b2", "bus2.sock", [1, 2]) == {1: True, 2: True}
    again = power(rig, tmp_path, calls)
    assert again["changed"] is False and not any(c["changed"] for c in again["calls"])
    assert '"b1"' in Path(state_file).read_text() and '"b2"' in Path(state_file).read_text()  # both recorded, one lock


def test_a_board_that_does_not_answer_fails_its_own_entry_only(rig, tmp_path):
    calls = [call(rig, "b1", "nowhere.sock", slot=[1], state="on"), call(rig, "b2", "bus2.sock", slot=[2], state="on")]
    result = power(rig, tmp_path, calls)
    assert result.exit_status == 0, result
    gone, fine = result["calls"]
    assert gone["failed"] is True and "nowhere.sock" in gone["msg"] and "slots" not in gone
    assert fine["changed"] is True and powered(rig, "b2", "bus2.sock", [2]) == {2: True}


@pytest.mark.parametrize("calls,message", [
    ([{"slot": 1, "state": "on"}], "calls[0] (board None): a mapping with the board's name"),
    ([{"board": "b1", "profile": "itx4", "bus": 1, "slot": 1, "state": "sideways"}], "calls[0] (board 'b1'): "),
    ([{"board": "b1", "profile": "itx4", "bus": 1, "slot": 1}], "one of the following is required: state, identify"),
    ([{"board": "b1", "profile": "itx4", "bus": 1, "slot": 1, "state": "on", "colour": "red"}], "colour"),
    ([{"board": "b1", "profile": "itx4", "bus": 1, "slot": 1, "state": "on", "bmc_password": SECRET}],
     "bmc_password, bmc_priv_password go in secrets"),
])
def test_a_bad_call_fails_the_run_before_anything_is_switched(rig, tmp_path, calls, message):
    good = call(rig, "b2", "bus2.sock", slot=[1], state="on")
    result = power(rig, tmp_path, [good] + [dict(c, board=c.get("board") and "b1") for c in calls])
    assert result.exit_status == 1 and message.replace("calls[0]", "calls[1]") in result["msg"], result
    assert powered(rig, "b2", "bus2.sock", [1]) == {1: False}
    assert SECRET not in result.stdout


def test_secrets_are_merged_and_never_returned(rig, tmp_path):
    calls = [call(rig, "b1", "bus.sock", slot=[1], state="on", bmc_user="admin")]
    result = power(rig, tmp_path, calls, secrets={"b1": {"bmc_password": SECRET}})
    assert result.exit_status == 0 and result["calls"][0]["changed"] is True, result
    assert SECRET not in result.stdout and SECRET not in result.stderr
    refused = power(rig, tmp_path, calls, secrets={"b1": {"bus": 2}})
    assert refused.exit_status == 1 and "go in secrets, and nothing else does" in refused["msg"]


def test_node_status_of_two_boards(rig, tmp_path):
    Board("b2", "itx4", "sim:%s/bus2.sock" % rig.dir, lock_dir=rig.dir).set_lines({2: {"power": True}})
    calls = [call(rig, "b1", "bus.sock", slot=[1, 2], nodes={"1": "n1", "2": "n2"}, console="none"),
             call(rig, "b2", "bus2.sock", slot=[1, 2], nodes={"1": "m1", "2": "m2"}, console="none",
                  board_sensors=True)]
    result = run_module("board_calls", {"module": "node_status", "calls": calls}, tmp_path)
    assert result.exit_status == 0 and result["changed"] is False, result
    first, second = result["calls"]
    assert [e["state"] for e in first["slots"]] == ["off", "off"] and "board_sensors" not in first
    assert [e["host"] for e in second["slots"]] == ["m1", "m2"]
    assert second["slots"][0]["state"] == "off" and second["slots"][1]["state"] != "off"
    assert second["board_sensors"]["board"] == "b2"


def test_one_call_per_board(rig, tmp_path):
    calls = [call(rig, "b1", "bus.sock", slot=[1], state="on"), call(rig, "b1", "bus.sock", slot=[2], state="on")]
    result = power(rig, tmp_path, calls)
    assert result.exit_status == 1 and "calls[1] (board 'b1'): board 'b1' has a call already" in result["msg"]
