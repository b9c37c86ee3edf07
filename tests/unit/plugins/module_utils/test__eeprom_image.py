# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the pieeprom image format (_eeprom/image.py) on real images and synthetic ones."""

from __future__ import annotations

import hashlib
import re
import struct
from pathlib import Path

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils._eeprom import config as C
from ansible_collections.picluster.carrier.plugins.module_utils._eeprom import image as I
from ansible_collections.picluster.carrier.plugins.module_utils import _keys as K
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError

REPO = Path(__file__).resolve().parents[4]


FIXTURES = REPO.parent / "shared" / "fixtures" / "eeprom"


def fixture_table():
    """Rows of the fixture README: file -> (sha256, expected config text)."""
    readme = FIXTURES / "README.md"
    if not readme.exists():
        return {}
    rows = {}
    for line in readme.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or not cells[0].endswith(".bin") or not re.fullmatch(r"[0-9a-f]{64}", cells[3]):
            continue
        tokens = re.findall(r"`([^`]*)`", cells[4])
        text = "\n".join(tokens) + "\n"
        if "trailing empty line" in cells[4]:
            text += "\n"
        rows[cells[0]] = (cells[3], text)
    return rows


TABLE = fixture_table()
NEEDS_FIXTURES = pytest.mark.skipif(
    not TABLE, reason="real EEPROM images not available: %s is absent (they are never committed)" % FIXTURES
)
FIXTURE_NAMES = sorted(TABLE) or ["(no fixtures)"]


def load_fixture(name):
    return (FIXTURES / name).read_bytes()


def sections_outside(image, name):
    """Non-padding sections other than ``name``: (offset, magic, length, bytes)."""
    data = image.to_bytes()
    return [(s.offset, s.magic, s.length, data[s.offset:s.end]) for s in image.sections
            if s.magic != I.MAGIC_PAD and s.name != name]


def changed_span(before, after):
    diff = [i for i in range(len(before)) if before[i] != after[i]]
    return (diff[0], diff[-1]) if diff else None


# --- real images -------------------------------------------------------------------------------


@NEEDS_FIXTURES
def test_fixture_table_has_four_images():
    assert len(TABLE) == 4


@NEEDS_FIXTURES
@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_real_image_config_and_identity(name):
    sha, expected = TABLE[name]
    raw = load_fixture(name)
    assert hashlib.sha256(raw).hexdigest() == sha
    image = I.EepromImage(raw, name)
    assert image.soc == ("bcm2711" if name.startswith("2711") else "bcm2712")
    assert image.config == expected
    # Writing the same config back is byte-identical.
    same = image.with_config(image.config)
    assert hashlib.sha256(same.to_bytes()).hexdigest() == sha


@NEEDS_FIXTURES
@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_real_image_replace_read_back_and_restore(name):
    sha, expected = TABLE[name]
    raw = load_fixture(name)
    image = I.EepromImage(raw, name)
    new_text = C.apply_changes(image.config, ["network", "sd", "restart"], {"TFTP_PREFIX": 2, "BOOT_UART": 1})
    assert "BOOT_ORDER=0xf12" in new_text
    changed = image.with_config(new_text)
    reread = I.EepromImage(changed.to_bytes(), name)
    assert reread.config == new_text
    assert C.effective_boot_order(reread.config) == ["network", "sd", "restart"]
    # Every other section is intact, the last 4 KiB untouched, and the change stays inside the
    # bootconf.txt sector.
    assert sections_outside(reread, "bootconf.txt") == sections_outside(image, "bootconf.txt")
    for other in image.file_names():
        if other != "bootconf.txt":
            assert reread.get_file(other) == image.get_file(other)
    assert reread.to_bytes()[-4096:] == raw[-4096:]
    conf = [s for s in image.region_sections if s.name == "bootconf.txt"][0]
    first, last = changed_span(raw, reread.to_bytes())
    assert conf.offset <= first and last < conf.offset + 4096
    # A big config (the maximum) fits and going back restores the original bytes.
    big = "[all]\n" + "# padding comment line\n" * 100
    big = big + "#" * (C.MAX_CONFIG_SIZE - len(big) - 1) + "\n"
    assert len(big.encode()) == C.MAX_CONFIG_SIZE
    huge = image.with_config(big)
    assert I.EepromImage(huge.to_bytes()).config == big
    assert hashlib.sha256(huge.with_config(expected).to_bytes()).hexdigest() == sha


