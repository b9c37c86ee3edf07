# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Power-restore: the intended-state file, the policies, and a controller restart against the
simulator (its process stopped and started again with the chips' latches kept, as a board that
keeps its power keeps them): nodes that were on stay on and are not written to."""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import tempfile
import threading

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils import _restore
from ansible_collections.picluster.carrier.plugins.module_utils._board import Board
from ansible_collections.picluster.carrier.plugins.module_utils._bus import CountingBus, open_bus
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._power import PowerRequest, execute

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "sim"))

from simkit import SimThread  # noqa: E402


def power(board, slots, state, intents=None):
    req = PowerRequest(board, slots, state, stagger=0)
    result = execute(req, sleep=lambda s: None)
    if intents:
        _restore.record_request(intents, req, result)
    return result


def test_intents_file_merges_boards_and_slots_and_is_0644(tmp_path):
    path = str(tmp_path / "lib" / "power-state.json")
    assert _restore.read_intents(path) == {}
    assert _restore.record_intents(path, "b1", {1: "on", 2: "off"}) is True
    assert _restore.record_intents(path, "b2", {1: "on"}) is True
    assert _restore.record_intents(path, "b1", {2: "on"}) is True
    assert _restore.record_intents(path, "b1", {2: "on"}) is False  # nothing new: not rewritten
    assert _restore.read_intents(path) == {"b1": {1: "on", 2: "on"}, "b2": {1: "on"}}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert json.loads(open(path).read())["version"] == 1


def test_concurrent_recorders_lose_no_slot(tmp_path):
    path = str(tmp_path / "power-state.json")
    threads = [threading.Thread(target=_restore.record_intents, args=(path, "b1", {slot: "on"}))
               for slot in range(1, 11)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _restore.read_intents(path) == {"b1": {slot: "on" for slot in range(1, 11)}}


def test_a_foreign_file_is_refused_naming_it(tmp_path):
    path = tmp_path / "power-state.json"
    path.write_text('{"boards": {"b1": {"slots": {"1": "maybe"}}}}')
    with pytest.raises(CarrierError, match="state_file: .*power-state.json is not a power-state file"):
        _restore.read_intents(str(path))


def test_record_request_maps_states_to_intents(rig, tmp_path):
    r = rig("itx4")
    path = str(tmp_path / "s.json")
    power(r.board, [1, 2], "on", path)
    power(r.board, [2], "off", path)
    power(r.board, [1], "cycle", path)
    req = PowerRequest(r.board, [1], "reset", stagger=0)
    assert _restore.record_request(path, req, {}) is None
    assert _restore.record_request("", PowerRequest(r.board, [1], "on"), {}) is None
    assert _restore.read_intents(path) == {"b1": {1: "on", 2: "off"}}


@pytest.mark.parametrize("policy,switched", [("last", [1]), ("on", [1, 2, 3]), ("off", [])])
def test_policies_switch_on_only_what_is_off(rig, tmp_path, policy, switched):
    r = rig("itx4")
    path = str(tmp_path / "s.json")
    _restore.record_intents(path, "b1", {1: "on", 2: "off", 4: "on"})
    power(r.board, [4], "on")
    del r.log[:]
    result = _restore.restore(r.board, policy=policy, state_file=path, sleep=lambda s: None)
    actions = {s["slot"]: s["action"] for s in result["slots"]}
    assert sorted(s for s, a in actions.items() if a == "on") == switched
    assert actions[4] == "none" and result["slots"][3]["reason"] == "already on: not touched"
    assert result["changed"] is bool(switched)
    for slot in (1, 2, 3, 4):
        assert r.levels(slot)["power"] is (slot in switched or slot == 4)
    if not switched:
        assert not r.writes()


def test_profile_default_policy_check_mode_and_protected_slots(rig, tmp_path):
    r = rig({"name": "p", "restore": "on", "chips": {"u1": {"type": "pca9554", "address": 0x20}},
             "slots": {1: {"power": {"bit": 0, "pull": "down"}}, 2: {"power": {"bit": 1, "pull": "down"}}}},
            protected_slots=[1])
    result = _restore.restore(r.board, state_file=str(tmp_path / "none.json"), check_mode=True)
    assert result["policy"] == "on"
    got = [(s["slot"], s["action"], s["power_after"]) for s in result["slots"]]
    assert got == [(1, "none", False), (2, "on", True)]
    assert result["slots"][0]["reason"] == "protected: hosts the controller"
    assert not r.writes() and r.levels(2)["power"] is False
    with pytest.raises(CarrierError, match="policy: 'sometimes' is not one of last, off, on"):
        _restore.restore(r.board, policy="sometimes")


# --- a controller restart against the simulator ---------------------------------------------------

@pytest.fixture
def lab():
    path = tempfile.mkdtemp(prefix="pcr-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def topology(lab):
    return {"controllers": {"c": {}},
            "boards": {"b1": {"profile": "itx4", "bus": "sim:%s/bus.sock" % lab,
                              "sim": {"latch_file": os.path.join(lab, "latches.json")},
                              "slots": {1: "n1", 2: "n2", 3: "n3", 4: "n4"}}}}


def counted_board(lab, log):
    def opener(spec):
        bus = CountingBus(open_bus(spec))
        bus.log = log
        return bus

    return Board("b1", "itx4", "sim:%s/bus.sock" % lab, lock_dir=lab, bus_opener=opener)


def slot_bits(slot):
    base = 3 * (slot - 1)
    return (0b111 << base)


def test_controller_restart_leaves_nodes_that_are_on_untouched(lab):
    intents = os.path.join(lab, "power-state.json")
    sim = SimThread(topology(lab), os.path.join(lab, "state"), boot_time=0.05)
    try:
        board = counted_board(lab, [])
        power(board, [1, 3], "on", intents)
        power(board, [2], "on", intents)
        power(board, [2], "off", intents)
        sim.wait_state("n1", "login")
    finally:
        sim.stop()
    # The controller comes back; the board kept its power (and so its latches) all along.
    sim = SimThread(topology(lab), os.path.join(lab, "state"), boot_time=0.05)
    try:
        assert sim.node("n1")["state"] != "off" and sim.node("n3")["state"] != "off"
        log = []
        result = _restore.restore(counted_board(lab, log), state_file=intents, sleep=lambda s: None)
        assert result["changed"] is False
        assert [(s["slot"], s["action"], s["intended"]) for s in result["slots"]] == [
            (1, "none", "on"), (2, "none", "off"), (3, "none", "on"), (4, "none", None)]
        assert log and all(op[0].startswith("read") for op in log)  # reads only: not one write
    finally:
        sim.stop()


def _latch_reference(lab):
    """The expander's output latch and direction (SMBus words) as the kept latch file has them."""
    with open(os.path.join(lab, "latches.json")) as fh:
        regs = {int(r): v for r, v in json.load(fh)["u1"]["regs"].items()}
    return {0x02: regs[0x02] | regs[0x03] << 8, 0x06: regs[0x06] | regs[0x07] << 8}


