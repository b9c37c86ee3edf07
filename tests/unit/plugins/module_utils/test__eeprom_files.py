# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the plans of eeprom_image (_eeprom/files.py): images, .sig files, recovery directories."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils._eeprom import files as F
from ansible_collections.picluster.carrier.plugins.module_utils._eeprom import image as I
from ansible_collections.picluster.carrier.plugins.module_utils._eeprom import sig as S
from ansible_collections.picluster.carrier.plugins.module_utils import _keys as K
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError

FIXTURES = Path(__file__).resolve().parents[4].parent / "shared" / "fixtures" / "eeprom"
NEEDS_RECOVERY = pytest.mark.skipif(
    not (FIXTURES / "2711-recovery.bin").exists() or not (FIXTURES / "2712-recovery.bin").exists(),
    reason="real recovery.bin files not available: %s is absent (they are never committed)" % FIXTURES)


_KEYS = {}


def _key(n=0):
    """A throwaway RSA-2048 key per ``n``, made once per test run."""
    if n not in _KEYS:
        _KEYS[n] = K.generate_private_key(None)
    return _KEYS[n]


def test_build_image_signed_is_stable():
    base = I.EepromImage(I.make_synthetic_image("bcm2711"))
    key = _key()
    one = F.build_image(base, "[all]\nSIGNED_BOOT=1\n", key)
    sig_text = one.get_file("bootconf.sig").decode()
    S.verify_sig(b"[all]\nSIGNED_BOOT=1\n", sig_text, key.public_key())
    assert K.public_key_from_bin(one.get_file("pubkey.bin")).public_numbers() == key.public_key().public_numbers()
    two = F.build_image(base, "[all]\nSIGNED_BOOT=1\n", key, existing=one)
    assert two.to_bytes() == one.to_bytes()


def fake_recovery_bin(soc, code=b"loader" * 500):
    """Code, its length, then the rest of the trailer the ROM of ``soc`` checks (see F.RECOVERY_TRAILER_SIZES)."""
    return code + struct.pack("<I", len(code)) + b"\x5a" * (F.RECOVERY_TRAILER_SIZES[soc] - 4)


@pytest.fixture
def src(tmp_path):
    path = tmp_path / "pieeprom-base.bin"
    path.write_bytes(I.make_synthetic_image("bcm2711", "[all]\nBOOT_UART=0\n"))
    return str(path)


@NEEDS_RECOVERY
def test_recovery_bin_soc_of_the_real_files():
    assert F.recovery_bin_soc((FIXTURES / "2711-recovery.bin").read_bytes()) == "bcm2711"
    assert F.recovery_bin_soc((FIXTURES / "2712-recovery.bin").read_bytes()) == "bcm2712"


def test_recovery_bin_soc_of_other_files():
    assert F.recovery_bin_soc(fake_recovery_bin("bcm2711")) == "bcm2711"
    assert F.recovery_bin_soc(fake_recovery_bin("bcm2712")) == "bcm2712"
    for data in (b"", b"\0" * 100, b"second stage loader" * 100, b"\x7fELF" + b"\0" * 4000):
        assert F.recovery_bin_soc(data) is None


@NEEDS_RECOVERY
def test_usb_recovery_refuses_the_other_socs_recovery_bin(tmp_path, src):
    dest = tmp_path / "rpiboot"
    with pytest.raises(CarrierError, match=r"^recovery_bin: .*2712-recovery.bin is a BCM2712 recovery.bin, but the "
                                           r"image is for BCM2711 \(the rpi-eeprom package has one per SoC: "
                                           r"bootloader-2711/<release>/recovery.bin\)"):
        F.plan_image_files(src, str(dest), "usb_recovery", recovery_bin=str(FIXTURES / "2712-recovery.bin"))
    plan = F.plan_image_files(src, str(dest), "usb_recovery", recovery_bin=str(FIXTURES / "2711-recovery.bin"))
    assert plan.files[str(dest / "bootcode4.bin")] == (FIXTURES / "2711-recovery.bin").read_bytes()


