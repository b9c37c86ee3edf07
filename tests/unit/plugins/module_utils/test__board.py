# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Profiles (built-in slot mappings, validation) and boards on emulated chips."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils._board import (
    BUILTIN_PROFILES,
    Board,
    get_profile,
)
from ansible_collections.picluster.carrier.plugins.module_utils._errors import BusError, CarrierError

# profile, slot, line -> (chip, bit, active_high)
MAPPING = [
    ("itx4", 1, "power", ("u1", 0, True)),
    ("itx4", 1, "run", ("u1", 1, True)),
    ("itx4", 1, "rpiboot", ("u1", 2, False)),
    ("itx4", 4, "power", ("u1", 9, True)),
    ("itx4", 4, "rpiboot", ("u1", 11, False)),
    ("itx4", 1, "eeprom_wp", ("u1", 12, False)),
    ("itx4", 4, "eeprom_wp", ("u1", 15, False)),
    ("backplane10", 1, "power", ("u1", 0, True)),
    ("backplane10", 5, "rpiboot", ("u1", 14, False)),
    ("backplane10", 6, "power", ("u2", 0, True)),
    ("backplane10", 10, "run", ("u2", 13, True)),
    ("clusterhat_v2", 1, "power", ("u1", 0, True)),
    ("clusterhat_v3", 4, "power", ("u1", 3, True)),
    ("turingpi1", 1, "power", (None, 1, True)),  # mask 0x02
    ("turingpi1", 5, "power", (None, 7, True)),  # mask 0x80
    ("turingpi1", 7, "power", (None, 5, True)),  # mask 0x20
]


@pytest.mark.parametrize("profile,slot,line,expected", MAPPING)
def test_builtin_slot_mapping(profile, slot, line, expected):
    got = get_profile(profile).lines(slot)[line]
    assert (got.chip, got.bit, got.active_high) == expected


def test_builtin_profiles_shape():
    counts = {name: len(get_profile(name).slot_numbers) for name in BUILTIN_PROFILES}
    assert counts == {"itx4": 4, "backplane10": 10, "clusterhat_v2": 4, "clusterhat_v3": 4, "clusterctrl": 32,
                      "turingpi1": 7, "turingpi2": 4}
    assert get_profile("backplane10").chips == {"u1": ("pca9555", 0x20), "u2": ("pca9555", 0x21)}
    assert get_profile("clusterhat_v2").chips == {"u1": ("xra1200", 0x20)}
    assert get_profile("turingpi1").device_address == 0x57
    # a profile's dict form is itself a valid profile that means the same
    for name in BUILTIN_PROFILES:
        again = get_profile(get_profile(name).to_dict())
        assert again.to_dict() == get_profile(name).to_dict()


GOOD = {
    "name": "mine",
    "chips": {"u1": {"type": "mcp23017", "address": "0x24"}},
    "slots": {1: {"power": {"chip": "u1", "bit": 0}, "run": {"chip": "u1", "bit": 8, "active": "high"}},
              "2": {"power": {"bit": 1, "active": "low", "pull": "down"}}},
    "timing": {"stagger": 2},
}


def _bad(path, value):
    data = copy.deepcopy(GOOD)
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


def test_user_profile():
    profile = get_profile(GOOD)
    assert profile.chips == {"u1": ("mcp23017", 0x24)}
    assert profile.slot_numbers == (1, 2)
    assert profile.lines(2)["power"].chip == "u1"  # the one chip is the default
    assert profile.lines(2)["power"].active_high is False
    assert profile.timing == {"reset_pulse": 0.1, "off_time": 1.0, "stagger": 2.0}


