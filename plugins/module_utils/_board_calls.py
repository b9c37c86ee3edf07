# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Several boards' calls of one board module in one run (the module board_calls).

A module run costs about 0.4 s of CPU before it touches a bus (Python, Ansible's module payload,
its shell commands): one run per board was most of what power.yml's no-op costs at fleet scale
(docs/internals.md, Fleet). Each call here is what one run of the module would do for that board,
validated by the module's own argument spec, and the calls run in threads, so boards still switch
in parallel and each board's stagger stays exact (its gate is a file lock, which threads honour as
processes do: every lock of ``_bus.file_lock`` is its own open file).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._power_task import (
    POWER_RULES,
    power_argument_spec,
    run_power,
)
from ansible_collections.picluster.carrier.plugins.module_utils._status_task import (
    STATUS_RULES,
    run_status,
    status_argument_spec,
)

# module -> (its argument spec, its rules, its run)
TASKS = {
    "node_power": (power_argument_spec, POWER_RULES, run_power),
    "node_status": (status_argument_spec, STATUS_RULES, run_status),
}
# Arguments that are secrets: given apart from the calls (the module's no_log ``secrets``), so that only
# they are masked in what the module returns.
SECRET_KEYS = ("bmc_password", "bmc_priv_password")
MAX_THREADS = 32


class BoardCall:
    """What a board module's run uses of AnsibleModule, for one board's call."""

    def __init__(self, params, check_mode, diff):
        self.params = params
        self.check_mode = check_mode
        self._diff = diff
        self.warnings = []

    def warn(self, warning):
        self.warnings.append(warning)


def validate_calls(module, calls, secrets):
    """Every call's parameters, validated by ``module``'s spec before any is run; the secrets of the call's
    board merged in. Returns (params list, the secrets' values to mask)."""
    if module not in TASKS:
        raise CarrierError("module: %r is not one of %s" % (module, ", ".join(sorted(TASKS))))
    spec, rules, _run = TASKS[module]
    if not isinstance(secrets, dict):
        raise CarrierError("secrets: a mapping of board name -> its secret options is required")
    validated, masked, boards = [], set(), set()
    for index, call in enumerate(calls):
        board = call.get("board") if isinstance(call, dict) else None
        where = "calls[%d] (board %r)" % (index, board)
        if not isinstance(board, str):
            raise CarrierError("%s: a mapping with the board's name in board is required" % where)
        if board in boards:
            raise CarrierError("%s: board %r has a call already" % (where, board))
        boards.add(board)
        given = secrets.get(board) or {}
        if set(given) - set(SECRET_KEYS) or set(call) & set(SECRET_KEYS):
            raise CarrierError("%s: %s go in secrets, and nothing else does" % (where, ", ".join(SECRET_KEYS)))
        result = ArgumentSpecValidator(spec(), **rules).validate(dict(call, **given))
        if result.error_messages:
            raise CarrierError("%s: %s" % (where, "; ".join(result.error_messages)))
        validated.append(result.validated_parameters)
        masked.update(result._no_log_values)
    return validated, masked


def _run_one(run, call):
    """One board's call: its result, or its failure as a result (``failed``, ``msg`` and what it carried)."""
    try:
        result = run(call)
    except CarrierError as exc:
        result = dict(exc.result or {})
        result.update(failed=True, msg=str(exc))
    if call.warnings:
        result["warnings"] = list(result.get("warnings", [])) + call.warnings
    return result


def run_calls(module, params_list, check_mode, diff):
    """The results of the calls, in their order. A failing board's call is its own entry's failure; a bug
    (anything but a CarrierError) fails the run with its traceback, as it would fail the module."""
    run = TASKS[module][2]
    calls = [BoardCall(params, check_mode, diff) for params in params_list]
    if not calls:
        return []
    with ThreadPoolExecutor(max_workers=min(MAX_THREADS, len(calls))) as pool:
        futures = [pool.submit(_run_one, run, call) for call in calls]
        return [future.result() for future in futures]
