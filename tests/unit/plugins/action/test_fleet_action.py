# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet action plugin: one board call shared by the hosts of a board, each host's slice, fallbacks."""

from __future__ import annotations

import types

import pytest
from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.picluster.carrier.plugins.action import fleet

HOSTS = {"n1": ("rack1", 1), "n2": ("rack1", 2), "n3": ("rack1", 3), "m1": ("rack2", 1)}


def task_vars(host, batch=("n1", "n2", "m1")):
    hostvars = {h: {"carrier_board": b, "carrier_slot": s, "carrier_controller": "ctrl0", "carrier_model": "cm5"}
                for h, (b, s) in HOSTS.items()}
    return {"inventory_hostname": host, "ansible_play_batch": list(batch), "hostvars": hostvars,
            "carrier_controller": "ctrl0"}


def power_result(slots, failing=()):
    entries = []
    for slot in slots:
        entry = {"slot": slot, "action": "on", "changed": True, "before": {"state": "off"}, "after": {"state": "on"}}
        if slot in failing:
            entry.update(action="none", changed=False, failed=True, msg="stuck", after={"state": "off"})
        entries.append(entry)
    result = {"changed": True, "board": "rack1", "state": "on", "slots": entries, "skipped": [],
              "diff": {"before": "".join("slot %d: off\n" % s for s in slots),
                       "after": "".join("slot %d: %s\n" % (e["slot"], e["after"]["state"]) for e in entries)}}
    if failing:
        result.update(failed=True, msg="slot %s failed" % failing[0], exception=object())
    return result


@pytest.fixture
def action(monkeypatch, tmp_path):
    """Make an action for (host, args); ``calls`` records each module call's args."""
    monkeypatch.setattr(fleet.C, "DEFAULT_LOCAL_TMP", str(tmp_path))
    monkeypatch.setattr(ActionBase, "run", lambda self, tmp=None, task_vars=None: {})
    calls = []
    failing = []
    answers = {}  # board (or "board_calls") -> the module's answer, instead of a made-up success

    def make(args, module="node_power", uuid="task-1"):
        plugin = fleet.ActionModule.__new__(fleet.ActionModule)
        plugin._task = types.SimpleNamespace(args={"module": module, "args": args}, _uuid=uuid)

        def one(module_args):
            if module_args["board"] in answers:
                return dict(answers[module_args["board"]])
            slot = module_args.get("slot", "all")
            slots = slot if isinstance(slot, list) else [1, 2, 3] if slot == "all" else [slot]
            result = power_result(slots, failing=tuple(s for s in failing if s in slots and len(slots) > 1))
            result["board"] = module_args["board"]
            if module_args.get("board_sensors"):  # node_status reads the sensors in the same run
                result["board_sensors"] = {"board": module_args["board"], "sensors": {"t": {"ok": True}}}
            return result

        def execute(module_name, module_args, task_vars):
            calls.append((module_name, module_args))
            if module_name == "picluster.carrier.board_calls":
                if "board_calls" in answers:
                    return answers["board_calls"]
                return {"changed": True, "calls": [one(call) for call in module_args["calls"]]}
            return one(module_args)

        plugin._execute_module = execute
        return plugin

    make.calls = calls
    make.failing = failing
    make.answers = answers
    return make


def args(slot, **extra):
    return dict({"board": "rack1", "profile": "backplane10", "bus": 1, "slot": slot, "state": "on"}, **extra)


def test_one_call_per_board_each_host_its_own_slot(action):
    first = action(args(1)).run(task_vars=task_vars("n1"))
    second = action(args(2)).run(task_vars=task_vars("n2"))
    assert action.calls == [("picluster.carrier.node_power", dict(args([1, 2]), isolate_slots=True))]
    assert [e["slot"] for e in first["slots"]] == [1] and [e["slot"] for e in second["slots"]] == [2]
    assert first["fleet"] == {"leader": True, "slots": [1, 2], "boards": ["rack1"]}
    assert second["fleet"]["leader"] is False
    assert second["diff"] == {"before": "slot 2: off\n", "after": "slot 2: on\n"}
    assert second["changed"] is True and "failed" not in second


