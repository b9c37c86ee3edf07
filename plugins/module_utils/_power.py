# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Node power operations on a :class:`_board.Board`: on, off, cycle, reset, USB-boot mode.

The plan is computed from the state read from the hardware before anything is written, so
check mode reports exactly what a real run would do, and a state that already holds is
``changed: false``. Power-on of several slots is staggered (docs/hardware.md section 1: limit the
inrush) and the stagger is honoured across processes: every process switching a node of one
board on passes through one gate file, so Ansible forks running in parallel still space out.
"""

from __future__ import annotations

import contextlib
import os
import time

from ansible_collections.picluster.carrier.plugins.module_utils._board import MAX_SECONDS, SLOT_LINE_NAMES, slot_summary
from ansible_collections.picluster.carrier.plugins.module_utils._bus import file_lock, lock_directory
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError, ProtectedSlotError
from ansible_collections.picluster.carrier.plugins.module_utils._fileio import atomic_write
from ansible_collections.picluster.carrier.plugins.module_utils._values import check_number

STATES = ("on", "off", "cycle", "reset")


@contextlib.contextmanager
def stagger_gate(board, stagger, sleep=time.sleep):
    """Wait until ``stagger`` seconds have passed since the last power-on on this board, by any process.

    The gate is a lock file plus a time stamp next to the bus locks; holding the lock while the
    node is switched on makes the spacing exact across concurrent forks.
    """
    if stagger <= 0:
        yield
        return
    base = os.path.join(lock_directory(board.lock_dir), "stagger-%s-%s" % (board.lock_key, board.name))
    with file_lock(base + ".lock", timeout=max(600.0, stagger * 100)):
        try:
            with open(base + ".stamp") as handle:
                last = float(handle.read().strip() or 0)
        except (OSError, ValueError):
            last = 0.0
        wait = last + stagger - time.time()
        if wait > 0:
            sleep(min(wait, stagger))
        try:
            yield
        finally:
            atomic_write(base + ".stamp", "%.6f\n" % time.time(), makedirs=False)


def _public(state):
    """A slot's state as returned to users: its lines that exist, and a summary word."""
    result = {name: state[name] for name in SLOT_LINE_NAMES if state.get(name) is not None}
    result["state"] = slot_summary(state)
    return result


class PowerRequest(object):
    """What a user asked for; validated against the board before anything is read."""

    def __init__(self, board, slot, state, usb_boot=None, stagger=None, off_time=None, reset_pulse=None,
                 force=False, identify=None):
        if state is None and identify is None:
            raise CarrierError("state: required unless identify is given")
        if state is not None and state not in STATES:
            raise CarrierError("state: %r is not one of %s" % (state, ", ".join(STATES)))
        if identify is not None and not isinstance(identify, bool):
            raise CarrierError("identify: %r is not true or false" % (identify,))
        if state is None and usb_boot is not None:
            raise CarrierError("usb_boot: needs a state (on, off, cycle, reset)")
        self.identify = identify
        self.board = board
        self.state = state
        self.usb_boot = usb_boot
        timing = board.profile.timing
        # Checked before any line moves: a nan or inf here would otherwise fail in time.sleep half-way
        # through a cycle or reset and leave the node off, or powered but held in reset.
        given = {"stagger": stagger, "off_time": off_time, "reset_pulse": reset_pulse}
        for name, value in given.items():
            if value is None:
                value = timing[name]
            elif isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            setattr(self, name, float(check_number(
                value, name, 0, MAX_SECONDS, what="a number of seconds between 0 and %d" % MAX_SECONDS)))
        explicit = not (slot is None or slot == "all" or slot == ["all"])
        slots = board.resolve_slots(slot)
        self.skipped = []
        protected = [s for s in slots if s in board.protected_slots]
        if protected and not force:
            if explicit:
                raise ProtectedSlotError(
                    "slot: %s of board %s hosts the controller itself; acting on it needs force=true"
                    % (", ".join(str(s) for s in protected), board.name))
            self.skipped = protected
            slots = [s for s in slots if s not in protected]
        self.slots = slots
        if identify is not None:
            lacking = [s for s in slots if "led" not in board.profile.lines(s)]
            if lacking:
                raise CarrierError("identify: slot(s) %s of board %s (profile %s) have no led line"
                                   % (", ".join(map(str, lacking)), board.name, board.profile.name))
        if usb_boot is not None:
            lacking = [s for s in slots if "rpiboot" not in board.profile.lines(s)]
            if lacking:
                raise CarrierError("usb_boot: slot(s) %s of board %s (profile %s) have no rpiboot line"
                                   % (", ".join(map(str, lacking)), board.name, board.profile.name))


def _wanted_on(req, slot, current):
    """Lines to drive so the slot is on (and in the requested boot mode)."""
    lines = req.board.profile.lines(slot)
    wanted = {"power": True}
    if "run" in lines:
        wanted["run"] = True
    if req.usb_boot is not None:
        wanted["rpiboot"] = bool(req.usb_boot)
    return {name: value for name, value in wanted.items() if current.get(name) != value}