@NEEDS_FIXTURES
@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_real_image_embed_pubkey(name):
    raw = load_fixture(name)
    image = I.EepromImage(raw, name)
    key = K.generate_private_key(None)
    blob = K.pubkey_bin(key.public_key())
    image.set_pubkey(blob)
    reread = I.EepromImage(image.to_bytes())
    assert reread.get_file("pubkey.bin") == blob
    assert K.public_key_from_bin(reread.get_file("pubkey.bin")).public_numbers() == key.public_key().public_numbers()
    assert reread.config == TABLE[name][1]
    assert sections_outside(reread, "pubkey.bin") == sections_outside(I.EepromImage(raw), "pubkey.bin")


@NEEDS_FIXTURES
def test_real_ab_image_partition():
    name = [n for n in TABLE if n.startswith("2712") and "2026" in n][0]
    image = I.EepromImage(load_fixture(name))
    assert image.ab
    assert image.region == (0x10000, 0x107000)
    assert image.region_sections[0].name == "bootsys"
    old = I.EepromImage(load_fixture([n for n in TABLE if n.startswith("2712") and "2024" in n][0]))
    assert not old.ab


# --- format rules on synthetic images ------------------------------------------------------------


@pytest.mark.parametrize("soc,ab", [("bcm2711", False), ("bcm2712", True), ("bcm2712", False)])
def test_synthetic_round_trip(soc, ab):
    raw = I.make_synthetic_image(soc, "[all]\nBOOT_UART=0\n", ab=ab)
    image = I.EepromImage(raw)
    assert image.ab is ab
    assert image.config == "[all]\nBOOT_UART=0\n"
    assert image.with_config(image.config).to_bytes() == raw
    assert image.with_config("[all]\n" + "X" * 3000 + "\n").with_config(image.config).to_bytes() == raw


def test_replace_middle_file_makes_one_padding_section():
    raw = I.make_synthetic_image("bcm2711")
    image = I.EepromImage(raw)
    sig = [s for s in image.sections if s.name == "bootconf.sig"][0]
    next_file = [s for s in image.sections if s.name == "bootconf.txt"][0]
    image.replace_file("bootconf.sig", b"abc")
    data = image.to_bytes()
    assert struct.unpack_from(">I", data, sig.offset + 4)[0] == 16 + 3
    assert data[sig.data_offset:sig.data_offset + 3] == b"abc"
    pad_at = I._align8(sig.data_offset + 3)
    assert data[sig.data_offset + 3:pad_at] == b"\xff" * (pad_at - sig.data_offset - 3)
    magic, length = struct.unpack_from(">II", data, pad_at)
    assert magic == I.MAGIC_PAD and length == next_file.offset - pad_at - 8
    assert data[pad_at + 8:next_file.offset] == b"\xff" * length
    after = [s for s in image.sections if s.offset > sig.offset]
    assert after[0].kind == "padding" and after[1].offset == next_file.offset


def test_replace_exactly_filling_gap_and_eight_byte_gap():
    raw = I.make_synthetic_image("bcm2711")
    image = I.EepromImage(raw)
    sig = [s for s in image.sections if s.name == "bootconf.sig"][0]
    nxt = [s for s in image.sections if s.name == "bootconf.txt"][0].offset
    room = nxt - sig.data_offset
    assert room == 4096 - 24
    # Filling the room exactly: no padding section at all, the next file follows.
    image.replace_file("bootconf.sig", b"\x01" * room)
    assert [s.name for s in image.sections if s.offset > sig.offset][0] == "bootconf.txt"
    assert image.get_file("bootconf.txt") == b"[all]\nBOOT_UART=0\n"
    # One byte more does not fit (the header is 24 bytes: magic, length, name, reserved).
    with pytest.raises(CarrierError, match="does not fit"):
        image.replace_file("bootconf.sig", b"\x01" * (room + 1))
    # An 8-byte gap becomes a padding section of length 0, keeping the chain walkable.
    image.replace_file("bootconf.sig", b"\x02" * (room - 8))
    data = image.to_bytes()
    assert struct.unpack_from(">II", data, nxt - 8) == (I.MAGIC_PAD, 0)
    assert I.EepromImage(data).get_file("bootconf.txt") == b"[all]\nBOOT_UART=0\n"
    # And back to the original bytes.
    image.replace_file("bootconf.sig", b"\0" * 1024)
    assert image.to_bytes() == raw


