# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""node_power's task: its options and its run, shared by the module and by board_calls (the boards of
one controller in one module run)."""

from __future__ import annotations

from ansible_collections.picluster.carrier.plugins.module_utils._common import board_argument_spec, board_from_params
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._power import (
    STATES,
    PowerRequest,
    _diff_line,
    _public,
    execute,
    plan,
)
from ansible_collections.picluster.carrier.plugins.module_utils._restore import record_request

# Keep in step with node_power's DOCUMENTATION.
POWER_OPTIONS = dict(
    slot=dict(type="raw", required=True),
    state=dict(type="str", choices=list(STATES)),
    identify=dict(type="bool"),
    restore_state_file=dict(type="path", default="/var/lib/picluster-carrier/power-state.json"),
    usb_boot=dict(type="bool"),
    stagger=dict(type="float"),
    off_time=dict(type="float"),
    reset_pulse=dict(type="float"),
    force=dict(type="bool", default=False),
    isolate_slots=dict(type="bool", default=False),
)
POWER_RULES = dict(required_one_of=[["state", "identify"]])


def power_argument_spec():
    return board_argument_spec(**POWER_OPTIONS)


def _request(board, params, slot):
    return PowerRequest(board, slot, params["state"], usb_boot=params["usb_boot"], stagger=params["stagger"],
                        off_time=params["off_time"], reset_pulse=params["reset_pulse"], force=params["force"],
                        identify=params["identify"])


def _slot_by_slot(board, params, request, check_mode, before, error):
    """After a failed change of several slots: each slot alone, a failure kept on its own entry."""
    planned = plan(request, before)
    entries = []
    for slot in request.slots:
        try:
            entry = execute(_request(board, params, [slot]), check_mode=check_mode)["slots"][0]
        except CarrierError as exc:
            with board.holding():
                after = board.read_state([slot])[slot]
            entry = {"slot": slot, "action": "none", "failed": True, "msg": str(exc), "after": _public(after)}
        entry["before"] = _public(before[slot])
        if entry["before"] != entry["after"] and entry["action"] == "none":
            entry["action"] = planned[slot]  # the first attempt's doing
        entry["changed"] = entry.get("changed", False) or entry["before"] != entry["after"]
        entries.append(entry)
    failed = [entry for entry in entries if entry.get("failed")]
    result = {
        "changed": any(entry["changed"] for entry in entries),
        "board": board.name,
        "state": request.state,
        "slots": entries,
        "skipped": [{"slot": s, "reason": "protected: hosts the controller (use force)"} for s in request.skipped],
        "diff": {side: "".join(_diff_line(entry["slot"], entry[side]) for entry in entries)
                 for side in ("before", "after")},
    }
    if failed:
        raise CarrierError("slot %s of board %s failed: %s" % (
            ", ".join(str(entry["slot"]) for entry in failed), board.name,
            "; ".join(entry["msg"] for entry in failed))).with_result(**result)
    if error is not None:
        result["warnings"] = ["acting on the slots together failed (%s); slot by slot, all succeeded" % error]
    return result


def run_power(module):
    """node_power's run: ``module`` gives ``params``, ``check_mode``, ``_diff`` and ``warn`` (an AnsibleModule,
    or one board's call of board_calls)."""
    params = module.params
    board = board_from_params(params)
    request = _request(board, params, params["slot"])
    if params["isolate_slots"] and len(request.slots) > 1:
        with board.holding():
            before = board.read_state(request.slots)
        try:
            result = execute(request, check_mode=module.check_mode)
        except CarrierError as exc:
            result = _slot_by_slot(board, params, request, module.check_mode, before, exc)
            for warning in result.pop("warnings", []):
                module.warn(warning)
    else:
        result = execute(request, check_mode=module.check_mode)
    if not module.check_mode:
        try:
            recorded = record_request(params["restore_state_file"], request, result)
        except CarrierError as exc:
            module.warn("the intended power state was not recorded for power_restore: %s" % exc)
        else:
            if recorded is not None:
                result["restore_state"] = recorded
    if not module._diff:
        result.pop("diff")
    return result
