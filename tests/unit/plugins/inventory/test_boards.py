# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory plugin picluster.carrier.boards, run by the real ansible-inventory / ansible.

The plugin is exercised the way Ansible loads it (collection loader, option definitions from
DOCUMENTATION and its fragments, inventory cache plugins), so each test runs the CLI on a small
topology written to tmp_path. Golden files of the shipped topologies are in
tests/integration/test_inventory.py.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest
import yaml
from collection_link import collections_path

from ansible_collections.picluster.carrier.plugins.inventory.boards import DOCUMENTATION, InventoryModule, plain
from ansible_collections.picluster.carrier.plugins.module_utils._topology import INVENTORY_OPTION_KEYS

REPO = pathlib.Path(__file__).resolve().parents[4]
COLLECTIONS = collections_path()
BIN = pathlib.Path(sys.executable).parent


def _env(**extra):
    env = dict(os.environ)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
        ANSIBLE_INVENTORY_ENABLED="picluster.carrier.boards",
        ANSIBLE_INVENTORY_UNPARSED_FAILED="true",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_DEPRECATION_WARNINGS="false",
    )
    env.update(extra)
    return env


def run_inventory(source, *args, check=True, **env):
    proc = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(source), *args],
        env=_env(**env), capture_output=True, text=True, timeout=120, check=False,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def inventory_list(source, *args, **env):
    return json.loads(run_inventory(source, "--list", *args, **env).stdout)


def members(inv, group):
    return inv.get(group, {}).get("hosts", [])


TOPOLOGY = {
    "plugin": "picluster.carrier.boards",
    "specializations": ["nfs_server"],
    "controllers": {"ctrl0": {"vars": {"ansible_connection": "local", "site": "lab"}}, "ctrl1": None},
    "profiles": {
        "duo": {
            "kind": "gpio",
            "chips": {"u1": {"type": "pca9554", "address": 0x20}},
            "slots": {1: {"power": {"chip": "u1", "bit": 0}}, 2: {"power": {"chip": "u1", "bit": 1}}},
        }
    },
    "boards": {
        "rack-1": {
            "profile": "backplane10",
            "controller": "ctrl0",
            "bus": "sim:/nonexistent/picluster-test/bus.sock",
            "addresses": {"u2": 0x23},
            "controller_slot": 10,
            "console": "/dev/serial/{board}/{slot:02d}",
            "vars": {"rack": "r1", "role": "worker"},
            "sim": {"i2c_error_rate": 0.1},
            "slots": {
                1: {"host": "n1", "model": "cm4", "serial": "10000000B7F44626", "mac": "DC-A6-32-01-36-C2",
                    "specializations": ["ceph_storage", "k3s_server"], "vars": {"role": "server"}},
                2: {"host": "n2", "model": "cm5", "specializations": ["nfs_server"], "console": "/dev/ttyAMA{slot}"},
                10: "n10",
            },
        },
        "duo1": {"profile": "duo", "controller": "ctrl1", "bus": 3, "slots": {2: {"host": "d2", "model": "pi4"}}},
    },
}


def write_topology(tmp_path, data=None, name="test.carrier.yml", **changes):
    data = dict(TOPOLOGY if data is None else data)
    data.update(changes)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# -- in-process: file selection and the option list --------------------------------------------

@pytest.mark.parametrize(
    "name,accepted",
    [("a.carrier.yml", True), ("a.carrier.yaml", True), ("carrier.yml", False), ("a.yml", False),
     ("a.carrier.yml.bak", False), ("a-carrier.yml", False)],
)
def test_verify_file(tmp_path, name, accepted):
    path = tmp_path / name
    path.write_text("plugin: picluster.carrier.boards\n")
    assert InventoryModule().verify_file(str(path)) is accepted


def test_verify_file_missing(tmp_path):
    assert InventoryModule().verify_file(str(tmp_path / "absent.carrier.yml")) is False


