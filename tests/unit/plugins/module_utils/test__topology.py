# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Topology loading: every validation error (file, field path, value) and every normalisation."""

from __future__ import annotations

import copy
import pathlib
import textwrap

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils._board import BUILTIN_PROFILES, get_profile
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._topology import (
    BUILTIN_SPECIALIZATIONS,
    TopologyError,
    load_topology,
)

REPO = pathlib.Path(__file__).resolve().parents[4]

# A small valid topology; each case below changes one thing in a deep copy of it.
BASE = {
    "plugin": "picluster.carrier.boards",
    "controllers": {"ctrl0": {"vars": {"ansible_connection": "local"}}, "ctrl1": None},
    "boards": {
        "b1": {
            "profile": "itx4",
            "controller": "ctrl0",
            "bus": "sim:/tmp/x/bus1.sock",
            "console": "/dev/console-{board}-{slot}",
            "vars": {"rack": "a", "shelf": 1},
            "slots": {
                1: {"host": "n1", "serial": "10000000AABBCCDD", "mac": "DC-A6-32-00-00-01", "model": "cm4",
                    "specializations": ["k3s_server"], "vars": {"shelf": 2}},
                2: {"host": "n2", "serial": "11223344", "mac": "dc:a6:32:00:00:02",
                    "specializations": ["ceph_storage", "k3s_agent", "ceph_storage"]},
            },
        },
        "b2": {
            "profile": "backplane10",
            "controller": "ctrl1",
            "bus": 1,
            "controller_slot": 10,
            "slots": {"3": "n3", 10: {"host": "n10", "console": "/dev/ttyUSB{slot}"}},
        },
    },
}

SOURCE = "/etc/cluster.carrier.yml"


def _with(changes):
    """BASE with changes applied: {"a.b.c": value} sets a key ("a.b.c": DELETE removes it)."""
    data = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        parts = [int(p) if p.isdigit() else p for p in dotted.split(".")]
        target = data
        for part in parts[:-1]:
            target = target[part]
        if value is DELETE:
            del target[parts[-1]]
        else:
            target[parts[-1]] = value
    return data


DELETE = object()
MAC_OUI = "dc:a6:32"

