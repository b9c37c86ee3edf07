# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Power operations: the plan, idempotence, check mode, timing, protected slots, the stagger gate."""

from __future__ import annotations

import multiprocessing
import time
import types

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError, ProtectedSlotError
from ansible_collections.picluster.carrier.plugins.module_utils._power import PowerRequest, execute, stagger_gate


class Clock:
    """Records the sleeps a run asks for, and the line levels at each of them."""

    def __init__(self, rig, slot):
        self.rig = rig
        self.slot = slot
        self.timeline = []

    def __call__(self, seconds):
        self.timeline.append((round(seconds, 3), dict(self.rig.levels(self.slot))))


def run(r, slot, state, check=False, sleep=None, **kwargs):
    kwargs.setdefault("stagger", 0)
    return execute(PowerRequest(r.board, slot, state, **kwargs), check_mode=check, sleep=sleep or (lambda s: None))


@pytest.mark.parametrize("start,state,action,end", [
    ("off", "on", "on", "on"),
    ("on", "on", "none", "on"),
    ("on", "off", "off", "off"),
    ("off", "off", "none", "off"),
    ("on", "cycle", "cycle", "on"),
    ("off", "cycle", "on", "on"),
    ("on", "reset", "reset", "on"),
    ("off", "reset", "none", "off"),
])
def test_plan_and_result(rig, start, state, action, end):
    r = rig("itx4")
    if start == "on":
        run(r, 2, "on")
    del r.log[:]
    result = run(r, 2, state)
    assert result["slots"][0]["action"] == action
    assert result["changed"] is (action != "none")
    assert result["slots"][0]["before"]["state"] == start
    assert result["slots"][0]["after"]["state"] == end
    assert r.levels(2)["power"] is (end == "on")
    if action == "none":
        assert not r.writes()


def test_check_mode_predicts_and_writes_nothing(rig):
    r = rig("backplane10")
    run(r, [1, 2], "on")
    del r.log[:]
    for state in ("on", "off", "cycle", "reset"):
        real = {"on": "on", "off": "off", "cycle": "on", "reset": "on"}[state]
        result = run(r, "all", state, check=True)
        assert not r.writes(), state
        third = "on" if state in ("on", "cycle") else "off"
        assert [s["after"]["state"] for s in result["slots"]][:3] == [real, real, third]
    assert [r.levels(s)["power"] for s in (1, 2, 3)] == [True, True, False]
    result = run(r, "all", "on", check=True)
    assert result["changed"] is True
    assert result["diff"]["before"].splitlines()[:3] == ["slot 1: on", "slot 2: on", "slot 3: off"]
    assert result["diff"]["after"].splitlines()[:3] == ["slot 1: on", "slot 2: on", "slot 3: on"]


def test_idempotent_all_on_uses_one_session(rig):
    r = rig("backplane10")
    first = run(r, "all", "on")
    assert first["changed"] and all(s["after"]["state"] == "on" for s in first["slots"])
    del r.log[:]
    again = run(r, "all", "on")
    assert again["changed"] is False
    # polarity + input per chip, nothing else
    assert [e[0] for e in r.log] == ["read_word_data"] * 4


def test_bus_transactions_to_switch_all_backplane_slots_on(rig):
    """Steady state: per chip polarity, input, latch, direction, one write, one read-back of the pins."""
    r = rig("backplane10")
    run(r, "all", "on")
    run(r, "all", "off")
    del r.log[:]
    run(r, "all", "on")
    writes = r.writes()
    assert len(writes) == 2  # one write per chip
    assert len(r.log) == 12


def test_cycle_waits_off_time_with_the_node_off(rig):
    r = rig("itx4")
    run(r, 1, "on")
    clock = Clock(r, 1)
    result = run(r, 1, "cycle", sleep=clock, off_time=2.5)
    assert clock.timeline == [(2.5, {"power": False, "run": True, "rpiboot": False, "eeprom_wp": False})]
    assert result["slots"][0]["after"]["state"] == "on"


def test_reset_pulses_run_low(rig):
    r = rig("itx4")
    run(r, [1, 3], "on")
    clock = Clock(r, 3)
    result = run(r, 3, "reset", sleep=clock, reset_pulse=0.2)
    assert clock.timeline == [(0.2, {"power": True, "run": False, "rpiboot": False, "eeprom_wp": False})]
    assert r.levels(3)["run"] is True and r.levels(1)["run"] is True
    assert result["changed"] is True


