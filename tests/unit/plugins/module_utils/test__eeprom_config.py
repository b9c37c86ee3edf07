# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the bootloader config text, BOOT_ORDER and the known keys (_eeprom/config.py)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.picluster.carrier.plugins.module_utils._eeprom import config as C
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError


# --- BOOT_ORDER ---------------------------------------------------------------------------------

BOOT_ORDER_TABLE = [
    (["nvme", "sd", "network", "restart"], "0xf216"),
    (["sd", "usb", "restart"], "0xf41"),
    (["network", "sd", "restart"], "0xf12"),
    (["sd", "nvme", "usb", "restart"], "0xf461"),
    (["http"], "0x7"),
    (["sd", "stop"], "0xe1"),
    (["bcm_usb", "usb", "rpiboot"], "0x345"),
    (["sd", "network", "usb", "nvme", "http", "bcm_usb", "stop", "restart"], "0xfe576421"),
]


@pytest.mark.parametrize("names,value", BOOT_ORDER_TABLE)
def test_boot_order_table(names, value):
    assert C.encode_boot_order(names) == value
    assert C.decode_boot_order(value) == names
    assert C.decode_boot_order(int(value, 16)) == names


def test_boot_order_errors():
    with pytest.raises(CarrierError, match="unknown boot mode 'floppy'"):
        C.encode_boot_order(["sd", "floppy"])
    with pytest.raises(CarrierError, match="rpiboot must be the last"):
        C.encode_boot_order(["rpiboot", "sd"])
    with pytest.raises(CarrierError, match="rpiboot must be the last"):
        C.decode_boot_order("0xf3")
    with pytest.raises(CarrierError, match="9 modes, at most 8"):
        C.encode_boot_order(["sd"] * 9)
    with pytest.raises(CarrierError, match="empty"):
        C.encode_boot_order([])
    with pytest.raises(CarrierError, match="unknown boot mode code 0x8"):
        C.decode_boot_order("0xf81")
    with pytest.raises(CarrierError, match="0x0 is deprecated"):
        C.decode_boot_order("0xf01")
    with pytest.raises(CarrierError, match="out of range"):
        C.decode_boot_order("0x1f4141414")
    with pytest.raises(CarrierError, match="not an integer"):
        C.decode_boot_order("nvme")
    assert C.decode_boot_order("0xf3", validate=False) == ["rpiboot", "restart"]
    assert C.effective_boot_order("[all]\n") == ["sd", "usb", "restart"]


MODES = sorted(set(C.BOOT_MODES) - {"rpiboot"})


@st.composite
def boot_orders(draw):
    names = draw(st.lists(st.sampled_from(MODES), min_size=1, max_size=8))
    if len(names) < 8 and draw(st.booleans()):
        names.append("rpiboot")
    return names


@given(boot_orders())
@settings(deadline=None)
def test_boot_order_round_trip(names):
    value = C.encode_boot_order(names)
    assert re.fullmatch(r"0x[0-9a-f]{1,8}", value)
    assert len(value) - 2 == len(names)
    assert C.decode_boot_order(value) == names
    assert int(value, 16) & 0xF == C.BOOT_MODES[names[0]]


@given(st.integers(min_value=1, max_value=0xFFFFFFFF))
@settings(deadline=None)
def test_boot_order_hex_round_trip(num):
    try:
        names = C.decode_boot_order(num)
    except CarrierError:
        return
    assert int(C.encode_boot_order(names), 16) == num


# --- config text --------------------------------------------------------------------------------

SAMPLE = """# Boot config of node07
[all]
BOOT_UART=1
BOOT_ORDER=0xf41

# network first when GPIO 8 is low
[gpio8=0]
BOOT_ORDER=0xf21
[0x10000000b7f44626]
TFTP_PREFIX=2
[all]
WAKE_ON_GPIO=0
"""


def test_parse_sections_comments():
    cfg = C.BootConfig.parse(SAMPLE)
    assert cfg.render() == SAMPLE
    assert cfg.sections() == ["all", "gpio8=0", "0x10000000b7f44626"]
    assert cfg.settings("all") == {"BOOT_UART": "1", "BOOT_ORDER": "0xf41", "WAKE_ON_GPIO": "0"}
    assert cfg.get("BOOT_ORDER", "gpio8=0") == "0xf21"
    assert [line.raw for line in cfg.lines if line.kind == "comment"] == [
        "# Boot config of node07", "# network first when GPIO 8 is low"]