# (id, changes to BASE, expected field path, fragments the message must contain)
ERROR_CASES = [
    ("unknown-top-key", {"bogus": 1}, "", ["unknown key(s) 'bogus'"]),
    ("no-boards", {"boards": {}}, "boards", ["at least one board"]),
    ("boards-not-mapping", {"boards": ["b1"]}, "boards", ["must be a mapping", "['b1']"]),
    ("unknown-controller-key", {"controllers.ctrl0.host": "x"}, "controllers.ctrl0", ["unknown key(s) 'host'"]),
    ("bad-controller-name", {"controllers.bad name": {}}, "controllers.bad name", ["'bad name' is not a valid host"]),
    ("unknown-board-key", {"boards.b1.colour": "red"}, "boards.b1", ["unknown key(s) 'colour'"]),
    ("unknown-slot-key", {"boards.b1.slots.1.ip": "10.0.0.1"}, "boards.b1.slots.1", ["unknown key(s) 'ip'"]),
    ("missing-profile", {"boards.b1.profile": DELETE}, "boards.b1.profile", ["is required"]),
    ("missing-bus", {"boards.b1.bus": DELETE}, "boards.b1.bus", ["is required"]),
    ("missing-host", {"boards.b1.slots.1.host": DELETE}, "boards.b1.slots.1.host", ["is required"]),
    ("unknown-profile", {"boards.b1.profile": "itx5"}, "boards.b1.profile", ["unknown profile 'itx5'", "itx4"]),
    ("profile-not-str", {"boards.b1.profile": 4}, "boards.b1.profile", ["profile name or a profile mapping", "4"]),
    ("unknown-controller", {"boards.b1.controller": "ctrl9"}, "boards.b1.controller",
     ["unknown controller 'ctrl9'", "ctrl0, ctrl1"]),
    ("controller-ambiguous", {"boards.b1.controller": DELETE}, "boards.b1.controller",
     ["required when the file does not define exactly one controller"]),
    ("slot-out-of-range", {"boards.b1.slots.5": {"host": "n5"}}, "boards.b1.slots.5",
     ["slot 5 is out of range for profile 'itx4' (slots 1-4)"]),
    ("slot-zero", {"boards.b2.slots.0": {"host": "n0"}}, "boards.b2.slots.0", ["slot 0 is out of range", "1-10"]),
    ("slot-not-number", {"boards.b1.slots.first": {"host": "nx"}}, "boards.b1.slots.first",
     ["'first' is not a slot number"]),
    ("slot-bool", {"boards.b1.slots": {True: {"host": "nx"}}}, "boards.b1.slots.True", ["True is not a slot number"]),
    ("duplicate-slot", {"boards.b2.slots.10b": None}, "boards.b2.slots.10", ["duplicate slot 10"]),
    ("duplicate-host-across-boards", {"boards.b2.slots.10.host": "n1"}, "boards.b2.slots.10.host",
     ["duplicate host name 'n1'", "boards.b1.slots.1.host"]),
    ("host-equals-controller", {"boards.b1.slots.2.host": "ctrl1"}, "boards.b1.slots.2.host",
     ["duplicate host name 'ctrl1'", "controllers.ctrl1"]),
    ("bad-host", {"boards.b1.slots.2.host": "node_2!"}, "boards.b1.slots.2.host", ["'node_2!' is not a valid host"]),
    ("host-not-str", {"boards.b1.slots.2.host": 7}, "boards.b1.slots.2.host", ["7 is not a valid host"]),
    ("duplicate-serial", {"boards.b1.slots.2.serial": "10000000aabbccdd"}, "boards.b1.slots.2.serial",
     ["duplicate serial '10000000aabbccdd'", "boards.b1.slots.1.serial"]),
    ("duplicate-serial-tftp-form", {"boards.b2.slots.10.serial": "AABBCCDD"}, "boards.b2.slots.10.serial",
     ["duplicate serial 'aabbccdd'", "TFTP directory 'aabbccdd'"]),
    ("duplicate-mac", {"boards.b2.slots.10.mac": "DC:A6:32:00:00:01"}, "boards.b2.slots.10.mac",
     ["duplicate MAC 'dc:a6:32:00:00:01'", "boards.b1.slots.1.mac"]),
    ("mac-short", {"boards.b1.slots.2.mac": "dc:a6:32:00:00"}, "boards.b1.slots.2.mac",
     ["'dc:a6:32:00:00' is not a MAC address"]),
    ("mac-bad-hex", {"boards.b1.slots.2.mac": "dc:a6:32:00:00:zz"}, "boards.b1.slots.2.mac",
     ["'dc:a6:32:00:00:zz' is not a MAC address"]),
    ("mac-mixed-separators", {"boards.b1.slots.2.mac": "dc:a6-32:00:00:02"}, "boards.b1.slots.2.mac",
     ["is not a MAC address"]),
    ("mac-no-separators", {"boards.b1.slots.2.mac": "dca632000002"}, "boards.b1.slots.2.mac",
     ["is not a MAC address"]),
    ("mac-multicast", {"boards.b1.slots.2.mac": "FF:FF:FF:FF:FF:FF"}, "boards.b1.slots.2.mac",
     ["'FF:FF:FF:FF:FF:FF' is a multicast address"]),
    ("mac-read-as-number", {"boards.b1.slots.2.mac": 3723480}, "boards.b1.slots.2.mac",
     ["3723480 was read by YAML as a number: quote the MAC"]),
    ("serial-12-digits", {"boards.b1.slots.2.serial": "100000001122"}, "boards.b1.slots.2.serial",
     ["'100000001122' is not a serial number (16 hex digits, or the 8-digit"]),
    ("serial-not-hex", {"boards.b1.slots.2.serial": "1000000g11223344"}, "boards.b1.slots.2.serial",
     ["is not a serial number"]),
    ("serial-read-as-number", {"boards.b1.slots.2.serial": 12345678}, "boards.b1.slots.2.serial",
     ["12345678 was read by YAML as a number: quote the serial"]),
    ("unknown-specialization", {"boards.b1.slots.2.specializations": ["ceph_storage", "nfs"]},
     "boards.b1.slots.2.specializations.1", ["unknown specialization 'nfs'", "top-level 'specializations:'"]),
    ("specializations-not-list", {"boards.b1.slots.2.specializations": {"a": 1}}, "boards.b1.slots.2.specializations",
     ["must be a list"]),
    ("bad-specialization-name", {"specializations": ["ok", "not ok"]}, "specializations.1",
     ["'not ok' is not a valid specialization name"]),
    ("reserved-specialization-name", {"specializations": ["carrier_nodes"]}, "specializations.0",
     ["'carrier_nodes' is a group name the inventory reserves"]),
    ("specializations-not-list-top", {"specializations": "nfs"}, "specializations", ["must be a list"]),
    ("unknown-model", {"boards.b1.slots.2.model": "cm6"}, "boards.b1.slots.2.model", ["unknown model 'cm6'", "cm4"]),
    ("bad-bus", {"boards.b1.bus": "i2c1"}, "boards.b1.bus", ["'i2c1' is not a bus"]),
    ("bad-bus-sim-relative", {"boards.b1.bus": "sim:bus.sock"}, "boards.b1.bus", ["'sim:bus.sock' is not a bus"]),
    ("bad-bus-negative", {"boards.b1.bus": -1}, "boards.b1.bus", ["-1 is not a bus"]),
    ("address-unknown-chip", {"boards.b1.addresses": {"u9": 0x21}}, "boards.b1.addresses.u9",
     ["profile 'itx4' has no chip 'u9'", "u1"]),
    ("address-out-of-range", {"boards.b1.addresses": {"u1": 0x80}}, "boards.b1.addresses.u1",
     ["128 is not a 7-bit I2C address"]),
    ("address-not-number", {"boards.b1.addresses": {"u1": "high"}}, "boards.b1.addresses.u1",
     ["'high' is not a 7-bit I2C address"]),
    ("controller-slot-out-of-range", {"boards.b2.controller_slot": 11}, "boards.b2.controller_slot",
     ["slot 11 is out of range for profile 'backplane10'"]),
    ("console-bad-placeholder", {"boards.b1.console": "/dev/{node}"}, "boards.b1.console",
     ["'/dev/{node}' is not a valid console pattern", "{host}, {slot}, {board}"]),
    ("console-unbalanced", {"boards.b2.slots.10.console": "/dev/{slot"}, "boards.b2.slots.10.console",
     ["is not a valid console pattern"]),
    ("console-not-str", {"boards.b1.console": 5}, "boards.b1.console", ["must be a non-empty string"]),
    ("vars-bad-name", {"boards.b1.vars": {"my-var": 1}}, "boards.b1.vars.my-var", ["'my-var' is not a valid variable"]),
    ("vars-reserved", {"boards.b1.slots.1.vars": {"carrier_slot": 9}}, "boards.b1.slots.1.vars.carrier_slot",
     ["variables named carrier_* are set by the inventory"]),
    ("vars-not-mapping", {"controllers.ctrl0.vars": ["a"]}, "controllers.ctrl0.vars", ["must be a mapping"]),
    ("sim-not-mapping", {"boards.b1.slots.1.sim": "hang"}, "boards.b1.slots.1.sim", ["must be a mapping"]),
    ("board-name", {"boards.b 3": {"profile": "itx4", "bus": 1}}, "boards.b 3", ["'b 3' is not a valid board name"]),
    ("user-profile-invalid", {"profiles": {"mine": {"kind": "gpio", "chips": {}, "slots": {}}}}, "profiles.mine",
     ["invalid profile"]),
    ("user-profile-shadows-builtin", {"profiles": {"itx4": {"kind": "turingpi1"}}}, "profiles.itx4",
     ["'itx4' is the name of a built-in profile"]),
    ("user-profile-name-mismatch", {"profiles": {"mine": {"name": "other", "kind": "turingpi1"}}},
     "profiles.mine.name", ["'other' differs from the profile's key 'mine'"]),
    ("inline-profile-invalid", {"boards.b1.profile": {"kind": "gpio", "chips": {"u1": {"type": "nope"}}}},
     "boards.b1.profile", ["invalid profile", "nope"]),
    ("inline-profile-reuses-name", {"boards.b1.profile": {"name": "itx4", "kind": "turingpi1"}},
     "boards.b1.profile.name", ["'itx4' is already the name of a profile"]),
    # numbers: non-finite, fractional, boolean and out-of-range values are refused, naming the field and the value
    ("controller-slot-nan", {"boards.b2.controller_slot": float("nan")}, "boards.b2.controller_slot",
     ["nan is not a slot number"]),
    ("controller-slot-inf", {"boards.b2.controller_slot": float("inf")}, "boards.b2.controller_slot",
     ["inf is not a slot number"]),
    ("controller-slot-fraction", {"boards.b2.controller_slot": 2.5}, "boards.b2.controller_slot",
     ["2.5 is not a slot number"]),
    ("controller-slot-bool", {"boards.b2.controller_slot": True}, "boards.b2.controller_slot",
     ["True is not a slot number"]),
    ("slot-key-float", {"boards.b1.slots": {1.5: "n15"}}, "boards.b1.slots.1.5", ["1.5 is not a slot number"]),
    ("slot-key-zero", {"boards.b1.slots": {0: "n0"}}, "boards.b1.slots.0", ["slot 0 is out of range"]),
    ("address-nan", {"boards.b1.addresses": {"u1": float("nan")}}, "boards.b1.addresses.u1",
     ["nan is not a 7-bit I2C address"]),
    ("address-inf", {"boards.b1.addresses": {"u1": float("inf")}}, "boards.b1.addresses.u1",
     ["inf is not a 7-bit I2C address"]),
    ("address-float", {"boards.b1.addresses": {"u1": 32.0}}, "boards.b1.addresses.u1",
     ["32.0 is not a 7-bit I2C address"]),
    ("address-hex-out-of-range", {"boards.b1.addresses": {"u1": "0x78"}}, "boards.b1.addresses.u1",
     ["'0x78' is not a 7-bit I2C address"]),
    ("bus-float", {"boards.b1.bus": 1.0}, "boards.b1.bus", ["1.0 is not a bus"]),
    ("bus-nan", {"boards.b1.bus": float("nan")}, "boards.b1.bus", ["nan is not a bus"]),
    ("bus-padded", {"boards.b1.bus": " 1"}, "boards.b1.bus", ["' 1' is not a bus"]),
    ("bus-sim-root", {"boards.b1.bus": "sim:/"}, "boards.b1.bus", ["'sim:/' is not a bus"]),
]


