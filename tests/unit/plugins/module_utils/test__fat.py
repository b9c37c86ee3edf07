# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_fat: partition tables (MBR, GPT, none) and FAT file systems read and written with the real mtools,
on images laid out by sfdisk and mkfs.vfat here."""

from __future__ import annotations

import os
import re
import subprocess
import time

import pytest
from netboot_fixtures import make_os_image, subprocess_runner

from ansible_collections.picluster.carrier.plugins.module_utils import _fat as F
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError

F.set_runner(subprocess_runner)

BOOT_START = 8192  # sectors


def sfdisk_image(path, label="dos", boot_type="c", size_mb=80, boot_mb=64, fat=True):
    """An OS image partitioned by sfdisk (boot partition at sector 8192, a root partition after it),
    its boot partition formatted by mkfs.vfat --offset; returns the path."""
    with open(path, "wb") as f:
        f.truncate(size_mb * 1024 * 1024)
    script = "label: %s\nstart=%d, size=%d, type=%s\ntype=%s\n" % (
        label, BOOT_START, boot_mb * 2048, boot_type, "83" if label == "dos" else "L")
    subprocess.run(["sfdisk", "--quiet", str(path)], input=script, text=True, check=True, capture_output=True)
    if fat:
        subprocess.run(["mkfs.vfat", "-F", "32", "-n", "BOOTFS", "--offset", str(BOOT_START), str(path),
                        str(boot_mb * 1024)], check=True, capture_output=True)
    return str(path)


@pytest.mark.parametrize("label,boot_type,description", [
    ("dos", "c", "MBR partition 1 (type 0x0c)"),
    ("gpt", "U", "GPT partition 1 (c12a7328-f81f-11d2-ba4b-00a0c93ec93b)"),
])
def test_find_fat_partition_of_sfdisk_images(tmp_path, label, boot_type, description):
    image = sfdisk_image(tmp_path / "os.img", label, boot_type)
    assert F.find_fat_partition(image) == (BOOT_START * 512, description)


def test_a_fat_partition_whose_type_says_linux_is_still_found(tmp_path):
    image = sfdisk_image(tmp_path / "os.img", "dos", "83")
    assert F.find_fat_partition(image) == (BOOT_START * 512, "MBR partition 1 (type 0x83)")


def test_bare_fat_and_refusals_name_the_field(tmp_path):
    bare = tmp_path / "bare.img"
    bare.write_bytes(b"")
    os.truncate(bare, 4 * 1024 * 1024)
    subprocess.run(["mkfs.vfat", "-F", "12", str(bare)], check=True, capture_output=True)
    assert F.find_fat_partition(str(bare)) == (0, "a FAT file system without a partition table")
    linux = sfdisk_image(tmp_path / "linux.img", boot_type="83", fat=False)
    with pytest.raises(CarrierError, match=r"^image: .*linux.img has no FAT boot partition \(MBR partition 1 "
                                           r"\(type 0x83\), MBR partition 2"):
        F.find_fat_partition(linux, field="image")
    (tmp_path / "tiny").write_bytes(b"x")
    with pytest.raises(CarrierError, match=r"^source: .*tiny is 1 bytes: not a disk image"):
        F.find_fat_partition(str(tmp_path / "tiny"))
    with pytest.raises(CarrierError, match=r"^image: cannot read .*nope"):
        F.find_fat_partition(str(tmp_path / "nope"), field="image")


def test_gpt_without_header_and_hand_made_tables(tmp_path):
    image = make_os_image(tmp_path / "gpt.img", table="gpt", size_mb=40, boot_mb=16)
    assert F.find_fat_partition(image)[0] == 8192 * 512
    with open(image, "r+b") as f:
        f.seek(512)
        f.write(b"NOT PART")
    with pytest.raises(CarrierError, match="protective MBR but no GPT header"):
        F.find_fat_partition(image)


def test_copy_in_read_file_and_extract(tmp_path):
    image = sfdisk_image(tmp_path / "os.img")
    offset = F.find_fat_partition(image)[0]
    files = {"firstrun.sh": b"#!/bin/sh\necho hi\n", "ssh": b"", "sub/dir/user-data": b"\x00\xff binary\r\n"}
    F.copy_in(image, offset, files, timestamp=1704067200)
    for name, data in files.items():
        assert F.read_file(image, offset, name) == data
    assert F.read_file(image, offset, "missing.txt") is None
    assert F.read_file(image, offset, "sub/missing") is None
    # Replacing one file and adding one beside it in an existing directory keeps the others.
    F.copy_in(image, offset, {"sub/dir/user-data": b"new", "sub/dir/meta-data": b"m"})
    assert F.read_file(image, offset, "sub/dir/user-data") == b"new"
    assert F.read_file(image, offset, "firstrun.sh") == files["firstrun.sh"]
    out = tmp_path / "out"
    F.extract(image, offset, str(out))
    assert sorted(os.path.relpath(os.path.join(d, n), out) for d, _s, fs in os.walk(out) for n in fs) == \
        ["firstrun.sh", "ssh", "sub/dir/meta-data", "sub/dir/user-data"]
    # -m kept the given time (FAT stores local time: mtools_env sets TZ=UTC).
    listing = F.run(["mdir", "-i", F.target(image, offset), "::/"], "mdir", env=F.mtools_env())
    assert re.search(r"^firstrun .* 2024-01-01 +0:00 ", listing, re.M), listing
    # The partition after the FAT one is untouched.
    with open(image, "rb") as f:
        f.seek((BOOT_START + 64 * 2048) * 512)
        assert f.read(1 << 20) == b"\0" * (1 << 20)


@pytest.mark.parametrize("name", ["../etc/passwd", "/abs", "a/../b", "bad\nname", "nul\0", "", "a//b", ".hidden"])
def test_paths_that_escape_or_break_are_refused_before_writing(tmp_path, name):
    image = sfdisk_image(tmp_path / "os.img")
    before = os.path.getmtime(image), open(image, "rb").read()
    with pytest.raises(CarrierError, match="^" + re.escape("files[%r]: " % name)):
        F.copy_in(image, BOOT_START * 512, {"ok.txt": b"x", name: b"y"})
    assert (os.path.getmtime(image), open(image, "rb").read()) == before
    with pytest.raises(CarrierError, match="^name: "):
        F.read_file(image, BOOT_START * 512, name)


def test_copy_in_refusals(tmp_path):
    image = sfdisk_image(tmp_path / "os.img")
    with pytest.raises(CarrierError, match=r"files\['a'\]: the content must be bytes, got str"):
        F.copy_in(image, BOOT_START * 512, {"a": "text"})
    with pytest.raises(CarrierError, match=r"timestamp: 1 is not a time FAT can store"):
        F.copy_in(image, BOOT_START * 512, {"a": b"x"}, timestamp=1)


def test_disk_full_is_its_own_error(tmp_path):
    small = tmp_path / "small.img"
    small.write_bytes(b"")
    os.truncate(small, 1024 * 1024)
    subprocess.run(["mkfs.vfat", "-F", "12", str(small)], check=True, capture_output=True)
    with pytest.raises(F.FatFullError, match=r"^small: the FAT file system is full"):
        F.copy_in(str(small), 0, {"big.bin": os.urandom(2 * 1024 * 1024)}, what="small")


def test_mkfs_is_reproducible(tmp_path):
    digests = []
    for i in range(2):
        img = tmp_path / ("%d.img" % i)
        img.write_bytes(b"")
        os.truncate(img, 8 * 1024 * 1024)
        F.mkfs(str(img), "BOOT", "1234abcd", timestamp=1704067200)
        F.copy_in(str(img), 0, {"a/b.txt": b"hello"}, timestamp=1704067200)
        digests.append(img.read_bytes())
        if i == 0:
            time.sleep(1.1)
    assert digests[0] == digests[1]
    assert F.find_fat_partition(str(tmp_path / "0.img")) == (0, "a FAT file system without a partition table")


def test_runner_and_tools(tmp_path, monkeypatch):
    monkeypatch.setattr(F, "_RUNNER", None)
    with pytest.raises(CarrierError, match=r"^x: no command runner \(call _fat.set_runner first\)"):
        F.run(["mdir"], "x")
    monkeypatch.setattr(F, "_RUNNER", subprocess_runner)
    with pytest.raises(CarrierError, match="^x: no-such-tool-here is not installed"):
        F.run(["no-such-tool-here"], "x")
    with pytest.raises(CarrierError, match=r"^x: mdir -i failed \(rc 1\)"):
        F.run(["mdir", "-i", str(tmp_path / "none.img"), "::/"], "x")
    calls = []
    monkeypatch.setattr(F, "_RUNNER", lambda argv, env, cwd: calls.append((argv, env["TZ"])) or (0, "ok", ""))
    assert F.run(["mdir"], "x") == "ok" and calls == [(["mdir"], "UTC")]
    assert F.mtools_env(12.0)["SOURCE_DATE_EPOCH"] == "12"


def test_the_order_files_are_given_in_does_not_change_the_image(tmp_path):
    files = {"z.txt": b"z", "a/b.txt": b"b", "a/a.txt": b"a", "m": b"m" * 5000, "A2/x": b"x"}
    images = []
    for i, order in enumerate((sorted(files), sorted(files, reverse=True))):
        img = tmp_path / ("%d.img" % i)
        img.write_bytes(b"")
        os.truncate(img, 8 * 1024 * 1024)
        F.mkfs(str(img), "BOOT", "1234abcd", timestamp=1704067200)
        F.copy_in(str(img), 0, {name: files[name] for name in order}, timestamp=1704067200)
        images.append(img.read_bytes())
    assert images[0] == images[1]


def test_size_is_read_from_the_open_file(tmp_path, monkeypatch):
    # A block device's os.path.getsize is 0: the size comes from seeking to the end instead.
    image = sfdisk_image(tmp_path / "os.img")
    monkeypatch.setattr(os.path, "getsize", lambda path: 0)
    assert F.find_fat_partition(image)[0] == BOOT_START * 512
