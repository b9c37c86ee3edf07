# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The outlet-board framework (_outlets): profiles, device addresses, the session over a driver."""

from __future__ import annotations

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils import _outlets
from ansible_collections.picluster.carrier.plugins.module_utils._board import Board, get_profile
from ansible_collections.picluster.carrier.plugins.module_utils._errors import BusError, CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._power import PowerRequest as Request, execute
from ansible_collections.picluster.carrier.plugins.module_utils._topology import load_topology


class FakeDriver(object):
    """Ports that follow writes, unless listed in ``stuck``."""

    settle = 0.2

    def __init__(self, board, ports, stuck=()):
        self.board = board
        self.ports = ports  # shared by every session's driver, as the device outlives them
        self.stuck = set(stuck)
        self.writes = []
        self.closed = False

    def read(self, slots):
        return {slot: self.ports.get(slot, False) for slot in slots}

    def write(self, slot, on):
        self.writes.append((slot, on))
        if slot not in self.stuck:
            self.ports[slot] = on

    def facts(self):
        return {"ports": len(self.ports)}

    def close(self):
        self.closed = True


@pytest.fixture
def fake(monkeypatch, tmp_path):
    drivers = []

    def make(board, stuck=()):
        driver = FakeDriver(board, fake.ports, stuck=fake.stuck)
        drivers.append(driver)
        return driver

    fake.stuck, fake.ports, fake.drivers = set(), {}, drivers
    monkeypatch.setattr(_outlets, "make_driver", make)
    return fake


@pytest.mark.parametrize("kind,bus,expected", [
    ("smart_plug", "http://10.0.0.5", "http://10.0.0.5"),
    ("smart_plug", "https://plug.lan:8443/", "https://plug.lan:8443"),
    ("poe_switch", "snmp://switch.lan", "snmp://switch.lan:161"),
    ("poe_switch", "snmp://127.0.0.1:16161", "snmp://127.0.0.1:16161"),
    ("usb_hub", "usb:1-1.4", "/sys/bus/usb/devices/1-1.4"),
    ("usb_hub", "/tmp/sim/sys/bus/usb/devices/3-2/", "/tmp/sim/sys/bus/usb/devices/3-2"),
])
def test_addresses_normalised(kind, bus, expected):
    assert _outlets.check_address(kind, bus) == expected


@pytest.mark.parametrize("kind,bus,message", [
    ("smart_plug", "plug.lan", "not a device URL"),
    ("smart_plug", "http://plug.lan/cm?cmnd=Power", "not a device URL"),
    ("smart_plug", "http://plug.lan:port", "not a number"),
    ("poe_switch", "udp:switch:161", "not an SNMP agent address"),
    ("poe_switch", 161, "not an SNMP agent address"),
    ("usb_hub", "1-1", "not a USB hub"),
    ("usb_hub", "/sys/bus/usb/devices/../../etc", "not a USB hub"),
])
def test_bad_addresses_name_the_value(kind, bus, message):
    with pytest.raises(CarrierError, match=r"bus: .*%s" % message):
        _outlets.check_address(kind, bus)


