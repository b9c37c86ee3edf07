# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the node side of eeprom_config (_eeprom/node.py): firmware detection, the live config, staging."""

from __future__ import annotations

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils._eeprom import node as N
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError


def test_detect_soc(tmp_path):
    compat = tmp_path / "compatible"
    compat.write_bytes(b"raspberrypi,4-compute-module\0brcm,bcm2711\0")
    assert N.detect_soc(str(compat)) == "bcm2711"
    compat.write_bytes(b"raspberrypi,5-model-b\0brcm,bcm2712\0")
    assert N.detect_soc(str(compat)) == "bcm2712"
    compat.write_bytes(b"raspberrypi,3-model-b\0brcm,bcm2837\0")
    with pytest.raises(CarrierError, match="not a Raspberry Pi 4/5.*bcm2837"):
        N.detect_soc(str(compat))
    with pytest.raises(CarrierError, match="not a Raspberry Pi with a bootloader EEPROM"):
        N.detect_soc(str(tmp_path / "missing"))


def test_find_firmware_image(tmp_path):
    for rel, name in [("default", "pieeprom-2025-01-01.bin"), ("default", "pieeprom-2026-05-17.bin"),
                      ("latest", "pieeprom-2026-09-01.bin")]:
        d = tmp_path / "bootloader-2711" / rel
        d.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(b"")
    assert N.find_firmware_image(str(tmp_path), "bcm2711").endswith("default/pieeprom-2026-05-17.bin")
    assert N.find_firmware_image(str(tmp_path), "bcm2711", "latest").endswith("latest/pieeprom-2026-09-01.bin")
    with pytest.raises(CarrierError, match="no bootloader image for bcm2712"):
        N.find_firmware_image(str(tmp_path), "bcm2712")


def test_read_blconfig(tmp_path):
    dt = tmp_path / "sys/firmware/devicetree/base"
    node = dt / "reserved-memory/nvram@0"
    node.mkdir(parents=True)
    (dt / "aliases").mkdir()
    (dt / "aliases/blconfig").write_bytes(b"/reserved-memory/nvram@0\0")
    devs = tmp_path / "sys/bus/nvmem/devices"
    for name, target in (("rmem0", dt / "reserved-memory"), ("rmem1", node)):
        (devs / name).mkdir(parents=True)
        (devs / name / "of_node").symlink_to(target)
        (devs / name / "nvmem").write_bytes(b"[all]\nBOOT_UART=1\n" + b"\0" * 100 if name == "rmem1" else b"x")
    assert N.read_blconfig(str(dt), str(devs)) == "[all]\nBOOT_UART=1\n"
    (dt / "aliases/blconfig").unlink()
    assert N.read_blconfig(str(dt), str(devs)) is None
