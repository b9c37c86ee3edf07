# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pieeprom image format (docs/hardware.md section 4): the section chain, named files, BCM2712 A/B images.

:class:`EepromImage` parses an image (both sizes), lists its sections, reads and replaces its named
files (``bootconf.txt``, ``pubkey.bin`` ...) with the padding rules of Raspberry Pi's own tools, so
that writing back the same config gives a byte-identical image. :func:`make_synthetic_image` makes
an image in the same format for tests and benchmarks.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass

from ansible_collections.picluster.carrier.plugins.module_utils._eeprom.config import decode_config, encode_config
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError

#: Valid image sizes and the SoC each belongs to.
IMAGE_SIZES = {524288: "bcm2711", 2097152: "bcm2712"}
#: The last 4 KiB of an image is the bootloader's scratch space: never written.
SCRATCH_SIZE = 4096
MAGIC_MASK = 0xFFFFF00F
MAGIC_BASE = 0x55AAF00F
MAGIC_BOOTCODE = 0x55AAF00F
MAGIC_PAD = 0x55AAFEEF
MAGIC_FILE = 0x55AAF11F
#: Chain terminators.
MAGIC_END = (0x00000000, 0xFFFFFFFF)
#: magic (4) + length (4) + name (12) + reserved (4).
FILE_HEADER_SIZE = 24
FILE_NAME_SIZE = 12
#: A file section's length field counts the name and the reserved word, not magic/length.
FILE_LENGTH_EXTRA = 16
#: Max data per file: one 4 KiB erase sector minus the 20-byte header (name, reserved, length).
MAX_FILE_DATA = 4076
#: BCM2712 A/B images: a 64 KiB read-only region, then partitions A and B of equal size, the
#: last 8 KiB outside both; ``bootsys`` at 0x10008 marks such an image and the files of the
#: running bootloader are searched in partition A from 0x10000.
AB_PARTITION_OFFSET = 0x10000
AB_MARK_OFFSET = 0x10008
AB_MARK = b"bootsys"
AB_TAIL_SIZE = 8192

BOOTCONF_TXT = "bootconf.txt"
BOOTCONF_SIG = "bootconf.sig"
PUBKEY_BIN = "pubkey.bin"

SECTION_KINDS = {
    MAGIC_BOOTCODE: "bootcode",
    MAGIC_PAD: "padding",
    MAGIC_FILE: "file",
    0x55AAF33F: "f33f",
    0x55AAF44F: "f44f",
}


def _align8(n):
    return (n + 7) & ~7


@dataclass(frozen=True)
class Section:
    """One section of the chain: where it is, its magic, its length field, its file name."""

    offset: int
    magic: int
    length: int
    name: str | None = None

    @property
    def kind(self):
        return SECTION_KINDS.get(self.magic, "0x%08x" % self.magic)

    @property
    def end(self):
        """First byte after the section's declared content."""
        return self.offset + 8 + self.length

    @property
    def next_offset(self):
        return _align8(self.end)

    @property
    def data_offset(self):
        return self.offset + FILE_HEADER_SIZE

    @property
    def data_length(self):
        return self.length - FILE_LENGTH_EXTRA


def _walk(data, start, end, label):
    """Walk the section chain from ``start`` while below ``end``; raise on corrupt/truncated."""
    sections = []
    offset = start
    size = len(data)
    while offset + 8 <= end:
        magic, length = struct.unpack_from(">II", data, offset)
        if magic in MAGIC_END:
            break
        if magic & MAGIC_MASK != MAGIC_BASE:
            raise CarrierError(
                "%s: corrupt magic 0x%08x at offset 0x%x (expected 0x55aafXXf): not a valid bootloader image"
                % (label, magic, offset)
            )
        if offset + 8 + length > size:
            raise CarrierError(
                "%s: truncated image: section 0x%08x at offset 0x%x has length %d, past the end of the %d-byte image"
                % (label, magic, offset, length, size)
            )
        name = None
        if magic == MAGIC_FILE:
            if length < FILE_LENGTH_EXTRA:
                raise CarrierError(
                    "%s: corrupt file section at offset 0x%x: length %d is shorter than its header"
                    % (label, offset, length)
                )
            raw = bytes(data[offset + 8:offset + 8 + FILE_NAME_SIZE])
            name = raw.split(b"\0", 1)[0].decode("ascii", "replace")
        sections.append(Section(offset, magic, length, name))
        offset = _align8(offset + 8 + length)
    return sections


