# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the config.txt-style section parser (_sections.py) shared by config.txt and the EEPROM config."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.picluster.carrier.plugins.module_utils import _bootcfg as B
from ansible_collections.picluster.carrier.plugins.module_utils import _sections as X
from ansible_collections.picluster.carrier.plugins.module_utils._eeprom import config as C
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError


@pytest.mark.parametrize("line,name", [
    ("[all]", "all"),
    ("[pi4]", "pi4"),
    (" [HDMI:0]", "HDMI:0"),  # indented, as Raspberry Pi's documentation writes them
    ("[ gpio4=1 ]  ", "gpio4=1"),
    ("[pi4] # CM4 and Pi 4", "pi4"),
    ("[board-type=0x14]", "board-type=0x14"),
    ("[boot_arg1&0x1=1]", "boot_arg1&0x1=1"),
    ("[a]b]", "a"),
    ("[]", ""),
    ("[pi4", None),
    ("x=[pi4]", None),
    ("# [pi4]", None),
    ("", None),
])
def test_header_filter(line, name):
    assert X.header_filter(line) == name


def test_classify_and_round_trip():
    text = "# top\narm_64bit=1\n\n [pi4] # Pi 4 only\narm_boost=1\n[pi4\n[all]\nstray text\n"
    lines, trailing = X.parse_lines(text, B._SETTING_RE)
    assert trailing is True
    assert [(line.kind, line.section) for line in lines] == [
        ("comment", "all"), ("setting", "all"), ("blank", "all"), ("section", "pi4"), ("setting", "pi4"),
        ("other", "pi4"), ("section", "all"), ("other", "all")]
    assert X.render_lines(lines, trailing) == text


line = st.one_of(
    st.sampled_from(["", "  ", "# c", "[all]", " [pi4]", "[cm4] # x", "[a]b]", "[gpio4=1", "[none]", "junk",
                     "BOOT_UART=1", "arm_boost=1 # x", " dtparam=audio=on"]),
    st.text(alphabet="[]#= abc01\t", max_size=12),
)
texts = st.builds(lambda lines, nl: "\n".join(lines) + ("\n" if nl else ""), st.lists(line, max_size=12), st.booleans())


@given(texts)
@settings(deadline=None)
def test_both_parsers_agree_on_sections(text):
    """config.txt and the EEPROM config see the same headers, comments and sections on every line."""
    eeprom = C.BootConfig.parse(text)
    boot = B.ConfigTxt(text)
    assert [(a.kind == "section", a.kind == "comment", a.section) for a in eeprom.lines] == \
        [(b.kind == "section", b.kind == "comment", b.section) for b in boot.lines]
    assert eeprom.render() == text
    assert boot.render() == text


@pytest.mark.parametrize("name", ["all", "none", "pi4", "cm4", "pi3+", "pi02", "gpio4=1", "0x12345678", "tryboot",
                                  "partition=1", "board-type=0x14", "HDMI:0", "EDID=DEL-DELL_U2422H",
                                  "boot_count<3", "boot_arg1&0x1=1", "boot_partition=2"])
def test_section_name_accepts_the_documented_filters(name):
    assert X.section_name(name) == name
    assert X.section_name("  %s " % name) == name
    assert X.header_line(name).raw == "[%s]" % name


@pytest.mark.parametrize("name", [
    "all]\nBOOT_ORDER=0x3\n[pi4",  # a second section and a setting injected
    "pi4]\n[all",
    "pi4\r",
    "pi4\n",
    "pi4 # comment",
    "[pi4]",
    "pi4]",
    "gpio4 = 1",
    "",
    "   ",
    "-pi4",
    "a" * 97,
    None,
    4,
])
def test_section_name_refuses_what_could_become_structure(name):
    with pytest.raises(CarrierError, match=r"^section: invalid section filter "):
        X.section_name(name)
    with pytest.raises(CarrierError, match=r"^section: invalid section filter "):
        X.header_line(name)


def test_section_name_names_the_field():
    with pytest.raises(CarrierError, match=r"^config_set: invalid section filter 'pi4\]\\n\[all'"):
        X.section_name("pi4]\n[all", "config_set")