def test_set_in_place_keeps_everything_else():
    out = C.apply_changes(SAMPLE, ["network", "sd", "restart"], {"DHCP_TIMEOUT": 50000}, section="gpio8=0")
    assert out == SAMPLE.replace("BOOT_ORDER=0xf21\n", "BOOT_ORDER=0xf12\nDHCP_TIMEOUT=50000\n")
    out = C.apply_changes(SAMPLE, None, {"WAKE_ON_GPIO": True, "POWER_OFF_ON_HALT": 1})
    assert out == SAMPLE.replace("WAKE_ON_GPIO=0\n", "WAKE_ON_GPIO=1\nPOWER_OFF_ON_HALT=1\n")
    # Same value (numerically, for BOOT_ORDER) is no change at all.
    assert C.apply_changes(SAMPLE, ["sd", "usb", "restart"], {"BOOT_UART": 1}) == SAMPLE
    assert C.apply_changes(SAMPLE.replace("0xf41", "0xF41"), ["sd", "usb", "restart"]) == SAMPLE.replace(
        "0xf41", "0xF41")


def test_set_new_section_and_absent():
    out = C.apply_changes(SAMPLE, ["nvme"], None, section="partition=1")
    assert out == SAMPLE + "[partition=1]\nBOOT_ORDER=0x6\n"
    out = C.apply_changes(SAMPLE, None, {"BOOT_UART": None}, state="absent")
    assert out == SAMPLE.replace("BOOT_UART=1\n", "")
    out = C.apply_changes(SAMPLE, ["sd"], None, section="gpio8=0", state="absent")
    assert out == SAMPLE.replace("BOOT_ORDER=0xf21\n", "")
    assert C.apply_changes(SAMPLE, None, {"NOPE": 1}, state="absent") == SAMPLE
    with pytest.raises(CarrierError, match="give the boot order once"):
        C.apply_changes(SAMPLE, ["sd"], {"BOOT_ORDER": "0x1"})
    with pytest.raises(CarrierError, match="settings.BOOT_UART: no value"):
        C.apply_changes(SAMPLE, None, {"BOOT_UART": None})
    with pytest.raises(CarrierError, match="invalid key 'A B'"):
        C.apply_changes(SAMPLE, None, {"A B": 1})
    with pytest.raises(CarrierError, match="newline"):
        C.apply_changes(SAMPLE, None, {"HTTP_PATH": "a\nBOOT_ORDER=0x3"})


def test_validate_known_keys_and_ranges():
    assert C.validate_config(SAMPLE) == []
    warnings = C.validate_config("[all]\nMY_KEY=7\nBOOT_UART=1\n")
    assert warnings == ["config: unknown bootloader key MY_KEY (section [all]) kept as is"]
    assert "MY_KEY=7" in C.apply_changes("[all]\nMY_KEY=7\n", ["sd"])
    bad = {
        "BOOT_UART=2": "BOOT_UART: '2' must be 0 or 1",
        "DHCP_TIMEOUT=100": "DHCP_TIMEOUT: '100' is below the minimum 5000",
        "DHCP_REQ_TIMEOUT=100": "below the minimum 500",
        "TFTP_FILE_TIMEOUT=4999": "below the minimum 5000",
        "USB_MSD_DISCOVER_TIMEOUT=10": "below the minimum 5000",
        "TFTP_PREFIX=3": "TFTP_PREFIX: '3' is above the maximum 2",
        "TFTP_PREFIX_STR=" + "a" * 33: "longer than 32",
        "TFTP_IP=10.0.0.300": "not an IPv4 address",
        "SD_BOOT_MAX_RETRIES=-2": "below the minimum -1",
        "BOOT_ORDER=0xf31": "rpiboot must be the last",
        "BOOT_ORDER=0xf91": "unknown boot mode code 0x9",
        "HTTP_PORT=70000": "above the maximum 65535",
        "POWER_OFF_ON_HALT=yes": "not an integer",
    }
    for line, message in bad.items():
        with pytest.raises(CarrierError, match=re.escape(message)):
            C.validate_config("[all]\n%s\n" % line)
    assert C.validate_config("[all]\nNET_BOOT_MAX_RETRIES=-1\nDHCP_TIMEOUT=45000\nTFTP_IP=192.168.1.3\n") == []