def plan(req, before):
    """Per slot, the action a run would take: none, on, off, cycle, reset, reboot (a reset to apply rpiboot)."""
    actions = {}
    for slot in req.slots:
        current = before[slot]
        has_run = "run" in req.board.profile.lines(slot) or req.board.profile.native_reset
        if req.state is None:
            actions[slot] = "none"
        elif req.state == "off":
            actions[slot] = "off" if current["power"] else "none"
        elif req.state == "on":
            delta = _wanted_on(req, slot, current)
            if not delta:
                actions[slot] = "none"
            elif current["power"] and "rpiboot" in delta and current.get("run") is not False:
                # The node runs: a new boot mode only takes effect at the next start.
                actions[slot] = "reboot" if has_run else "cycle"
            else:
                actions[slot] = "on"
        elif req.state == "cycle":
            actions[slot] = "cycle" if current["power"] else "on"
        else:  # reset
            if not current["power"]:
                actions[slot] = "none"
            else:
                actions[slot] = "reset" if has_run else "cycle"
    return actions


def _predict(req, slot, current, action):
    after = dict(current)
    if action == "off":
        after["power"] = False
    elif action in ("on", "cycle", "reset", "reboot"):
        after.update({"power": True})
        if "run" in req.board.profile.lines(slot):
            after["run"] = True
        if req.usb_boot is not None:
            after["rpiboot"] = bool(req.usb_boot)
    return after


def _switch_on(req, slots, before, sleep):
    """Switch slots on: lines first (run, rpiboot), power last; one gate pass per node when staggered."""
    if req.stagger <= 0:
        changes = {slot: _wanted_on(req, slot, before[slot]) for slot in slots}
        changes = {slot: delta for slot, delta in changes.items() if delta}
        if changes:
            req.board.set_lines(changes)
        return
    for slot in slots:
        delta = _wanted_on(req, slot, before[slot])
        if not delta:
            continue
        with stagger_gate(req.board, req.stagger, sleep=sleep):
            req.board.set_lines({slot: delta})


def _pulse_run(req, slots, sleep):
    if req.board.profile.native_reset:
        with req.board.session() as session:
            session.reset(slots)
        return
    req.board.set_lines({slot: {"run": False} for slot in slots})
    sleep(req.reset_pulse)
    req.board.set_lines({slot: {"run": True} for slot in slots})


def _diff_line(slot, public):
    led = "" if "led" not in public else ", identify %s" % ("on" if public["led"] else "off")
    return "slot %d: %s%s\n" % (slot, public["state"], led)


def _set_identify(req, after, check_mode):
    """Light or put out the slots' identify LEDs (after any power change); the slots changed. Updates ``after``."""
    if req.identify is None:
        return []
    changes = {slot: {"led": req.identify} for slot in req.slots if after[slot].get("led") != req.identify}
    if changes and not check_mode:
        req.board.set_lines(changes)  # verified by reading the pins back
    for slot in changes:
        after[slot]["led"] = req.identify
    return sorted(changes)


def execute(req, check_mode=False, sleep=time.sleep):
    """Carry out a :class:`PowerRequest`. Returns the result dict the module returns.

    Reading, planning and every write that needs no waiting happen in one bus session (one lock
    hold). The bus lock is never held while sleeping (off time, reset pulse) nor while waiting at
    the stagger gate, so other forks keep the bus, and a fork holding the gate never waits for a
    fork that holds the bus and wants the gate.
    """
    board = req.board
    with board.holding():
        before = board.read_state(req.slots) if req.slots else {}
        actions = plan(req, before)
        todo = {slot: a for slot, a in actions.items() if a != "none"}
        ons = sorted(s for s, a in todo.items() if a == "on")
        offs = sorted(s for s, a in todo.items() if a in ("off", "cycle"))
        simple = all(a in ("on", "off") for a in todo.values()) and (req.stagger <= 0 or not ons)
        after = None
        if check_mode or not todo:
            after = {slot: _predict(req, slot, before[slot], actions[slot]) for slot in req.slots}
        else:
            if offs:
                board.set_lines({slot: {"power": False} for slot in offs})
            if simple:
                _switch_on(req, ons, before, sleep)
                after = board.read_state(req.slots)
    if after is None:
        cycled = [s for s in offs if todo[s] == "cycle"]
        after_off = {}
        if cycled:
            sleep(req.off_time)
            after_off = {s: dict(before[s], power=False) for s in cycled}
        reboots = sorted(s for s, a in todo.items() if a == "reboot")
        if reboots:
            board.set_lines({s: {"rpiboot": bool(req.usb_boot)} for s in reboots})
        resets = sorted(s for s, a in todo.items() if a in ("reset", "reboot"))
        if resets:
            _pulse_run(req, resets, sleep)
        _switch_on(req, sorted(ons + cycled), {**before, **after_off}, sleep)
        after = board.read_state(req.slots)
    leds = _set_identify(req, after, check_mode)
    slots = []
    for slot in req.slots:
        slots.append({
            "slot": slot,
            "action": actions[slot],
            "changed": actions[slot] != "none" or slot in leds,
            "before": _public(before[slot]),
            "after": _public(after[slot]),
        })
    changed = bool(todo or leds)
    return {
        "changed": changed,
        "board": req.board.name,
        "state": req.state,
        "slots": slots,
        "skipped": [{"slot": s, "reason": "protected: hosts the controller (use force)"} for s in req.skipped],
        "diff": {
            "before": "".join(_diff_line(s["slot"], s["before"]) for s in slots),
            "after": "".join(_diff_line(s["slot"], s["after"]) for s in slots),
        },
    }
