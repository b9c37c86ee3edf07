# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""eeprom_image, run for real: the module as a process with its arguments file, as Ansible runs it."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils._eeprom import config as C
from ansible_collections.picluster.carrier.plugins.module_utils._eeprom import image as I
from ansible_collections.picluster.carrier.plugins.module_utils._eeprom import sig as S
from ansible_collections.picluster.carrier.plugins.module_utils import _keys as K  # noqa: E402

from modrun import run_module

REPO = Path(__file__).resolve().parents[4]
_COLL = REPO / ".collections"


FIXTURES = REPO.parent / "shared" / "fixtures" / "eeprom"


@pytest.fixture()
def src(tmp_path):
    path = tmp_path / "pieeprom-base.bin"
    path.write_bytes(I.make_synthetic_image("bcm2711", "[all]\nBOOT_UART=0\nWAKE_ON_GPIO=1\n"))
    return path


def listing(directory):
    return sorted(p.name for p in Path(directory).iterdir()) if Path(directory).exists() else []


def test_image_target_and_idempotence(tmp_path, src):
    dest = tmp_path / "out" / "pieeprom.bin"
    args = dict(src=str(src), dest=str(dest), boot_order=["network", "sd", "restart"], settings={"BOOT_UART": True})
    r = run_module("eeprom_image", args, tmp_path)
    assert r["changed"] is True, r
    assert r["files"] == sorted([str(dest), str(tmp_path / "out" / "pieeprom.sig")])
    assert r["config"] == "[all]\nBOOT_UART=1\nWAKE_ON_GPIO=1\nBOOT_ORDER=0xf12\n"
    assert r["boot_order"] == ["network", "sd", "restart"]
    assert r["diff"]["before"] == "" and r["diff"]["after"] == r["config"]
    image = I.EepromImage.from_file(str(dest))
    assert image.config == r["config"]
    assert r["sha256"] == image.sha256
    sig_text = (tmp_path / "out" / "pieeprom.sig").read_text()
    S.verify_sig(dest.read_bytes(), sig_text)
    # Second run: nothing changes, the .sig (and its ts:) is kept.
    mtime = (tmp_path / "out" / "pieeprom.sig").stat().st_mtime_ns
    r2 = run_module("eeprom_image", args, tmp_path)
    assert r2["changed"] is False and r2["files"] == []
    assert (tmp_path / "out" / "pieeprom.sig").read_text() == sig_text
    assert (tmp_path / "out" / "pieeprom.sig").stat().st_mtime_ns == mtime
    # A stale .sig (image changed by hand back to the source) is rewritten.
    dest.write_bytes(src.read_bytes())
    r3 = run_module("eeprom_image", args, tmp_path)
    assert r3["changed"] is True and r3["diff"]["before"] == "[all]\nBOOT_UART=0\nWAKE_ON_GPIO=1\n"
    S.verify_sig(dest.read_bytes(), (tmp_path / "out" / "pieeprom.sig").read_text())


def test_check_mode_writes_nothing(tmp_path, src):
    dest = tmp_path / "out"
    r = run_module("eeprom_image", dict(src=str(src), dest=str(dest), target="tftp_self_update",
                                        boot_order=["nvme", "restart"]), tmp_path, check=True)
    assert r["changed"] is True
    assert r["files"] == [str(dest / "pieeprom.sig"), str(dest / "pieeprom.upd")]
    assert "BOOT_ORDER=0xf6" in r["diff"]["after"]
    assert not dest.exists()


