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
import re

from ansible import constants as C
from ansible.errors import AnsibleActionFail
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

MODULES = ("node_power", "node_status", "node_info", "board_sensors")
# Modules of the whole board (no slot): every node of the board gets the one result.
BOARD_WIDE = ("board_sensors",)
# Arguments naming one node: replaced in the board call by what the inventory says of each member.
NODE_KEYS = {"node_status": ("node", "model", "port")}
# from_inventory: module argument <- the node's host var (the inventory plugin's carrier_* vars), taken
# when the var is defined, as ``default(omit)`` would. The profile is carrier_profile_data when set.
BOARD_VARS = (("board", "carrier_board"), ("profile", "carrier_profile"), ("bus", "carrier_bus"),
              ("addresses", "carrier_addresses"), ("lock_dir", "carrier_lock_dir"), ("bmc_user", "carrier_bmc_user"),
              ("bmc_password", "carrier_bmc_password"), ("bmc_priv_password", "carrier_bmc_priv_password"),
              ("bmc_ca_path", "carrier_bmc_ca_path"))
# The board options board_sensors takes from a node module's arguments (the board spec of _common).
SENSOR_KEYS = ("board", "profile", "bus", "addresses", "protected_slots", "lock_dir", "bmc_user", "bmc_password",
               "bmc_priv_password", "bmc_ca_path", "validate_certs")
# Modules that read the board's sensors in their own run (option board_sensors): one module start per board
# instead of two.
SENSORS_IN_CALL = ("node_status",)
# Modules whose calls for every board of a controller go in one run of board_calls (a module run costs more
# than a board's bus traffic), when the board arguments come from the inventory.
CONTROLLER_WIDE = ("node_power", "node_status")
# Arguments that, given in the task's args, make the boards' arguments a template of each node's: no
# controller-wide call then (each board's call is made by one of its own nodes).
BOARD_LEVEL = frozenset(key for key, _var in BOARD_VARS) | {"slot", "protected_slots"}
# Arguments that go to board_calls apart from its calls (its no_log option ``secrets``).
SECRET_KEYS = ("bmc_password", "bmc_priv_password")
# Parts of a module result that are the call's, not data for the other nodes.
CALL_KEYS = ("exception", "invocation")


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


def _group(task_vars, prefix, value):
    """The hosts of the inventory plugin's group C(<prefix><value>) (board_ or controller_), or None without one."""
    groups = task_vars.get("groups") or {}
    for name in (prefix + value, re.sub(r"[^A-Za-z0-9_]", "_", prefix + value)):
        if name in groups:
            return set(groups[name])
    return None


def _members(task_vars, board, controller):
    """slot -> host for the hosts of the play batch on ``board`` (same controller).

    Each ``hostvars[host]`` costs a whole variable merge for that host, so only the hosts of the
    board's group are looked at when the inventory has one (every host is checked all the same: a
    host of the board missing from the group only makes its own call)."""
    hostvars = task_vars.get("hostvars", {})
    group = _group(task_vars, "board_", board)
    members = {}
    for host in task_vars.get("ansible_play_batch", []):
        if group is not None and host not in group:
            continue
        hv = hostvars[host]
        if hv.get("carrier_board") != board or hv.get("carrier_controller") != controller:
            continue
        slot = _slot_of(hv.get("carrier_slot"))
        if slot is not None:
            members[slot] = host
    return members


def _inventory_args(name, task_vars):
    """The module's board arguments from the node's host vars (untemplated)."""
    args = {}
    for key, var in BOARD_VARS:
        if key == "profile" and "carrier_profile_data" in task_vars:
            var = "carrier_profile_data"
        if var in task_vars:
            args[key] = task_vars[var]
    if name not in BOARD_WIDE:
        args["slot"] = task_vars.get("carrier_slot")
    if name == "node_power":
        args["protected_slots"] = task_vars.get("carrier_protected_slots", [])
    if name in NODE_KEYS:
        args.update(node=task_vars.get("inventory_hostname"), model=task_vars.get("carrier_model", "cm4"))
        if task_vars.get("carrier_console") is not None:
            args["port"] = task_vars["carrier_console"]
    return args


