# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""node_status's task: its options and its run, shared by the module and by board_calls (the boards of
one controller in one module run)."""

from __future__ import annotations

import json
import os
import time

from ansible_collections.picluster.carrier.plugins.module_utils._bus import lock_directory
from ansible_collections.picluster.carrier.plugins.module_utils._common import (
    bmc_from_params,
    board_argument_spec,
    board_from_params,
)
from ansible_collections.picluster.carrier.plugins.module_utils._console import (
    ConsoleError,
    ConsoleSession,
)
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._fileio import atomic_write
from ansible_collections.picluster.carrier.plugins.module_utils._models import get_model
from ansible_collections.picluster.carrier.plugins.module_utils._sensors import fan_plan, read_and_drive
from ansible_collections.picluster.carrier.plugins.module_utils._nodestate import (
    boot_timeout,
    log_path,
    node_state,
    read_log,
)
from ansible_collections.picluster.carrier.plugins.module_utils._turingpi import (
    CONSOLE_PREFIX as BMC_CONSOLE_PREFIX,
)
from ansible_collections.picluster.carrier.plugins.module_utils._values import check_name, check_number

# Keep in step with node_status's DOCUMENTATION.
STATUS_OPTIONS = dict(
    slot=dict(type="raw", default="all"),
    node=dict(type="str"),
    model=dict(type="str", default="cm4"),
    port=dict(type="str"),
    nodes=dict(type="dict"),
    console=dict(type="str", default="log", choices=["log", "live", "none"]),
    log_dir=dict(type="path", default="/var/log/picluster/console"),
    keep_history=dict(type="bool", default=True),
    listen=dict(type="float", default=2.0),
    boot_timeout=dict(type="float"),
    loop_boots=dict(type="int", default=3),
    board_sensors=dict(type="bool", default=False),
)
STATUS_RULES = dict(mutually_exclusive=[("node", "nodes")])


def status_argument_spec():
    return board_argument_spec(**STATUS_OPTIONS)


FIELDS = ("lines", "stage", "boots", "boots_without_login", "last_power_on", "time_to_login", "last_output",
          "silent_for", "warnings", "events", "panic")


def _node_specs(params, slots):
    """slot -> {host, model, port} for the slots that name a node; every name and model checked."""
    if params["node"] is not None:
        if len(slots) != 1:
            raise CarrierError("node: %r names one node, but slot is %r (%d slots): give nodes for several"
                               % (params["node"], params["slot"], len(slots)))
        given = {slots[0]: {"host": params["node"], "model": params["model"], "port": params["port"]}}
    else:
        given = {}
        for key, value in (params["nodes"] or {}).items():
            slot = check_number(key, "nodes", minimum=0, integer=True, what="a slot number")
            spec = {"host": value} if isinstance(value, str) else value
            if not isinstance(spec, dict) or set(spec) - {"host", "model", "port"} or not spec.get("host"):
                raise CarrierError("nodes.%s: %r is not a host name or a mapping of host, model and port"
                                   % (key, value))
            given[int(slot)] = dict({"model": params["model"], "port": None}, **spec)
    for slot, spec in given.items():
        check_name(spec["host"], "nodes.%d.host" % slot if params["node"] is None else "node")
        get_model(spec["model"], field="model" if params["node"] is not None else "nodes.%d.model" % slot)
        if slot not in slots and params["node"] is None:
            raise CarrierError("nodes: slot %d is not one of the slots read (%s)" % (slot, params["slot"]))
    return given


def _history_file(directory, host):
    return os.path.join(directory, "%s.json" % host)


def _load_history(path):
    try:
        with open(path) as handle:
            data = json.load(handle)
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None  # none yet, or a damaged one: start afresh


def _live(params, spec):
    """(text, written, error) read from the node's console itself."""
    port = spec.get("port")
    if not port:
        return "", None, "console: live needs the node's port (port, or nodes.<slot>.port)"
    bmc = None
    if port.startswith(BMC_CONSOLE_PREFIX):
        bmc = dict(bmc_from_params(params), token_dir=lock_directory(params["lock_dir"]))
    try:
        with ConsoleSession(port, bmc=bmc) as session:
            session.send("")  # a getty or a shell prints its prompt again
            captured = session.capture(duration=params["listen"])
    except ConsoleError as exc:
        return "", None, str(exc)
    lines = captured["lines"]
    return "\n".join(lines), (time.time() if session.bytes_received else None), None


def _console_read(params, spec, history):
    """(text, partial, written, history, error) for one node."""
    if params["console"] == "live":
        text, written, error = _live(params, spec)
        return text, "", written, history, error
    try:
        text, partial, written, history = read_log(log_path(params["log_dir"], spec["host"]), history)
    except CarrierError as exc:  # a log this user may not read: the lines still tell something
        return "", "", None, history, str(exc)
    if text is None:
        return "", "", None, history, "no console log %s yet" % log_path(params["log_dir"], spec["host"])
    return text, partial, written, history, None


def _slot_entry(params, slot, lines, spec, history_dir):
    entry = {"slot": slot, "host": spec["host"] if spec else None}
    entry.update({name: value for name, value in lines.items() if value is not None})
    history = None
    reading = bool(spec) and params["console"] != "none"
    text, partial, written, error = "", "", None, None
    if reading:
        path = _history_file(history_dir, spec["host"]) if history_dir else None
        history = _load_history(path) if path else None
        text, partial, written, history, error = _console_read(params, spec, history)
    model = spec["model"] if spec else params["model"]
    state, history = node_state(lines, text, written=written, now=time.time(), model=model, history=history,
                                partial=partial, timeout=params["boot_timeout"], loop_boots=params["loop_boots"],
                                console=reading and error is None)
    entry["state"] = state["state"]
    entry.update({name: state[name] for name in FIELDS})
    entry["console"] = params["console"] if reading and error is None else None
    if error:
        entry["console_error"] = error
    if reading and history_dir and params["console"] == "log" and error is None:
        atomic_write(path, json.dumps(history, sort_keys=True), mode=0o600)
    return entry


def run_status(module):
    """node_status's run (``module``: an AnsibleModule, or one board's call of board_calls)."""
    params = module.params
    check_number(params["listen"], "listen", minimum=0, maximum=600)
    check_number(params["loop_boots"], "loop_boots", minimum=1, integer=True)
    if params["boot_timeout"] is not None:
        check_number(params["boot_timeout"], "boot_timeout", minimum=0)
    boot_timeout(params["model"], params["boot_timeout"])
    board = board_from_params(params)
    slots = board.resolve_slots(params["slot"])
    specs = _node_specs(params, slots)
    history_dir = None
    if params["keep_history"] and params["console"] == "log":
        history_dir = os.path.join(lock_directory(params["lock_dir"]), "node-state")
    with board.session() as session:
        states = session.read_state(slots)
    result = [_slot_entry(params, slot, states[slot], specs.get(slot), history_dir) for slot in slots]
    summary = {}
    for entry in result:
        summary[entry["state"]] = summary.get(entry["state"], 0) + 1
    out = {"changed": False, "board": board.name, "slots": result, "summary": summary}
    if params["board_sensors"]:
        out["board_sensors"] = _board_sensors(board)
    return out


def _board_sensors(board):
    """board_sensors' read (no fan driven) in this run; a failure is reported in it, not raised."""
    try:
        readings = read_and_drive(board, fan_plan(board.profile), check_mode=True)
    except CarrierError as exc:
        return {"failed": True, "msg": str(exc), "board": board.name}
    readings.pop("diff", None)
    return readings