def test_usb_recovery_refuses_what_is_no_recovery_bin(tmp_path, src):
    bad = tmp_path / "recovery.bin"
    bad.write_bytes(b"second stage loader" * 100)
    with pytest.raises(CarrierError, match=r"is not a recovery.bin of a BCM2711 or BCM2712, but the image is for "
                                           r"BCM2711"):
        F.plan_image_files(src, str(tmp_path / "d"), "usb_recovery", recovery_bin=str(bad))
    bad.write_bytes(fake_recovery_bin("bcm2711"))
    with pytest.raises(CarrierError, match=r"^eeprom_write_protect: nan is not -1, 0 or 1"):
        F.plan_image_files(src, str(tmp_path / "d"), "usb_recovery", recovery_bin=str(bad),
                           eeprom_write_protect=float("nan"))
    assert not (tmp_path / "d").exists()


def test_plan_refuses_a_section_that_injects_one(tmp_path, src):
    for target, dest in (("image", tmp_path / "out.bin"), ("tftp_self_update", tmp_path / "tftp")):
        with pytest.raises(CarrierError, match=r"^section: invalid section filter 'all\]\\n\[pi4'"):
            F.plan_image_files(src, str(dest), target, boot_order=["sd"], section="all]\n[pi4")
    with pytest.raises(CarrierError, match=r"^section: invalid section filter"):
        F.plan_image_files(src, str(tmp_path / "out.bin"), config="[all]\n", section="x\n[y]")
    assert os.listdir(str(tmp_path)) == ["pieeprom-base.bin"]


def test_plan_refuses_bcm_usb_for_bcm2712(tmp_path):
    src = tmp_path / "pieeprom-2712.bin"
    src.write_bytes(I.make_synthetic_image("bcm2712", "[all]\nBOOT_UART=1\n"))
    with pytest.raises(CarrierError, match=r"^boot_order: 'bcm_usb' \(0x5\), a boot mode BCM2712 images do not have"):
        F.plan_image_files(str(src), str(tmp_path / "tftp"), "tftp_self_update", boot_order=["bcm_usb", "restart"])
    with pytest.raises(CarrierError, match=r"^config \[all\] BOOT_ORDER: '0xf5' holds bcm_usb"):
        F.plan_image_files(str(src), str(tmp_path / "out.bin"), config="[all]\nBOOT_ORDER=0xf5\n")


def test_plan_keeps_a_deprecated_code_of_the_base_image(tmp_path):
    src = tmp_path / "odd.bin"
    src.write_bytes(I.make_synthetic_image("bcm2711", "[all]\nBOOT_ORDER=0xf801\n"))
    plan = F.plan_image_files(str(src), str(tmp_path / "out.bin"), settings={"BOOT_UART": 1})
    assert plan.after_config == "[all]\nBOOT_ORDER=0xf801\nBOOT_UART=1\n"
    assert plan.info["boot_order"] == ["sd", "sd_card_detect", "0x8", "restart"]
    assert len(plan.warnings) == 2 and all("kept as is" in w for w in plan.warnings)


def test_image_sig_has_target_soc_and_honours_source_date_epoch(tmp_path, src, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1722344555")
    one = F.plan_image_files(src, str(tmp_path / "a"), "tftp_self_update", boot_order=["network", "restart"])
    two = F.plan_image_files(src, str(tmp_path / "b"), "tftp_self_update", boot_order=["network", "restart"])
    sig_one = one.files[str(tmp_path / "a" / "pieeprom.sig")]
    assert sig_one == two.files[str(tmp_path / "b" / "pieeprom.sig")]
    sig = S.verify_sig(one.files[str(tmp_path / "a" / "pieeprom.upd")], sig_one, target_soc="bcm2711")
    assert sig.ts == 1722344555 and sig_one.splitlines()[2] == b"target-soc: 2711"
    # A .sig without the line is written anew once, then kept.
    F.write_planned(one)
    upd = (tmp_path / "a" / "pieeprom.upd").read_bytes()
    (tmp_path / "a" / "pieeprom.sig").write_text(S.make_sig(upd, ts=5))
    again = F.plan_image_files(src, str(tmp_path / "a"), "tftp_self_update", boot_order=["network", "restart"])
    assert list(again.files) == [str(tmp_path / "a" / "pieeprom.sig")]
    F.write_planned(again)
    assert not F.plan_image_files(src, str(tmp_path / "a"), "tftp_self_update",
                                  boot_order=["network", "restart"]).changed
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "tomorrow")
    with pytest.raises(CarrierError, match="^SOURCE_DATE_EPOCH: 'tomorrow' is not a number of seconds"):
        F.plan_image_files(src, str(tmp_path / "c"), "tftp_self_update", boot_order=["network", "restart"])
