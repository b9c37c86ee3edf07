# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Raspberry Pi bootloader EEPROM images, their config, BOOT_ORDER and ``.sig`` files.

Plain Python (no Ansible import): the modules ``eeprom_image`` and ``eeprom_config``, the
simulator and the tests use it. The facts come from ``HARDWARE.md`` sections 4 and 5; the
section comments below cite them.

Pieces:

- :class:`EepromImage`: parse an image (both sizes, BCM2712 A/B images), list its sections,
  read and replace its named files (``bootconf.txt``, ``pubkey.bin`` ...) with the padding rules
  of the firmware tools, so that writing back the same config gives a byte-identical image.
- :class:`BootConfig`: parse/render the config text keeping comments, blank lines and section
  filters; get/set/remove keys inside one section.
- :func:`encode_boot_order` / :func:`decode_boot_order`: BOOT_ORDER names <-> hex.
- :func:`validate_config`: known keys and their ranges (warnings for unknown keys).
- :func:`make_sig` / :func:`parse_sig` / :func:`verify_sig`: the ``.sig`` text files, with an
  optional ``rsa2048:`` PKCS#1 v1.5 / SHA-256 signature (``cryptography``, imported lazily).
- :func:`plan_image_files` and :func:`plan_node_update`: what the modules write, computed
  without writing anything (check mode), then :func:`write_planned` writes it atomically.
"""

from __future__ import annotations

import datetime
import glob
import hashlib
import ipaddress
import os
import re
import struct
import time
from dataclasses import dataclass, field

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._fileio import atomic_write, read_optional
from ansible_collections.picluster.carrier.plugins.module_utils._keys import pubkey_bin, rsa_sign, rsa_verify

# --- Image format (HARDWARE.md section 4) ---------------------------------------------------

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

#: Max size of the config text (HARDWARE.md section 5).
MAX_CONFIG_SIZE = MAX_FILE_DATA

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
        """Replace the data of the named file in place (HARDWARE.md section 4).

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
        if next_offset > self.size - SCRATCH_SIZE:  # the bootloader's last 4 KiB (HARDWARE.md section 4)
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
        return _decode_config(self.get_file(BOOTCONF_TXT), "%s: bootconf.txt" % self.label)

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


def _decode_config(raw, label):
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CarrierError("%s: not UTF-8 text (byte %d)" % (label, e.start)) from e


def encode_config(text):
    """The bytes of a config text; CarrierError when over 4076 bytes (HARDWARE.md section 5)."""
    data = text.encode("utf-8")
    if len(data) > MAX_CONFIG_SIZE:
        raise CarrierError("config: too big: %d bytes, the maximum is %d" % (len(data), MAX_CONFIG_SIZE))
    return data


# --- Config text (HARDWARE.md section 5) -----------------------------------------------------


@dataclass
class ConfigLine:
    raw: str
    kind: str  # blank | comment | section | setting | other
    section: str
    key: str | None = None
    value: str | None = None


_SETTING_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$")


def _classify(raw, section):
    text = raw.strip()
    if not text:
        return ConfigLine(raw, "blank", section)
    if text.startswith("#"):
        return ConfigLine(raw, "comment", section)
    if text.startswith("[") and text.endswith("]"):
        return ConfigLine(raw, "section", text[1:-1].strip())
    m = _SETTING_RE.match(raw)
    if m:
        return ConfigLine(raw, "setting", section, m.group(1), m.group(2).strip())
    return ConfigLine(raw, "other", section)