@pytest.mark.parametrize("path,value,message", [
    (("kind",), "gpo", r"profile mine.kind: 'gpo' is not one of gpio, clusterctrl, turingpi1"),
    (("chips", "u1", "type"), "pca1234", r"profile mine.chips.u1.type: .*'pca1234' is not a supported expander"),
    (("chips", "u1", "address"), 0x99, r"profile mine.chips.u1.address: 153 is out of range"),
    (("chips", "u1", "address"), "twenty", r"profile mine.chips.u1.address: 'twenty' is not an integer"),
    (("slots", 1, "power", "bit"), 16, r"profile mine.slots.1.power.bit: 16 is out of range \(0..15\)"),
    (("slots", 1, "power", "chip"), "u9", r"profile mine.slots.1.power.chip: 'u9' is not one of the profile's chips"),
    (("slots", 1, "power", "active"), "hi", r"profile mine.slots.1.power.active: 'hi' is not one of high, low"),
    (("slots", 1, "power", "pull"), "none", r"profile mine.slots.1.power.pull: 'none' is not one of up, down"),
    (("slots", 1, "power", "colour"), "red", r"profile mine.slots.1.power: unknown key\(s\) colour"),
    (("slots", 1, "reset"), {"bit": 3}, r"profile mine.slots.1: unknown key\(s\) reset"),
    (("slots", 1, "power"), KeyError, r"profile mine.slots.1: each slot needs at least a `power` line"),
    (("slots", 1, "run", "bit"), 0, r"profile mine.slots.1.run.bit: u1 bit 0 is already slot 1 power"),
    (("slots",), {}, r"profile mine.slots: a mapping of slot number to lines is required"),
    (("slots", "x"), {"power": {"bit": 5}}, r"profile mine.slots: 'x' is not an integer"),
    (("timing", "stagger"), -1, r"profile mine.timing.stagger: -1 is not a number of seconds"),
    (("timing", "warmup"), 1, r"profile mine.timing: unknown key\(s\) warmup"),
    (("extra",), 1, r"profile mine: unknown key\(s\) extra"),
])
def test_profile_errors_name_field_and_value(path, value, message):
    with pytest.raises(CarrierError, match=message):
        get_profile(_bad(path, value))


def test_pcf8574_cannot_drive_an_active_high_line_against_a_pull_down():
    profile = {"name": "p", "chips": {"u1": {"type": "pcf8574", "address": 0x20}},
               "slots": {1: {"power": {"bit": 0, "active": "high", "pull": "down"}}}}
    with pytest.raises(CarrierError, match=r"profile p.slots.1.power: a pcf8574 drives only low"):
        get_profile(profile)
    profile["slots"][1]["power"] = {"bit": 0, "active": "low", "pull": "up"}
    assert get_profile(profile).lines(1)["power"].active_high is False


def test_unknown_builtin_and_wrong_type():
    with pytest.raises(CarrierError, match=r"profile: 'itx5' is not a built-in profile \(built-in: backplane10"):
        get_profile("itx5")
    with pytest.raises(CarrierError, match="neither a profile name nor a mapping"):
        get_profile(42)


def test_board_options_are_checked(tmp_path):
    with pytest.raises(CarrierError, match=r"addresses: 'u3' is not a chip of profile backplane10"):
        Board("b", "backplane10", 1, addresses={"u3": 0x22})
    with pytest.raises(CarrierError, match=r"addresses.u1: 200 is out of range"):
        Board("b", "backplane10", 1, addresses={"u1": 200})
    with pytest.raises(CarrierError, match=r"slot: 11 is not a slot of profile backplane10 \(slots: 1-10\)"):
        Board("b", "backplane10", 1, protected_slots=[11])
    board = Board("b", "itx4", 1)
    assert board.resolve_slots("all") == [1, 2, 3, 4]
    assert board.resolve_slots([3, "1", 3]) == [1, 3]
    with pytest.raises(CarrierError, match=r"slot: 'two' is not an integer"):
        board.resolve_slots("two")
    with pytest.raises(CarrierError, match=r"slot: 5 is not a slot of profile itx4 \(slots: 1-4\)"):
        board.resolve_slots([1, 5])


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


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), True, "0.5", None])
def test_profile_timing_refuses_non_finite_and_non_numbers(value):
    with pytest.raises(CarrierError, match=r"profile mine.timing.stagger: .* is not a number of seconds"):
        get_profile(_bad(("timing", "stagger"), value))