def _sensor_args(args):
    return {k: v for k, v in args.items() if k in SENSOR_KEYS}


def _digest(args):
    """Arguments compared by digest: the rendezvous file never holds a password."""
    return hashlib.sha256(json.dumps(args, sort_keys=True, default=str).encode()).hexdigest()


def _node_spec(hv, host):
    spec = {"host": host, "model": hv.get("carrier_model", "cm4")}
    if hv.get("carrier_console") is not None:
        spec["port"] = hv.get("carrier_console")
    return spec


def _call_args(name, shared_args, members, specs):
    """The module arguments of a board's call for the slots of ``members``."""
    call = dict(shared_args) if name in BOARD_WIDE else dict(shared_args, slot=sorted(members))
    if name == "node_power":
        call["isolate_slots"] = True  # a failing slot fails its own node, not the board's others
    if name in NODE_KEYS:
        call["nodes"] = {slot: specs[slot] for slot in sorted(members)}
    return call


def _slice(result, slot, leader, warn):
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
    if warn and result.get("warnings"):
        mine["warnings"] = result["warnings"]
    mine["fleet"] = {"leader": leader, "slots": [entry.get("slot") for entry in result.get("slots", [])]}
    return mine


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("module", "args", "arg_vars", "from_inventory", "board_sensors"))

    def _call(self, name, args, task_vars):
        return self._execute_module(module_name="picluster.carrier." + name, module_args=args, task_vars=task_vars)

    def _sensors_call(self, args, task_vars):
        result = self._call("board_sensors", _sensor_args(args), task_vars)
        return {k: v for k, v in result.items() if k not in CALL_KEYS}

    def _own_call(self, name, args, task_vars, sensors):
        """The node's own call, as a per-node task would make it (a failure lands on this node)."""
        if sensors and name in SENSORS_IN_CALL:
            return self._call(name, dict(args, board_sensors=True), task_vars)
        result = self._call(name, args, task_vars)
        if sensors:
            result["board_sensors"] = self._sensors_call(args, task_vars)
        return result

    def _rendezvous(self, task_vars, scope):
        batch = ",".join(sorted(task_vars.get("ansible_play_batch", [])))
        key = hashlib.sha256(("%s\0%s\0%s" % (self._task._uuid, batch, scope)).encode()).hexdigest()[:24]
        return os.path.join(C.DEFAULT_LOCAL_TMP, "carrier-fleet-" + key)

    def _options(self):
        """The task's own options: (module name, args, arg_vars, from_inventory, board_sensors)."""
        name = str(self._task.args.get("module", "")).rsplit(".", 1)[-1]
        if name not in MODULES:
            raise AnsibleActionFail("module: %r is not one of %s" % (self._task.args.get("module"), ", ".join(MODULES)))
        given = self._task.args.get("args") or {}
        if not isinstance(given, dict):
            raise AnsibleActionFail("args: a dict of the module's arguments is required (got %r)" % (given,))
        try:
            from_inventory = boolean(self._task.args.get("from_inventory", False), strict=True)
            sensors = boolean(self._task.args.get("board_sensors", False), strict=True)
        except TypeError as exc:
            raise AnsibleActionFail("from_inventory, board_sensors: %s" % exc)
        arg_vars = self._task.args.get("arg_vars") or {}
        if not isinstance(arg_vars, dict) or not all(isinstance(v, str) for v in arg_vars.values()):
            raise AnsibleActionFail("arg_vars: a dict of argument -> variable name is required (got %r)" % (arg_vars,))
        if sensors and name in BOARD_WIDE:
            raise AnsibleActionFail("board_sensors: only with a module of slots (module is %s)" % name)
        return name, given, arg_vars, from_inventory, sensors

    def _resolve(self, options, host_vars, play_vars):
        """A node's module arguments: from its host vars (from_inventory), the play's vars (arg_vars), the args."""
        name, given, arg_vars, from_inventory, _sensors = options
        # Vars reach an action plugin untemplated. Templating them here costs nothing for a plain value, where a
        # template in the task's own arguments is compiled again in every node's fork.
        args = _inventory_args(name, host_vars) if from_inventory else {}
        args.update((key, play_vars[var]) for key, var in arg_vars.items() if var in play_vars)
        if args:
            args = {k: v for k, v in self._templar.template(args).items() if v is not None or k not in arg_vars}
        args.update(given)
        return args

    def _arguments(self, task_vars):
        """(the task's options, the node's module arguments)."""
        options = self._options()
        args = self._resolve(options, task_vars, task_vars)
        if not isinstance(args.get("board"), str):
            raise AnsibleActionFail("args.board: the board name is required (got %r)" % (args.get("board"),))
        return options, args

    @staticmethod
    def _controller_wide(options, task_vars):
        """Whether the boards of the node's controller share one board_calls run: the module is one of
        CONTROLLER_WIDE, the board arguments come from the inventory (so the plugin can resolve them for
        every board) and the task's args hold none of them."""
        name, given, _arg_vars, from_inventory, sensors = options
        return (name in CONTROLLER_WIDE and from_inventory and isinstance(task_vars.get("carrier_controller"), str)
                and not BOARD_LEVEL & set(given) and (not sensors or name in SENSORS_IN_CALL))

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        super().run(tmp, task_vars)
        options, args = self._arguments(task_vars)
        name, sensors = options[0], options[4]
        own = _slot_of(task_vars.get("carrier_slot") if name in BOARD_WIDE else args.get("slot"))
        host = task_vars.get("inventory_hostname")
        if own is None:  # several slots or all: nothing to share
            return self._own_call(name, args, task_vars, sensors)
        if self._controller_wide(options, task_vars):
            base = self._rendezvous(task_vars, "controller\0" + task_vars["carrier_controller"])
            everyone, leader = self._meet(base, lambda: self._controller_call(options, task_vars, base))
            shared = everyone["boards"].get(args["board"])
            if shared is None:  # the controller's call did not know this node's board
                return self._own_call(name, args, task_vars, sensors)
            boards = sorted(everyone["boards"])
        else:
            base = self._rendezvous(task_vars, args["board"])
            shared, leader = self._meet(base, lambda: self._board_call(name, args, task_vars, base, sensors))
            boards = [args["board"]]
        members = {int(k): v for k, v in shared["members"].items()}
        result = shared.get("result")
        same = members.get(own) == host and shared["args"] == _digest(_board_args(name, args))
        if name in BOARD_WIDE:
            # The board's one result, a failure too: asking again from every node would only repeat it.
            if result is None or not same:
                return self._call(name, args, task_vars)
            return dict(result, fleet={"leader": leader, "slots": sorted(members), "boards": boards})
        covered = result is not None and any(entry.get("slot") == own for entry in result.get("slots") or [])
        if not covered or not same:
            return self._own_call(name, args, task_vars, sensors)  # as a per-node task would
        # A call's warnings are shown once: by the node that made the call, or (another board of a controller-wide
        # call) by the node of the board's first slot.
        warn = leader if "warn_slot" not in shared else own == shared["warn_slot"]
        mine = _slice(result, own, leader, warn)
        mine["fleet"]["boards"] = boards
        if sensors:
            mine["board_sensors"] = shared.get("sensors") or self._sensors_call(args, task_vars)
        return mine

    @staticmethod
    def _meet(base, call):
        """(what the first of the forks meeting at ``base`` published, whether this fork is that first one)."""
        with open(base + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                with open(base + ".json") as handle:
                    return json.load(handle), False
            except (OSError, ValueError):
                return call(), True

    def _controller_boards(self, options, task_vars):
        """board -> (its shared arguments, {slot: host}, {slot: node spec}) for the play batch's hosts of this
        node's controller, each board's arguments resolved from one of its nodes' host vars."""
        name = options[0]
        controller = task_vars["carrier_controller"]
        hostvars = task_vars.get("hostvars", {})
        group = _group(task_vars, "controller_", controller)
        boards = {}
        for host in task_vars.get("ansible_play_batch", []):
            if group is not None and host not in group:
                continue
            hv = hostvars[host]
            board, slot = hv.get("carrier_board"), _slot_of(hv.get("carrier_slot"))
            if hv.get("carrier_controller") != controller or not isinstance(board, str) or slot is None:
                continue
            if board not in boards:
                host_args = task_vars if host == task_vars.get("inventory_hostname") else hv
                boards[board] = (_board_args(name, self._resolve(options, host_args, task_vars)), {}, {})
            boards[board][1][slot] = host
            boards[board][2][slot] = _node_spec(hv, host)
        return boards

    def _controller_call(self, options, task_vars, base):
        """One board_calls run for every board of the controller; published per board as a board call is."""
        name, sensors = options[0], options[4]
        boards = self._controller_boards(options, task_vars)
        calls, secrets = [], {}
        for board, (shared_args, members, specs) in sorted(boards.items()):
            call = _call_args(name, shared_args, members, specs)
            if sensors:
                call["board_sensors"] = True
            hidden = {key: call[key] for key in SECRET_KEYS if call.get(key) is not None}
            call = {k: v for k, v in call.items() if k not in SECRET_KEYS}
            if hidden:
                secrets[board] = hidden
            calls.append(call)
        results = None
        try:
            answer = self._execute_module(module_name="picluster.carrier.board_calls", task_vars=task_vars,
                                          module_args={"module": name, "calls": calls, "secrets": secrets})
            results = answer.get("calls")
        finally:  # published even when the call raised: the nodes then make their own calls
            everyone = {}
            for index, (board, (shared_args, members, _specs)) in enumerate(sorted(boards.items())):
                result = results[index] if isinstance(results, list) and index < len(results) else None
                board_sensors = result.pop("board_sensors", None) if isinstance(result, dict) else None
                if isinstance(result, dict):
                    result = {k: v for k, v in result.items() if k not in CALL_KEYS}
                mine = _slot_of(task_vars.get("carrier_slot")) if board == task_vars.get("carrier_board") else None
                everyone[board] = {"members": members, "args": _digest(shared_args), "result": result,
                                   "sensors": board_sensors, "warn_slot": mine if mine in members else min(members)}
            data = json.dumps({"boards": everyone}, default=str)
            self._publish(base, data)
        return json.loads(data)

    def _board_call(self, name, args, task_vars, base, sensors):
        members = _members(task_vars, args["board"], task_vars.get("carrier_controller"))
        shared_args = _board_args(name, args)
        specs = {}
        if name in NODE_KEYS:
            hostvars = task_vars["hostvars"]
            specs = {slot: _node_spec(hostvars[h], h) for slot, h in members.items()}
        call = _call_args(name, shared_args, members, specs)
        result = board = None
        try:
            if sensors and members and name in SENSORS_IN_CALL:
                result = self._call(name, dict(call, board_sensors=True), task_vars)
                board = result.pop("board_sensors", None)
            else:
                result = self._call(name, call, task_vars) if members else None
                board = self._sensors_call(shared_args, task_vars) if sensors and members else None
        finally:  # written even when the call raised, so the others make their own calls instead of another board call
            if result is not None:
                result = {k: v for k, v in result.items() if k not in CALL_KEYS}
            shared = {"members": members, "args": _digest(shared_args), "result": result, "sensors": board}
            data = json.dumps(shared, default=str)
            self._publish(base, data)
        return json.loads(data)

    @staticmethod
    def _publish(base, data):
        fd = os.open(base + ".json.tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(data)
        os.rename(base + ".json.tmp", base + ".json")
