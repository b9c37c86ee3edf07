# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pi 3B+ / 3B nodes (docs/hardware.md section 11): the models, their TFTP trees (bootcode.bin at the
TFTP root, the serial directory), and the EEPROM code refusing them with the reason."""

from __future__ import annotations

import hashlib
import os

import pytest
from netboot_fixtures import BOOTCODE_BIN, build, make_boot_dir, tree

from ansible_collections.picluster.carrier.plugins.module_utils import _models as M
from ansible_collections.picluster.carrier.plugins.module_utils._eeprom.node import detect_soc
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError, InvalidValue
from ansible_collections.picluster.carrier.plugins.module_utils._netboot.nodes import parse_nodes
from ansible_collections.picluster.carrier.plugins.module_utils._netboot.store import STORE_DIR

PI3 = {"name": "worker1", "serial": "00000000a1b2c3d4", "model": "pi3bplus", "nfs_root": "10.0.0.1:/srv/nfs/w1"}
CM4 = {"name": "node01", "serial": "10000000b7f44626", "nfs_root": "10.0.0.1:/srv/nfs/node01"}


@pytest.fixture
def boot(tmp_path):
    return make_boot_dir(tmp_path / "boot", pi3=True)


def test_pi3_models_boot_from_rom():
    m = M.MODELS["pi3bplus"]
    assert (m.soc, m.dtb, m.bootloader) == ("bcm2837", "bcm2710-rpi-3-b-plus.dtb", "rom")
    assert M.MODELS["pi3"].dtb == "bcm2710-rpi-3-b.dtb"
    assert "pi3bplus" not in M.eeprom_models() and "pi3" not in M.eeprom_models()
    assert M.ROM_NETBOOT_MODELS == ("pi3", "pi3bplus")


def test_eeprom_model_check_names_node_and_model():
    assert M.check_eeprom_model("cm4").name == "cm4"
    with pytest.raises(InvalidValue) as e:
        M.check_eeprom_model("pi3bplus", "nodes[1].model", node="worker1")
    assert e.value.field == "nodes[1].model"
    assert str(e.value).startswith(
        "nodes[1].model: node worker1: a Raspberry Pi 3 Model B+ (pi3bplus, BCM2837) has no SPI EEPROM; "
        "its bootloader is in ROM/bootcode.bin")


def test_eeprom_config_refuses_a_pi3_by_its_device_tree(tmp_path):
    compatible = tmp_path / "compatible"
    compatible.write_bytes(b"raspberrypi,3-model-b-plus\0brcm,bcm2837\0")
    reason = (r"this machine is not a Raspberry Pi 4/5 or CM4/CM5: a Raspberry Pi 3 Model B\+ \(pi3bplus, BCM2837\) "
              r"has no SPI EEPROM; its bootloader is in ROM/bootcode.bin")
    with pytest.raises(CarrierError, match=reason):
        detect_soc(str(compatible))


def test_node_list_accepts_pi3_and_refuses_what_cannot_netboot():
    spec = parse_nodes([PI3])[0]
    assert (spec.dirname, spec.rom, spec.dtb) == ("a1b2c3d4", True, "bcm2710-rpi-3-b-plus.dtb")
    assert parse_nodes([CM4])[0].rom is False
    with pytest.raises(CarrierError, match=r"nodes\[0\]\.tftp_prefix: 'mac': node worker1 is a Raspberry Pi 3 "
                                           r"Model B\+, whose bootcode.bin looks only for a serial directory"):
        parse_nodes([dict(PI3, mac="b8:27:eb:01:02:03", tftp_prefix="mac")])
    with pytest.raises(CarrierError, match=r"nodes\[0\]\.model: 'pizero2': a Raspberry Pi Zero 2 W has no "
                                           r"Ethernet to network-boot from"):
        parse_nodes([dict(PI3, model="pizero2")])


def test_source_without_bootcode_bin_is_refused(tmp_path):
    pi4_only = make_boot_dir(tmp_path / "pi4")
    with pytest.raises(CarrierError, match="has no bootcode.bin and start.elf: not a Pi 3 boot partition"):
        build(pi4_only, tmp_path / "tftp", nodes=[PI3])
    assert not (tmp_path / "tftp").exists()


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_pi3_tree_bootcode_at_root_and_serial_directory(tmp_path, boot):
    tftp = tmp_path / "tftp"
    changed, result, diff = build(boot, tftp, nodes=[PI3, CM4])
    assert changed is True and result["root_files"] == {"bootcode.bin": "added"}
    assert (tftp / "bootcode.bin").read_bytes() == BOOTCODE_BIN
    files = set(os.listdir(tftp / "a1b2c3d4"))
    assert {"start.elf", "fixup.dat", "bcm2710-rpi-3-b-plus.dtb", "kernel8.img", "config.txt",
            "cmdline.txt"} <= files
    # The root's bootcode.bin is a hard link of the store object, as every node directory's files are.
    digest = _digest(tftp / "bootcode.bin")
    store_obj = tftp / STORE_DIR / "sha256" / digest[:2] / digest
    assert os.stat(tftp / "bootcode.bin").st_ino == os.stat(store_obj).st_ino
    assert "bootcode.bin %s" % digest[:16] in diff["after"].splitlines()
    config = (tftp / "a1b2c3d4" / "config.txt").read_text()
    assert "worker1 (pi3bplus, serial 00000000a1b2c3d4)" in config
    # Again: nothing to do, nothing rewritten.
    before = {p: os.stat(tftp / p).st_mtime_ns for p in tree(tftp)}
    changed, result, diff = build(boot, tftp, nodes=[PI3, CM4])
    assert changed is False and result["root_files"] == {"bootcode.bin": "unchanged"}
    assert {p: os.stat(tftp / p).st_mtime_ns for p in tree(tftp)} == before


def test_new_bootcode_replaces_the_old_and_check_mode_writes_nothing(tmp_path, boot):
    tftp = tmp_path / "tftp"
    build(boot, tftp, nodes=[PI3])
    old = _digest(tftp / "bootcode.bin")
    new_code = BOOTCODE_BIN.replace(b"BOOT_UART=0", b"BOOT_UART=1")
    with open(os.path.join(boot, "bootcode.bin"), "wb") as f:
        f.write(new_code)
    before = tree(tftp)
    changed, result, diff = build(boot, tftp, nodes=[PI3], check_mode=True)
    assert changed is True and result["root_files"] == {"bootcode.bin": "modified"}
    assert "bootcode.bin %s" % old[:16] in diff["before"].splitlines()
    assert tree(tftp) == before
    changed, result, _diff = build(boot, tftp, nodes=[PI3])
    assert changed is True and (tftp / "bootcode.bin").read_bytes() == new_code
    assert not (tftp / STORE_DIR / "sha256" / old[:2] / old).exists()  # no one links the old one any more
    assert not [n for n in os.listdir(tftp) if n.startswith(".bootcode")]


def test_eeprom_nodes_alone_get_no_bootcode(tmp_path, boot):
    changed, result, _diff = build(boot, tmp_path / "tftp", nodes=[CM4])
    assert changed is True and result["root_files"] == {}
    assert not (tmp_path / "tftp" / "bootcode.bin").exists()


def test_a_root_bootcode_that_is_not_a_file_is_refused(tmp_path, boot):
    tftp = tmp_path / "tftp"
    (tftp / "bootcode.bin").mkdir(parents=True)
    with pytest.raises(CarrierError, match=r"bootcode.bin exists and is not a regular file: not replacing it"):
        build(boot, tftp, nodes=[PI3])
    assert not (tftp / "a1b2c3d4").exists()


def test_http_boot_image_refuses_a_pi3_with_the_reason(tmp_path, boot):
    from modrun import run_module

    from netboot_fixtures import rsa_key

    pem = tmp_path / "k.pem"
    rsa_key(pem)
    r = run_module("http_boot_image", dict(source=boot, dest=str(tmp_path / "www"), signing_key=str(pem),
                                           model="pi3bplus"), tmp_path)
    assert r["failed"] and r["msg"].startswith(
        "model: a Raspberry Pi 3 Model B+ (pi3bplus, BCM2837) has no SPI EEPROM; its bootloader is in "
        "ROM/bootcode.bin, so it cannot HTTP boot"), r
    assert not (tmp_path / "www").exists()


def test_netboot_assets_module_builds_a_pi3_tree(tmp_path, boot):
    from modrun import run_module

    tftp = tmp_path / "tftp"
    r = run_module("netboot_assets", dict(source=boot, tftp_root=str(tftp), nodes=[PI3]), tmp_path)
    assert r["changed"] is True and r["root_files"] == {"bootcode.bin": "added"}, r
    assert (tftp / "bootcode.bin").is_file() and (tftp / "a1b2c3d4" / "start.elf").is_file()


def test_eeprom_image_refuses_a_pi3_and_an_image_of_another_soc(tmp_path):
    from modrun import run_module

    from ansible_collections.picluster.carrier.plugins.module_utils._eeprom import image as I

    src = tmp_path / "pieeprom.bin"
    src.write_bytes(I.make_synthetic_image("bcm2711", "[all]\nBOOT_UART=0\n"))
    dest = tmp_path / "out" / "pieeprom.bin"
    dest.parent.mkdir()
    r = run_module("eeprom_image", dict(src=str(src), dest=str(dest), model="pi3bplus"), tmp_path)
    assert r["failed"] and r["msg"].startswith(
        "model: a Raspberry Pi 3 Model B+ (pi3bplus, BCM2837) has no SPI EEPROM; its bootloader is in "
        "ROM/bootcode.bin, so it cannot take an EEPROM image"), r
    r = run_module("eeprom_image", dict(src=str(src), dest=str(dest), model="pi5"), tmp_path)
    assert r["failed"] and r["msg"] == "src: %s is a bcm2711 image, but model pi5 is a bcm2712" % src, r
    assert not dest.exists()
    r = run_module("eeprom_image", dict(src=str(src), dest=str(dest), model="cm4"), tmp_path)
    assert r["changed"] is True and dest.is_file(), r
