# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the node side of eeprom_config (_eeprom/node.py): firmware detection, the live config, staging."""

from __future__ import annotations

import os

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils._eeprom import image as I
from ansible_collections.picluster.carrier.plugins.module_utils._eeprom import node as N
from ansible_collections.picluster.carrier.plugins.module_utils._eeprom import sig as S
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


def node_root(tmp_path, soc="bcm2711", live="[all]\nBOOT_UART=0\n"):
    """A node's files: compatible string, the rpi-eeprom image and recovery.bin, a boot partition; the live
    config comes from ``vcgencmd``."""
    root = tmp_path / "node"
    (root / "proc/device-tree").mkdir(parents=True)
    (root / "proc/device-tree/compatible").write_bytes(b"raspberrypi,5-model-b\0brcm,%s\0" % soc.encode())
    fw = root / ("lib/firmware/raspberrypi/bootloader-%s/default" % soc[3:])
    fw.mkdir(parents=True)
    (fw / "pieeprom-2026-05-17.bin").write_bytes(I.make_synthetic_image(soc, live))
    (fw / "recovery.bin").write_bytes(b"recovery")
    (root / "boot/firmware").mkdir(parents=True)
    return N.NodePaths.defaults(str(root)), (lambda: live)


def test_plan_node_update_sig_names_the_soc(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1722344555")
    paths, vcgencmd = node_root(tmp_path, "bcm2712")
    plan = N.plan_node_update(paths, ["nvme", "restart"], vcgencmd=vcgencmd)
    upd = plan.files[os.path.join(paths.boot_partition, "pieeprom.upd")]
    sig = S.verify_sig(upd, plan.files[os.path.join(paths.boot_partition, "pieeprom.sig")], target_soc="bcm2712")
    assert sig.target_soc == "2712" and sig.ts == 1722344555


@pytest.mark.parametrize("section", ["all]\nBOOT_ORDER=0x3\n[pi4", "tryboot]\n[all", "pi4 # x"])
def test_plan_node_update_refuses_a_section_that_injects_one(tmp_path, section):
    paths, vcgencmd = node_root(tmp_path)
    with pytest.raises(CarrierError, match=r"^section: invalid section filter "):
        N.plan_node_update(paths, ["sd"], section=section, vcgencmd=vcgencmd)


def test_plan_node_update_refuses_bcm_usb_on_bcm2712(tmp_path):
    paths, vcgencmd = node_root(tmp_path, "bcm2712")
    with pytest.raises(CarrierError, match=r"^boot_order: 'bcm_usb' \(0x5\), a boot mode BCM2712 images do not have"):
        N.plan_node_update(paths, ["bcm_usb", "restart"], vcgencmd=vcgencmd)
    paths, vcgencmd = node_root(tmp_path / "pi4", "bcm2711")
    assert N.plan_node_update(paths, ["bcm_usb", "restart"], vcgencmd=vcgencmd).info["boot_order"] == [
        "bcm_usb", "restart"]


def test_plan_node_update_reads_a_config_with_odd_codes_and_comments(tmp_path):
    live = "[all]\nBOOT_UART=1 # debug\nBOOT_ORDER=0xf801\n"
    paths, vcgencmd = node_root(tmp_path, live=live)
    plan = N.plan_node_update(paths, None, {"BOOT_UART": 1}, vcgencmd=vcgencmd)
    assert not plan.changed and plan.info["boot_order"] == ["sd", "sd_card_detect", "0x8", "restart"]
    assert len(plan.warnings) == 3
    plan = N.plan_node_update(paths, None, {"BOOT_UART": 0}, vcgencmd=vcgencmd)
    assert plan.after_config == "[all]\nBOOT_UART=0 # debug\nBOOT_ORDER=0xf801\n"