def test_tftp_self_update(tmp_path):
    src = tmp_path / "base.bin"
    src.write_bytes(I.make_synthetic_image("bcm2712", "[all]\nBOOT_UART=1\n"))
    tftp = tmp_path / "tftp" / "b7f44626"
    args = dict(src=str(src), dest=str(tftp), target="tftp_self_update", boot_order=["nvme", "network", "restart"])
    r = run_module("eeprom_image", args, tmp_path)
    assert r["changed"] is True and r["soc"] == "bcm2712"
    assert listing(tftp) == ["pieeprom.sig", "pieeprom.upd"]
    upd = I.EepromImage.from_file(str(tftp / "pieeprom.upd"))
    assert upd.ab and upd.config == "[all]\nBOOT_UART=1\nBOOT_ORDER=0xf26\n"
    S.verify_sig((tftp / "pieeprom.upd").read_bytes(), (tftp / "pieeprom.sig").read_text())
    assert run_module("eeprom_image", args, tmp_path)["changed"] is False


def fake_recovery_bin(soc, code=b"second stage loader" * 100):
    """A recovery.bin shaped like a signed one for ``soc``: code, its length, then the rest of the trailer."""
    trailer = {"bcm2711": 284, "bcm2712": 532}[soc]
    return code + struct.pack("<I", len(code)) + b"\x5a" * (trailer - 4)


def test_usb_recovery(tmp_path, src):
    rec = tmp_path / "recovery.bin"
    rec.write_bytes(fake_recovery_bin("bcm2711"))
    dest = tmp_path / "rpiboot"
    args = dict(src=str(src), dest=str(dest), target="usb_recovery", recovery_bin=str(rec),
                config="[all]\nBOOT_UART=1\nBOOT_ORDER=0xf21\n", eeprom_write_protect=1)
    r = run_module("eeprom_image", args, tmp_path)
    assert r["changed"] is True, r
    assert listing(dest) == ["bootcode4.bin", "config.txt", "pieeprom.bin", "pieeprom.sig", "recovery.bin"]
    assert (dest / "recovery.bin").read_bytes() == rec.read_bytes() == (dest / "bootcode4.bin").read_bytes()
    config_txt = (dest / "config.txt").read_text().splitlines()
    assert "recovery_reboot=1" in config_txt and "eeprom_write_protect=1" in config_txt
    assert I.EepromImage.from_file(str(dest / "pieeprom.bin")).config == args["config"]
    assert run_module("eeprom_image", args, tmp_path)["changed"] is False
    # Changing only a recovery option rewrites only config.txt.
    r = run_module("eeprom_image", dict(args, recovery_reboot=False), tmp_path)
    assert r["changed"] is True and r["files"] == [str(dest / "config.txt")]
    assert "recovery_reboot=0" in (dest / "config.txt").read_text()


def test_dest_kinds(tmp_path, src):
    (tmp_path / "adir").mkdir()
    r = run_module("eeprom_image", dict(src=str(src), dest=str(tmp_path / "adir")), tmp_path)
    assert r["failed"] is True and "is a directory; with target image" in r["msg"]
    (tmp_path / "afile").write_text("x")
    r = run_module("eeprom_image", dict(src=str(src), dest=str(tmp_path / "afile"), target="tftp_self_update"),
                   tmp_path)
    assert r["failed"] is True and "must be a directory for target tftp_self_update" in r["msg"]
    assert listing(tmp_path / "adir") == [] and (tmp_path / "afile").read_text() == "x"


def test_usb_recovery_needs_recovery_bin(tmp_path, src):
    r = run_module("eeprom_image", dict(src=str(src), dest=str(tmp_path / "d"), target="usb_recovery"), tmp_path)
    assert r["failed"] is True and "recovery_bin" in r["msg"]
    r = run_module("eeprom_image", dict(src=str(src), dest=str(tmp_path / "d"), target="usb_recovery",
                                        recovery_bin=str(tmp_path / "nope.bin")), tmp_path)
    assert r["failed"] is True and "nope.bin does not exist" in r["msg"]
    assert not (tmp_path / "d").exists()


def _write_key(tmp_path, passphrase=None):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    enc = (serialization.BestAvailableEncryption(passphrase.encode()) if passphrase
           else serialization.NoEncryption())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, enc)
    path = tmp_path / "private.pem"
    path.write_bytes(pem)
    return key, path, pem.decode()


