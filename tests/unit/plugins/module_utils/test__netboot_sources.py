# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_netboot.sources: boot files from directories and MBR/GPT/bare FAT images (read with mtools)."""

from __future__ import annotations

import os

import pytest
from netboot_fixtures import NODES, build, make_boot_dir, make_os_image

from ansible_collections.picluster.carrier.plugins.module_utils import _fat
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._netboot.sources import BootSource
from ansible_collections.picluster.carrier.plugins.module_utils._netboot.store import STORE_DIR
from ansible_collections.picluster.carrier.plugins.module_utils._netboot.trees import LOCK_FILE


@pytest.fixture
def boot(tmp_path):
    return make_boot_dir(tmp_path / "boot")


def test_source_without_start4_for_a_cm4(tmp_path):
    source = make_boot_dir(tmp_path / "boot", pi4=False, pi5=True)
    with pytest.raises(CarrierError, match="has no start4.elf: not a Pi 4/CM4 boot partition"):
        build(source, tmp_path / "tftp", NODES[:1])
    assert not (tmp_path / "tftp").exists()
    # The same source boots a CM5 (config.txt + a bcm2712 device tree).
    _c, result, _diff = build(source, tmp_path / "tftp", [dict(NODES[0], model="cm5")])
    assert "bcm2712-rpi-cm5-cm5io.dtb" in result["nodes"]["node01"]["added"]


def test_source_without_pi5_files_for_a_cm5(tmp_path):
    source = make_boot_dir(tmp_path / "boot", pi4=True, pi5=False)
    with pytest.raises(CarrierError, match="no config.txt plus bcm2712 device tree"):
        build(source, tmp_path / "tftp", [dict(NODES[0], model="cm5")])
    source = make_boot_dir(tmp_path / "boot2", pi4=False, pi5=True, config=False)
    with pytest.raises(CarrierError, match="no config.txt plus bcm2712"):
        build(source, tmp_path / "tftp", [dict(NODES[0], model="pi5")])
    assert not (tmp_path / "tftp").exists()


def test_missing_device_tree_warns(tmp_path):
    source = make_boot_dir(tmp_path / "boot", extra=None)
    os.unlink(os.path.join(source, "bcm2711-rpi-4-b.dtb"))
    warnings = []
    build(source, tmp_path / "tftp", [dict(NODES[0], model="pi4")], warn=warnings.append)
    assert warnings == ["source: %s has no bcm2711-rpi-4-b.dtb (the device tree of a pi4)" % source]


@pytest.mark.parametrize("table", ["mbr", "gpt", "none"])
def test_image_sources(tmp_path, boot, table):
    image = make_os_image(tmp_path / "os.img", boot, table=table)
    offset, description = _fat.find_fat_partition(image)
    assert offset == {"mbr": 8192 * 512, "gpt": 8192 * 512, "none": 0}[table]
    assert description.startswith({"mbr": "MBR partition 1 (type 0x0c)", "gpt": "GPT partition 1",
                                   "none": "a FAT file system"}[table])
    tftp = tmp_path / "tftp"
    _c, result, _diff = build(image, tftp, NODES[:1])
    assert result["source"]["kind"] == "image" and result["source"]["files"] == 9
    assert (tftp / "b7f44626" / "start4.elf").read_bytes() == (tmp_path / "boot" / "start4.elf").read_bytes()
    assert (tftp / "b7f44626" / "overlays" / "disable-wifi.dtbo").exists()
    assert build(image, tftp, NODES[:1])[0] is False
    # The extraction directory went away.
    assert sorted(os.listdir(tftp)) == [LOCK_FILE, STORE_DIR, "b7f44626"]


@pytest.mark.parametrize("table", ["mbr", "gpt"])
def test_image_without_fat_partition(tmp_path, table):
    image = make_os_image(tmp_path / "os.img", table=table, fat=False, size_mb=8, boot_mb=2)
    with pytest.raises(CarrierError, match=r"os.img has no FAT boot partition \((MBR|GPT) partition 1"):
        build(image, tmp_path / "tftp", NODES[:1])
    assert not (tmp_path / "tftp").exists()


def test_not_an_image(tmp_path):
    junk = tmp_path / "junk.img"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(CarrierError, match="junk.img has no FAT boot partition \\(no partition table\\)"):
        build(junk, tmp_path / "tftp", NODES[:1])
    (tmp_path / "tiny").write_bytes(b"x")
    with pytest.raises(CarrierError, match="is 1 bytes: not a disk image"):
        _fat.find_fat_partition(str(tmp_path / "tiny"))
    with pytest.raises(CarrierError, match="source: .*/nope does not exist"):
        build(tmp_path / "nope", tmp_path / "tftp", NODES[:1])


def test_a_failing_mtools_names_the_source(tmp_path, monkeypatch):
    image = make_os_image(tmp_path / "os.img", make_boot_dir(tmp_path / "boot"))
    monkeypatch.setattr(_fat, "_RUNNER", lambda argv, env, cwd: (1, "", "init: bad FAT"))
    with pytest.raises(CarrierError, match=r"^source: .*os.img: mcopy -s failed \(rc 1\): init: bad FAT"):
        with BootSource(image):
            pass