config_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)
line_text = st.one_of(
    st.sampled_from(["", "# comment", "[all]", "[gpio4=1]", "[0x1234abcd]", "  ", "garbage line"]),
    st.builds(lambda k, v: "%s=%s" % (k, v), st.from_regex(r"[A-Z_][A-Z0-9_]{0,12}", fullmatch=True),
              st.text(alphabet="0123456789abcdefx.", max_size=8)),
)
config_lines = st.builds(lambda lines, nl: "\n".join(lines) + ("\n" if nl else ""),
                         st.lists(line_text, max_size=15), st.booleans())


@given(st.one_of(config_text, config_lines))
@settings(deadline=None)
def test_parse_render_round_trip(text):
    assert C.BootConfig.parse(text).render() == text


@given(config_lines, st.from_regex(r"[A-Z][A-Z0-9_]{0,10}", fullmatch=True),
       st.from_regex(r"[0-9a-z]{1,6}", fullmatch=True), st.sampled_from(["all", "gpio8=0", "tryboot"]))
@settings(max_examples=200, deadline=None)
def test_set_get_remove_properties(text, key, value, section):
    cfg = C.BootConfig.parse(text)
    cfg.set(key, value, section)
    out = cfg.render()
    again = C.BootConfig.parse(out)
    assert again.get(key, section) == value
    # Setting again is a no-op; the other keys of every section keep their values.
    assert again.set(key, value, section) is False
    before = C.BootConfig.parse(text)
    for sec in before.sections():
        expected = {k: v for k, v in before.settings(sec).items() if not (sec == section and k == key)}
        got = {k: v for k, v in again.settings(sec).items() if not (sec == section and k == key)}
        assert got == expected
    # Comments survive.
    comments = [line.raw for line in before.lines if line.kind == "comment"]
    assert [line.raw for line in again.lines if line.kind == "comment"] == comments
    again.remove(key, section)
    assert again.get(key, section) is None


# --- section names ------------------------------------------------------------------------------


@pytest.mark.parametrize("section", ["all]\nBOOT_ORDER=0x3\n[pi4", "pi4]\n[all", "gpio8=0 # x", "tryboot\r"])
def test_section_cannot_inject_a_second_section(section):
    with pytest.raises(CarrierError, match=r"^section: invalid section filter "):
        C.apply_changes(SAMPLE, ["sd"], None, section=section)
    with pytest.raises(CarrierError, match=r"^section: invalid section filter "):
        C.apply_changes(SAMPLE, None, {"BOOT_UART": 1}, section=section, state="absent")
    cfg = C.BootConfig.parse(SAMPLE)
    with pytest.raises(CarrierError, match="invalid section filter"):
        cfg.set("BOOT_UART", "1", section)
    assert cfg.render() == SAMPLE


def test_section_blanks_dropped():
    assert C.apply_changes(SAMPLE, ["network", "sd", "restart"], None, section=" gpio8=0 ") == \
        C.apply_changes(SAMPLE, ["network", "sd", "restart"], None, section="gpio8=0")


# --- boot modes the docs call deprecated or leave undefined ----------------------------------------


def test_kept_boot_order_with_deprecated_and_undefined_codes_is_read_and_reported():
    text = "[all]\nBOOT_UART=0\nBOOT_ORDER=0xf801\n"
    warnings = C.validate_config(text, base=text)
    assert any("0x0 (SD CARD DETECT) is deprecated" in w and "kept as is" in w for w in warnings)
    assert any("code 0x8 is not defined" in w and "config [all] BOOT_ORDER: '0xf801'" in w for w in warnings)
    assert C.effective_boot_order(text) == ["sd", "sd_card_detect", "0x8", "restart"]
    assert C.read_boot_order("0xfd1") == (["sd", "0xd", "restart"],
                                          ["boot mode code 0xd is not defined in Raspberry Pi's BOOT_ORDER table"])
    # Editing another key keeps the line, and the edited text validates against the config it came from.
    out = C.apply_changes(text, None, {"BOOT_UART": 1})
    assert out == "[all]\nBOOT_UART=1\nBOOT_ORDER=0xf801\n"
    assert C.validate_config(out, base=text) == warnings
    # A BOOT_ORDER being written must still hold boot modes only; replacing the odd one is fine.
    with pytest.raises(CarrierError, match=r"unknown boot mode code 0x0 in '0xf801' \(0x0 is deprecated\)"):
        C.validate_config(text)
    with pytest.raises(CarrierError, match="unknown boot mode code 0x8"):
        C.validate_config("[all]\nBOOT_ORDER=0xf81\n", base="[all]\nBOOT_ORDER=0xf41\n")
    assert C.apply_changes(text, ["nvme", "restart"]) == "[all]\nBOOT_UART=0\nBOOT_ORDER=0xf6\n"