def test_signed_with_customer_key(tmp_path, src):
    key, key_path, pem = _write_key(tmp_path)
    dest = tmp_path / "signed.bin"
    args = dict(src=str(src), dest=str(dest), config="[all]\nSIGNED_BOOT=1\nBOOT_ORDER=0xf1\n",
                signing_key=str(key_path))
    r = run_module("eeprom_image", args, tmp_path)
    assert r["changed"] is True, r
    image = I.EepromImage.from_file(str(dest))
    pub = key.public_key()
    assert image.get_file("pubkey.bin") == K.pubkey_bin(pub)
    S.verify_sig(args["config"].encode(), image.get_file("bootconf.sig").decode(), pub)
    S.verify_sig(dest.read_bytes(), (tmp_path / "signed.sig").read_text(), pub)
    before = dest.read_bytes(), (tmp_path / "signed.sig").read_bytes()
    # Idempotent although both .sig texts carry a ts: line.
    r2 = run_module("eeprom_image", args, tmp_path)
    assert r2["changed"] is False
    assert (dest.read_bytes(), (tmp_path / "signed.sig").read_bytes()) == before
    # The key as content (no_log) gives the same result and never shows in the output.
    r3 = run_module("eeprom_image", dict(src=str(src), dest=str(dest), config=args["config"],
                                         signing_key_content=pem), tmp_path)
    assert r3["changed"] is False
    assert "PRIVATE KEY" not in json.dumps(r3)


def test_encrypted_key_needs_passphrase(tmp_path, src):
    key_path = _write_key(tmp_path, passphrase="s3cret")[1]
    dest = tmp_path / "x.bin"
    r = run_module("eeprom_image", dict(src=str(src), dest=str(dest), signing_key=str(key_path)), tmp_path)
    assert r["failed"] is True and "signing_key: not a usable PEM private key" in r["msg"]
    assert not dest.exists()
    r = run_module("eeprom_image", dict(src=str(src), dest=str(dest), signing_key=str(key_path),
                                        signing_key_passphrase="s3cret"), tmp_path)
    assert r["changed"] is True
    assert "s3cret" not in json.dumps(r)


@pytest.mark.parametrize("case,message", [
    ("wrong_size", "wrong size 300000 bytes"),
    ("corrupt_magic", "corrupt magic 0xdeadbeef"),
    ("truncated", "truncated image"),
    ("config_too_big", "too big: 5006 bytes, the maximum is 4076"),
    ("unknown_mode", "value of boot_order must be one or more of"),
    ("rpiboot_not_last", "rpiboot must be the last boot mode"),
    ("bad_value", "DHCP_TIMEOUT: '10' is below the minimum 5000"),
    ("both", "mutually exclusive"),
])
def test_bad_input_fails_and_writes_nothing(tmp_path, src, case, message):
    args = dict(src=str(src), dest=str(tmp_path / "out" / "pieeprom.bin"))
    raw = bytearray(src.read_bytes())
    if case == "wrong_size":
        src.write_bytes(bytes(raw[:300000]))
    elif case == "corrupt_magic":
        second = I.EepromImage(bytes(raw)).sections[1].offset
        raw[second:second + 4] = bytes.fromhex("deadbeef")
        src.write_bytes(bytes(raw))
    elif case == "truncated":
        raw[4:8] = (10 ** 7).to_bytes(4, "big")
        src.write_bytes(bytes(raw))
    elif case == "config_too_big":
        args["config"] = "[all]\n" + "#" * 5000
    elif case == "unknown_mode":
        args["boot_order"] = ["sd", "floppy"]
    elif case == "rpiboot_not_last":
        args["boot_order"] = ["rpiboot", "sd"]
    elif case == "bad_value":
        args["settings"] = {"DHCP_TIMEOUT": 10}
    elif case == "both":
        args["config"] = "[all]\n"
        args["boot_order"] = ["sd"]
    r = run_module("eeprom_image", args, tmp_path)
    assert r.get("failed") is True, r
    assert message in r["msg"]
    assert not (tmp_path / "out").exists()


