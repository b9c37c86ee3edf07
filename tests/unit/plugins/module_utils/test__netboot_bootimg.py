# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_netboot.bootimg: reproducible, signed boot.img and boot.sig for HTTP boot."""

from __future__ import annotations

import hashlib
import os
import subprocess

import pytest
from netboot_fixtures import make_boot_dir, rsa_key, subprocess_runner

from ansible_collections.picluster.carrier.plugins.module_utils import _fat
from ansible_collections.picluster.carrier.plugins.module_utils import _keys as K
from ansible_collections.picluster.carrier.plugins.module_utils._eeprom import sig as E
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._netboot import bootimg as N

_fat.set_runner(subprocess_runner)


@pytest.fixture
def boot(tmp_path):
    return make_boot_dir(tmp_path / "boot")


def test_boot_image_reproducible_signed_and_valid(tmp_path, boot):
    key = rsa_key()
    a = N.plan_boot_image(boot, str(tmp_path / "out"), key, config_txt="arm_64bit=1\n")
    os.utime(os.path.join(boot, "start4.elf"), (1, 1))  # source times do not matter
    b = N.plan_boot_image(boot, str(tmp_path / "out"), key, config_txt="arm_64bit=1\n")
    assert a.image == b.image and a.sig == b.sig and a.changed
    c = N.plan_boot_image(boot, str(tmp_path / "out"), key, config_txt="arm_64bit=1\n", timestamp=1735689600)
    assert c.image != a.image
    N.write_boot_image(a, key)
    img = tmp_path / "out" / "boot.img"
    data = img.read_bytes()
    assert len(data) <= N.MAX_BOOT_IMG and hashlib.sha256(data).hexdigest() == a.sha256
    assert data[43:54] == b"BOOT       " and data[54:62] == b"FAT16   "
    assert _fat.find_fat_partition(str(img)) == (0, "a FAT file system without a partition table")
    fsck = subprocess.run(["fsck.vfat", "-n", str(img)], capture_output=True, text=True, check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    sig = E.verify_sig(data, (tmp_path / "out" / "boot.sig").read_text(), key.public_key())
    assert sig.ts == N.DEFAULT_TIMESTAMP and sig.rsa2048
    with pytest.raises(CarrierError, match="does not verify"):
        E.verify_sig(data, (tmp_path / "out" / "boot.sig").read_text(), rsa_key().public_key())
    # The files read back from the image are the source's (config.txt replaced).
    out = tmp_path / "extracted"
    _fat.extract(str(img), 0, str(out))
    assert (out / "config.txt").read_text() == "arm_64bit=1\n"
    assert (out / "overlays" / "dwc2.dtbo").read_bytes() == (tmp_path / "boot/overlays/dwc2.dtbo").read_bytes()
    assert (out / "kernel8.img").read_bytes() == (tmp_path / "boot/kernel8.img").read_bytes()
    # Nothing to do the second time.
    again = N.plan_boot_image(boot, str(tmp_path / "out"), key, config_txt="arm_64bit=1\n")
    assert not again.changed


def test_boot_image_limits(tmp_path, boot):
    key = rsa_key()
    with pytest.raises(CarrierError, match=r"^size_mb: 97 must be from 3 \(the smallest FAT16 file system\) to 96"):
        N.plan_boot_image(boot, str(tmp_path / "out"), key, size_mb=97)
    with open(os.path.join(boot, "initramfs8"), "wb") as f:
        f.truncate(97 * 1024 * 1024)  # sparse: costs no disk
    with pytest.raises(CarrierError, match=r"^source: its 10 files \(10\d{7} bytes, with config_txt and cmdline_txt\) "
                                           r"need a 10\d MB boot.img, over the bootloader's limit of 96 MB"):
        N.plan_boot_image(boot, str(tmp_path / "out"), key)
    with pytest.raises(CarrierError, match="signing_key: HTTP boot needs a customer key"):
        N.plan_boot_image(boot, str(tmp_path / "out"), None)
    with pytest.raises(CarrierError, match="volume_id: 'xyz'"):
        N.boot_image_bytes({"a": b"x"}, volume_id="xyz")
    with pytest.raises(CarrierError, match="^size_mb: 97 MB is over the bootloader's limit of 96 MB"):
        N.boot_image_bytes({"a": b"x"}, size=97 * 1024 * 1024)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("size_mb", [1, 2])
def test_a_size_mkfs_cannot_make_is_refused_naming_size_mb(tmp_path, boot, size_mb):
    # mkfs.vfat makes no FAT16 this small: the old code let it fail with "boot.img: mkfs.vfat failed".
    with pytest.raises(CarrierError, match=r"^size_mb: %d must be from 3 " % size_mb):
        N.plan_boot_image(boot, str(tmp_path / "out"), rsa_key(), size_mb=size_mb)


def test_a_size_mb_too_small_for_the_files_names_size_mb_and_the_size_needed(tmp_path, boot):
    with open(os.path.join(boot, "initramfs8"), "wb") as f:
        f.write(os.urandom(5 * 1024 * 1024))
    with pytest.raises(CarrierError, match=r"^size_mb: a 4 MB boot.img cannot hold the 10 files of source "
                                           r"\(\d+ bytes, with config_txt and cmdline_txt\); they need about 8 MB "
                                           r"\(leave size_mb unset"):
        N.plan_boot_image(boot, str(tmp_path / "out"), rsa_key(), size_mb=4)
    assert not (tmp_path / "out").exists()
    assert N.plan_boot_image(boot, str(tmp_path / "out"), rsa_key(), size_mb=8).image[54:62] == b"FAT16   "


def test_private_key_generation_is_0600(tmp_path):
    path = tmp_path / "keys" / "boot.pem"
    key, generated = K.read_private_key(str(path), generate=True)
    assert generated and os.stat(path).st_mode & 0o777 == 0o600
    again, generated = K.read_private_key(str(path))
    assert not generated and again.private_numbers() == key.private_numbers()
    os.chmod(path, 0o644)
    warnings = []
    K.read_private_key(str(path), warn=warnings.append)
    assert warnings and "should be 0600" in warnings[0]
    with pytest.raises(CarrierError, match="does not exist"):
        K.read_private_key(str(tmp_path / "none.pem"))


def test_boot_image_pair_is_replaced_together_or_not_at_all(tmp_path, boot, monkeypatch):
    key = rsa_key()
    dest = tmp_path / "out"
    N.write_boot_image(N.plan_boot_image(boot, str(dest), key), key)
    old = {n: (dest / n).read_bytes() for n in ("boot.img", "boot.sig")}
    plan = N.plan_boot_image(boot, str(dest), key, timestamp=1735689600)
    real_replace = os.replace

    def failing_replace(src, dst, *args, **kwargs):
        if str(dst).endswith("boot.sig"):
            raise OSError(28, "No space left on device", str(dst))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(CarrierError, match="boot.sig"):
        N.write_boot_image(plan, key)
    monkeypatch.setattr(os, "replace", real_replace)
    assert {n: (dest / n).read_bytes() for n in ("boot.img", "boot.sig")} == old
    assert sorted(os.listdir(dest)) == ["boot.img", "boot.sig"]