def test_topology_ignores_exactly_the_plugin_options():
    """_topology must let through every documented plugin option, and reject anything else."""
    from ansible.plugins.doc_fragments.constructed import ModuleDocFragment as Constructed
    from ansible.plugins.doc_fragments.inventory_cache import ModuleDocFragment as InventoryCache

    options = set(yaml.safe_load(DOCUMENTATION)["options"])
    for fragment in (Constructed, InventoryCache):
        options |= set(yaml.safe_load(fragment.DOCUMENTATION)["options"])
    assert options == set(INVENTORY_OPTION_KEYS)


# -- hosts, variables and groups ----------------------------------------------------------------

def test_hosts_vars_and_groups(tmp_path):
    inv = inventory_list(write_topology(tmp_path))
    hv = inv["_meta"]["hostvars"]
    assert set(hv) == {"ctrl0", "ctrl1", "n1", "n2", "n10", "d2"}
    assert hv["ctrl0"] == {"ansible_connection": "local", "site": "lab", "carrier_boards": ["rack-1"]}
    assert hv["ctrl1"] == {"carrier_boards": ["duo1"]}
    assert hv["n1"] == {
        "carrier_board": "rack-1",
        "carrier_slot": 1,
        "carrier_controller": "ctrl0",
        "carrier_profile": "backplane10",
        "carrier_bus": "sim:/nonexistent/picluster-test/bus.sock",
        "carrier_addresses": {"u2": 0x23},
        "carrier_protected_slots": [10],
        "carrier_console": "/dev/serial/rack-1/01",
        "carrier_serial": "10000000b7f44626",
        "carrier_mac": "dc:a6:32:01:36:c2",
        "carrier_model": "cm4",
        "carrier_usb_port": None,
        "carrier_specializations": ["ceph_storage", "k3s_server"],
        "rack": "r1",
        "role": "server",  # the slot's vars win over the board's
    }
    assert hv["n2"]["carrier_console"] == "/dev/ttyAMA2" and hv["n2"]["role"] == "worker"
    assert hv["n10"]["carrier_serial"] is None and hv["n10"]["carrier_mac"] is None
    assert hv["n10"]["carrier_specializations"] == []
    assert "sim" not in hv["n1"] and "i2c_error_rate" not in hv["n1"]
    # a user-defined profile travels with its nodes, JSON-safe (slot keys are strings)
    assert hv["d2"]["carrier_profile"] == "duo" and hv["d2"]["carrier_bus"] == "3"
    assert hv["d2"]["carrier_profile_data"] == {
        "kind": "gpio",
        "chips": {"u1": {"type": "pca9554", "address": 32}},
        "slots": {"1": {"power": {"chip": "u1", "bit": 0}}, "2": {"power": {"chip": "u1", "bit": 1}}},
        "name": "duo",
    }
    assert "carrier_profile_data" not in hv["n1"] and "carrier_console" not in hv["d2"]

    assert members(inv, "carrier_controllers") == ["ctrl0", "ctrl1"]
    assert members(inv, "carrier_nodes") == ["n1", "n2", "n10", "d2"]
    assert members(inv, "board_rack_1") == ["n1", "n2", "n10"]  # sanitized
    assert members(inv, "board_duo1") == ["d2"]
    assert members(inv, "controller_ctrl0") == ["n1", "n2", "n10"]
    assert members(inv, "controller_ctrl1") == ["d2"]
    assert members(inv, "ceph_storage") == ["n1"] and members(inv, "k3s_server") == ["n1"]
    assert members(inv, "nfs_server") == ["n2"]
    # every known specialization has its group, even when empty
    assert {"pihole", "k3s_agent"} <= set(inv["all"]["children"])


def test_user_profile_data_is_accepted_back_by_the_library(tmp_path):
    """carrier_profile_data, as a module receives it (JSON), builds the same profile."""
    from ansible_collections.picluster.carrier.plugins.module_utils._board import get_profile

    data = inventory_list(write_topology(tmp_path))["_meta"]["hostvars"]["d2"]["carrier_profile_data"]
    profile = get_profile(data)
    assert profile.name == "duo" and profile.slot_numbers == (1, 2)
    assert profile.lines(2)["power"].bit == 1


