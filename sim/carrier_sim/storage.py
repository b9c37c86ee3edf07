# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A node's storage as its bootloader reads it: the partition table (MBR, GPT) and a FAT boot partition.

The simulator's own small reader, written from the on-disk formats (the MBR's four 16-byte entries at
0x1BE and the 0x55AA signature; GPT's header at LBA 1 and its 128-byte entries; the FAT BIOS parameter
block, the FAT chain and 32-byte directory entries with their VFAT long-name entries). It shares no code
with the collection: the simulator checks what the collection wrote, so it must not read it with the
collection's own code. Sectors are 512 bytes, as on an eMMC or an NVMe disk formatted for a Pi.
"""

from __future__ import annotations

import struct
import uuid

SECTOR = 512
# MBR partition types a Pi's bootloader takes as FAT: FAT12, FAT16 (<32M, >=32M, LBA), FAT32 (CHS, LBA).
FAT_TYPES = {0x01, 0x04, 0x06, 0x0B, 0x0C, 0x0E}
# GPT types: Microsoft basic data (mkfs.vfat's usual), EFI System.
GPT_FAT_TYPES = {uuid.UUID("ebd0a0a2-b9e5-4433-87c0-68b6b72699c7"), uuid.UUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b")}


class StorageError(Exception):
    """What a bootloader would fail on: no partition table, no FAT, a broken chain."""


class Partition:
    def __init__(self, index, start, sectors, ptype, guid=None):
        self.index = index  # 0-based, as the bootloader's "Trying partition: N"
        self.start = start  # LBA
        self.sectors = sectors
        self.type = ptype  # an int (MBR) or a uuid.UUID (GPT)
        self.guid = guid  # the GPT partition's unique GUID

    @property
    def is_fat(self):
        return self.type in FAT_TYPES or self.type in GPT_FAT_TYPES


def _read(f, offset, size):
    f.seek(offset)
    data = f.read(size)
    if len(data) != size:
        raise StorageError("short read at byte %d (the disk is %s)" % (offset, "smaller" if data else "too small"))
    return data


def read_mbr(f):
    """The four MBR entries as (start, sectors, type) tuples; StorageError when there is no MBR."""
    sector = _read(f, 0, SECTOR)
    if sector[510:512] != b"\x55\xaa":
        raise StorageError("no partition table (no MBR signature 0x55aa)")
    entries = []
    for n in range(4):
        raw = sector[446 + 16 * n: 446 + 16 * (n + 1)]
        ptype = raw[4]
        start, sectors = struct.unpack("<II", raw[8:16])
        entries.append((start, sectors, ptype))
    return entries


def read_gpt(f):
    """(disk GUID, first usable LBA, last usable LBA, entry count, entry size, [Partition])."""
    header = _read(f, SECTOR, 92)
    if header[:8] != b"EFI PART":
        raise StorageError("protective MBR but no GPT header at LBA 1")
    disk_guid = uuid.UUID(bytes_le=header[56:72])
    first, last = struct.unpack("<QQ", header[40:56])
    entries_lba, count, size = struct.unpack("<QII", header[72:88])
    if not 128 <= size <= 4096 or count > 1024:
        raise StorageError("GPT header: %d entries of %d bytes is not a GPT" % (count, size))
    table = _read(f, entries_lba * SECTOR, count * size)
    parts = []
    for n in range(count):
        raw = table[n * size: n * size + 128]
        ptype = uuid.UUID(bytes_le=raw[0:16])
        if ptype.int == 0:
            continue
        start, end = struct.unpack("<QQ", raw[32:48])
        parts.append(Partition(n, start, end - start + 1, ptype, uuid.UUID(bytes_le=raw[16:32])))
    return disk_guid, first, last, count, size, parts


def partitions(f):
    """The partition table: ``("mbr", entries, [Partition])`` or ``("gpt", header, [Partition])``."""
    entries = read_mbr(f)
    if any(ptype == 0xEE for _s, _n, ptype in entries):
        header = read_gpt(f)
        return "gpt", header, header[5]
    parts = [Partition(n, start, sectors, ptype) for n, (start, sectors, ptype) in enumerate(entries)
             if ptype and sectors]
    return "mbr", entries, parts


class Fat:
    """A FAT12/16/32 file system at byte ``offset`` of ``f``: enough to list and read files by path."""

    def __init__(self, f, offset=0):
        self.f = f
        self.offset = offset
        bpb = _read(f, offset, SECTOR)
        if bpb[510:512] != b"\x55\xaa":
            raise StorageError("no FAT boot sector at byte %d" % offset)
        (self.bytes_per_sector, self.sectors_per_cluster, self.reserved, self.fats, self.root_entries,
         total16, _media, fat16_size) = struct.unpack("<HBHBHHBH", bpb[11:24])
        total32, = struct.unpack("<I", bpb[32:36])
        if self.bytes_per_sector not in (512, 1024, 2048, 4096) or not self.sectors_per_cluster or not self.fats:
            raise StorageError("not a FAT file system at byte %d (bad BIOS parameter block)" % offset)
        self.fat_size = fat16_size or struct.unpack("<I", bpb[36:40])[0]
        self.total = total16 or total32
        self.oem = bpb[3:11].decode("latin-1")
        root_sectors = (self.root_entries * 32 + self.bytes_per_sector - 1) // self.bytes_per_sector
        self.first_data = self.reserved + self.fats * self.fat_size + root_sectors
        self.clusters = (self.total - self.first_data) // self.sectors_per_cluster
        if self.clusters < 1 or not self.fat_size:
            raise StorageError("not a FAT file system at byte %d (no data clusters)" % offset)
        self.bits = 12 if self.clusters < 4085 else 16 if self.clusters < 65525 else 32
        if self.bits == 32:
            self.root_cluster, = struct.unpack("<I", bpb[44:48])
            self.label = bpb[71:82].decode("latin-1")
        else:
            self.root_cluster = 0
            self.label = bpb[43:54].decode("latin-1")
        self.root_sectors = root_sectors
        self._fat = None

    # --- clusters ---------------------------------------------------------------------------------------
    def _sector(self, n):
        return self.offset + n * self.bytes_per_sector

    def _table(self):
        if self._fat is None:
            self._fat = _read(self.f, self._sector(self.reserved), self.fat_size * self.bytes_per_sector)
        return self._fat

    def _next(self, cluster):
        table = self._table()
        if (cluster * self.bits + 7) // 8 + 4 > len(table):
            raise StorageError("cluster %d is past the end of the FAT (%d bytes)" % (cluster, len(table)))
        if self.bits == 32:
            return struct.unpack_from("<I", table, cluster * 4)[0] & 0x0FFFFFFF
        if self.bits == 16:
            return struct.unpack_from("<H", table, cluster * 2)[0]
        pair = struct.unpack_from("<H", table, cluster * 3 // 2)[0]
        return pair >> 4 if cluster & 1 else pair & 0xFFF

    def chain(self, cluster):
        end = {12: 0xFF8, 16: 0xFFF8, 32: 0x0FFFFFF8}[self.bits]
        seen = 0
        while 2 <= cluster < end:
            if cluster >= self.clusters + 2:
                raise StorageError("cluster %d is past the end of the file system" % cluster)
            yield cluster
            seen += 1
            if seen > self.clusters:
                raise StorageError("a FAT chain loops")
            cluster = self._next(cluster)

    def _cluster_data(self, cluster):
        size = self.sectors_per_cluster * self.bytes_per_sector
        return _read(self.f, self._sector(self.first_data + (cluster - 2) * self.sectors_per_cluster), size)

    # --- directories ------------------------------------------------------------------------------------
    def _dir_bytes(self, cluster):
        if cluster == 0 and self.bits != 32:  # FAT12/16: the fixed root directory area
            start = self.reserved + self.fats * self.fat_size
            return _read(self.f, self._sector(start), self.root_sectors * self.bytes_per_sector)
        return b"".join(self._cluster_data(c) for c in self.chain(cluster or self.root_cluster))

    def listdir(self, cluster=0):
        """``{name: (is_dir, first cluster, size)}`` of a directory, long names where there are some."""
        data = self._dir_bytes(cluster)
        out = {}
        lfn = []
        for i in range(0, len(data), 32):
            entry = data[i:i + 32]
            if entry[0] == 0:
                break
            if entry[0] == 0xE5:
                lfn = []
                continue
            attr = entry[11]
            if attr == 0x0F:  # a VFAT long-name piece: 13 UCS-2 characters, last piece first
                piece = entry[1:11] + entry[14:26] + entry[28:32]
                lfn.insert(0, piece.decode("utf-16-le", "replace"))
                continue
            if attr & 0x08:  # the volume label
                lfn = []
                continue
            base, ext = entry[0:8].decode("latin-1").rstrip(), entry[8:11].decode("latin-1").rstrip()
            if entry[12] & 0x08:
                base = base.lower()
            if entry[12] & 0x10:
                ext = ext.lower()
            short = base + ("." + ext if ext else "")
            name = "".join(lfn).split("\x00", 1)[0] if lfn else short
            lfn = []
            if short in (".", ".."):
                continue
            hi, lo = struct.unpack("<H", entry[20:22])[0], struct.unpack("<H", entry[26:28])[0]
            size, = struct.unpack("<I", entry[28:32])
            out[name] = (bool(attr & 0x10), (hi << 16 | lo) if self.bits == 32 else lo, size)
        return out

    def lookup(self, path):
        """``(is_dir, cluster, size)`` of ``path`` (``/`` separated, case-insensitive as FAT is), or None."""
        cluster = 0
        found = (True, 0, 0)
        for part in [p for p in path.split("/") if p]:
            if not found[0]:
                return None
            entries = {name.lower(): value for name, value in self.listdir(cluster).items()}
            found = entries.get(part.lower())
            if found is None:
                return None
            cluster = found[1]
        return found

    def read(self, path):
        """The bytes of the file at ``path``, or None when there is no such file."""
        found = self.lookup(path)
        if found is None or found[0]:
            return None
        _is_dir, cluster, size = found
        data = bytearray()
        for c in self.chain(cluster):
            data += self._cluster_data(c)
            if len(data) >= size:
                break
        if len(data) < size:
            raise StorageError("%s: its cluster chain holds %d of its %d bytes" % (path, len(data), size))
        return bytes(data[:size])

    def exists(self, path):
        found = self.lookup(path)
        return found is not None and not found[0]


class BootVolume:
    """The boot partition of a disk image as the bootloader finds it: the first FAT partition."""

    def __init__(self, path):
        self.path = path
        self.f = open(path, "rb")
        try:
            self.scheme, self.header, self.partitions = partitions(self.f)
            fat_parts = [p for p in self.partitions if p.is_fat]
            if not fat_parts:
                raise StorageError("no FAT partition in the %s partition table" % self.scheme.upper())
            self.partition = fat_parts[0]
            self.fat = Fat(self.f, self.partition.start * SECTOR)
        except BaseException:
            self.f.close()
            raise

    def close(self):
        self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def written(path):
    """True when the image's first sector holds anything (a never-written eMMC reads as zeros)."""
    try:
        with open(path, "rb") as f:
            return any(f.read(SECTOR))
    except OSError:
        return False