def test_profiles_validate_each_slot():
    plug = get_profile({"name": "p", "kind": "smart_plug", "api": "shelly_gen1", "slots": {1: 1, 2: {"outlet": 2}}})
    assert plug.outlets == {1: {"outlet": 1}, 2: {"outlet": 2}} and plug.outlet_options == {"api": "shelly_gen1"}
    assert plug.lines(1).keys() == {"power"} and not plug.native_reset
    assert get_profile(plug.to_dict()).outlets == plug.outlets
    cases = [
        ({"kind": "smart_plug", "slots": {1: 1}}, r"\.api: None is not one of tasmota"),
        ({"kind": "smart_plug", "api": "tasmota", "slots": {1: {"outlet": 0}}}, r"slots\.1\.outlet: 0 is out of range"),
        ({"kind": "smart_plug", "api": "tasmota", "slots": {1: {"url": "x"}}}, r"slots\.1\.url: 'x' is not a device"),
        ({"kind": "poe_switch", "slots": {1: {"port": True}}}, r"slots\.1\.port: True is not a whole number"),
        ({"kind": "poe_switch", "slots": {1: 3, 2: 3}}, r"slots\.2: the same port as slot 1"),
        ({"kind": "poe_switch", "snmp": {"version": 1}, "slots": {1: 1}}, r"snmp\.version: '1' is not one of 2c, 3"),
        ({"kind": "usb_hub", "slots": {1: {"port": 1, "hub": "../x"}}}, r"slots\.1\.hub: '\.\./x' is not a USB hub"),
        ({"kind": "usb_hub", "slots": {1: {"port": 2, "run": 1}}}, r"slots\.1: unknown key\(s\) run"),
        ({"kind": "usb_hub", "chips": {"u1": {}}, "slots": {1: 1}}, r"\.chips: a usb_hub profile has none"),
        ({"kind": "gpio", "api": "tasmota", "chips": {"u1": {"type": "pca9555", "address": 32}},
          "slots": {1: {"power": {"bit": 0}}}}, r"\.api: only a smart_plug profile has an api"),
    ]
    for data, message in cases:
        with pytest.raises(CarrierError, match=message):
            get_profile(dict(data, name="x"))


def test_topology_takes_device_addresses_and_login(tmp_path):
    topo = load_topology({"controllers": {"c": {}}, "boards": {
        "strip": {"profile": "tasmota_strip4", "bus": "http://10.0.0.9", "bmc": {"user": "admin"}, "slots": {1: "a"}},
        "hub": {"profile": "usb_hub4", "bus": "usb:1-1", "slots": {2: "b"}},
    }})
    assert topo.node("a").hostvars()["carrier_bus"] == "http://10.0.0.9"
    assert topo.node("a").hostvars()["carrier_bmc_user"] == "admin"
    assert topo.node("b").hostvars()["carrier_bus"] == "/sys/bus/usb/devices/1-1"
    with pytest.raises(CarrierError, match=r"boards\.sw\.bus: .*not an SNMP agent address"):
        board = {"profile": "poe_switch8", "bus": "1", "slots": {1: "a"}}
        load_topology({"controllers": {"c": {}}, "boards": {"sw": board}})


def test_power_through_a_driver_reads_back(fake, tmp_path):
    board = Board("strip", "tasmota_strip4", "http://127.0.0.1:9", lock_dir=str(tmp_path))
    assert board.read_state([1, 2])[1]["power"] is False and board.read_state([1])[1]["run"] is None
    result = execute(Request(board, [1, 2], "on", stagger=0), sleep=lambda s: None)
    assert result["changed"] and board.read_state([1, 2]) == {1: dict(board.profile.blank_state(), power=True),
                                                              2: dict(board.profile.blank_state(), power=True)}
    assert all(d.closed for d in fake.drivers)
    again = execute(Request(board, [1], "on", stagger=0), sleep=lambda s: None)
    assert not again["changed"]


def test_reset_is_a_power_cycle(fake, tmp_path):
    board = Board("hub", "usb_hub4", "usb:1-1", lock_dir=str(tmp_path))
    fake.ports[3] = True
    execute(Request(board, [3], "reset", stagger=0, off_time=0), sleep=lambda s: None)
    writes = [w for d in fake.drivers for w in d.writes]
    assert writes == [(3, False), (3, True)]


def test_a_port_that_does_not_follow_names_board_and_slot(fake, tmp_path):
    board = Board("sw1", "poe_switch8", "snmp://127.0.0.1:16161", lock_dir=str(tmp_path))
    fake.stuck = {4}
    with pytest.raises(BusError, match=r"poe_switch board sw1: slot\(s\) 4 did not follow: slot 4 reads off, wanted"):
        board.set_lines({4: {"power": True}})
    with pytest.raises(CarrierError, match=r"slot 2 of board sw1 \(poe_switch\) has no run line"):
        board.set_lines({2: {"run": False}})
