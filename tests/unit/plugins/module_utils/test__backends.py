# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Board backends: GPIO expanders, Turing Pi 1 and ClusterCTRL on emulated chips; the Turing Pi 2
session on a stand-in for its BMC client."""

from __future__ import annotations

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils._backends import (
    BUS_SESSIONS,
    ClusterCtrlSession,
    TuringPi2Session,
)
from ansible_collections.picluster.carrier.plugins.module_utils._board import KINDS, Board
from ansible_collections.picluster.carrier.plugins.module_utils._outlets import OUTLET_KINDS
from ansible_collections.picluster.carrier.plugins.module_utils._errors import BusError, CarrierError


def test_every_bus_kind_has_a_session():
    # Turing Pi 2 is reached through its BMC, outlet boards through _outlets.OutletSession
    assert set(BUS_SESSIONS) == set(KINDS) - {"turingpi2"} - set(OUTLET_KINDS)


def test_read_state_from_input_registers(rig):
    r = rig("itx4")
    state = r.board.read_state()
    # power pulled down, run and rpiboot pulled up (rpiboot is active low: released)
    assert state[1] == {"power": False, "run": True, "rpiboot": False, "eeprom_wp": False}
    r.chip("u1").set_stuck(3, 1)  # something else holds slot 2's power enable high
    assert r.board.read_state([2])[2]["power"] is True
    assert not r.writes()  # reading never reconfigures a chip


def test_set_lines_verifies_and_names_stuck_lines(rig):
    r = rig("backplane10")
    r.board.set_lines({7: {"power": True, "rpiboot": True}})
    assert r.levels(7)["power"] is True and r.levels(7)["rpiboot"] is True
    assert r.levels(6)["power"] is False  # neighbours untouched
    r.chip("u2").set_stuck(3, 1)  # slot 7 power is u2 bit 3: held high by a fault
    with pytest.raises(BusError, match=r"board b1: line did not follow: slot 7 power \(bit 3\) should be released "
                                       r"but the pin reads 1"):
        r.board.set_lines({7: {"power": False}, 6: {"power": True}})
    assert r.levels(6)["power"] is True  # the write itself went through; the error says which line is wrong


def test_stuck_line_error_message(rig):
    r = rig("itx4")
    r.chip("u1").set_stuck(6, 0)  # slot 3 power enable shorted low
    with pytest.raises(BusError) as info:
        r.board.set_lines({3: {"power": True}})
    assert "slot 3 power (bit 6) should be asserted but the pin reads 0" in str(info.value)
    assert "pca9555 at 0x20" in str(info.value)


def test_injected_bus_errors_are_retried(rig):
    r = rig("backplane10", sim={"i2c_error_rate": 0.3, "seed": 7})
    for _round in range(5):
        r.board.set_lines({s: {"power": True} for s in range(1, 11)})
        r.board.set_lines({s: {"power": False} for s in range(1, 11)})
    assert r.bus.counters["errors"] > 0
    assert all(r.levels(s)["power"] is False for s in range(1, 11))


def test_turingpi1_register(rig):
    r = rig("turingpi1")
    r.board.set_lines({1: {"power": True}, 5: {"power": True}})
    assert r.chip("tpi").read_byte_data(0xF2) == 0x82
    assert r.chip("tpi").read_byte_data(0xF4) == 0x82  # the RAM shadow follows
    assert r.board.read_state([1, 2, 5]) == {
        1: {"power": True, "run": None, "rpiboot": None, "eeprom_wp": None},
        2: {"power": False, "run": None, "rpiboot": None, "eeprom_wp": None},
        5: {"power": True, "run": None, "rpiboot": None, "eeprom_wp": None},
    }
    with pytest.raises(CarrierError, match="only power"):
        r.board.set_lines({2: {"run": False}})


def test_clusterctrl_commands(rig):
    r = rig("clusterctrl", nodes=(1, 2, 3))
    r.board.set_lines({2: {"power": True, "rpiboot": True}})
    state = r.board.read_state([1, 2])
    assert state[2]["power"] is True and state[2]["rpiboot"] is True
    assert state[1]["power"] is False
    # the command sequence: DATA0 = node, CMD = code, poll CMD until 0, STATUS, DATA0
    first = [entry for entry in r.log if entry[0].startswith("write")][:2]
    assert first == [("write_byte_data", 0x20, 0x0C, 2), ("write_byte_data", 0x20, 0x0D, 0x12)]
    with pytest.raises(CarrierError, match=r"slot: 4 is beyond this ClusterCTRL's 3 nodes"):
        r.board.read_state([4])


def test_clusterctrl_command_that_never_finishes_is_reported(rig, monkeypatch):
    r = rig("clusterctrl", nodes=(1, 2))
    monkeypatch.setattr(ClusterCtrlSession, "POLL_TIMEOUT", 0.05)
    with r.board.session() as session:
        monkeypatch.setattr(session.device, "read", lambda reg: 0x03 if reg == 0x0D else 0)
        with pytest.raises(BusError, match=r"clusterctrl: command 0x03 for node 1 did not finish"):
            session.command(0x03, 1)


class FakeBmc:
    """What TuringPi2Session asks of a BmcClient; ``after`` overrides what power reads after a set."""

    url = "https://tpi.example"

    def __init__(self):
        self.on = {1: False, 2: False, 3: False, 4: False}
        self.calls = []
        self.after = None

    def power(self):
        self.calls.append(("power",))
        state = dict(self.on)
        state.update(self.after or {})
        return state

    def set_power(self, wanted):
        self.calls.append(("set_power", dict(wanted)))
        self.on.update(wanted)

    def usb_boot(self, slot, enabled):
        self.calls.append(("usb_boot", slot, enabled))

    def reset(self, slot):
        self.calls.append(("reset", slot))


def _tpi2(client):
    board = Board("tp", "turingpi2", "https://tpi.example")
    return TuringPi2Session(board, client)


def test_turingpi2_session_names_only_the_nodes_it_changes():
    client = FakeBmc()
    session = _tpi2(client)
    assert session.read_state([1, 2])[1] == {"power": False, "run": None, "rpiboot": None, "eeprom_wp": None}
    session.set_lines({2: {"rpiboot": True, "power": True}})
    assert ("usb_boot", 2, True) in client.calls and ("set_power", {2: True}) in client.calls
    assert session.read_state([2])[2]["power"] is True
    assert client.calls.count(("power",)) == 2  # the first read, the read back after the set; no more
    session.reset([3])
    assert client.calls[-1] == ("reset", 3)
    with pytest.raises(CarrierError, match=r"slot 1 of a Turing Pi 2 has no run line"):
        session.set_lines({1: {"run": False}})


def test_turingpi2_power_that_does_not_follow_is_reported():
    client = FakeBmc()
    client.after = {4: False}
    with pytest.raises(BusError, match=r"turingpi2 BMC https://tpi.example: node\(s\) 4 still read off"):
        _tpi2(client).set_lines({4: {"power": True}})


def test_turingpi2_chip_facts_say_the_power_is_not_sensed():
    facts = _tpi2(FakeBmc()).chip_facts()
    assert facts == {"bmc": {"type": "turingpi2", "url": "https://tpi.example",
                             "power_source": "the BMC's saved state (not sensed)"}}