def test_a_failing_slot_fails_its_host_only(action):
    action.failing.append(2)
    first = action(args(1)).run(task_vars=task_vars("n1"))
    second = action(args(2)).run(task_vars=task_vars("n2"))
    assert len(action.calls) == 1
    assert "failed" not in first and first["changed"] is True
    assert second["failed"] is True and second["msg"] == "slot 2 of board rack1: stuck"


def test_different_args_or_an_uncovered_slot_make_their_own_call(action):
    action(args(1)).run(task_vars=task_vars("n1"))
    action(args(2, force=True)).run(task_vars=task_vars("n2"))  # not the board call's arguments
    action(args(3)).run(task_vars=task_vars("n3"))  # n3 is not in the play batch
    assert [c[1]["slot"] for c in action.calls] == [[1, 2], 2, 3]


def test_boards_and_tasks_do_not_share(action):
    action(args(1)).run(task_vars=task_vars("n1"))
    action(dict(args(1), board="rack2")).run(task_vars=task_vars("m1"))
    action(args(2), uuid="task-2").run(task_vars=task_vars("n2"))
    assert [c[1]["slot"] for c in action.calls] == [[1, 2], [1], [1, 2]]


def test_node_status_gets_each_members_node(action):
    action(args(1, node="n1", model="cm5", console="log"), module="picluster.carrier.node_status").run(
        task_vars=task_vars("n1"))
    name, call = action.calls[0]
    assert name == "picluster.carrier.node_status" and "node" not in call and "isolate_slots" not in call
    assert call["nodes"] == {1: {"host": "n1", "model": "cm5"}, 2: {"host": "n2", "model": "cm5"}}


def test_several_slots_are_one_plain_call(action):
    action(args("all")).run(task_vars=task_vars("n1"))
    assert action.calls == [("picluster.carrier.node_power", args("all"))]


@pytest.mark.parametrize("given,message", [
    ({"module": "ping", "args": args(1)}, "module: 'ping' is not one of node_power"),
    ({"module": "node_power", "args": {"slot": 1}}, "args.board: the board name is required"),
])
def test_bad_arguments(action, given, message):
    plugin = action(args(1))
    plugin._task.args = given
    with pytest.raises(AnsibleActionFail, match=message):
        plugin.run(task_vars=task_vars("n1"))


def test_the_rendezvous_file_holds_no_password(action, tmp_path):
    action(args(1, bmc_password="s3cret")).run(task_vars=task_vars("n1"))
    assert not any("s3cret" in path.read_text() for path in tmp_path.iterdir() if path.suffix == ".json")


def test_board_sensors_one_read_every_node_the_board_result(action):
    plain = {"board": "rack1", "profile": "backplane10", "bus": 1}
    first = action(dict(plain), module="board_sensors").run(task_vars=dict(task_vars("n1"), carrier_slot=1))
    second = action(dict(plain), module="board_sensors").run(task_vars=dict(task_vars("n2"), carrier_slot=2))
    assert action.calls == [("picluster.carrier.board_sensors", plain)]
    assert first["fleet"] == {"leader": True, "slots": [1, 2], "boards": ["rack1"]}
    assert second["fleet"]["leader"] is False and first["slots"] == second["slots"]


class Templar:
    """Stands in for the task's templar: renders ``{{ name }}`` from the vars, leaves the rest."""

    def __init__(self, variables):
        self.variables = variables

    def template(self, value):
        if isinstance(value, dict):
            return {k: self.template(v) for k, v in value.items()}
        if isinstance(value, str) and value.startswith("{{"):
            return self.variables[value.strip("{} ")]
        return value


def inventory_vars(host, batch=("n1", "n2", "m1"), **extra):
    """The vars of ``host`` as the inventory plugin makes them, every host's board options in its hostvars."""
    found = task_vars(host, batch=batch)
    for name, hv in found["hostvars"].items():
        hv.update(carrier_profile="backplane10", carrier_bus=1, carrier_protected_slots=[], inventory_hostname=name)
    found.update(found["hostvars"][host], **extra)
    return found


def run_with(plugin, found, **options):
    plugin._task.args = dict(plugin._task.args, **options)
    plugin._templar = Templar(found)
    return plugin.run(task_vars=found)


