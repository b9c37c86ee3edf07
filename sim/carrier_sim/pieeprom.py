# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bootloader EEPROM image and ``.sig`` files as the bootloader and recovery.bin read them
(docs/hardware.md section 4).

The simulator is the oracle that the collection's EEPROM code is tested against, so this is its own
reading of the format, written from the documented facts, with none of the collection's code:

- an image is 512 KiB (BCM2711) or 2 MiB (BCM2712), a chain of sections from offset 0 (big-endian
  magic and length, the next one 8-byte aligned), ending at a magic of 0 or 0xffffffff;
- named files (magic 0x55aaf11f: a 12-byte name, 4 reserved bytes, the data) are looked up in the
  running partition: the whole image but its last 4 KiB, or, in a BCM2712 A/B image (``bootsys``
  at 0x10008), partition A from 0x10000;
- a ``.sig``: the sha256 of the file, ``ts: <seconds>``, an optional ``rsa2048: <hex>`` (PKCS#1 v1.5
  over SHA-256) checked with the ``pubkey.bin`` of the EEPROM (256-byte little-endian modulus, then
  an 8-byte little-endian exponent).

:func:`synthetic_image` and :meth:`Pieeprom.with_file` make the simulator's own firmware and the
image a node starts with (what Raspberry Pi's tools do before flashing, not the bootloader).
"""

from __future__ import annotations

import functools
import hashlib
import re
import struct

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError

SOC_BY_SIZE = {524288: "bcm2711", 2097152: "bcm2712"}
SIZE_BY_SOC = {soc: size for size, soc in SOC_BY_SIZE.items()}
MAGIC_MASK, MAGIC_ANY = 0xFFFFF00F, 0x55AAF00F
BOOTCODE, PADDING, FILE, CODE = 0x55AAF00F, 0x55AAFEEF, 0x55AAF11F, 0x55AAF44F
CHAIN_END = (0x00000000, 0xFFFFFFFF)
SCRATCH = 4096  # the bootloader's own last 4 KiB
SECTOR = 4096  # an erase sector: recovery.bin erases and writes the EEPROM by 4 KiB
FILE_HEADER = 24  # magic, length, name (12), reserved (4)
MAX_FILE_DATA = SECTOR - 20
AB_START, AB_MARK_AT, AB_MARK, AB_JOURNAL = 0x10000, 0x10008, b"bootsys", 8192
BOOTCONF_TXT, PUBKEY_BIN = "bootconf.txt", "pubkey.bin"


def _aligned(n):
    return (n + 7) // 8 * 8


def _chain(data, label, start=0, end=None):
    """``[(offset, magic, length, name)]`` from ``start`` (below ``end``); CarrierError where it is corrupt."""
    end = len(data) if end is None else end
    sections = []
    offset = start
    while offset + 8 <= end:
        magic, length = struct.unpack_from(">II", data, offset)
        if magic in CHAIN_END:
            break
        if magic & MAGIC_MASK != MAGIC_ANY:
            raise CarrierError("%s: corrupt section magic 0x%08x at 0x%x" % (label, magic, offset))
        if offset + 8 + length > len(data):
            raise CarrierError("%s: section at 0x%x runs past the end of the image" % (label, offset))
        name = None
        if magic == FILE:
            if length < FILE_HEADER - 8:
                raise CarrierError("%s: file section at 0x%x is shorter than its header" % (label, offset))
            name = data[offset + 8:offset + 20].split(b"\0", 1)[0].decode("ascii", "replace")
        sections.append((offset, magic, length, name))
        offset = _aligned(offset + 8 + length)
    return sections


# Images made by with_file, shared: a rack of nodes with the same config holds one 512 KiB image,
# not one each (a Pieeprom is never changed after it is made; a node's flash replaces it).
_WITH_FILE = {}
_WITH_FILE_MAX = 32


class Pieeprom:
    """A bootloader image: ``soc``, ``ab``, the files of the running partition."""

    def __init__(self, data, label="image"):
        self.data = bytes(data)
        self.label = label
        size = len(self.data)
        if size not in SOC_BY_SIZE:
            raise CarrierError("%s: %d bytes is not a bootloader image (524288 or 2097152 bytes)" % (label, size))
        self.soc = SOC_BY_SIZE[size]
        self.ab = size == SIZE_BY_SOC["bcm2712"] and self.data[AB_MARK_AT:AB_MARK_AT + len(AB_MARK)] == AB_MARK
        if self.ab:
            self.partition = (AB_START, AB_START + (size - AB_START - AB_JOURNAL) // 2)
        else:
            self.partition = (0, size - SCRATCH)
        # the whole chain must be sound; the files are those of the running partition, whose chain
        # starts at its first byte
        sections = _chain(self.data, label)
        self.sections = _chain(self.data, label, *self.partition) if self.ab else sections

    def _file(self, name):
        for offset, magic, length, found in self.sections:
            if magic == FILE and found == name:
                return offset, length - (FILE_HEADER - 8)
        return None

    def has_file(self, name):
        return self._file(name) is not None

    def file(self, name):
        """The data of the named file of the running partition; CarrierError when there is none."""
        found = self._file(name)
        if found is None:
            raise CarrierError("%s: no %s in the image" % (self.label, name))
        offset, length = found
        return self.data[offset + FILE_HEADER:offset + FILE_HEADER + length]

    @property
    def config(self):
        """The text of ``bootconf.txt``."""
        raw = self.file(BOOTCONF_TXT)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CarrierError("%s: bootconf.txt is not UTF-8 text" % self.label) from None

    def with_file(self, name, content):
        """A new image with the file's data replaced, laid out as Raspberry Pi's tools write it."""
        content = bytes(content)
        found = self._file(name)
        if found is None:
            raise CarrierError("%s: no %s in the image" % (self.label, name))
        if len(content) > MAX_FILE_DATA:
            raise CarrierError("%s: %s of %d bytes: at most %d fit" % (self.label, name, len(content), MAX_FILE_DATA))
        start = found[0]
        after = [s for s in self.sections if s[0] > start]
        limit = next((s[0] for s in after if s[1] != PADDING), self.partition[1])
        end = start + FILE_HEADER + len(content)
        if _aligned(end) > limit or limit > len(self.data) - SCRATCH:
            raise CarrierError("%s: %s of %d bytes does not fit before 0x%x" % (self.label, name, len(content), limit))
        key = (self.data, name, bytes(content))
        cached = _WITH_FILE.get(key)
        if cached is not None:
            return cached
        out = bytearray(self.data)
        struct.pack_into(">I", out, start + 4, len(content) + FILE_HEADER - 8)
        out[start + FILE_HEADER:end] = content
        out[end:limit] = b"\xff" * (limit - end)
        gap = limit - _aligned(end)
        if after and gap >= 8:
            struct.pack_into(">II", out, _aligned(end), PADDING, gap - 8)
        image = Pieeprom(bytes(out), self.label)
        if len(_WITH_FILE) >= _WITH_FILE_MAX:
            _WITH_FILE.pop(next(iter(_WITH_FILE)))
        _WITH_FILE[key] = image
        return image

    def with_config(self, text):
        return self.with_file(BOOTCONF_TXT, text.encode("utf-8"))

    def public_key(self):
        """The customer key of ``pubkey.bin`` (a ``cryptography`` RSA key), or None when the image has
        none or it is blank or not a key."""
        if not self.has_file(PUBKEY_BIN):
            return None
        raw = self.file(PUBKEY_BIN)
        if len(raw) < 264:
            return None
        modulus = int.from_bytes(raw[:256], "little")
        exponent = int.from_bytes(raw[256:264], "little")
        try:
            from cryptography.hazmat.primitives.asymmetric import rsa
            return rsa.RSAPublicNumbers(exponent, modulus).public_key()
        except (ImportError, ValueError):
            return None


@functools.lru_cache(maxsize=8)
def synthetic_image(soc, config):
    """The simulator's bootloader firmware: made-up code in the real section layout, then ``pubkey.bin``
    (blank), ``bootconf.sig`` and ``bootconf.txt`` each in a 4 KiB sector of their own; a BCM2712
    image is an A/B image with them in partition A."""
    size = SIZE_BY_SOC[soc]
    out = bytearray(b"\xff" * size)
    filler = hashlib.sha256(b"carrier-sim firmware " + soc.encode()).digest()

    def section(offset, magic, payload):
        out[offset:offset + 8 + len(payload)] = struct.pack(">II", magic, len(payload)) + payload
        return _aligned(offset + 8 + len(payload))

    def pad(offset, target):
        return section(offset, PADDING, b"\xff" * (target - offset - 8)) if target - offset >= 8 else target

    def named(name, data):
        return name.encode("ascii").ljust(12, b"\0") + b"\0" * 4 + data

    def code(length):
        return (filler * (length // len(filler) + 1))[:length]

    offset = section(0, BOOTCODE, code(24000))
    if soc == "bcm2712":
        offset = pad(offset, AB_START)
        offset = section(offset, FILE, named("bootsys", code(32000)))
    offset = section(offset, CODE, code(64000))
    for name, data in ((PUBKEY_BIN, b"\0" * 264), ("bootconf.sig", b"\0" * 1024)):
        offset = pad(offset, (offset + SECTOR - 1) // SECTOR * SECTOR)
        offset = section(offset, FILE, named(name, data))
    offset = pad(offset, (offset + SECTOR - 1) // SECTOR * SECTOR)
    section(offset, FILE, named(BOOTCONF_TXT, config.encode("utf-8")))
    return bytes(out)


class Sig:
    def __init__(self, sha256, ts, rsa2048=None):
        self.sha256 = sha256
        self.ts = ts
        self.rsa2048 = rsa2048


def parse_sig(text, label):
    """A ``.sig`` file -> :class:`Sig`; CarrierError ``<label>: bad .sig file: ...``."""
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or not re.fullmatch(r"[0-9a-f]{64}", lines[0]):
        raise CarrierError("%s: bad .sig file: no sha256 on its first line" % label)
    ts = rsa2048 = None
    for line in lines[1:]:
        key, _sep, value = line.partition(":")
        value = value.strip()
        if key == "ts" and re.fullmatch(r"\d+", value):
            ts = int(value)
        elif key == "rsa2048" and re.fullmatch(r"[0-9a-fA-F]{512}", value):
            rsa2048 = bytes.fromhex(value)
        elif key in ("ts", "rsa2048"):
            raise CarrierError("%s: bad .sig file: %s %r" % (label, key, value))
    if ts is None:
        raise CarrierError("%s: bad .sig file: no ts: line" % label)
    return Sig(lines[0], ts, rsa2048)


def check_sig(data, text, label, public_key=None):
    """The checks of a download (and, with ``public_key``, of its signature); returns the :class:`Sig`."""
    sig = parse_sig(text, label)
    digest = hashlib.sha256(data).hexdigest()
    if sig.sha256 != digest:
        raise CarrierError("%s: bad .sig file: sha256 %s, the file's is %s" % (label, sig.sha256, digest))
    if public_key is not None:
        if sig.rsa2048 is None:
            raise CarrierError("%s: bad .sig file: no rsa2048 signature" % label)
        if not _rsa_verifies(public_key, data, sig.rsa2048):
            raise CarrierError("%s: bad .sig file: the rsa2048 signature does not verify with the EEPROM's key"
                               % label)
    return sig


def _rsa_verifies(public_key, data, signature):
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    try:
        public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True