def _size_error(label, size):
    return CarrierError(
        "%s: wrong size %d bytes: a bootloader image is 524288 (BCM2711) or 2097152 (BCM2712) bytes%s"
        % (label, size, " (truncated?)" if size < 2097152 else "")
    )


class EepromImage:
    """A bootloader EEPROM image in memory.

    ``EepromImage(data, label)`` validates the size and the section chain. ``label`` names the
    image in error messages (a path, usually).
    """

    def __init__(self, data, label="image"):
        self.label = label
        size = len(data)
        if size not in IMAGE_SIZES:
            raise _size_error(label, size)
        self._data = bytearray(data)
        self.size = size
        self.soc = IMAGE_SIZES[size]
        self.ab = size == 2097152 and bytes(self._data[AB_MARK_OFFSET:AB_MARK_OFFSET + len(AB_MARK)]) == AB_MARK
        if self.ab:
            half = (size - AB_PARTITION_OFFSET - AB_TAIL_SIZE) // 2
            self.region = (AB_PARTITION_OFFSET, AB_PARTITION_OFFSET + half)
        else:
            self.region = (0, size - SCRATCH_SIZE)
        # The whole chain from 0 must be sound; the files are those of the region.
        self.sections = _walk(self._data, 0, size, label)
        self.region_sections = (
            _walk(self._data, self.region[0], self.region[1], label) if self.ab else list(self.sections)
        )

    @classmethod
    def from_file(cls, path):
        try:
            size = os.path.getsize(path)
            if size not in IMAGE_SIZES:
                raise _size_error(path, size)
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise CarrierError("%s: cannot read the image: %s" % (path, e.strerror or e)) from e
        return cls(data, label=path)

    def to_bytes(self):
        return bytes(self._data)

    @property
    def sha256(self):
        return hashlib.sha256(self._data).hexdigest()

    def copy(self):
        return EepromImage(bytes(self._data), self.label)

    # -- files --

    def file_names(self):
        return [s.name for s in self.region_sections if s.magic == MAGIC_FILE]

    def _find(self, name):
        for i, s in enumerate(self.region_sections):
            if s.magic == MAGIC_FILE and s.name == name:
                return i, s
        raise CarrierError(
            "%s: file %r not found in the image (files: %s)" % (self.label, name, ", ".join(self.file_names()))
        )

    def has_file(self, name):
        return name in self.file_names()

    def get_file(self, name):
        s = self._find(name)[1]
        return bytes(self._data[s.data_offset:s.data_offset + s.data_length])

    def replace_file(self, name, content):
        """Replace the data of the named file in place (docs/hardware.md section 4).

        The length and data are rewritten and padded with 0xFF to the next 8-byte boundary.
        When sections follow, the gap up to the next non-padding section (or the end of the
        region) becomes one padding section; when none follows, the rest up to the end of the
        region is erased to 0xFF. Nothing is written in the last 4 KiB (or outside partition A
        of an A/B image).
        """
        content = bytes(content)
        if len(content) > MAX_FILE_DATA:
            raise CarrierError(
                "%s: %s is too big: %d bytes, the maximum is %d" % (self.label, name, len(content), MAX_FILE_DATA)
            )
        index, s = self._find(name)
        following = self.region_sections[index + 1:]
        bound = self.region[1]
        next_offset = bound
        for f in following:
            if f.magic != MAGIC_PAD:
                next_offset = f.offset
                break
        data_end = s.data_offset + len(content)
        aligned_end = _align8(data_end)
        if aligned_end > next_offset:
            raise CarrierError(
                "%s: new %s (%d bytes) does not fit: %d bytes of room before the next section at 0x%x"
                % (self.label, name, len(content), next_offset - s.data_offset, next_offset)
            )
        if next_offset > self.size - SCRATCH_SIZE:  # the bootloader's last 4 KiB (docs/hardware.md section 4)
            raise CarrierError("%s: refusing to write into the last 4 KiB (up to 0x%x)" % (self.label, next_offset))
        d = self._data
        struct.pack_into(">I", d, s.offset + 4, len(content) + FILE_LENGTH_EXTRA)
        d[s.data_offset:data_end] = content
        d[data_end:aligned_end] = b"\xff" * (aligned_end - data_end)
        gap = next_offset - aligned_end
        if following and gap >= 8:
            struct.pack_into(">II", d, aligned_end, MAGIC_PAD, gap - 8)
            d[aligned_end + 8:next_offset] = b"\xff" * (gap - 8)
        else:
            d[aligned_end:next_offset] = b"\xff" * gap
        self._reparse()

    def _reparse(self):
        self.sections = _walk(self._data, 0, self.size, self.label)
        self.region_sections = (
            _walk(self._data, self.region[0], self.region[1], self.label) if self.ab else list(self.sections)
        )

    # -- config --

    @property
    def config(self):
        """The ``bootconf.txt`` text."""
        return decode_config(self.get_file(BOOTCONF_TXT), "%s: bootconf.txt" % self.label)

    def set_config(self, text):
        data = encode_config(text)
        self.replace_file(BOOTCONF_TXT, data)

    def with_config(self, text):
        new = self.copy()
        new.set_config(text)
        return new

    def set_pubkey(self, pubkey_bin):
        if len(pubkey_bin) != 264:
            raise CarrierError("pubkey.bin: expected 264 bytes (modulus + exponent), got %d" % len(pubkey_bin))
        self.replace_file(PUBKEY_BIN, pubkey_bin)