# --- bcm_usb on BCM2712 --------------------------------------------------------------------------


def test_bcm_usb_refused_for_bcm2712():
    with pytest.raises(CarrierError, match=r"^boot_order: 'bcm_usb' \(0x5\), a boot mode BCM2712 images do not have"):
        C.apply_changes(SAMPLE, ["bcm_usb", "sd", "restart"], soc="bcm2712")
    with pytest.raises(CarrierError, match=r"^settings.BOOT_ORDER: '0xf15' holds bcm_usb \(0x5\)"):
        C.apply_changes(SAMPLE, None, {"BOOT_ORDER": "0xf15"}, soc="bcm2712")
    with pytest.raises(CarrierError, match=r"^config \[all\] BOOT_ORDER: '0xf51' holds bcm_usb"):
        C.validate_config("[all]\nBOOT_ORDER=0xf51\n", soc="bcm2712")
    assert "BOOT_ORDER=0xf15" in C.apply_changes(SAMPLE, ["bcm_usb", "sd", "restart"], soc="bcm2711")
    assert C.validate_config("[all]\nBOOT_ORDER=0xf51\n", soc="bcm2711") == []
    # One a BCM2712 config already holds is kept and reported.
    kept = "[all]\nBOOT_ORDER=0xf51\n"
    assert C.validate_config(kept, base=kept, soc="bcm2712") == [
        "config [all] BOOT_ORDER: '0xf51': bcm_usb (0x5) is not a boot mode of BCM2712; kept as is"]


# --- an inline comment after a value ---------------------------------------------------------------


def test_number_with_inline_comment_reads_as_the_bootloader_reads_it():
    text = "[all]\nBOOT_UART=1 # debug console\nBOOT_ORDER=0xf21  # net after SD\nHTTP_PATH=boot # x\n"
    warnings = C.validate_config(text)
    assert warnings == [
        "config [all] BOOT_UART=1 # debug console: the bootloader reads 1 and ignores '# debug console' after it "
        "(a # starts a comment only at the start of a line)",
        "config [all] BOOT_ORDER=0xf21  # net after SD: the bootloader reads 0xf21 and ignores '# net after SD' "
        "after it (a # starts a comment only at the start of a line)",
        "config [all] HTTP_PATH=boot # x: the bootloader reads the whole text as the value, '#' included (a # starts "
        "a comment only at the start of a line)",
    ]
    assert C.effective_boot_order(text) == ["sd", "network", "restart"]
    # The value the bootloader reads is already the wanted one: nothing changes.
    assert C.apply_changes(text, ["sd", "network", "restart"], {"BOOT_UART": 1}) == text
    # A number changed keeps the text after it; a text value is replaced whole.
    assert C.apply_changes(text, ["network", "sd", "restart"], {"BOOT_UART": 0, "HTTP_PATH": "boot"}) == (
        "[all]\nBOOT_UART=0 # debug console\nBOOT_ORDER=0xf12  # net after SD\nHTTP_PATH=boot\n")
    # Only a '#' after blanks is a comment to ignore: other text after a number is still refused.
    with pytest.raises(CarrierError, match="BOOT_UART: '1abc' is not an integer"):
        C.validate_config("[all]\nBOOT_UART=1abc\n")
    with pytest.raises(CarrierError, match="BOOT_UART: '2' must be 0 or 1"):
        C.validate_config("[all]\nBOOT_UART=2 # two\n")


def test_non_finite_setting_refused():
    for bad in (float("nan"), float("inf")):
        with pytest.raises(CarrierError, match=r"^settings.DHCP_TIMEOUT: .* is not a finite number"):
            C.apply_changes(SAMPLE, None, {"DHCP_TIMEOUT": bad})