def test_replace_that_does_not_fit_raises_and_leaves_image():
    raw = bytearray(I.make_synthetic_image("bcm2711"))
    image = I.EepromImage(bytes(raw))
    pk = [s for s in image.sections if s.name == "pubkey.bin"][0]
    # Put a non-padding section right after pubkey.bin: its room is then 520 bytes.
    blob = I._section_bytes(0x55AAF33F, b"x" * 64)
    after = I._align8(pk.end)
    raw[after:after + len(blob)] = blob
    struct.pack_into(">II", raw, I._align8(after + len(blob)), I.MAGIC_PAD,
                     0x15000 - I._align8(after + len(blob)) - 8)
    image = I.EepromImage(bytes(raw))
    before = image.to_bytes()
    with pytest.raises(CarrierError, match="pubkey.bin.*does not fit"):
        image.replace_file("pubkey.bin", b"k" * 600)
    assert image.to_bytes() == before
    image.replace_file("pubkey.bin", b"k" * 264)
    assert image.get_file("pubkey.bin") == b"k" * 264


def test_last_4k_never_written():
    raw = bytearray(I.make_synthetic_image("bcm2711"))
    raw[-4096:] = bytes(range(256)) * 16
    image = I.EepromImage(bytes(raw))
    image.set_config("[all]\n" + "A" * 4000 + "\n")
    image.set_config("[all]\n")
    assert image.to_bytes()[-4096:] == bytes(raw[-4096:])


def test_last_section_shrinking_erases_old_bytes():
    image = I.EepromImage(I.make_synthetic_image("bcm2711", "[all]\n" + "B" * 2000 + "\n"))
    conf = [s for s in image.sections if s.name == "bootconf.txt"][0]
    image.set_config("[all]\n")
    data = image.to_bytes()
    assert data[conf.data_offset + 6:len(data) - 4096] == b"\xff" * (len(data) - 4096 - conf.data_offset - 6)


def test_file_not_found():
    image = I.EepromImage(I.make_synthetic_image("bcm2711"))
    with pytest.raises(CarrierError, match="'cacert.der' not found"):
        image.get_file("cacert.der")


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1000, 524287, 524289, 1048576, 2097151])
def test_wrong_size(size):
    with pytest.raises(CarrierError, match=r"wrong size %d bytes" % size):
        I.EepromImage(b"\xff" * size, "x.bin")


def test_corrupt_magic():
    raw = bytearray(I.make_synthetic_image("bcm2711"))
    image = I.EepromImage(bytes(raw))
    second = image.sections[1].offset
    struct.pack_into(">I", raw, second, 0x12345678)
    with pytest.raises(CarrierError, match=r"corrupt magic 0x12345678 at offset 0x%x" % second):
        I.EepromImage(bytes(raw), "bad.bin")


def test_truncated_section():
    raw = bytearray(I.make_synthetic_image("bcm2711"))
    struct.pack_into(">I", raw, 4, 600000)
    with pytest.raises(CarrierError, match="truncated image"):
        I.EepromImage(bytes(raw))


def test_truncated_file():
    raw = I.make_synthetic_image("bcm2712")
    with pytest.raises(CarrierError, match="wrong size 1000000 bytes.*truncated"):
        I.EepromImage(raw[:1000000], "cut.bin")


def test_config_too_big():
    image = I.EepromImage(I.make_synthetic_image("bcm2711"))
    before = image.to_bytes()
    with pytest.raises(CarrierError, match="too big: 4077 bytes, the maximum is 4076"):
        image.set_config("#" * 4077)
    assert image.to_bytes() == before
    with pytest.raises(CarrierError, match="too big"):
        C.validate_config("#" * 5000)


def test_non_utf8_config():
    image = I.EepromImage(I.make_synthetic_image("bcm2711"))
    image.replace_file("bootconf.txt", b"\xff\xfe")
    with pytest.raises(CarrierError, match="not UTF-8"):
        image.config


def test_config_with_inline_comments_kept_byte_for_byte():
    """rpi-eeprom-config copies the config file into the image as it is: so do we, comments after values too."""
    text = "[all]\nBOOT_UART=1 # debug\nBOOT_ORDER=0xf21\t# SD then network\n[pi4] # Pi 4 only\nHDMI_DELAY=0\n"
    raw = I.make_synthetic_image("bcm2711", text)
    image = I.EepromImage(raw)
    assert image.config == text
    assert image.get_file("bootconf.txt") == text.encode()
    assert image.with_config(image.config).to_bytes() == raw