class BootConfig:
    """The bootloader config text as lines, rendered back exactly as parsed.

    Lines before the first ``[filter]`` belong to ``all`` (as in config.txt). ``set``/``remove``
    act on the blocks of one section filter and leave every other line untouched.
    """

    def __init__(self, lines=None, trailing_newline=True):
        self.lines = list(lines or [])
        self.trailing_newline = trailing_newline

    @classmethod
    def parse(cls, text):
        trailing = text.endswith("\n")
        body = text[:-1] if trailing else text
        lines = []
        section = "all"
        if text:
            for raw in body.split("\n"):
                line = _classify(raw, section)
                if line.kind == "section":
                    section = line.section
                lines.append(line)
        return cls(lines, trailing)

    def render(self):
        text = "\n".join(line.raw for line in self.lines)
        if self.trailing_newline and self.lines:
            text += "\n"
        return text

    def __str__(self):
        return self.render()

    def sections(self):
        """Section filters in order of first appearance (``all`` first when lines precede a filter)."""
        seen = []
        for line in self.lines:
            if line.section not in seen and line.kind != "blank":
                seen.append(line.section)
        return seen

    def settings(self, section="all"):
        """Effective ``{key: value}`` of one section (the last occurrence wins)."""
        out = {}
        for line in self.lines:
            if line.kind == "setting" and line.section == section:
                out[line.key] = line.value
        return out

    def items(self):
        """All ``(section, key, value)`` in order."""
        return [(line.section, line.key, line.value) for line in self.lines if line.kind == "setting"]

    def get(self, key, section="all"):
        return self.settings(section).get(key)

    def set(self, key, value, section="all"):
        """Set ``key=value`` in ``section``; returns True when the text changed."""
        _check_key(key)
        value = str(value)
        if "\n" in value or "\r" in value:
            raise CarrierError("settings.%s: value %r contains a newline" % (key, value))
        hits = [i for i, line in enumerate(self.lines) if line.kind == "setting" and line.section == section
                and line.key == key]
        if hits:
            last = self.lines[hits[-1]]
            if last.value == value:
                return False
            self.lines[hits[-1]] = ConfigLine("%s=%s" % (key, value), "setting", section, key, value)
            return True
        new = ConfigLine("%s=%s" % (key, value), "setting", section, key, value)
        # After the last non-blank, non-comment line of the last block of this section.
        block_idx = [i for i, line in enumerate(self.lines) if line.section == section
                     and line.kind in ("setting", "section", "other")]
        if block_idx:
            self.lines.insert(block_idx[-1] + 1, new)
        else:
            if self.lines and self.lines[-1].kind != "blank" and not self.trailing_newline:
                self.trailing_newline = True
            self.lines.append(ConfigLine("[%s]" % section, "section", section))
            self.lines.append(new)
            self.trailing_newline = True
        return True

    def remove(self, key, section="all"):
        """Remove every ``key`` line of ``section``; returns True when the text changed."""
        before = len(self.lines)
        self.lines = [line for line in self.lines
                      if not (line.kind == "setting" and line.section == section and line.key == key)]
        return len(self.lines) != before