def test_board_power_loss_restores_the_last_intended_and_never_touches_running_bits(lab):
    intents = os.path.join(lab, "power-state.json")
    _restore.record_intents(intents, "b1", {1: "on", 2: "off", 3: "on", 4: "on"})
    latches = os.path.join(lab, "latches.json")
    sim = SimThread(topology(lab), os.path.join(lab, "state"), boot_time=0.05)
    try:
        power(counted_board(lab, []), [1], "on")  # slot 1 runs; 3 and 4 were lost
    finally:
        sim.stop()
    assert os.path.exists(latches)
    sim = SimThread(topology(lab), os.path.join(lab, "state"), boot_time=0.05)
    try:
        before = _latch_reference(lab)  # what slot 1's bits must keep in every write
        log = []
        result = _restore.restore(counted_board(lab, log), state_file=intents, sleep=lambda s: None)
        assert [s["slot"] for s in result["slots"] if s["action"] == "on"] == [3, 4]
        writes = [op for op in log if op[0].startswith("write")]
        assert writes
        on_bits = slot_bits(1)
        latch = direction = None
        for op in writes:
            assert op[0] == "write_word_data" and op[2] in (0x02, 0x06)
            assert op[3] & on_bits == before[op[2]] & on_bits, op
            if op[2] == 0x02:
                latch = op[3]
            else:
                direction = op[3]
        assert latch is not None and direction is not None
        for host in ("n1", "n3", "n4"):
            sim.wait_state(host, "login")
        assert sim.node("n2")["state"] == "off"
    finally:
        sim.stop()
    # without the latch file the board was off: the fresh start finds every node off
    os.unlink(latches)
    sim = SimThread(topology(lab), os.path.join(lab, "state"), boot_time=0.05)
    try:
        result = _restore.restore(counted_board(lab, []), state_file=intents, check_mode=True)
        assert [s["slot"] for s in result["slots"] if s["action"] == "on"] == [1, 3, 4]
    finally:
        sim.stop()
