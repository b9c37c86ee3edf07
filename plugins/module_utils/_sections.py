# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The config.txt-style text shared by ``config.txt`` on the boot partition and the bootloader
EEPROM config (``bootconf.txt``): lines, section filters, and section names given by users.

Both files have the same syntax (docs/hardware.md section 5): one ``key=value`` per line, ``#`` at the
start of a line for a comment, and conditional section filters in brackets (``[all]``, ``[none]``,
``[pi4]``, ``[cm4]``, ``[gpio4=1]``, ``[0x12345678]``, ``[board-type=0x14]``, ``[HDMI:0]``,
``[EDID=DEL-DELL_U2422H]``, ``[tryboot]``, ``[partition=1]``, and the bootloader's expression
filters such as ``[boot_count<3]`` or ``[boot_arg1&0x1=1]``). Lines before the first filter apply
to every board, like ``[all]``. Only the key syntax differs between the two files, so each caller
gives its own pattern for a setting line.

A header line is read the way Raspberry Pi's documentation writes them, indented or not: the first
non-blank character is ``[`` and the filter is the text up to the first ``]``; whatever follows the
``]`` is not part of the filter (it is kept byte for byte, like every line). A ``[`` without a
``]`` opens no section. Parsing then rendering gives back the text unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError

ALL = "all"

#: A filter a user may name: the characters of the documented filters and expressions, nothing
#: that could end the header or the line (no brackets, ``#``, whitespace or line breaks).
_FILTER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+=&<>-]*")
#: config.txt ignores what follows the 98th character of a line: the filter and its brackets fit.
MAX_FILTER_LENGTH = 96


@dataclass
class ConfigLine:
    """One line: ``kind`` is blank, comment, section, setting or other; ``section`` the filter it is under
    (for a header line, the filter it opens)."""

    raw: str
    kind: str
    section: str
    key: str | None = None
    value: str | None = None


def header_filter(raw):
    """The filter a header line opens (``' [pi4] '`` -> ``'pi4'``), or None when the line is no header."""
    text = raw.strip()
    if not text.startswith("["):
        return None
    end = text.find("]")
    if end < 0:
        return None
    return text[1:end].strip()


def classify(raw, section, setting_re):
    """The :class:`ConfigLine` of ``raw`` under ``section``; ``setting_re`` matches a setting line with the
    key as group 1 and what follows ``=`` as group 2."""
    text = raw.strip()
    if not text:
        return ConfigLine(raw, "blank", section)
    if text.startswith("#"):
        return ConfigLine(raw, "comment", section)
    name = header_filter(raw)
    if name is not None:
        return ConfigLine(raw, "section", name)
    match = setting_re.match(raw)
    if match:
        return ConfigLine(raw, "setting", section, match.group(1), match.group(2).strip())
    return ConfigLine(raw, "other", section)


def parse_lines(text, setting_re):
    """``(lines, trailing_newline)`` of a config text; lines before the first filter are under ``all``."""
    trailing = text.endswith("\n")
    body = text[:-1] if trailing else text
    lines = []
    section = ALL
    if text:
        for raw in body.split("\n"):
            line = classify(raw, section, setting_re)
            if line.kind == "section":
                section = line.section
            lines.append(line)
    return lines, trailing


def render_lines(lines, trailing_newline):
    text = "\n".join(line.raw for line in lines)
    if lines and trailing_newline:
        text += "\n"
    return text


def header_line(name):
    """The :class:`ConfigLine` that opens section ``name`` (checked: it cannot open a second one)."""
    name = section_name(name)
    return ConfigLine("[%s]" % name, "section", name)


def section_name(value, field="section"):
    """A section filter a user gives, without brackets, surrounding spaces dropped; CarrierError naming
    ``field`` and the value when it could end the header, start a comment or break the line."""
    text = value.strip(" \t") if isinstance(value, str) else value
    if not isinstance(text, str) or not _FILTER_RE.fullmatch(text) or len(text) > MAX_FILTER_LENGTH:
        raise CarrierError(
            "%s: invalid section filter %r (give it without brackets, e.g. all, pi4, cm4, gpio4=1, 0x12345678, "
            "partition=1: letters, digits and _ . : + = & < > -, at most %d characters)"
            % (field, value, MAX_FILTER_LENGTH))
    return text
