# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""On-node health: the throttled bits by name, each reader on a fake tree, null with a reason."""

from __future__ import annotations

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._health import (
    Unavailable,
    decode_throttled,
    read_health,
)

MEMINFO = "MemTotal:        3884160 kB\nMemFree:         2900000 kB\nMemAvailable:    3312004 kB\nHugePages_Total: 0\n"


def fake_tree(root, temp="47234\n", uptime="3605.20 13000.00\n", loadavg="0.15 0.10 0.05 1/160 1234\n",
              meminfo=MEMINFO):
    for path, text in (("sys/class/thermal/thermal_zone0/temp", temp), ("proc/uptime", uptime),
                       ("proc/loadavg", loadavg), ("proc/meminfo", meminfo)):
        if text is not None:
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
    return str(root)


@pytest.mark.parametrize("text, on", [
    ("throttled=0x0", []),
    ("throttled=0x50005\n", ["undervoltage", "throttled", "undervoltage_occurred", "throttled_occurred"]),
    ("throttled=0x80008", ["soft_temperature_limit", "soft_temperature_limit_occurred"]),
    ("throttled=0x20002", ["arm_frequency_capped", "arm_frequency_capped_occurred"]),
])
def test_throttled_bits_by_name(text, on):
    decoded = decode_throttled(text)
    named = {k for k, v in decoded.items() if v is True}
    assert named == set(on)
    assert decoded["other_bits"] == "0x0"
    assert decoded["raw"] == text.strip().split("=")[1]


def test_unnamed_bits_and_bad_answers():
    assert decode_throttled(0x100001)["other_bits"] == "0x100000"
    with pytest.raises(Unavailable, match="not throttled=0x"):
        decode_throttled('error=2 error_msg="Command not registered"')
    with pytest.raises(CarrierError):
        decode_throttled(True)


def test_every_field_from_a_fake_tree(tmp_path):
    root = fake_tree(tmp_path)
    health = read_health(root, lambda: "throttled=0x50005\n")
    assert health["temperature_c"] == 47.234
    assert health["throttled"]["undervoltage"] is True and health["throttled"]["raw"] == "0x50005"
    assert health["uptime_s"] == 3605.2
    assert health["load"] == [0.15, 0.1, 0.05]
    assert health["memory"] == {"total_kb": 3884160, "available_kb": 3312004, "used_percent": 14.7}
    assert health["disk"]["total_bytes"] > 0 and 0 <= health["disk"]["used_percent"] <= 100
    assert health["unavailable"] == {}


def test_missing_fields_are_null_with_the_reason(tmp_path):
    root = fake_tree(tmp_path, temp=None, meminfo="MemTotal: 10 kB\n", uptime="garbage")
    health = read_health(root, None)
    assert health["temperature_c"] is None and "thermal_zone0/temp" in health["unavailable"]["temperature_c"]
    assert health["throttled"] is None and health["unavailable"]["throttled"] == "vcgencmd is not installed"
    assert health["memory"] is None and "MemAvailable" in health["unavailable"]["memory"]
    assert health["uptime_s"] is None and "garbage" in health["unavailable"]["uptime_s"]
    assert health["load"] == [0.15, 0.1, 0.05]

    def failing():
        raise Unavailable("vcgencmd get_throttled exited 255: VCHI initialization failed")

    assert read_health(root, failing)["unavailable"]["throttled"].endswith("VCHI initialization failed")
