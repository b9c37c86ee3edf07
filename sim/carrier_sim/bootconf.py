# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bootloader's reading of its config (``bootconf.txt``, docs/hardware.md section 5).

The simulator's own reading, written from the documented behaviour and independent of the
collection's config code, so that tests can check one against the other.

- The syntax is config.txt's: ``KEY=value`` lines under ``[filter]`` lines; lines before the
  first filter count as ``[all]``; ``#`` starts a comment line.
- A node applies ``[all]`` and the ``[0x<serial>]`` filters that match its serial (the last 8 hex
  digits, or all 16), in the order of the file, the last value of a key winning. The filters it
  cannot match here (``[gpioN=..]``, ``[partition=N]``, ``[tryboot]``, ``[none]`` ...) are skipped.
- BOOT_ORDER: hex nibbles read from the lowest (the first mode tried); 0xf41 when unset.
"""

from __future__ import annotations

import re

DEFAULT_BOOT_ORDER = 0xF41
MAX_BOOT_MODES = 8
_KEY_LINE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$")


def _lines(text):
    """``(filter, key, value)`` for each setting, ``(filter, None, None)`` for a filter line."""
    section = "all"
    out = []
    for raw in text.split("\n"):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1].strip()
            out.append((section, None, None))
            continue
        match = _KEY_LINE.match(raw)
        if match:
            out.append((section, match.group(1), match.group(2).strip()))
    return out


def effective_settings(text, serial):
    """The keys the bootloader of the node with this 16-digit serial applies: ``{KEY: value}``."""
    mine = ("all", "0x" + serial[-8:].lower(), "0x" + serial.lower())
    settings = {}
    for section, key, value in _lines(text):
        if key is not None and section.lower() in mine:
            settings[key] = value
    return settings


def parse_boot_order(value):
    """BOOT_ORDER (an int or hex text, ``0x`` optional) -> the codes in the order they are tried."""
    if value is None or value == "":
        number = DEFAULT_BOOT_ORDER
    elif isinstance(value, int):
        number = value
    else:
        number = int(str(value).strip(), 16)  # int() accepts the 0x prefix with base 16
    codes = []
    while number and len(codes) < MAX_BOOT_MODES:
        codes.append(number & 0xF)
        number >>= 4
    return codes or [0x1]


def set_in_all(text, key, value):
    """``text`` with ``key=value`` in ``[all]``: the key's last line there rewritten, else a line added
    after the last line of the last ``[all]`` block (an ``[all]`` filter appended when there is none).

    This is how the simulator prepares a node's config from the topology's ``sim.bootconf`` (what a
    user does with rpi-eeprom-config before flashing), not something the bootloader does.
    """
    trailing = text.endswith("\n")
    lines = (text[:-1] if trailing else text).split("\n") if text else []
    new = "%s=%s" % (key, value)
    section = "all"
    last_key = last_in_all = None
    for index, raw in enumerate(lines):
        stripped = raw.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1].strip()
        if section != "all" or not stripped or stripped.startswith("#"):
            continue
        last_in_all = index
        match = _KEY_LINE.match(raw)
        if match and match.group(1) == key:
            last_key = index
    if last_key is not None:
        lines[last_key] = new
    elif last_in_all is not None:
        lines.insert(last_in_all + 1, new)
    else:
        lines += ["[all]", new]
        trailing = True
    return "\n".join(lines) + ("\n" if trailing and lines else "")