def test_unknown_key_warns_and_is_kept(tmp_path, src):
    r = run_module("eeprom_image", dict(src=str(src), dest=str(tmp_path / "o.bin"), settings={"MY_FLAG": 3}),
                   tmp_path)
    assert r["changed"] is True
    # ansible-core 2.19 returns structured warnings: look in their text.
    assert "unknown bootloader key MY_FLAG (section [all]) kept as is" in json.dumps(r["warnings"])
    assert "MY_FLAG=3" in I.EepromImage.from_file(str(tmp_path / "o.bin")).config


README_SHA = {}
if (FIXTURES / "README.md").exists():
    for line in (FIXTURES / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].endswith(".bin") and len(cells[3]) == 64:
            README_SHA[cells[0]] = cells[3]


@pytest.mark.skipif(not README_SHA, reason="real EEPROM images not available: %s is absent" % FIXTURES)
@pytest.mark.parametrize("name", sorted(README_SHA) or ["none"])
def test_real_image_same_config_is_byte_identical(tmp_path, name):
    src = FIXTURES / name
    config = I.EepromImage.from_file(str(src)).config
    dest = tmp_path / "same.bin"
    r = run_module("eeprom_image", dict(src=str(src), dest=str(dest), config=config), tmp_path)
    assert r["changed"] is True
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == README_SHA[name] == r["sha256"]
    r = run_module("eeprom_image", dict(src=str(src), dest=str(dest), boot_order=["nvme", "sd", "network", "restart"]),
                   tmp_path)
    assert r["changed"] is True and "BOOT_ORDER=0xf216" in I.EepromImage.from_file(str(dest)).config


