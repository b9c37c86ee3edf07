# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A node's health read on the node itself, cheaply: a few files of /proc and /sys, one statvfs, and
``vcgencmd get_throttled`` (the firmware's throttling flags) where the firmware tools are installed.

Every reader returns a value or raises :class:`Unavailable` with the reason; :func:`read_health`
collects the values and, for a field it could not read, null with the reason in ``unavailable``.
Paths are relative to ``root`` (``/`` on a node; a directory of fake files in the tests).
"""

from __future__ import annotations

import os
import re

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError

THERMAL_PATH = "sys/class/thermal/thermal_zone0/temp"  # the SoC's sensor on every Pi (millidegrees C)
UPTIME_PATH = "proc/uptime"
LOADAVG_PATH = "proc/loadavg"
MEMINFO_PATH = "proc/meminfo"

# vcgencmd get_throttled (Raspberry Pi's vcgencmd documentation): bits 0-3 now, 16-19 the same since boot.
THROTTLED_BITS = {
    0: "undervoltage",
    1: "arm_frequency_capped",
    2: "throttled",
    3: "soft_temperature_limit",
    16: "undervoltage_occurred",
    17: "arm_frequency_capped_occurred",
    18: "throttled_occurred",
    19: "soft_temperature_limit_occurred",
}
_THROTTLED_RE = re.compile(r"^throttled=(0x[0-9a-fA-F]+|\d+)\s*$")


class Unavailable(Exception):
    """A health field that cannot be read here; the message says why."""


def decode_throttled(value):
    """``vcgencmd get_throttled``'s answer (``throttled=0x50005``) or its number as a dict: ``raw`` (hex
    string), a bool per bit name of :data:`THROTTLED_BITS`, ``other_bits`` (any bit not named, as hex)."""
    if isinstance(value, str):
        match = _THROTTLED_RE.match(value.strip())
        if not match:
            raise Unavailable("vcgencmd get_throttled answered %r, not throttled=0x..." % value.strip()[:80])
        value = int(match.group(1), 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CarrierError("throttled: %r is not a non-negative integer" % (value,))
    result = {"raw": "0x%x" % value}
    named = 0
    for bit, name in THROTTLED_BITS.items():
        result[name] = bool(value >> bit & 1)
        named |= 1 << bit
    result["other_bits"] = "0x%x" % (value & ~named)
    return result


def _read(root, path):
    full = os.path.join(root, path)
    try:
        with open(full, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError as exc:
        raise Unavailable("cannot read %s: %s" % (full, exc.strerror)) from None


def soc_temperature(root):
    """Degrees Celsius from the SoC's thermal zone."""
    text = _read(root, THERMAL_PATH).strip()
    try:
        return round(int(text) / 1000.0, 3)
    except ValueError:
        raise Unavailable("%s holds %r, not millidegrees" % (os.path.join(root, THERMAL_PATH), text[:40])) from None


def uptime(root):
    """Seconds since boot."""
    text = _read(root, UPTIME_PATH)
    try:
        return float(text.split()[0])
    except (IndexError, ValueError):
        raise Unavailable("%s holds %r" % (os.path.join(root, UPTIME_PATH), text[:40])) from None


def load(root):
    """The 1, 5 and 15 minute load averages."""
    text = _read(root, LOADAVG_PATH)
    try:
        return [float(field) for field in text.split()[:3]]
    except ValueError:
        raise Unavailable("%s holds %r" % (os.path.join(root, LOADAVG_PATH), text[:40])) from None


def memory(root):
    """``total_kb``, ``available_kb`` (MemAvailable) and ``used_percent``."""
    values = {}
    for line in _read(root, MEMINFO_PATH).splitlines():
        name, _sep, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            values[name.strip()] = int(fields[0])
    if not values.get("MemTotal") or "MemAvailable" not in values:
        raise Unavailable("%s has no MemTotal and MemAvailable" % os.path.join(root, MEMINFO_PATH))
    total, available = values["MemTotal"], values["MemAvailable"]
    return {"total_kb": total, "available_kb": available,
            "used_percent": round(100.0 * (total - available) / total, 1)}


def disk(root):
    """The root file system: ``total_bytes``, ``available_bytes`` (what non-root users may still use) and
    ``used_percent`` (as df counts it: used over used plus available)."""
    try:
        st = os.statvfs(root)
    except OSError as exc:
        raise Unavailable("statvfs(%s): %s" % (root, exc.strerror)) from None
    total = st.f_blocks * st.f_frsize
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    available = st.f_bavail * st.f_frsize
    percent = round(100.0 * used / (used + available), 1) if used + available else 0.0
    return {"total_bytes": total, "available_bytes": available, "used_percent": percent}


def read_health(root="/", run_vcgencmd=None):
    """Every health field: ``temperature_c``, ``throttled``, ``uptime_s``, ``load``, ``memory``, ``disk``,
    and ``unavailable`` (field -> reason) for those that are null.

    ``run_vcgencmd``: a callable running ``vcgencmd get_throttled`` and returning its output, raising
    :class:`Unavailable` when there is no vcgencmd; None: throttled is unavailable.
    """
    result, unavailable = {}, {}

    def throttled(_root):
        if run_vcgencmd is None:
            raise Unavailable("vcgencmd is not installed")
        return decode_throttled(run_vcgencmd())

    for field, reader in (("temperature_c", soc_temperature), ("throttled", throttled), ("uptime_s", uptime),
                          ("load", load), ("memory", memory), ("disk", disk)):
        try:
            result[field] = reader(root)
        except Unavailable as exc:
            result[field] = None
            unavailable[field] = str(exc)
    result["unavailable"] = unavailable
    return result