def test_from_inventory_and_arg_vars_make_the_arguments(action):
    found = inventory_vars("n1", carrier_lock_dir="{{ locks }}", locks="/tmp/locks", power_state="on",
                           power_stagger=None)
    run_with(action({}), found, from_inventory=True, arg_vars={"state": "power_state", "stagger": "power_stagger",
                                                               "usb_boot": "power_usb_boot"})
    # one module run for every board of the controller, each board's options from its own nodes' vars
    assert action.calls == [("picluster.carrier.board_calls", {"module": "node_power", "secrets": {}, "calls": [
        {"board": "rack1", "profile": "backplane10", "bus": 1, "lock_dir": "/tmp/locks", "protected_slots": [],
         "slot": [1, 2], "state": "on", "isolate_slots": True},
        {"board": "rack2", "profile": "backplane10", "bus": 1, "protected_slots": [], "slot": [1], "state": "on",
         "isolate_slots": True}]})]
    run_with(action({"force": True}), inventory_vars("n2", power_state="on"), from_inventory=True,
             arg_vars={"state": "power_state"})
    _name, own = action.calls[1]  # args over the inventory's: not the board call's arguments, its own call
    assert own["slot"] == 2 and own["force"] is True and own["board"] == "rack1"


def test_node_status_from_inventory_names_the_node(action):
    found = inventory_vars("n1", carrier_console="/dev/ttyUSB0", carrier_profile_data={"chips": []})
    run_with(action({}, module="node_status"), found, from_inventory=True)
    call = action.calls[0][1]["calls"][0]
    assert call["profile"] == {"chips": []} and "protected_slots" not in call
    assert "node" not in call and "port" not in call
    assert call["nodes"][1] == {"host": "n1", "model": "cm5"}


def test_members_come_from_the_board_group(action, monkeypatch):
    found = task_vars("n1", batch=("n1", "n2", "m1"))
    found["groups"] = {"board_rack1": ["n1"]}  # n2 is on rack1 but not in the group: it makes its own call
    looked = []
    hostvars = found["hostvars"]
    found["hostvars"] = type("HostVars", (), {"__getitem__": lambda self, h: looked.append(h) or hostvars[h]})()
    action(args(1)).run(task_vars=found)
    action(args(2)).run(task_vars=dict(found, inventory_hostname="n2"))
    assert looked[:1] == ["n1"] and "m1" not in looked
    assert [c[1]["slot"] for c in action.calls] == [[1], 2]


def test_board_sensors_with_the_board_call(action):
    first = action(args(1, console="log"), module="node_status").run(task_vars=task_vars("n1"))
    assert [c[0] for c in action.calls] == ["picluster.carrier.node_status"] and "board_sensors" not in first
    plugin = action(args(1, console="log"), module="node_status", uuid="task-2")
    plugin._task.args["board_sensors"] = True
    mine = plugin.run(task_vars=task_vars("n1"))
    plugin = action(args(2, console="log"), module="node_status", uuid="task-2")
    plugin._task.args["board_sensors"] = "yes"
    theirs = plugin.run(task_vars=task_vars("n2"))
    # one module run for the board: node_status reads the sensors itself, no board_sensors run
    assert [c[0] for c in action.calls] == ["picluster.carrier.node_status"] * 2
    assert action.calls[1][1]["board_sensors"] is True and "board_sensors" not in action.calls[0][1]
    assert mine["board_sensors"] == theirs["board_sensors"] == {"board": "rack1", "sensors": {"t": {"ok": True}}}
    assert "board_sensors" not in mine["slots"][0]


@pytest.mark.parametrize("options,message", [
    ({"arg_vars": {"state": 1}}, "arg_vars: a dict of argument -> variable name"),
    ({"from_inventory": "maybe"}, "from_inventory, board_sensors"),
    ({"module": "board_sensors", "board_sensors": True}, "board_sensors: only with a module of slots"),
    ({"args": ["slot"]}, "args: a dict"),
])
def test_bad_options(action, options, message):
    plugin = action(args(1))
    plugin._task.args = dict(plugin._task.args, **options)
    with pytest.raises(AnsibleActionFail, match=message):
        plugin.run(task_vars=task_vars("n1"))