def test_constructable_compose_groups_keyed_groups(tmp_path):
    path = write_topology(
        tmp_path,
        compose={"ansible_host": "'10.0.' ~ carrier_slot ~ '.1'", "shelf": "carrier_board | upper"},
        groups={"first_slots": "carrier_slot | default(0) == 1", "labbed": "site is defined"},
        keyed_groups=[{"key": "carrier_model", "prefix": "model"}, {"key": "shelf", "prefix": "shelf"}],
    )
    inv = inventory_list(path)
    hv = inv["_meta"]["hostvars"]
    assert hv["n1"]["ansible_host"] == "10.0.1.1" and hv["n1"]["shelf"] == "RACK-1"
    assert "ansible_host" not in hv["ctrl0"]  # carrier_slot undefined on a controller, strict is off
    assert members(inv, "first_slots") == ["n1"]
    assert members(inv, "labbed") == ["ctrl0"]
    assert members(inv, "model_cm4") == ["n1"] and members(inv, "model_cm5") == ["n2"]
    assert members(inv, "model_pi4") == ["d2"]
    assert members(inv, "shelf_RACK_1") == ["n1", "n2", "n10"]  # keyed on a composed var


def test_strict_makes_a_bad_template_an_error(tmp_path):
    lenient = inventory_list(write_topology(tmp_path, compose={"x": "carrier_slot.nothing.here"}))
    assert all("x" not in v for v in lenient["_meta"]["hostvars"].values())
    proc = run_inventory(write_topology(tmp_path, compose={"x": "carrier_slot.nothing.here"}, strict=True),
                         "--list", check=False)
    assert proc.returncode != 0
    assert "Could not set x for host" in proc.stderr


def test_templates_in_vars_are_rendered(tmp_path):
    """Vars from the topology are trusted templates (ansible-core 2.19 data tagging), like a YAML inventory's."""
    data = json.loads(json.dumps(TOPOLOGY))
    data["boards"]["rack-1"]["slots"]["1"]["vars"]["greeting"] = "hello {{ inventory_hostname }} in {{ rack }}"
    path = write_topology(tmp_path, data)
    proc = subprocess.run(
        [str(BIN / "ansible"), "-i", str(path), "ctrl0", "-m", "ansible.builtin.debug",
         "-a", "msg={{ hostvars['n1'].greeting }}"],
        env=_env(), capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '"msg": "hello n1 in r1"' in proc.stdout


# -- errors -------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "mutate,fragment",
    [
        (lambda d: d["boards"]["rack-1"]["slots"]["1"].update(mac="dc:a6:32:01:36"),
         "boards.rack-1.slots.1.mac: 'dc:a6:32:01:36' is not a MAC address"),
        (lambda d: d["boards"]["rack-1"].update(profile="backplane12"),
         "boards.rack-1.profile: unknown profile 'backplane12'"),
        (lambda d: d["boards"]["duo1"]["slots"].update({"3": "d3"}),
         "boards.duo1.slots.3: slot '3' is out of range for profile 'duo' (slots 1-2)"),
        (lambda d: d["boards"]["duo1"]["slots"]["2"].update(host="n2"),
         "boards.duo1.slots.2.host: duplicate host name 'n2' (also at boards.rack-1.slots.2.host)"),
        (lambda d: d["boards"]["rack-1"]["slots"]["2"].update(serial="10000000B7F44626"),
         "boards.rack-1.slots.2.serial: duplicate serial '10000000b7f44626'"),
        (lambda d: d.update(colour="red"), "unknown key(s) 'colour'"),
    ],
)
def test_errors_name_file_field_and_value(tmp_path, mutate, fragment):
    data = json.loads(json.dumps(TOPOLOGY))
    mutate(data)
    path = write_topology(tmp_path, data)
    proc = run_inventory(path, "--list", check=False)
    assert proc.returncode != 0
    assert "%s: %s" % (path, fragment) in proc.stderr


