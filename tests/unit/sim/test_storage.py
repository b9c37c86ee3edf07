# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The simulator's own partition-table and FAT reader (storage.py) on images made with sfdisk, mkfs.vfat and
mtools: MBR and GPT, FAT32 and FAT16, long file names, and the refusals a bootloader would fail on."""

from __future__ import annotations

import pytest

from carrier_sim import storage
from diskimages import make_image, needs_tools, rpi_files

pytestmark = needs_tools


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """One image per layout, made once for the module (mkfs and mcopy take a few hundredths of a second)."""
    base = tmp_path_factory.mktemp("images")
    files = rpi_files(hostname="node07")
    files["a-long-file-name.conf"] = b"x" * 70000  # several clusters, a long name
    out = {}
    for label, fat in (("dos", 32), ("gpt", 32), ("dos", 16)):
        out[(label, fat)] = make_image(str(base / ("%s%d.img" % (label, fat))), files, label=label, fat=fat)
    return out, files


@pytest.mark.parametrize("label,fat", [("dos", 32), ("gpt", 32), ("dos", 16)])
def test_reads_the_boot_partition_of_each_layout(images, label, fat):
    paths, files = images
    with storage.BootVolume(paths[(label, fat)]) as vol:
        assert vol.scheme == ("gpt" if label == "gpt" else "mbr")
        assert vol.partition.start == 8192 and vol.partition.index == 0
        assert len(vol.partitions) == 2
        assert vol.fat.bits == fat
        assert vol.fat.label.strip() == "bootfs"
        names = set(vol.fat.listdir())
        assert {"config.txt", "start4.elf", "meta-data", "user-data", "a-long-file-name.conf"} <= names
        for name, data in files.items():
            assert vol.fat.read(name) == data, name
        assert vol.fat.read("META-DATA") == files["meta-data"]  # FAT names are case-insensitive
        assert vol.fat.read("missing.txt") is None and not vol.fat.exists("missing.txt")


def test_gpt_header_and_partition_guids(images):
    paths, _files = images
    with storage.BootVolume(paths[("gpt", 32)]) as vol:
        disk_guid, first, _last, count, size, parts = vol.header
        assert count == 128 and size == 128 and first >= 34 and disk_guid.int
        assert parts[0].type in storage.GPT_FAT_TYPES and parts[1].type not in storage.GPT_FAT_TYPES


def test_blank_and_foreign_disks_are_refused(tmp_path):
    blank = tmp_path / "blank.img"
    blank.write_bytes(b"\x00" * 4096)
    assert not storage.written(str(blank))
    with pytest.raises(storage.StorageError, match="no partition table"):
        storage.BootVolume(str(blank))
    linux_only = make_image(str(tmp_path / "linux.img"), {}, size_mib=20, boot_mib=8)
    data = bytearray(open(linux_only, "rb").read(512))
    data[446 + 4] = 0x83  # the first partition's type: Linux, not FAT
    with open(linux_only, "r+b") as f:
        f.write(bytes(data))
    assert storage.written(linux_only)
    with pytest.raises(storage.StorageError, match="no FAT partition in the MBR"):
        storage.BootVolume(linux_only)
    wiped = make_image(str(tmp_path / "wiped.img"), {}, size_mib=20, boot_mib=8)
    with open(wiped, "r+b") as f:
        f.seek(8192 * 512)
        f.write(b"\x00" * 512)  # the FAT boot sector gone
    with pytest.raises(storage.StorageError, match="no FAT boot sector"):
        storage.BootVolume(wiped)


def test_a_corrupt_fat_is_a_storage_error_never_a_crash(images, tmp_path):
    """Whatever the bytes, the reader answers or raises StorageError: the node's boot must fail as a Pi's does."""
    import random
    import shutil

    paths, _files = images
    path = tmp_path / "corrupt.img"
    shutil.copyfile(paths[("dos", 32)], path)
    start, length = 8192 * 512, 1024 * 1024 + 16384  # the boot sector, the FATs and the root directory
    with open(path, "rb") as f:
        f.seek(start)
        region = f.read(length)
    rng = random.Random(3)
    for _round in range(200):
        data = bytearray(region)
        for _byte in range(rng.choice((1, 4, 16))):
            data[rng.randrange(11, 48)] = rng.randrange(256)  # the BIOS parameter block
        for _byte in range(64):
            data[rng.randrange(0, length)] = rng.randrange(256)
        with open(path, "r+b") as f:
            f.seek(start)
            f.write(data)
        try:
            with storage.BootVolume(str(path)) as vol:
                for name in vol.fat.listdir():
                    vol.fat.read(name)
                vol.fat.read("start4.elf")
        except storage.StorageError:
            pass  # anything else (struct.error, a negative seek) fails the test
