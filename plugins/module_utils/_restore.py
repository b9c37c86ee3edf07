# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Power-restore policy: the nodes' last intended power state, kept on the controller, and putting
it back after the controller (or the whole board) restarts.

The intended state is what the user last asked node_power for (``on``/``cycle`` -> on, ``off`` ->
off), per board and slot, in one JSON file (``DEFAULT_STATE_FILE``, 0644, written whole by
``_fileio.atomic_write`` under a lock so concurrent forks never lose each other's slots).

A board's policy (the profile's ``restore``, or the module's ``policy``):

- ``last``: switch on the slots whose last intended state is on;
- ``on``: switch on every slot;
- ``off``: switch nothing on.

Restoring only ever switches nodes *on*, and only nodes whose power line reads off: a node that is
on (the board kept its power while the controller restarted) is never written to, whatever the
policy or the file says, and nothing is ever switched off. Switching on goes through
``_power.execute``: the expander bits become outputs glitch-free (latch from the pins first), and
the board's stagger spaces the nodes out.
"""

from __future__ import annotations

import json
import os
import time

from ansible_collections.picluster.carrier.plugins.module_utils._board import RESTORE_POLICIES
from ansible_collections.picluster.carrier.plugins.module_utils._bus import file_lock
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._fileio import atomic_write, read_optional
from ansible_collections.picluster.carrier.plugins.module_utils._power import PowerRequest, execute

DEFAULT_STATE_FILE = "/var/lib/picluster-carrier/power-state.json"
FORMAT_VERSION = 1
INTENT_OF_STATE = {"on": "on", "cycle": "on", "off": "off"}  # reset and identify change no intent


def read_intents(path):
    """``{board: {slot (int): "on" | "off"}}`` from the state file ({} when there is none)."""
    data = read_optional(path)
    if data is None:
        return {}
    try:
        doc = json.loads(data.decode("utf-8"))
        boards = doc["boards"]
        return {str(board): {int(slot): _intent(value) for slot, value in entry["slots"].items()}
                for board, entry in boards.items()}
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise CarrierError("state_file: %s is not a power-state file of this collection (%s); move it away to "
                           "start afresh" % (path, exc)) from None


def _intent(value):
    if value not in ("on", "off"):
        raise ValueError("intended state %r is neither on nor off" % (value,))
    return value


def record_intents(path, board_name, intents, now=time.time):
    """Merge ``{slot: "on" | "off"}`` of one board into the state file; True when the file changed.

    The read-merge-write holds a lock beside the file, so forks recording different slots of one
    board (or different boards) at the same time all land.
    """
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
    except OSError as exc:
        raise CarrierError("state_file: cannot create %s: %s" % (directory, exc.strerror or exc)) from exc
    with file_lock(os.path.join(directory, "." + os.path.basename(path) + ".lock")):
        boards = read_intents(path)
        current = boards.setdefault(board_name, {})
        merged = dict(current)
        merged.update({int(s): _intent(v) for s, v in intents.items()})
        if merged == current:
            return False
        boards[board_name] = merged
        doc = {"version": FORMAT_VERSION, "updated": round(now(), 3),
               "boards": {b: {"slots": {str(s): v for s, v in sorted(slots.items())}}
                          for b, slots in sorted(boards.items())}}
        atomic_write(path, json.dumps(doc, indent=1, sort_keys=True) + "\n", mode=0o644)
        return True


def record_request(path, request, result):
    """After a successful node_power run: record the intent of its request for the slots it named.
    Returns ``{"path", "changed"}`` (``None`` when there is nothing to record)."""
    intent = INTENT_OF_STATE.get(request.state)
    if not path or intent is None or not request.slots:
        return None
    return {"path": path, "changed": record_intents(path, request.board.name, dict.fromkeys(request.slots, intent))}


def check_policy(policy, field="policy"):
    if policy not in RESTORE_POLICIES:
        raise CarrierError("%s: %r is not one of %s" % (field, policy, ", ".join(RESTORE_POLICIES)))
    return policy


def plan(board, policy, intents, before):
    """Per slot: ``(action, intended, reason)``; action ``on`` or ``none``."""
    steps = {}
    for slot, state in before.items():
        if policy == "on":
            intended = "on"
        elif policy == "off":
            intended = "off"
        else:
            intended = intents.get(slot)
        if state.get("power"):
            steps[slot] = ("none", intended, "already on: not touched")
        elif slot in board.protected_slots:
            steps[slot] = ("none", intended, "protected: hosts the controller")
        elif intended == "on":
            steps[slot] = ("on", intended, "policy %s: intended on" % policy)
        else:
            steps[slot] = ("none", intended, "policy %s: %s" % (policy, "intended off" if intended else
                                                                "no intended state recorded"))
    return steps


def restore(board, policy=None, state_file=DEFAULT_STATE_FILE, slots=None, check_mode=False, sleep=time.sleep):
    """Apply a board's power-restore policy. Reads every slot's lines first (reads only); writes only to
    switch on nodes that are off. Returns the result dict of the power_restore module."""
    policy = check_policy(board.profile.restore if policy is None else policy)
    intents = read_intents(state_file).get(board.name, {}) if policy == "last" else {}
    wanted = board.resolve_slots(slots)
    before = board.read_state(wanted)
    steps = plan(board, policy, intents, before)
    to_on = sorted(slot for slot, (action, _i, _r) in steps.items() if action == "on")
    after = {slot: {"power": bool(state.get("power"))} for slot, state in before.items()}
    if to_on:
        result = execute(PowerRequest(board, to_on, "on"), check_mode=check_mode, sleep=sleep)
        for entry in result["slots"]:
            after[entry["slot"]] = {"power": entry["after"].get("power", True)}
    out = []
    for slot in wanted:
        action, intended, reason = steps[slot]
        out.append({"slot": slot, "action": action, "intended": intended, "reason": reason,
                    "power_before": bool(before[slot].get("power")), "power_after": after[slot]["power"]})
    return {
        "changed": bool(to_on),
        "board": board.name,
        "policy": policy,
        "state_file": state_file,
        "slots": out,
        "diff": {"before": "".join("slot %d: %s\n" % (s["slot"], "on" if s["power_before"] else "off") for s in out),
                 "after": "".join("slot %d: %s\n" % (s["slot"], "on" if s["power_after"] else "off") for s in out)},
    }
