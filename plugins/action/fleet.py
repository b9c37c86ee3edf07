# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin ``picluster.carrier.fleet``: one module call per board, one result per node.

Every host of the task runs this plugin in its own fork. The hosts of one board meet at a lock
file in Ansible's local temporary directory (made by the ansible-playbook process, inherited by
every fork, removed at its exit). The first host of a board to take the lock calls the module
once for the slots of every host of the play batch on that board (read from the inventory's
``carrier_board``/``carrier_slot``/``carrier_controller``) and writes the result; the others
read it and return their own slot's slice. Nobody waits for a host that has not started, so a
play with fewer forks than hosts cannot dead-lock. A host whose own arguments differ from the
board call's, whose slot the board call did not cover, or whose board call failed, makes its
own call, as a per-node task would: a failure lands on the node that has it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os

from ansible import constants as C
from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

MODULES = ("node_power", "node_status", "node_info", "board_sensors")
# Modules of the whole board (no slot): every node of the board gets the one result.
BOARD_WIDE = ("board_sensors",)
# Arguments naming one node: replaced in the board call by what the inventory says of each member.
NODE_KEYS = {"node_status": ("node", "model", "port")}


def _slot_of(value):
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _board_args(name, args):
    """The arguments every node of a board shares: the node's own ones left out."""
    return {k: v for k, v in args.items() if k != "slot" and k not in NODE_KEYS.get(name, ())}


def _members(task_vars, board, controller):
    """slot -> host for the hosts of the play batch on ``board`` (same controller)."""
    hostvars = task_vars.get("hostvars", {})
    members = {}
    for host in task_vars.get("ansible_play_batch", []):
        hv = hostvars[host]
        if hv.get("carrier_board") != board or hv.get("carrier_controller") != controller:
            continue
        slot = _slot_of(hv.get("carrier_slot"))
        if slot is not None:
            members[slot] = host
    return members


def _digest(args):
    """Arguments compared by digest: the rendezvous file never holds a password."""
    return hashlib.sha256(json.dumps(args, sort_keys=True, default=str).encode()).hexdigest()


def _node_spec(hv, host):
    spec = {"host": host, "model": hv.get("carrier_model", "cm4")}
    if hv.get("carrier_console") is not None:
        spec["port"] = hv.get("carrier_console")
    return spec


def _slice(result, slot, leader):
    """The part of a board result that is one slot's: the shape of a one-slot call."""
    mine = dict((k, v) for k, v in result.items() if k not in (
        "slots", "diff", "skipped", "warnings", "summary", "invocation", "deprecations", "failed", "msg", "exception"))
    entries = [entry for entry in result.get("slots", []) if entry.get("slot") == slot]
    mine["slots"] = entries
    mine["changed"] = any(entry.get("changed", False) for entry in entries)
    failed = [entry for entry in entries if entry.get("failed")]
    if failed:
        mine["failed"] = True
        mine["msg"] = "; ".join("slot %d of board %s: %s" % (slot, result.get("board"), entry.get("msg"))
                                for entry in failed)
    if "skipped" in result:
        mine["skipped"] = [entry for entry in result["skipped"] if entry.get("slot") == slot]
    if "summary" in result:
        mine["summary"] = {}
        for entry in entries:
            mine["summary"][entry["state"]] = mine["summary"].get(entry["state"], 0) + 1
    if "diff" in result:
        prefix = "slot %d:" % slot
        mine["diff"] = {side: "".join(line for line in text.splitlines(True) if line.startswith(prefix))
                        for side, text in result["diff"].items()}
    if leader and result.get("warnings"):
        mine["warnings"] = result["warnings"]
    mine["fleet"] = {"leader": leader, "slots": [entry.get("slot") for entry in result.get("slots", [])]}
    return mine


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("module", "args"))

    def _call(self, name, args, task_vars):
        return self._execute_module(module_name="picluster.carrier." + name, module_args=args, task_vars=task_vars)

    def _rendezvous(self, task_vars, board):
        batch = ",".join(sorted(task_vars.get("ansible_play_batch", [])))
        key = hashlib.sha256(("%s\0%s\0%s" % (self._task._uuid, batch, board)).encode()).hexdigest()[:24]
        return os.path.join(C.DEFAULT_LOCAL_TMP, "carrier-fleet-" + key)

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        super().run(tmp, task_vars)
        name = str(self._task.args.get("module", "")).rsplit(".", 1)[-1]
        if name not in MODULES:
            raise AnsibleActionFail("module: %r is not one of %s" % (self._task.args.get("module"), ", ".join(MODULES)))
        args = dict(self._task.args.get("args") or {})
        if not isinstance(args.get("board"), str):
            raise AnsibleActionFail("args.board: the board name is required (got %r)" % (args.get("board"),))
        own = _slot_of(task_vars.get("carrier_slot") if name in BOARD_WIDE else args.get("slot"))
        host = task_vars.get("inventory_hostname")
        if own is None:  # several slots or all: nothing to share
            return self._call(name, args, task_vars)
        base = self._rendezvous(task_vars, args["board"])
        with open(base + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                with open(base + ".json") as handle:
                    shared = json.load(handle)
                leader = False
            except (OSError, ValueError):
                shared = self._board_call(name, args, task_vars, base)
                leader = True
        members = {int(k): v for k, v in shared["members"].items()}
        result = shared.get("result")
        if name in BOARD_WIDE:
            # The board's one result, a failure too: asking again from every node would only repeat it.
            if result is None or members.get(own) != host or shared["args"] != _digest(_board_args(name, args)):
                return self._call(name, args, task_vars)
            return dict(result, fleet={"leader": leader, "slots": sorted(members)})
        covered = result is not None and any(entry.get("slot") == own for entry in result.get("slots") or [])
        if (not covered or members.get(own) != host
                or shared["args"] != _digest(_board_args(name, args))):
            return self._call(name, args, task_vars)  # as a per-node task would
        return _slice(result, own, leader)

    def _board_call(self, name, args, task_vars, base):
        members = _members(task_vars, args["board"], task_vars.get("carrier_controller"))
        shared_args = _board_args(name, args)
        call = dict(shared_args) if name in BOARD_WIDE else dict(shared_args, slot=sorted(members))
        if name == "node_power":
            call["isolate_slots"] = True  # a failing slot fails its own node, not the board's others
        if name in NODE_KEYS:
            hostvars = task_vars["hostvars"]
            call["nodes"] = {slot: _node_spec(hostvars[h], h) for slot, h in members.items()}
        result = None
        try:
            result = self._call(name, call, task_vars) if members else None
        finally:  # written even when the call raised, so the others make their own calls instead of another board call
            if result is not None:
                result = {k: v for k, v in result.items() if k not in ("exception", "invocation")}
            shared = {"members": members, "args": _digest(shared_args), "result": result}
            data = json.dumps(shared, default=str)
            self._publish(base, data)
        return json.loads(data)

    @staticmethod
    def _publish(base, data):
        fd = os.open(base + ".json.tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(data)
        os.rename(base + ".json.tmp", base + ".json")
