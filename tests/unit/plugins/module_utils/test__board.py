# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Profiles (built-in slot mappings, validation) and boards (their options, building one from a dict)."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils._board import (
    BUILTIN_PROFILES,
    Board,
    board_from_dict,
    get_profile,
)
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError

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
    assert counts == {"itx4": 4, "itx4_hwmon": 4, "backplane10": 10, "clusterhat_v2": 4, "clusterhat_v3": 4,
                      "clusterctrl": 32, "turingpi1": 7, "turingpi2": 4, "usb_hub4": 4, "usb_hub7": 7,
                      "poe_switch8": 8, "tasmota_strip4": 4, "shelly_pro4": 4}
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
    with pytest.raises(CarrierError, match=r"profile p.slots: a mapping of slot number .* required, got \[1\]"):
        get_profile({"name": "p", "chips": {"u1": {"type": "pca9555", "address": 0x20}}, "slots": [1]})
    with pytest.raises(CarrierError, match=r"profile p.chips: a gpio profile needs .*, got 'u1'"):
        get_profile({"name": "p", "chips": "u1"})


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


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), True, "0.5", None])
def test_profile_timing_refuses_non_finite_and_non_numbers(value):
    with pytest.raises(CarrierError, match=r"profile mine.timing.stagger: .* is not a number of seconds"):
        get_profile(_bad(("timing", "stagger"), value))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 2.5, "two", True, 0])
def test_protected_slots_refuse_what_is_not_a_slot_number(value):
    # refused by name: neither truncated (2.5 is no slot 2) nor left to a bare ValueError
    with pytest.raises(CarrierError, match=r"^protected_slots: .* is (not an integer|out of range)"):
        Board("b", "itx4", 1, protected_slots=[value])


def test_board_from_dict():
    board = board_from_dict({"name": "b", "profile": "backplane10", "bus": "1", "addresses": {"u2": "0x22"},
                             "protected_slots": ["3"], "controller": "c", "slots": [[3, "h3"]]}, retries=2)
    assert (board.name, board.profile.name, board.bus_spec, board.retries) == ("b", "backplane10", "1", 2)
    assert board.chips["u2"] == ("pca9555", 0x22) and board.protected_slots == frozenset({3})
    assert board.lock_dir is None and board.bmc == {}