def test_wrong_plugin_name(tmp_path):
    proc = run_inventory(write_topology(tmp_path, plugin="picluster.carrier.nodes"), "--list", check=False)
    assert proc.returncode != 0
    assert "plugin: 'picluster.carrier.nodes' is not picluster.carrier.boards" in proc.stderr


# -- cache --------------------------------------------------------------------------------------

def _read_cache(path):
    """A jsonfile cache entry; ansible-core 2.19+ wraps it as a JSON string under ``__payload__``."""
    outer = json.loads(path.read_text())
    return (json.loads(outer["__payload__"]), True) if "__payload__" in outer else (outer, False)


def _write_cache(path, data, wrapped):
    text = json.dumps(data)
    path.write_text(json.dumps({"__payload__": text}) if wrapped else text)


def _untag(value):
    """The plain value of a tagged string in a 2.19+ cache entry."""
    return value["value"] if isinstance(value, dict) and "__ansible_type" in value else value


def test_cache_is_used_until_the_file_changes(tmp_path):
    cache_dir = tmp_path / "cache"
    path = write_topology(tmp_path, cache=True, cache_plugin="ansible.builtin.jsonfile",
                          cache_connection=str(cache_dir), cache_prefix="t_")
    first = inventory_list(path)
    files = list(cache_dir.iterdir())
    assert len(files) == 1
    cached, wrapped = _read_cache(files[0])
    assert _untag(cached["path"]) == str(path) and cached["mtime_ns"] == os.stat(path).st_mtime_ns
    assert _untag(cached["nodes"]["n1"]["carrier_slot"]) == 1

    # Change the cached copy: a second run must show it (it did not re-read the topology)...
    cached["nodes"]["n1"]["rack"] = "from-the-cache"
    _write_cache(files[0], cached, wrapped)
    assert inventory_list(path)["_meta"]["hostvars"]["n1"]["rack"] == "from-the-cache"
    # ... --flush-cache ignores it ...
    assert inventory_list(path, "--flush-cache")["_meta"]["hostvars"]["n1"]["rack"] == "r1"
    # ... and a newer topology file (another mtime) is validated again.
    cached["nodes"]["n1"]["rack"] = "from-the-cache"
    _write_cache(files[0], cached, wrapped)
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert inventory_list(path) == first


def test_cache_off_by_default(tmp_path):
    cache_dir = tmp_path / "cache"
    inventory_list(write_topology(tmp_path, cache_plugin="ansible.builtin.jsonfile",
                                  cache_connection=str(cache_dir)))
    assert not cache_dir.exists() or not list(cache_dir.iterdir())


# -- probe --------------------------------------------------------------------------------------

def test_no_power_vars_without_probe(tmp_path):
    hv = inventory_list(write_topology(tmp_path))["_meta"]["hostvars"]
    assert not any("carrier_power" in v for v in hv.values())


def test_probe_unreachable_buses_do_not_fail(tmp_path):
    not_a_socket = tmp_path / "bus.sock"
    not_a_socket.write_text("a regular file where a socket should be\n")
    data = json.loads(json.dumps(TOPOLOGY))
    data["boards"]["rack-1"]["bus"] = "sim:%s" % not_a_socket
    data["boards"]["duo1"]["bus"] = "/dev/i2c-1"  # ctrl1 is not local: never probed from here
    data["boards"]["other"] = {"profile": "itx4", "controller": "ctrl0", "bus": "sim:/nonexistent/bus9.sock",
                               "slots": {"1": "o1"}}
    hv = inventory_list(write_topology(tmp_path, data, probe=True))["_meta"]["hostvars"]

    for host in ("n1", "n2", "n10"):
        assert hv[host]["carrier_power"] == "unknown"
        assert hv[host]["carrier_power_error"].startswith(
            "reading board rack-1 on bus sim:%s failed: " % not_a_socket)
    assert hv["d2"]["carrier_power"] == "unknown"
    assert hv["d2"]["carrier_power_error"] == (
        "bus /dev/i2c-1 is on controller ctrl1, not on this control node: not probed")
    assert hv["o1"]["carrier_power"] == "unknown"
    assert hv["o1"]["carrier_power_error"] == (
        "bus sim:/nonexistent/bus9.sock is not reachable from the control node: /nonexistent/bus9.sock does not exist")
    assert "carrier_power" not in hv["ctrl0"]