def test_playbook_tftp_self_update(tmp_path):
    """playbooks/boot_order.yml out of band: the node's TFTP directory from the serial, on its controller."""
    playbook_bin = Path(sys.executable).parent / "ansible-playbook"
    if not playbook_bin.exists():
        pytest.skip("ansible-playbook not installed beside %s" % sys.executable)
    fw = tmp_path / "firmware" / "bootloader-2712" / "default"
    fw.mkdir(parents=True)
    (fw / "pieeprom-2025-01-01.bin").write_bytes(I.make_synthetic_image("bcm2712", "[all]\nOLD=1\n"))
    (fw / "pieeprom-2026-05-26.bin").write_bytes(I.make_synthetic_image("bcm2712", "[all]\nBOOT_UART=1\n"))
    local = dict(ansible_connection="local", ansible_python_interpreter=sys.executable)
    node = dict(local, carrier_controller="localhost", carrier_model="cm5", carrier_serial="1000000099dd251d")
    inventory = {"all": {"children": {"carrier_nodes": {"hosts": {"node04": node}}}, "hosts": {"localhost": local}}}
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    extra = dict(boot_order=["network", "nvme", "restart"], boot_order_method="tftp_self_update",
                 boot_order_firmware_dir=str(tmp_path / "firmware"), boot_order_tftp_root=str(tmp_path / "tftp"))
    (tmp_path / "vars.json").write_text(json.dumps(extra))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(_COLL), ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
               ANSIBLE_HOME=str(tmp_path / "ahome"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(
        [str(playbook_bin), "-i", str(tmp_path / "inventory.json"), str(REPO / "playbooks" / "boot_order.yml"),
         "-e", "@%s" % (tmp_path / "vars.json")],
        capture_output=True, text=True, check=False, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tftp = tmp_path / "tftp" / "99dd251d"
    assert listing(tftp) == ["pieeprom.sig", "pieeprom.upd"]
    upd = I.EepromImage.from_file(str(tftp / "pieeprom.upd"))
    assert upd.config == "[all]\nBOOT_UART=1\nBOOT_ORDER=0xf62\n"
    S.verify_sig((tftp / "pieeprom.upd").read_bytes(), (tftp / "pieeprom.sig").read_text())


@pytest.mark.skipif(not (FIXTURES / "2712-recovery.bin").exists(),
                    reason="real EEPROM images not available: %s is absent" % FIXTURES)
def test_real_cm5_usb_recovery(tmp_path):
    dest = tmp_path / "rpiboot-cm5"
    args = dict(src=str(FIXTURES / "2712-pieeprom-2026-05-26.bin"), dest=str(dest), target="usb_recovery",
                recovery_bin=str(FIXTURES / "2712-recovery.bin"), boot_order=["nvme", "network", "restart"])
    r = run_module("eeprom_image", args, tmp_path)
    assert r["changed"] is True and r["soc"] == "bcm2712"
    assert listing(dest) == ["bootcode5.bin", "config.txt", "pieeprom.bin", "pieeprom.sig", "recovery.bin"]
    assert (dest / "bootcode5.bin").read_bytes() == (FIXTURES / "2712-recovery.bin").read_bytes()
    image = I.EepromImage.from_file(str(dest / "pieeprom.bin"))
    assert image.ab and C.effective_boot_order(image.config) == ["nvme", "network", "restart"]
    assert run_module("eeprom_image", args, tmp_path)["changed"] is False


def test_section_that_injects_one_is_refused_and_nothing_written(tmp_path, src):
    dest = tmp_path / "tftp"
    r = run_module("eeprom_image", dict(src=str(src), dest=str(dest), target="tftp_self_update",
                                        boot_order=["network", "restart"], section="all]\nBOOT_ORDER=0x3\n[pi4"),
                   tmp_path)
    assert r["failed"] is True and r["msg"].startswith("section: invalid section filter 'all]\\nBOOT_ORDER=0x3"), r
    assert not dest.exists()


def test_usb_recovery_refuses_a_recovery_bin_for_another_soc(tmp_path, src):
    rec = tmp_path / "recovery.bin"
    rec.write_bytes(fake_recovery_bin("bcm2712"))
    dest = tmp_path / "rpiboot"
    r = run_module("eeprom_image", dict(src=str(src), dest=str(dest), target="usb_recovery", recovery_bin=str(rec)),
                   tmp_path)
    assert r["failed"] is True and r["msg"].startswith(
        "recovery_bin: %s is a BCM2712 recovery.bin, but the image is for BCM2711" % rec), r
    assert not dest.exists()


@pytest.mark.skipif(not (FIXTURES / "2711-recovery.bin").exists(),
                    reason="real EEPROM images not available: %s is absent" % FIXTURES)
def test_real_cm5_usb_recovery_refuses_the_cm4_recovery_bin(tmp_path):
    dest = tmp_path / "rpiboot-cm5"
    r = run_module("eeprom_image", dict(src=str(FIXTURES / "2712-pieeprom-2026-05-26.bin"), dest=str(dest),
                                        target="usb_recovery", recovery_bin=str(FIXTURES / "2711-recovery.bin")),
                   tmp_path)
    assert r["failed"] is True and "is a BCM2711 recovery.bin, but the image is for BCM2712" in r["msg"]
    assert not dest.exists()


def test_pieeprom_sig_has_target_soc_and_source_date_epoch(tmp_path, src):
    dest = tmp_path / "tftp"
    args = dict(src=str(src), dest=str(dest), target="tftp_self_update", boot_order=["network", "restart"])
    r = run_module("eeprom_image", args, tmp_path, env=dict(os.environ, SOURCE_DATE_EPOCH="1722344555"))
    assert r["changed"] is True, r
    text = (dest / "pieeprom.sig").read_text()
    assert text.splitlines()[1:] == ["ts: 1722344555", "target-soc: 2711"]
    S.verify_sig((dest / "pieeprom.upd").read_bytes(), text, target_soc="bcm2711")
    r = run_module("eeprom_image", dict(args, dest=str(tmp_path / "other")), tmp_path,
                   env=dict(os.environ, SOURCE_DATE_EPOCH="later"))
    assert r["failed"] is True and r["msg"].startswith("SOURCE_DATE_EPOCH: 'later' is not a number of seconds"), r
    assert not (tmp_path / "other").exists()