def _prepare(changes):
    if "boards.b2.slots.10b" in changes:  # the same slot twice: 10 as an int and as a string
        data = copy.deepcopy(BASE)
        data["boards"]["b2"]["slots"]["10"] = {"host": "n10b"}
        return data
    return _with(changes)


@pytest.mark.parametrize("changes,path,fragments", [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_validation_errors(changes, path, fragments):
    with pytest.raises(TopologyError) as info:
        load_topology(_prepare(changes), source=SOURCE)
    err = info.value
    assert isinstance(err, CarrierError)
    assert err.path == path
    message = str(err)
    assert message.startswith(SOURCE + ": " + (path + ": " if path else ""))
    for fragment in fragments:
        assert fragment in message, message


def test_base_is_valid():
    topo = load_topology(_with({}), source=SOURCE)
    assert list(topo.boards) == ["b1", "b2"]
    assert list(topo.nodes) == ["n1", "n2", "n3", "n10"]
    assert topo.source == SOURCE


def test_empty_topology():
    with pytest.raises(TopologyError, match="the topology is empty"):
        load_topology(None, source=SOURCE)


def test_default_source_for_data():
    with pytest.raises(TopologyError, match=r"^<topology>: boards: at least one board"):
        load_topology({"boards": {}})


# -- normalisation -----------------------------------------------------------------------------

def _slot_with(key, value):
    """The node of a one-slot topology whose slot has ``key: value``."""
    data = {"controllers": {"c": {}}, "boards": {"b": {"profile": "itx4", "bus": 1,
                                                       "slots": {1: {"host": "h1", key: value}}}}}
    return load_topology(data, source=SOURCE).node("h1")


@pytest.mark.parametrize(
    "value,expected",
    [
        ("DC:A6:32:01:36:C2", "dc:a6:32:01:36:c2"),
        ("dc-a6-32-01-36-c2", "dc:a6:32:01:36:c2"),
        ("D8-3A-DD-0a-0B-0c", "d8:3a:dd:0a:0b:0c"),
        ("2c:cf:67:00:00:00", "2c:cf:67:00:00:00"),
    ],
)
def test_mac_normalised(value, expected):
    assert _slot_with("mac", value).mac == expected


# None is no MAC given here (test__models refuses it where a MAC is required).
@pytest.mark.parametrize("value", ["", "dc:a6:32:01:36", "dc:a6:32:01:36:c2:00", "dc.a6.32.01.36.c2", 1.5,
                                   "dc:a6:32:01:36:g2", " dc:a6:32:01:36:c2"])
def test_mac_rejected(value):
    with pytest.raises(TopologyError, match="is not a MAC address") as info:
        _slot_with("mac", value)
    assert info.value.path == "boards.b.slots.1.mac" and info.value.value == value


@pytest.mark.parametrize(
    "value,expected",
    [("10000000B7F44626", "10000000b7f44626"), ("B7F44626", "b7f44626"), ("00000000deadbeef", "00000000deadbeef")],
)
def test_serial_normalised(value, expected):
    assert _slot_with("serial", value).serial == expected


@pytest.mark.parametrize("value", ["", "b7f4462", "b7f446260", "10000000b7f4462x", "0x10000000b7f44626", True])
def test_serial_rejected(value):
    with pytest.raises(TopologyError, match="is not a serial number") as info:
        _slot_with("serial", value)
    assert str(info.value).startswith(SOURCE + ": boards.b.slots.1.serial: ")


def test_node_fields_normalised():
    topo = load_topology(_with({}), source=SOURCE)
    n1, n2, n3, n10 = (topo.node(h) for h in ("n1", "n2", "n3", "n10"))
    assert (n1.board, n1.slot, n1.controller, n1.profile, n1.profile_data) == ("b1", 1, "ctrl0", "itx4", None)
    assert n1.serial == "10000000aabbccdd" and n1.tftp_dir == "aabbccdd"
    assert n2.serial == "11223344" and n2.tftp_dir == "11223344"
    assert n1.mac == "dc:a6:32:00:00:01"
    assert n1.model == "cm4" and n2.model is None
    assert n2.specializations == ("ceph_storage", "k3s_agent")  # order kept, duplicate dropped
    assert n1.console == "/dev/console-b1-1"
    assert n3.console is None and n10.console == "/dev/ttyUSB10"
    assert n1.vars == {"rack": "a", "shelf": 2} and n2.vars == {"rack": "a", "shelf": 1}
    assert n1.bus == "sim:/tmp/x/bus1.sock"
    # bus given as an int, slot key given as a string, slot given as a bare host name
    assert n3.bus == "1" and n3.slot == 3 and n3.serial is None and n3.mac is None and n3.specializations == ()
    assert n3.protected_slots == (10,) and topo.boards["b2"].protected_slots == (10,)
    assert n1.protected_slots == ()
    assert list(topo.boards["b2"].nodes) == [3, 10]
    assert topo.specializations == BUILTIN_SPECIALIZATIONS
    assert [n.host for n in topo.nodes_of_controller("ctrl1")] == ["n3", "n10"]
    assert topo.controllers["ctrl1"].vars == {}
    assert topo.boards["b2"].profile is get_profile("backplane10")


def test_hostvars():
    topo = load_topology(_with({"boards.b1.addresses": {"u1": "0x24"}}), source=SOURCE)
    assert topo.node("n1").hostvars() == {
        "carrier_board": "b1",
        "carrier_slot": 1,
        "carrier_controller": "ctrl0",
        "carrier_profile": "itx4",
        "carrier_bus": "sim:/tmp/x/bus1.sock",
        "carrier_addresses": {"u1": 0x24},
        "carrier_protected_slots": [],
        "carrier_console": "/dev/console-b1-1",
        "carrier_serial": "10000000aabbccdd",
        "carrier_mac": "dc:a6:32:00:00:01",
        "carrier_model": "cm4",
        "carrier_usb_port": None,
        "carrier_specializations": ["k3s_server"],
        "rack": "a",
        "shelf": 2,
    }
    hv = topo.node("n3").hostvars()
    assert "carrier_console" not in hv and "carrier_addresses" not in hv and "carrier_profile_data" not in hv
    assert hv["carrier_protected_slots"] == [10]


def test_single_controller_is_the_default():
    data = _with({"controllers": {"only": {}}})
    del data["boards"]["b1"]["controller"]
    del data["boards"]["b2"]["controller"]
    topo = load_topology(data, source=SOURCE)
    assert {n.controller for n in topo.nodes.values()} == {"only"}


def test_file_specializations_extend_the_known_ones():
    topo = load_topology(
        _with({"specializations": ["nfs_server", "pihole"], "boards.b1.slots.2.specializations": ["nfs_server"]}),
        source=SOURCE,
    )
    assert topo.specializations == BUILTIN_SPECIALIZATIONS + ("nfs_server",)
    assert topo.node("n2").specializations == ("nfs_server",)


def test_console_pattern_format_spec():
    topo = load_topology(_with({"boards.b2.console": "/dev/serial/{board}-{slot:02d}-{host}"}), source=SOURCE)
    assert topo.node("n3").console == "/dev/serial/b2-03-n3"
    assert topo.node("n10").console == "/dev/ttyUSB10"  # the slot's own pattern wins


USER_PROFILE = {
    "kind": "gpio",
    "chips": {"u1": {"type": "pca9554", "address": 0x38}},
    "slots": {1: {"power": {"chip": "u1", "bit": 0}}, 2: {"power": {"chip": "u1", "bit": 1, "active": "low"}}},
}


def test_user_profile_by_name():
    data = _with({"profiles": {"shelf2": USER_PROFILE}, "boards.b1.profile": "shelf2",
                  "boards.b1.slots.2.host": "n2"})
    topo = load_topology(data, source=SOURCE)
    board = topo.boards["b1"]
    assert board.profile_name == "shelf2" and board.profile.slot_numbers == (1, 2)
    assert board.profile_data == dict(USER_PROFILE, name="shelf2")
    n1 = topo.node("n1")
    assert n1.profile == "shelf2" and n1.profile_data == dict(USER_PROFILE, name="shelf2")
    assert n1.hostvars()["carrier_profile_data"] == n1.profile_data
    assert list(topo.profiles) == ["shelf2"]
    # the user's data is not modified (the name is added to a copy)
    assert "name" not in USER_PROFILE


def test_user_profile_slot_range_applies():
    data = _with({"profiles": {"shelf2": USER_PROFILE}, "boards.b1.profile": "shelf2"})
    data["boards"]["b1"]["slots"][3] = {"host": "n3x"}
    with pytest.raises(TopologyError) as info:
        load_topology(data, source=SOURCE)
    assert info.value.path == "boards.b1.slots.3"
    assert "out of range for profile 'shelf2' (slots 1-2)" in str(info.value)


def test_inline_profile_named_after_its_board():
    topo = load_topology(_with({"boards.b1.profile": copy.deepcopy(USER_PROFILE)}), source=SOURCE)
    n1 = topo.node("n1")
    assert n1.profile == "b1" and n1.profile_data["name"] == "b1"
    assert n1.profile_data["chips"] == {"u1": {"type": "pca9554", "address": 0x38}}


def test_builtin_profiles_resolved_once(monkeypatch):
    """Every board with the same built-in profile shares one Profile: no per-board or per-slot re-validation."""
    from ansible_collections.picluster.carrier.plugins.module_utils import _topology

    calls = []

    def counting(name_or_dict):
        calls.append(name_or_dict)
        return get_profile(name_or_dict)

    monkeypatch.setattr(_topology, "get_profile", counting)
    boards = {
        "r%d" % i: {"profile": "backplane10", "controller": "ctrl0", "bus": 1,
                    "slots": {s: "r%d-n%d" % (i, s) for s in range(1, 11)}}
        for i in range(20)
    }
    topo = load_topology({"controllers": {"ctrl0": {}}, "boards": boards}, source=SOURCE)
    assert len(topo.nodes) == 200
    assert calls == ["backplane10"]


def test_every_builtin_profile_loads():
    for name in BUILTIN_PROFILES:
        kind = BUILTIN_PROFILES[name]["kind"]
        bus = {"turingpi2": "https://tpi.example", "smart_plug": "http://plug.example", "usb_hub": "usb:1-1",
               "poe_switch": "snmp://switch.example"}.get(kind, 1)
        topo = load_topology({"controllers": {"c": {}}, "boards": {"b": {"profile": name, "bus": bus,
                                                                         "slots": {1: "h1"}}}})
        assert topo.node("h1").profile == name


def test_turingpi2_board_takes_a_bmc_url_and_login_but_no_password():
    board = {"profile": "turingpi2", "bus": "https://tpi.example:8443/", "slots": {1: "t1"},
             "bmc": {"user": "root", "ca_path": "/etc/ssl/tpi.pem"}}
    topo = load_topology({"controllers": {"c": {}}, "boards": {"tp": board}})
    hv = topo.node("t1").hostvars()
    assert hv["carrier_bus"] == "https://tpi.example:8443"
    assert hv["carrier_bmc_user"] == "root" and hv["carrier_bmc_ca_path"] == "/etc/ssl/tpi.pem"
    assert not any("password" in key for key in hv)
    assert hv["carrier_console"] == "turingpi2:https://tpi.example:8443#1"  # the UART through the BMC
    with pytest.raises(CarrierError, match=r"boards.tp.bmc: unknown key"):
        load_topology({"controllers": {"c": {}}, "boards": {"tp": dict(board, bmc={"password": "turing"})}})
    with pytest.raises(CarrierError, match=r"boards.tp.bus: 1 is not a BMC URL"):
        load_topology({"controllers": {"c": {}}, "boards": {"tp": dict(board, bus=1)}})
    with pytest.raises(CarrierError, match=r"boards.tp.bmc: only a Turing Pi 2 board"):
        load_topology({"controllers": {"c": {}}, "boards": {"tp": dict(board, profile="itx4", bus=1)}})


# -- from files --------------------------------------------------------------------------------

def test_load_from_file_names_the_file(tmp_path):
    path = tmp_path / "c.carrier.yml"
    path.write_text(textwrap.dedent("""\
        controllers: {c: {}}
        boards:
          b:
            profile: itx4
            bus: 1
            slots:
              1: {host: h1, mac: "dc:a6:32:01:36"}
        """))
    with pytest.raises(TopologyError) as info:
        load_topology(str(path))
    assert str(info.value) == (
        "%s: boards.b.slots.1.mac: 'dc:a6:32:01:36' is not a MAC address (six hex pairs separated by ':' or '-')"
        % path
    )


def test_yaml_duplicate_key_in_file(tmp_path):
    path = tmp_path / "c.carrier.yml"
    path.write_text("controllers: {c: {}}\nboards:\n  b:\n    profile: itx4\n    bus: 1\n    slots:\n"
                    "      2: {host: a}\n      2: {host: b}\n")
    with pytest.raises(TopologyError, match=r"c.carrier.yml: line 8: duplicate key 2"):
        load_topology(path)


def test_unquoted_mac_in_yaml_is_caught(tmp_path):
    # YAML 1.1 reads 10:20:30:40:50:59 as a base-60 number: the error must say to quote it.
    path = tmp_path / "c.carrier.yml"
    path.write_text("controllers: {c: {}}\nboards:\n  b:\n    profile: itx4\n    bus: 1\n    slots:\n"
                    "      1: {host: a, mac: 10:20:30:40:50:59}\n")
    with pytest.raises(TopologyError, match="read by YAML as a number: quote the MAC"):
        load_topology(path)


def test_missing_file(tmp_path):
    with pytest.raises(TopologyError, match="cannot read the topology file"):
        load_topology(tmp_path / "absent.carrier.yml")


def test_invalid_yaml(tmp_path):
    path = tmp_path / "c.carrier.yml"
    path.write_text("boards: [\n")
    with pytest.raises(TopologyError, match="not valid YAML"):
        load_topology(path)


@pytest.mark.parametrize("name", ["inventory/sim/cluster.carrier.yml", "inventory/example-hardware.carrier.yml"])
def test_shipped_topologies_are_valid(name):
    topo = load_topology(REPO / name)
    assert topo.nodes


def test_sim_cluster_shape():
    topo = load_topology(REPO / "inventory/sim/cluster.carrier.yml")
    assert [(b.name, b.profile_name, len(b.nodes)) for b in topo.boards.values()] == [
        ("carrier1", "itx4_hwmon", 4), ("rack1", "backplane10", 10)]
    assert len(topo.nodes) == 14
    count = {s: sum(s in n.specializations for n in topo.nodes.values()) for s in BUILTIN_SPECIALIZATIONS}
    assert count["ceph_storage"] == 3 and count["k3s_server"] >= 1 and count["pihole"] == 2
    assert count["k3s_agent"] >= 1
    ouis = {"b8:27:eb", "dc:a6:32", "e4:5f:01", "28:cd:c1", "d8:3a:dd", "2c:cf:67"}  # docs/hardware.md section 9
    assert all(n.mac[:8] in ouis for n in topo.nodes.values())
    assert all(len(n.serial) == 16 for n in topo.nodes.values())
    assert all(n.console == "/tmp/picluster-sim/console/" + n.host for n in topo.nodes.values())


@pytest.mark.parametrize("value", ["1-1", "1-1.3", "2-1", "1-1.2.4", "10-3.7.1.2"])
def test_usb_port_accepted(value):
    node = _slot_with("usb_port", value)
    assert node.usb_port == value and node.hostvars()["carrier_usb_port"] == value


@pytest.mark.parametrize("value", ["", "1", "1-", "1-1.", "1.1-3", "usb1", "1-1:1.0", " 1-1", "1-1\n", "../1-1",
                                   1, 1.3, True, ["1-1"]])
def test_usb_port_rejected(value):
    with pytest.raises(TopologyError, match="is not a USB port path") as info:
        _slot_with("usb_port", value)
    assert info.value.path == "boards.b.slots.1.usb_port" and info.value.value == value
    assert str(info.value).startswith(SOURCE + ": boards.b.slots.1.usb_port: ")


def test_usb_port_unique_per_controller():
    data = _with({"boards.b1.slots.1.usb_port": "1-1.1", "boards.b1.slots.2.usb_port": "1-1.1"})
    with pytest.raises(TopologyError, match="duplicate USB port '1-1.1' on controller 'ctrl0'") as info:
        load_topology(data, source=SOURCE)
    assert info.value.path == "boards.b1.slots.2.usb_port" and "boards.b1.slots.1.usb_port" in str(info.value)
    # the same port name on another controller is another port
    data = _with({"boards.b1.slots.1.usb_port": "1-1.1", "boards.b2.slots.10.usb_port": "1-1.1"})
    topo = load_topology(data, source=SOURCE)
    assert topo.node("n1").usb_port == topo.node("n10").usb_port == "1-1.1"
    assert topo.node("n2").usb_port is None


def test_sim_cluster_usb_ports():
    topo = load_topology(REPO / "inventory/sim/cluster.carrier.yml")
    ports = {n.host: n.usb_port for n in topo.nodes.values()}
    assert [ports[h] for h in ("node01", "node02", "node03", "node04")] == ["1-1.1", "1-1.2", "1-1.3", "1-1.4"]
    assert [ports["node%02d" % i] for i in range(5, 15)] == (
        ["1-2.1.%d" % p for p in range(1, 6)] + ["1-2.2.%d" % p for p in range(1, 6)])