def test_example_topologies_parse():
    for name in ("inventory/sim/cluster.carrier.yml", "inventory/example-hardware.carrier.yml"):
        inv = inventory_list(REPO / name)
        assert len(inv["_meta"]["hostvars"]) > 10, name


def test_example_hardware_groups():
    inv = inventory_list(REPO / "inventory/example-hardware.carrier.yml")
    hv = inv["_meta"]["hostvars"]
    assert hv["rack1-ctrl"]["carrier_protected_slots"] == [1]
    assert hv["ceph1"]["carrier_addresses"] == {"u1": 0x22, "u2": 0x23}
    assert hv["bench1"]["carrier_profile"] == "bench_adapter"
    assert hv["bench1"]["carrier_profile_data"]["chips"] == {"u1": {"type": "mcp23008", "address": 0x27}}
    assert hv["zero4"]["carrier_profile"] == "zero_shelf" and "carrier_profile_data" in hv["zero4"]
    assert hv["zero1"]["carrier_console"] == "/dev/serial/by-id/usb-clusterhat-p1"
    assert hv["ceph2"]["carrier_console"] == "/dev/serial/by-id/rack1-slot03"
    assert members(inv, "model_pizero2") == ["zero1", "zero2", "zero4", "zero5"]
    assert members(inv, "build_runner") == ["worker1"]


def test_plain_makes_keys_strings():
    assert plain({1: {"a": [{2: 3}]}, "x": (1, 2)}) == {"1": {"a": [{"2": 3}]}, "x": [1, 2]}


def test_plain_makes_builtin_types():
    class Tagged(str):
        pass

    class TaggedInt(int):
        pass

    marker = object()
    out = plain({Tagged("k"): [Tagged("v"), TaggedInt(3), 1.5, True, None, marker]})
    assert out == {"k": ["v", 3, 1.5, True, None, marker]}
    key, items = next(iter(out.items()))
    assert [type(key)] == [str] and [type(v) for v in items[:5]] == [str, int, float, bool, type(None)]
    assert items[5] is marker


def test_vault_values_go_through_ansibles_loader(tmp_path):
    """A topology without Ansible's tags is read by libyaml; one with a !vault value by Ansible's loader."""
    secret = tmp_path / "vault-pass"
    secret.write_text("correct horse\n")
    proc = subprocess.run(
        [str(BIN / "ansible-vault"), "encrypt_string", "--vault-password-file", str(secret), "s3cret", "--name", "x"],
        env=_env(), capture_output=True, text=True, timeout=60, check=True,
    )
    vaulted = proc.stdout.split("x:", 1)[1]
    token = "rack: r1\n      token:" + vaulted.rstrip().replace("\n", "\n    ")
    text = write_topology(tmp_path).read_text().replace("rack: r1", token)
    path = tmp_path / "vaulted.carrier.yml"
    path.write_text(text)
    inv = inventory_list(path, "--vault-password-file", str(secret))
    # still an encrypted value (ansible-inventory --list does not decrypt): Ansible's loader read it
    assert inv["_meta"]["hostvars"]["n1"]["token"]["__ansible_vault"].startswith("$ANSIBLE_VAULT;1.1;AES256")
    assert inv["_meta"]["hostvars"]["n1"]["rack"] == "r1"


def test_duplicate_keys_are_refused_with_their_line(tmp_path):
    path = tmp_path / "dup.carrier.yml"
    path.write_text("plugin: picluster.carrier.boards\ncontrollers: {ctrl0: }\nboards:\n  b1:\n"
                    "    profile: itx4\n    bus: 1\n    slots:\n      3: n3\n      3: n4\n")
    proc = run_inventory(path, "--list", check=False)
    assert proc.returncode != 0
    assert "line 9" in proc.stderr and "duplicate key 3" in proc.stderr