def _section_bytes(magic, payload):
    return struct.pack(">II", magic, len(payload)) + payload


def _file_payload(name, data):
    return name.encode("ascii").ljust(FILE_NAME_SIZE, b"\0") + b"\0\0\0\0" + data


def make_synthetic_image(soc="bcm2711", config="[all]\nBOOT_UART=0\n", ab=None, seed=1):
    """An image in the real section format with made-up code bytes (for tests, benchmarks, the simulator).

    Layout like Raspberry Pi's: bootcode, a code section (0x55AAF44F ``bootmain``), then ``pubkey.bin``,
    ``bootconf.sig`` each alone in a 4 KiB sector, ``bootconf.txt`` last. ``ab`` (default: True for
    bcm2712) makes a BCM2712 A/B image with the files in a ``bootsys`` partition at 0x10000.
    """
    size = {v: k for k, v in IMAGE_SIZES.items()}[soc]
    if ab is None:
        ab = soc == "bcm2712"
    if ab and soc != "bcm2712":
        raise CarrierError("ab: only BCM2712 images have A/B partitions")
    data = bytearray(b"\xff" * size)
    rng = hashlib.sha256(b"picluster-%d" % seed).digest()

    def code(n):
        return (rng * (n // len(rng) + 1))[:n]

    def put(offset, magic, payload):
        blob = _section_bytes(magic, payload)
        data[offset:offset + len(blob)] = blob
        return _align8(offset + len(blob))

    def pad_to(offset, target):
        if target - offset >= 8:
            put(offset, MAGIC_PAD, b"\xff" * (target - offset - 8))
        return target

    off = put(0, MAGIC_BOOTCODE, code(20000))
    if ab:
        off = pad_to(off, AB_PARTITION_OFFSET)
        off = put(off, MAGIC_FILE, _file_payload("bootsys", code(30000)))
        end = AB_PARTITION_OFFSET + (size - AB_PARTITION_OFFSET - AB_TAIL_SIZE) // 2
    else:
        end = size - SCRATCH_SIZE
    off = put(off, 0x55AAF44F, b"bootmain".ljust(16, b"\0") + code(60000))
    off = pad_to(off, (off + 4095) & ~4095)
    for name, blob in ((PUBKEY_BIN, b"\0" * 512), (BOOTCONF_SIG, b"\0" * 1024)):
        off = put(off, MAGIC_FILE, _file_payload(name, blob))
        off = pad_to(off, (off + 4095) & ~4095)
    off = put(off, MAGIC_FILE, _file_payload(BOOTCONF_TXT, encode_config(config)))
    if ab:
        off = pad_to(off, end)
        pad_to(end, size - AB_TAIL_SIZE)
    return bytes(data)