def _check_key(key):
    if not isinstance(key, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
        raise CarrierError("settings: invalid key %r (letters, digits and _ only)" % (key,))


# --- BOOT_ORDER (HARDWARE.md section 5) -------------------------------------------------------

BOOT_MODES = {
    "sd": 0x1,
    "network": 0x2,
    "rpiboot": 0x3,
    "usb": 0x4,
    "bcm_usb": 0x5,
    "nvme": 0x6,
    "http": 0x7,
    "stop": 0xE,
    "restart": 0xF,
}
BOOT_MODE_NAMES = {v: k for k, v in BOOT_MODES.items()}
MAX_BOOT_MODES = 8
DEFAULT_BOOT_ORDER = 0xF41


def _check_order(names, field_name):
    if not names:
        raise CarrierError("%s: empty: give at least one boot mode" % field_name)
    if len(names) > MAX_BOOT_MODES:
        raise CarrierError("%s: %d modes, at most %d fit in BOOT_ORDER: %s"
                           % (field_name, len(names), MAX_BOOT_MODES, ", ".join(names)))
    if "rpiboot" in names[:-1]:
        raise CarrierError("%s: rpiboot must be the last boot mode (it has no timeout): %s"
                           % (field_name, ", ".join(names)))


def encode_boot_order(names, field_name="boot_order"):
    """``['nvme', 'sd', 'network', 'restart']`` -> ``'0xf216'`` (first tried = rightmost nibble)."""
    if isinstance(names, str):
        names = [n for n in re.split(r"[\s,]+", names) if n]
    norm = []
    for n in names:
        key = str(n).strip().lower().replace("-", "_")
        if key not in BOOT_MODES:
            raise CarrierError("%s: unknown boot mode %r (known: %s)" % (field_name, n, ", ".join(BOOT_MODES)))
        norm.append(key)
    _check_order(norm, field_name)
    value = 0
    for i, n in enumerate(norm):
        value |= BOOT_MODES[n] << (4 * i)
    return "0x%x" % value


def parse_int(value, field_name):
    """An integer as the bootloader reads it: decimal or 0x-prefixed hex."""
    text = str(value).strip()
    try:
        if text.lower().startswith(("0x", "-0x")):
            return int(text, 16)
        return int(text, 10)
    except ValueError:
        raise CarrierError("%s: %r is not an integer" % (field_name, value)) from None


def decode_boot_order(value, field_name="BOOT_ORDER", validate=True):
    """``'0xf216'`` (or an int) -> ``['nvme', 'sd', 'network', 'restart']``."""
    num = value if isinstance(value, int) else parse_int(value, field_name)
    if num <= 0 or num > 0xFFFFFFFF:
        raise CarrierError("%s: %r is out of range (1 to 8 hex digits)" % (field_name, value))
    names = []
    while num:
        code = num & 0xF
        if code not in BOOT_MODE_NAMES:
            raise CarrierError("%s: unknown boot mode code 0x%x in %r%s"
                               % (field_name, code, value, " (0x0 is deprecated)" if code == 0 else ""))
        names.append(BOOT_MODE_NAMES[code])
        num >>= 4
    if validate:
        _check_order(names, field_name)
    return names


# --- Key validation (HARDWARE.md section 5) ---------------------------------------------------


def _v_bool(key, value):
    if parse_int(value, key) not in (0, 1):
        raise CarrierError("%s: %r must be 0 or 1" % (key, value))


def _v_int(minimum=None, maximum=None, zero_ok=False):
    def check(key, value):
        n = parse_int(value, key)
        if zero_ok and n == 0:
            return
        if minimum is not None and n < minimum:
            raise CarrierError("%s: %r is below the minimum %d" % (key, value, minimum))
        if maximum is not None and n > maximum:
            raise CarrierError("%s: %r is above the maximum %d" % (key, value, maximum))
    return check


def _v_ip(key, value):
    try:
        ipaddress.IPv4Address(str(value).strip())
    except ValueError:
        raise CarrierError("%s: %r is not an IPv4 address" % (key, value)) from None


def _v_maxlen(n):
    def check(key, value):
        if len(str(value)) > n:
            raise CarrierError("%s: %r is longer than %d characters" % (key, value, n))
    return check


def _v_boot_order(key, value):
    decode_boot_order(value, key)


def _v_any(key, value):
    return None


KNOWN_KEYS = {
    "BOOT_ORDER": _v_boot_order,
    "BOOT_UART": _v_bool,
    "UART_BAUD": _v_int(1),
    "POWER_OFF_ON_HALT": _v_bool,
    "WAKE_ON_GPIO": _v_bool,
    "SD_BOOT_MAX_RETRIES": _v_int(-1),
    "NET_BOOT_MAX_RETRIES": _v_int(-1),
    "DHCP_TIMEOUT": _v_int(5000),
    "DHCP_REQ_TIMEOUT": _v_int(500),
    "TFTP_FILE_TIMEOUT": _v_int(5000),
    "TFTP_IP": _v_ip,
    "CLIENT_IP": _v_ip,
    "SUBNET": _v_ip,
    "GATEWAY": _v_ip,
    "TFTP_PREFIX": _v_int(0, 2),
    "TFTP_PREFIX_STR": _v_maxlen(32),
    "PXE_OPTION43": _v_any,
    "DHCP_OPTION97": _v_any,
    "MAC_ADDRESS": _v_any,
    "MAC_ADDRESS_OTP": _v_any,
    "HTTP_HOST": _v_any,
    "HTTP_PORT": _v_int(1, 65535),
    "HTTP_PATH": _v_any,
    "IMAGER_REPO_URL": _v_any,
    "NET_INSTALL_ENABLED": _v_bool,
    "NET_INSTALL_AT_POWER_ON": _v_bool,
    "NET_INSTALL_KEYBOARD_WAIT": _v_int(0),
    "ENABLE_SELF_UPDATE": _v_bool,
    "FREEZE_VERSION": _v_bool,
    "USB_MSD_DISCOVER_TIMEOUT": _v_int(5000),
    "USB_MSD_LUN_TIMEOUT": _v_int(0),
    "USB_MSD_PWR_OFF_TIME": _v_int(0),
    "USB_MSD_STARTUP_DELAY": _v_int(0),
    "USB_MSD_EXCLUDE_VID_PID": _v_any,
    "VL805": _v_bool,
    "XHCI_DEBUG": _v_int(0),
    "PARTITION": _v_int(0),
    "PARTITION_WALK": _v_bool,
    "PSU_MAX_CURRENT": _v_int(0),
    "DISABLE_HDMI": _v_bool,
    "HDMI_DELAY": _v_int(0),
    "SIGNED_BOOT": _v_bool,
    "PCIE_PROBE": _v_bool,
    "BOOT_LOAD_FLAGS": _v_int(0),
    "SD_QUIRKS": _v_int(0),
    "BOOT_WATCHDOG_TIMEOUT": _v_int(0),
    "BOOT_WATCHDOG_PARTITION": _v_int(0),
    "BOOTARG0": _v_int(0),
    "CM4_ENABLE_RPI_EEPROM_UPDATE": _v_bool,
}


def validate_config(text):
    """Validate a config text; returns a list of warnings (unknown keys are kept, not dropped).

    Raises CarrierError for a config over 4076 bytes and for a known key with a bad value.
    """
    encode_config(text)
    warnings = []
    cfg = BootConfig.parse(text)
    for section, key, value in cfg.items():
        check = KNOWN_KEYS.get(key)
        if check is None:
            warnings.append("config: unknown bootloader key %s (section [%s]) kept as is" % (key, section))
            continue
        try:
            check(key, value)
        except CarrierError as e:
            raise CarrierError("config [%s] %s" % (section, e)) from None
    return warnings


def setting_text(key, value):
    """A setting value as the config holds it: booleans as 1/0."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if value is None:
        raise CarrierError("settings.%s: no value given" % key)
    return str(value)


def apply_changes(text, boot_order=None, settings=None, section="all", state="present"):
    """Apply boot_order/settings to a config text; returns the new text.

    ``state=absent`` removes the keys named in ``settings`` (values ignored) and BOOT_ORDER when
    ``boot_order`` is given. A BOOT_ORDER equal in value to the wanted one is left as written.
    """
    cfg = BootConfig.parse(text)
    settings = dict(settings or {})
    if state == "absent":
        keys = list(settings)
        if boot_order is not None:
            keys.append("BOOT_ORDER")
        for key in keys:
            _check_key(key)
            cfg.remove(key, section)
        return cfg.render()
    if state != "present":
        raise CarrierError("state: %r must be present or absent" % (state,))
    wanted = {}
    for key, value in settings.items():
        _check_key(key)
        wanted[key] = setting_text(key, value)
    if boot_order is not None:
        if "BOOT_ORDER" in wanted:
            raise CarrierError("settings.BOOT_ORDER: give the boot order once, in boot_order or in settings")
        wanted["BOOT_ORDER"] = encode_boot_order(boot_order)
    for key, value in wanted.items():
        current = cfg.get(key, section)
        if key == "BOOT_ORDER" and current is not None:
            try:
                if parse_int(current, key) == parse_int(value, key):
                    continue
            except CarrierError:
                pass
        cfg.set(key, value, section)
    return cfg.render()


def effective_boot_order(text, section="all"):
    """The BOOT_ORDER names of a config section (the default 0xf41 when unset)."""
    value = BootConfig.parse(text).get("BOOT_ORDER", section)
    if value is None:
        return decode_boot_order(DEFAULT_BOOT_ORDER, validate=False)
    try:
        return decode_boot_order(value, validate=False)
    except CarrierError:
        return []


# --- .sig files (HARDWARE.md section 4) -------------------------------------------------------


@dataclass
class Sig:
    sha256: str
    ts: int | None
    rsa2048: str | None = None
    extra: list = field(default_factory=list)


def make_sig(data, ts=None, private_key=None):
    """The ``.sig`` text of ``data``: sha256 hex, ``ts:``, optional ``rsa2048:`` with a key."""
    if ts is None:
        ts = int(time.time())
    lines = [hashlib.sha256(data).hexdigest(), "ts: %d" % int(ts)]
    if private_key is not None:
        lines.append("rsa2048: %s" % rsa_sign(private_key, data).hex())
    return "\n".join(lines) + "\n"


def parse_sig(text, label="sig"):
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise CarrierError("%s: bad .sig file: not ASCII text" % label) from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or not re.fullmatch(r"[0-9a-f]{64}", lines[0]):
        raise CarrierError("%s: bad .sig file: the first line must be a lowercase sha256 hex digest, got %r"
                           % (label, lines[0] if lines else ""))
    sig = Sig(lines[0], None)
    for line in lines[1:]:
        key, dummy, value = line.partition(":")
        value = value.strip()
        if key == "ts":
            if not re.fullmatch(r"\d+", value):
                raise CarrierError("%s: bad .sig file: ts %r is not a number of seconds" % (label, value))
            sig.ts = int(value)
        elif key == "rsa2048":
            if not re.fullmatch(r"[0-9a-fA-F]{512}", value):
                raise CarrierError("%s: bad .sig file: rsa2048 must be 512 hex digits" % label)
            sig.rsa2048 = value.lower()
        else:
            sig.extra.append(line)
    if sig.ts is None:
        raise CarrierError("%s: bad .sig file: no 'ts:' line" % label)
    return sig


def verify_sig(data, sig_text, public_key=None, label="sig"):
    """Check a ``.sig`` against ``data`` (and its rsa2048 line against ``public_key``).

    Returns the parsed :class:`Sig`; raises CarrierError naming what does not match.
    """
    sig = parse_sig(sig_text, label)
    digest = hashlib.sha256(data).hexdigest()
    if sig.sha256 != digest:
        raise CarrierError("%s: bad .sig file: sha256 %s does not match the data (%s)" % (label, sig.sha256, digest))
    if public_key is not None:
        if sig.rsa2048 is None:
            raise CarrierError("%s: bad .sig file: no rsa2048 signature but a key was given" % label)
        if not rsa_verify(public_key, data, bytes.fromhex(sig.rsa2048)):
            raise CarrierError("%s: bad .sig file: the rsa2048 signature does not verify with the key" % label)
    return sig


def sig_matches(data, sig_text, public_key=None, want_rsa=False):
    """True when an existing ``.sig`` is valid for ``data`` and has (or lacks) rsa2048 as wanted."""
    if sig_text is None:
        return False
    try:
        sig = verify_sig(data, sig_text, public_key)
    except CarrierError:
        return False
    return (sig.rsa2048 is not None) == bool(want_rsa)


@dataclass
class Plan:
    """What a module would write: ``files`` maps a path to its new bytes (only the changed ones)."""

    files: dict = field(default_factory=dict)
    modes: dict = field(default_factory=dict)
    unchanged: list = field(default_factory=list)
    before_config: str | None = None
    after_config: str = ""
    warnings: list = field(default_factory=list)
    info: dict = field(default_factory=dict)

    @property
    def changed(self):
        return bool(self.files)

    def add(self, path, data, mode=0o644):
        if read_optional(path) == data:
            self.unchanged.append(path)
        else:
            self.files[path] = data
            self.modes[path] = mode


def write_planned(plan):
    for path, data in plan.files.items():
        atomic_write(path, data, plan.modes.get(path, 0o644))


# --- Building a new config/image (shared by both modules) --------------------------------------


def desired_config(base_text, config=None, boot_order=None, settings=None, section="all", state="present"):
    """The wanted config text and the validation warnings."""
    if config is not None:
        if boot_order is not None or settings:
            raise CarrierError("config: give either the whole config text or boot_order/settings, not both")
        text = config
    else:
        text = apply_changes(base_text, boot_order, settings, section, state)
    warnings = validate_config(text)
    return text, warnings


def build_image(base, config_text, private_key=None, existing=None):
    """A new image from ``base`` with ``config_text``; with a key, pubkey.bin and a signed bootconf.sig.

    ``existing`` (an EepromImage or None): when its bootconf.sig already signs the same config
    with the same key, its timestamp is reused so that a re-run gives the same bytes.
    """
    image = base.copy()
    image.set_config(config_text)
    if private_key is not None:
        public = private_key.public_key()
        image.set_pubkey(pubkey_bin(public))
        conf = encode_config(config_text)
        ts = None
        if existing is not None and existing.has_file(BOOTCONF_SIG):
            old = existing.get_file(BOOTCONF_SIG).rstrip(b"\0\xff")
            if sig_matches(conf, old, public, want_rsa=True):
                ts = parse_sig(old).ts
        image.replace_file(BOOTCONF_SIG, make_sig(conf, ts, private_key).encode("ascii"))
    return image


def _existing_image(path):
    data = read_optional(path)
    if data is None:
        return None
    try:
        return EepromImage(data, path)
    except CarrierError:
        return None


def _sig_for(image_bytes, sig_path, private_key):
    """The .sig bytes: the existing file when it is still valid for the image, else a new one."""
    public = private_key.public_key() if private_key is not None else None
    old = read_optional(sig_path)
    if sig_matches(image_bytes, old, public, want_rsa=private_key is not None):
        return old
    return make_sig(image_bytes, None, private_key).encode("ascii")


TARGET_FILES = {
    "image": None,
    "usb_recovery": ("pieeprom.bin", "pieeprom.sig"),
    "tftp_self_update": ("pieeprom.upd", "pieeprom.sig"),
}


def default_sig_path(image_path):
    root, ext = os.path.splitext(image_path)
    return (root if ext else image_path) + ".sig"


def recovery_config_txt(recovery_reboot=True, eeprom_write_protect=None):
    """config.txt for rpiboot recovery (HARDWARE.md section 4)."""
    lines = ["# Written by picluster.carrier.eeprom_image for rpiboot EEPROM recovery"]
    lines.append("recovery_reboot=%d" % (1 if recovery_reboot else 0))
    if eeprom_write_protect is not None:
        if int(eeprom_write_protect) not in (-1, 0, 1):
            raise CarrierError("eeprom_write_protect: %r must be -1, 0 or 1" % (eeprom_write_protect,))
        lines.append("eeprom_write_protect=%d" % int(eeprom_write_protect))
    return ("\n".join(lines) + "\n").encode("ascii")


def plan_image_files(src, dest, target="image", config=None, boot_order=None, settings=None, section="all",
                     private_key=None, sig_dest=None, recovery_bin=None, recovery_reboot=True,
                     eeprom_write_protect=None):
    """Everything ``eeprom_image`` writes, as a :class:`Plan` (nothing written here)."""
    if target not in TARGET_FILES:
        raise CarrierError("target: %r must be one of %s" % (target, ", ".join(TARGET_FILES)))
    base = EepromImage.from_file(src)
    base_text = base.config
    text, warnings = desired_config(base_text, config, boot_order, settings, section)
    if target == "image":
        if os.path.isdir(dest):
            raise CarrierError("dest: %s is a directory; with target image it is the image file to write" % dest)
        image_path = dest
        sig_path = sig_dest or default_sig_path(dest)
    else:
        if os.path.exists(dest) and not os.path.isdir(dest):
            raise CarrierError("dest: %s must be a directory for target %s" % (dest, target))
        image_path = os.path.join(dest, TARGET_FILES[target][0])
        sig_path = os.path.join(dest, TARGET_FILES[target][1])
    existing = _existing_image(image_path)
    image = build_image(base, text, private_key, existing)
    data = image.to_bytes()
    plan = Plan(warnings=warnings, after_config=text,
                before_config=existing.config if existing is not None and existing.has_file(BOOTCONF_TXT) else None)
    plan.add(image_path, data)
    plan.add(sig_path, _sig_for(data, sig_path, private_key))
    if target == "usb_recovery":
        if not recovery_bin:
            raise CarrierError("recovery_bin: needed for target usb_recovery (the recovery.bin of the node's SoC)")
        rec = read_optional(recovery_bin)
        if rec is None:
            raise CarrierError("recovery_bin: %s does not exist" % recovery_bin)
        plan.add(os.path.join(dest, "recovery.bin"), rec)
        # rpiboot serves the second stage by this name (usbboot's recovery directories).
        plan.add(os.path.join(dest, "bootcode%s.bin" % ("4" if image.soc == "bcm2711" else "5")), rec)
        plan.add(os.path.join(dest, "config.txt"), recovery_config_txt(recovery_reboot, eeprom_write_protect))
    plan.info.update(image=image_path, sig=sig_path, sha256=image.sha256, soc=image.soc,
                     boot_order=effective_boot_order(text, section))
    return plan


# --- On a node (eeprom_config) -----------------------------------------------------------------

BACKUP_DIR = "/var/lib/raspberrypi/bootloader/backup"
FIRMWARE_DIR = "/lib/firmware/raspberrypi"
DT_COMPATIBLE = "/proc/device-tree/compatible"
DT_BASE = "/sys/firmware/devicetree/base"
NVMEM_DEVICES = "/sys/bus/nvmem/devices"


def rooted(root, path):
    """``path`` inside ``root`` (``root='/'`` gives ``path``)."""
    return os.path.join(root or "/", path.lstrip("/"))


def detect_soc(compatible_path):
    """``bcm2711`` or ``bcm2712`` from the device tree's compatible strings, else CarrierError."""
    raw = read_optional(compatible_path)
    if raw is None:
        raise CarrierError(
            "this machine is not a Raspberry Pi with a bootloader EEPROM: %s does not exist" % compatible_path
        )
    names = [c for c in raw.decode("ascii", "replace").split("\0") if c]
    for soc in ("bcm2712", "bcm2711"):
        if any(c.endswith("," + soc) or c == soc for c in names):
            return soc
    raise CarrierError(
        "this machine is not a Raspberry Pi 4/5 or CM4/CM5 (no bcm2711/bcm2712 in %s: %s): it has no bootloader EEPROM"
        % (compatible_path, ", ".join(names) or "empty")
    )


def find_firmware_image(firmware_dir, soc, release="default"):
    """The newest ``pieeprom-*.bin`` of a release for a SoC, as rpi-eeprom lays them out."""
    patterns = [
        os.path.join(firmware_dir, "bootloader-%s" % soc[3:], release, "pieeprom-*.bin"),
        os.path.join(firmware_dir, "bootloader-%s" % soc, release, "pieeprom-*.bin"),
    ]
    if soc == "bcm2711":
        patterns.append(os.path.join(firmware_dir, "bootloader", release, "pieeprom-*.bin"))
    found = []
    for p in patterns:
        found.extend(glob.glob(p))
    if not found:
        raise CarrierError("image: no bootloader image for %s found (searched %s); give the image option"
                           % (soc, ", ".join(patterns)))
    return sorted(found, key=os.path.basename)[-1]


def read_blconfig(dt_base, nvmem_devices):
    """The live config from the blconfig nvmem device, or None when there is none."""
    alias = read_optional(os.path.join(dt_base, "aliases", "blconfig"))
    if alias is None:
        return None
    node = alias.split(b"\0", 1)[0].decode("ascii", "replace").strip()
    target = os.path.realpath(os.path.join(dt_base, node.lstrip("/")))
    try:
        devices = sorted(os.listdir(nvmem_devices))
    except OSError:
        return None
    for d in devices:
        of_node = os.path.join(nvmem_devices, d, "of_node")
        if os.path.exists(of_node) and os.path.realpath(of_node) == target:
            raw = read_optional(os.path.join(nvmem_devices, d, "nvmem"))
            if raw is None:
                return None
            raw = raw.split(b"\0", 1)[0].rstrip(b"\xff")
            return _decode_config(raw, "blconfig nvmem device %s" % d)
    return None


@dataclass
class NodePaths:
    boot_partition: str
    backup_dir: str
    compatible: str
    dt_base: str
    nvmem_devices: str
    firmware_dir: str

    @classmethod
    def defaults(cls, root="/", boot_partition=None, backup_dir=None, firmware_dir=None):
        if boot_partition is None:
            fw = rooted(root, "/boot/firmware")
            boot_partition = fw if os.path.isdir(fw) else rooted(root, "/boot")
        return cls(
            boot_partition=boot_partition,
            backup_dir=backup_dir or rooted(root, BACKUP_DIR),
            compatible=rooted(root, DT_COMPATIBLE),
            dt_base=rooted(root, DT_BASE),
            nvmem_devices=rooted(root, NVMEM_DEVICES),
            firmware_dir=firmware_dir or rooted(root, FIRMWARE_DIR),
        )


def pending_update(paths):
    """The staged ``pieeprom.upd`` that the next boot will flash, or None.

    HARDWARE.md section 4: recovery.bin flashes the update and renames itself recovery.000, and
    pieeprom.upd stays behind. So an update is pending only while recovery.bin is there too.
    """
    pending = os.path.join(paths.boot_partition, "pieeprom.upd")
    if os.path.exists(pending) and os.path.exists(os.path.join(paths.boot_partition, "recovery.bin")):
        return pending
    return None


def read_node_config(paths, vcgencmd=None):
    """``(text, source)`` of the current config: pending update, blconfig, else ``vcgencmd``.

    ``vcgencmd`` is a callable returning the output of ``vcgencmd bootloader_config`` (or None).
    """
    pending = pending_update(paths)
    if pending:
        return EepromImage.from_file(pending).config, "pending update %s" % pending
    text = read_blconfig(paths.dt_base, paths.nvmem_devices)
    if text is not None:
        return text, "blconfig nvmem device"
    if vcgencmd is not None:
        out = vcgencmd()
        if out is not None:
            return out, "vcgencmd bootloader_config"
    raise CarrierError("cannot read the current bootloader config: no pending update in %s, no blconfig nvmem "
                       "device and no vcgencmd" % paths.boot_partition)


def plan_node_update(paths, boot_order=None, settings=None, section="all", state="present", image=None,
                     recovery_bin=None, release="default", vcgencmd=None, now=None):
    """Everything ``eeprom_config`` stages on a node, as a :class:`Plan` (nothing written here)."""
    soc = detect_soc(paths.compatible)
    current, source = read_node_config(paths, vcgencmd)
    text, warnings = desired_config(current, None, boot_order, settings, section, state)
    plan = Plan(warnings=warnings, before_config=current, after_config=text)
    staged = pending_update(paths)
    pending = os.path.join(paths.boot_partition, "pieeprom.upd")
    plan.info.update(config_source=source, soc=soc, boot_order=effective_boot_order(text, section),
                     pending=staged is not None)
    if text == current:
        plan.info["reboot_required"] = plan.info["pending"]
        return plan
    if staged:
        base_path = staged
    else:
        base_path = image or find_firmware_image(paths.firmware_dir, soc, release)
    base = EepromImage.from_file(base_path)
    if base.soc != soc:
        raise CarrierError("image: %s is a %s image but this node is a %s" % (base_path, base.soc, soc))
    new = base.with_config(text)
    data = new.to_bytes()
    # Written in this order: the backup first, recovery.bin (which makes the ROM flash) last.
    stamp = (now or datetime.datetime.now()).strftime("%Y%m%d-%H%M%S")
    backup = os.path.join(paths.backup_dir, "pieeprom-backup-%s.conf" % stamp)
    plan.add(backup, current.encode("utf-8"))
    plan.add(pending, data)
    plan.add(os.path.join(paths.boot_partition, "pieeprom.sig"),
             _sig_for(data, os.path.join(paths.boot_partition, "pieeprom.sig"), None))
    rec_dest = os.path.join(paths.boot_partition, "recovery.bin")
    rec_src = recovery_bin or os.path.join(os.path.dirname(base_path), "recovery.bin")
    rec = read_optional(rec_src) if rec_src != rec_dest else None
    if rec is not None:
        plan.add(rec_dest, rec)
    elif not os.path.exists(rec_dest):
        raise CarrierError("recovery_bin: %s does not exist and %s has no recovery.bin: the firmware would not "
                           "flash the update" % (rec_src, paths.boot_partition))
    plan.info.update(image=base_path, backup_file=backup, sha256=new.sha256, reboot_required=True)
    return plan