def test_reset_without_run_line_power_cycles(rig):
    r = rig("clusterhat_v2")
    run(r, 2, "on")
    clock = Clock(r, 2)
    result = run(r, 2, "reset", sleep=clock, off_time=1.0)
    assert result["slots"][0]["action"] == "cycle"
    assert clock.timeline[0][1]["power"] is False


def test_usb_boot(rig):
    r = rig("itx4")
    result = run(r, 4, "on", usb_boot=True)
    assert result["slots"][0]["after"] == {"power": True, "run": True, "rpiboot": True, "eeprom_wp": False,
                                           "state": "usb_boot"}
    assert run(r, 4, "on", usb_boot=True)["changed"] is False
    assert run(r, 4, "on")["changed"] is False  # usb_boot omitted: the line is left alone
    clock = Clock(r, 4)
    result = run(r, 4, "on", usb_boot=False, sleep=clock)
    assert result["slots"][0]["action"] == "reboot"  # a running node needs a reset for the new mode
    assert clock.timeline[0][1]["run"] is False and clock.timeline[0][1]["rpiboot"] is False
    assert r.levels(4)["rpiboot"] is False
    with pytest.raises(CarrierError, match=r"usb_boot: slot\(s\) 1 of board b1 \(profile clusterhat_v3\) have no "
                                           r"rpiboot line"):
        run(rig("clusterhat_v3"), 1, "on", usb_boot=True)


def test_protected_slots(rig):
    r = rig("itx4", protected_slots=[1])
    with pytest.raises(ProtectedSlotError, match=r"slot: 1 of board b1 hosts the controller itself; acting on it "
                                                 r"needs force=true"):
        run(r, [1, 2], "off")
    assert not r.writes()
    result = run(r, "all", "on")
    assert [s["slot"] for s in result["slots"]] == [2, 3, 4]
    assert result["skipped"] == [{"slot": 1, "reason": "protected: hosts the controller (use force)"}]
    assert r.levels(1)["power"] is False
    assert run(r, 1, "on", force=True)["changed"] is True


def test_bad_requests(rig):
    r = rig("itx4")
    with pytest.raises(CarrierError, match=r"state: 'up' is not one of on, off, cycle, reset"):
        PowerRequest(r.board, 1, "up")
    with pytest.raises(CarrierError, match=r"stagger: -1.0 is not a number of seconds"):
        PowerRequest(r.board, 1, "on", stagger=-1)
    with pytest.raises(CarrierError, match=r"slot: 9 is not a slot of profile itx4"):
        PowerRequest(r.board, [1, 9], "on")


def test_staggered_power_on_spaces_nodes(rig):
    r = rig("itx4")
    stamps = []

    def sleep(seconds):
        time.sleep(seconds)

    original = r.board.set_lines

    def recording(changes):
        stamps.append(time.monotonic())
        return original(changes)

    r.board.set_lines = recording
    result = execute(PowerRequest(r.board, "all", "on", stagger=0.05), sleep=sleep)
    assert result["changed"] and len(stamps) == 4
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert min(gaps) >= 0.045


def _through_gate(lock_dir, stagger, queue):
    board = types.SimpleNamespace(name="rack", lock_key="sim_x_bus.sock", lock_dir=lock_dir)
    with stagger_gate(board, stagger):
        queue.put(time.time())


def test_stagger_gate_holds_across_processes(tmp_path):
    """Forks switching nodes of one board on at once still pass the gate `stagger` apart."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_through_gate, args=(str(tmp_path), 0.1, queue)) for _proc in range(5)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    stamps = sorted(queue.get(timeout=5) for _proc in procs)
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert min(gaps) >= 0.095, gaps


@pytest.mark.parametrize("option", ["stagger", "off_time", "reset_pulse"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), 601, "soon", True])
def test_non_finite_timing_is_refused_before_any_line_moves(rig, option, value):
    r = rig("itx4")
    before = {slot: r.levels(slot) for slot in (1, 2)}
    with pytest.raises(CarrierError, match=r"%s: .* is not a number of seconds between 0 and 600" % option):
        PowerRequest(r.board, [1, 2], "cycle", **{option: value})
    assert {slot: r.levels(slot) for slot in (1, 2)} == before