def inventory_run(action, host, module="node_power", **options):
    found = inventory_vars(host, power_state="on")
    options = dict({"from_inventory": True, "arg_vars": {"state": "power_state"}}, **options)
    return run_with(action({}, module=module, uuid="inv"), found, **options)


def test_the_controllers_boards_share_one_run_each_node_its_slot(action):
    first = inventory_run(action, "n1")
    others = [inventory_run(action, host) for host in ("n2", "m1")]
    assert [name for name, _args in action.calls] == ["picluster.carrier.board_calls"]
    assert [e["slot"] for e in first["slots"]] == [1]
    assert first["fleet"] == {"leader": True, "slots": [1, 2], "boards": ["rack1", "rack2"]}
    assert [(r["slots"][0]["slot"], r["fleet"]["leader"]) for r in others] == [(2, False), (1, False)]
    assert others[1]["fleet"]["slots"] == [1]  # m1's board is rack2


def test_a_board_failing_as_a_whole_makes_its_nodes_own_calls(action):
    action.answers["rack2"] = {"failed": True, "msg": "bus 1: no answer"}
    inventory_run(action, "n1")
    assert "failed" not in inventory_run(action, "n2")
    theirs = inventory_run(action, "m1")
    assert [name for name, _args in action.calls] == ["picluster.carrier.board_calls", "picluster.carrier.node_power"]
    assert action.calls[1][1]["slot"] == 1 and theirs["failed"] is True  # its own call's answer


def test_a_failed_controller_run_makes_everyone_call_alone(action):
    action.answers["board_calls"] = {"failed": True, "msg": "calls[1] (board 'rack2'): missing bus"}
    inventory_run(action, "n1")
    inventory_run(action, "m1")
    assert [name for name, _args in action.calls] == ["picluster.carrier.board_calls"] + [
        "picluster.carrier.node_power"] * 2


def test_secrets_go_apart_and_stay_out_of_the_rendezvous(action, tmp_path):
    found = inventory_vars("n1", power_state="on")
    found["hostvars"]["m1"].update(carrier_bmc_user="admin", carrier_bmc_password="s3cret-value")
    run_with(action({}, uuid="inv"), found, from_inventory=True, arg_vars={"state": "power_state"})
    sent = action.calls[0][1]
    assert sent["secrets"] == {"rack2": {"bmc_password": "s3cret-value"}}
    assert all("bmc_password" not in call for call in sent["calls"]) and sent["calls"][1]["bmc_user"] == "admin"
    assert not any("s3cret" in path.read_text() for path in tmp_path.iterdir() if path.suffix == ".json")


def test_another_boards_warnings_go_to_its_first_slot(action):
    action.answers["rack2"] = dict(power_result([1]), board="rack2", warnings=["slot by slot, all succeeded"])
    assert "warnings" not in inventory_run(action, "n1")
    assert inventory_run(action, "m1")["warnings"] == ["slot by slot, all succeeded"]


def test_node_status_sensors_in_the_controller_run(action):
    mine = inventory_run(action, "n1", module="node_status", board_sensors=True)
    theirs = inventory_run(action, "m1", module="node_status", board_sensors=True)
    sent = action.calls[0][1]
    assert [name for name, _args in action.calls] == ["picluster.carrier.board_calls"]
    assert all(call["board_sensors"] is True for call in sent["calls"])
    assert sent["calls"][1]["nodes"] == {1: {"host": "m1", "model": "cm5"}}
    assert mine["board_sensors"]["board"] == "rack1" and theirs["board_sensors"]["board"] == "rack2"


def test_board_options_in_the_args_keep_one_call_per_board(action):
    found = inventory_vars("n1", power_state="on")
    run_with(action({"bus": 2}), found, from_inventory=True, arg_vars={"state": "power_state"})
    assert [name for name, _args in action.calls] == ["picluster.carrier.node_power"]
    assert action.calls[0][1]["slot"] == [1, 2] and action.calls[0][1]["bus"] == 2


def test_node_power_with_board_sensors_keeps_one_call_per_board(action):
    inventory_run(action, "n1", board_sensors=True)
    assert [name for name, _args in action.calls] == ["picluster.carrier.node_power",
                                                      "picluster.carrier.board_sensors"]
