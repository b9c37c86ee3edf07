# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the EEPROM image codec, config tools, BOOT_ORDER codec and .sig files (_eeprom.py)."""

from __future__ import annotations

import hashlib
import re
import struct
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.picluster.carrier.plugins.module_utils import _eeprom as E
from ansible_collections.picluster.carrier.plugins.module_utils import _keys as K  # noqa: E402
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
            if s.magic != E.MAGIC_PAD and s.name != name]


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
    image = E.EepromImage(raw, name)
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
    image = E.EepromImage(raw, name)
    new_text = E.apply_changes(image.config, ["network", "sd", "restart"], {"TFTP_PREFIX": 2, "BOOT_UART": 1})
    assert "BOOT_ORDER=0xf12" in new_text
    changed = image.with_config(new_text)
    reread = E.EepromImage(changed.to_bytes(), name)
    assert reread.config == new_text
    assert E.effective_boot_order(reread.config) == ["network", "sd", "restart"]
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
    big = big + "#" * (E.MAX_CONFIG_SIZE - len(big) - 1) + "\n"
    assert len(big.encode()) == E.MAX_CONFIG_SIZE
    huge = image.with_config(big)
    assert E.EepromImage(huge.to_bytes()).config == big
    assert hashlib.sha256(huge.with_config(expected).to_bytes()).hexdigest() == sha


@NEEDS_FIXTURES
@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_real_image_embed_pubkey(name):
    raw = load_fixture(name)
    image = E.EepromImage(raw, name)
    key = _key()
    blob = K.pubkey_bin(key.public_key())
    image.set_pubkey(blob)
    reread = E.EepromImage(image.to_bytes())
    assert reread.get_file("pubkey.bin") == blob
    assert K.public_key_from_bin(reread.get_file("pubkey.bin")).public_numbers() == key.public_key().public_numbers()
    assert reread.config == TABLE[name][1]
    assert sections_outside(reread, "pubkey.bin") == sections_outside(E.EepromImage(raw), "pubkey.bin")


@NEEDS_FIXTURES
def test_real_ab_image_partition():
    name = [n for n in TABLE if n.startswith("2712") and "2026" in n][0]
    image = E.EepromImage(load_fixture(name))
    assert image.ab
    assert image.region == (0x10000, 0x107000)
    assert image.region_sections[0].name == "bootsys"
    old = E.EepromImage(load_fixture([n for n in TABLE if n.startswith("2712") and "2024" in n][0]))
    assert not old.ab


# --- format rules on synthetic images ------------------------------------------------------------


@pytest.mark.parametrize("soc,ab", [("bcm2711", False), ("bcm2712", True), ("bcm2712", False)])
def test_synthetic_round_trip(soc, ab):
    raw = E.make_synthetic_image(soc, "[all]\nBOOT_UART=0\n", ab=ab)
    image = E.EepromImage(raw)
    assert image.ab is ab
    assert image.config == "[all]\nBOOT_UART=0\n"
    assert image.with_config(image.config).to_bytes() == raw
    assert image.with_config("[all]\n" + "X" * 3000 + "\n").with_config(image.config).to_bytes() == raw


def test_replace_middle_file_makes_one_padding_section():
    raw = E.make_synthetic_image("bcm2711")
    image = E.EepromImage(raw)
    sig = [s for s in image.sections if s.name == "bootconf.sig"][0]
    next_file = [s for s in image.sections if s.name == "bootconf.txt"][0]
    image.replace_file("bootconf.sig", b"abc")
    data = image.to_bytes()
    assert struct.unpack_from(">I", data, sig.offset + 4)[0] == 16 + 3
    assert data[sig.data_offset:sig.data_offset + 3] == b"abc"
    pad_at = E._align8(sig.data_offset + 3)
    assert data[sig.data_offset + 3:pad_at] == b"\xff" * (pad_at - sig.data_offset - 3)
    magic, length = struct.unpack_from(">II", data, pad_at)
    assert magic == E.MAGIC_PAD and length == next_file.offset - pad_at - 8
    assert data[pad_at + 8:next_file.offset] == b"\xff" * length
    after = [s for s in image.sections if s.offset > sig.offset]
    assert after[0].kind == "padding" and after[1].offset == next_file.offset


def test_replace_exactly_filling_gap_and_eight_byte_gap():
    raw = E.make_synthetic_image("bcm2711")
    image = E.EepromImage(raw)
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
    assert struct.unpack_from(">II", data, nxt - 8) == (E.MAGIC_PAD, 0)
    assert E.EepromImage(data).get_file("bootconf.txt") == b"[all]\nBOOT_UART=0\n"
    # And back to the original bytes.
    image.replace_file("bootconf.sig", b"\0" * 1024)
    assert image.to_bytes() == raw


def test_replace_that_does_not_fit_raises_and_leaves_image():
    raw = bytearray(E.make_synthetic_image("bcm2711"))
    image = E.EepromImage(bytes(raw))
    pk = [s for s in image.sections if s.name == "pubkey.bin"][0]
    # Put a non-padding section right after pubkey.bin: its room is then 520 bytes.
    blob = E._section_bytes(0x55AAF33F, b"x" * 64)
    after = E._align8(pk.end)
    raw[after:after + len(blob)] = blob
    struct.pack_into(">II", raw, E._align8(after + len(blob)), E.MAGIC_PAD,
                     0x15000 - E._align8(after + len(blob)) - 8)
    image = E.EepromImage(bytes(raw))
    before = image.to_bytes()
    with pytest.raises(CarrierError, match="pubkey.bin.*does not fit"):
        image.replace_file("pubkey.bin", b"k" * 600)
    assert image.to_bytes() == before
    image.replace_file("pubkey.bin", b"k" * 264)
    assert image.get_file("pubkey.bin") == b"k" * 264


def test_last_4k_never_written():
    raw = bytearray(E.make_synthetic_image("bcm2711"))
    raw[-4096:] = bytes(range(256)) * 16
    image = E.EepromImage(bytes(raw))
    image.set_config("[all]\n" + "A" * 4000 + "\n")
    image.set_config("[all]\n")
    assert image.to_bytes()[-4096:] == bytes(raw[-4096:])


def test_last_section_shrinking_erases_old_bytes():
    image = E.EepromImage(E.make_synthetic_image("bcm2711", "[all]\n" + "B" * 2000 + "\n"))
    conf = [s for s in image.sections if s.name == "bootconf.txt"][0]
    image.set_config("[all]\n")
    data = image.to_bytes()
    assert data[conf.data_offset + 6:len(data) - 4096] == b"\xff" * (len(data) - 4096 - conf.data_offset - 6)


def test_file_not_found():
    image = E.EepromImage(E.make_synthetic_image("bcm2711"))
    with pytest.raises(CarrierError, match="'cacert.der' not found"):
        image.get_file("cacert.der")


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1000, 524287, 524289, 1048576, 2097151])
def test_wrong_size(size):
    with pytest.raises(CarrierError, match=r"wrong size %d bytes" % size):
        E.EepromImage(b"\xff" * size, "x.bin")


def test_corrupt_magic():
    raw = bytearray(E.make_synthetic_image("bcm2711"))
    image = E.EepromImage(bytes(raw))
    second = image.sections[1].offset
    struct.pack_into(">I", raw, second, 0x12345678)
    with pytest.raises(CarrierError, match=r"corrupt magic 0x12345678 at offset 0x%x" % second):
        E.EepromImage(bytes(raw), "bad.bin")


def test_truncated_section():
    raw = bytearray(E.make_synthetic_image("bcm2711"))
    struct.pack_into(">I", raw, 4, 600000)
    with pytest.raises(CarrierError, match="truncated image"):
        E.EepromImage(bytes(raw))


def test_truncated_file():
    raw = E.make_synthetic_image("bcm2712")
    with pytest.raises(CarrierError, match="wrong size 1000000 bytes.*truncated"):
        E.EepromImage(raw[:1000000], "cut.bin")


def test_config_too_big():
    image = E.EepromImage(E.make_synthetic_image("bcm2711"))
    before = image.to_bytes()
    with pytest.raises(CarrierError, match="too big: 4077 bytes, the maximum is 4076"):
        image.set_config("#" * 4077)
    assert image.to_bytes() == before
    with pytest.raises(CarrierError, match="too big"):
        E.validate_config("#" * 5000)


def test_non_utf8_config():
    image = E.EepromImage(E.make_synthetic_image("bcm2711"))
    image.replace_file("bootconf.txt", b"\xff\xfe")
    with pytest.raises(CarrierError, match="not UTF-8"):
        image.config


# --- BOOT_ORDER ---------------------------------------------------------------------------------

BOOT_ORDER_TABLE = [
    (["nvme", "sd", "network", "restart"], "0xf216"),
    (["sd", "usb", "restart"], "0xf41"),
    (["network", "sd", "restart"], "0xf12"),
    (["sd", "nvme", "usb", "restart"], "0xf461"),
    (["http"], "0x7"),
    (["sd", "stop"], "0xe1"),
    (["bcm_usb", "usb", "rpiboot"], "0x345"),
    (["sd", "network", "usb", "nvme", "http", "bcm_usb", "stop", "restart"], "0xfe576421"),
]


@pytest.mark.parametrize("names,value", BOOT_ORDER_TABLE)
def test_boot_order_table(names, value):
    assert E.encode_boot_order(names) == value
    assert E.decode_boot_order(value) == names
    assert E.decode_boot_order(int(value, 16)) == names


def test_boot_order_errors():
    with pytest.raises(CarrierError, match="unknown boot mode 'floppy'"):
        E.encode_boot_order(["sd", "floppy"])
    with pytest.raises(CarrierError, match="rpiboot must be the last"):
        E.encode_boot_order(["rpiboot", "sd"])
    with pytest.raises(CarrierError, match="rpiboot must be the last"):
        E.decode_boot_order("0xf3")
    with pytest.raises(CarrierError, match="9 modes, at most 8"):
        E.encode_boot_order(["sd"] * 9)
    with pytest.raises(CarrierError, match="empty"):
        E.encode_boot_order([])
    with pytest.raises(CarrierError, match="unknown boot mode code 0x8"):
        E.decode_boot_order("0xf81")
    with pytest.raises(CarrierError, match="0x0 is deprecated"):
        E.decode_boot_order("0xf01")
    with pytest.raises(CarrierError, match="out of range"):
        E.decode_boot_order("0x1f4141414")
    with pytest.raises(CarrierError, match="not an integer"):
        E.decode_boot_order("nvme")
    assert E.decode_boot_order("0xf3", validate=False) == ["rpiboot", "restart"]
    assert E.effective_boot_order("[all]\n") == ["sd", "usb", "restart"]


MODES = sorted(set(E.BOOT_MODES) - {"rpiboot"})


@st.composite
def boot_orders(draw):
    names = draw(st.lists(st.sampled_from(MODES), min_size=1, max_size=8))
    if len(names) < 8 and draw(st.booleans()):
        names.append("rpiboot")
    return names


@given(boot_orders())
@settings(deadline=None)
def test_boot_order_round_trip(names):
    value = E.encode_boot_order(names)
    assert re.fullmatch(r"0x[0-9a-f]{1,8}", value)
    assert len(value) - 2 == len(names)
    assert E.decode_boot_order(value) == names
    assert int(value, 16) & 0xF == E.BOOT_MODES[names[0]]


@given(st.integers(min_value=1, max_value=0xFFFFFFFF))
@settings(deadline=None)
def test_boot_order_hex_round_trip(num):
    try:
        names = E.decode_boot_order(num)
    except CarrierError:
        return
    assert int(E.encode_boot_order(names), 16) == num


# --- config text --------------------------------------------------------------------------------

SAMPLE = """# Boot config of node07
[all]
BOOT_UART=1
BOOT_ORDER=0xf41

# network first when GPIO 8 is low
[gpio8=0]
BOOT_ORDER=0xf21
[0x10000000b7f44626]
TFTP_PREFIX=2
[all]
WAKE_ON_GPIO=0
"""


def test_parse_sections_comments():
    cfg = E.BootConfig.parse(SAMPLE)
    assert cfg.render() == SAMPLE
    assert cfg.sections() == ["all", "gpio8=0", "0x10000000b7f44626"]
    assert cfg.settings("all") == {"BOOT_UART": "1", "BOOT_ORDER": "0xf41", "WAKE_ON_GPIO": "0"}
    assert cfg.get("BOOT_ORDER", "gpio8=0") == "0xf21"
    assert [line.raw for line in cfg.lines if line.kind == "comment"] == [
        "# Boot config of node07", "# network first when GPIO 8 is low"]


def test_set_in_place_keeps_everything_else():
    out = E.apply_changes(SAMPLE, ["network", "sd", "restart"], {"DHCP_TIMEOUT": 50000}, section="gpio8=0")
    assert out == SAMPLE.replace("BOOT_ORDER=0xf21\n", "BOOT_ORDER=0xf12\nDHCP_TIMEOUT=50000\n")
    out = E.apply_changes(SAMPLE, None, {"WAKE_ON_GPIO": True, "POWER_OFF_ON_HALT": 1})
    assert out == SAMPLE.replace("WAKE_ON_GPIO=0\n", "WAKE_ON_GPIO=1\nPOWER_OFF_ON_HALT=1\n")
    # Same value (numerically, for BOOT_ORDER) is no change at all.
    assert E.apply_changes(SAMPLE, ["sd", "usb", "restart"], {"BOOT_UART": 1}) == SAMPLE
    assert E.apply_changes(SAMPLE.replace("0xf41", "0xF41"), ["sd", "usb", "restart"]) == SAMPLE.replace(
        "0xf41", "0xF41")


def test_set_new_section_and_absent():
    out = E.apply_changes(SAMPLE, ["nvme"], None, section="partition=1")
    assert out == SAMPLE + "[partition=1]\nBOOT_ORDER=0x6\n"
    out = E.apply_changes(SAMPLE, None, {"BOOT_UART": None}, state="absent")
    assert out == SAMPLE.replace("BOOT_UART=1\n", "")
    out = E.apply_changes(SAMPLE, ["sd"], None, section="gpio8=0", state="absent")
    assert out == SAMPLE.replace("BOOT_ORDER=0xf21\n", "")
    assert E.apply_changes(SAMPLE, None, {"NOPE": 1}, state="absent") == SAMPLE
    with pytest.raises(CarrierError, match="give the boot order once"):
        E.apply_changes(SAMPLE, ["sd"], {"BOOT_ORDER": "0x1"})
    with pytest.raises(CarrierError, match="settings.BOOT_UART: no value"):
        E.apply_changes(SAMPLE, None, {"BOOT_UART": None})
    with pytest.raises(CarrierError, match="invalid key 'A B'"):
        E.apply_changes(SAMPLE, None, {"A B": 1})
    with pytest.raises(CarrierError, match="newline"):
        E.apply_changes(SAMPLE, None, {"HTTP_PATH": "a\nBOOT_ORDER=0x3"})


def test_validate_known_keys_and_ranges():
    assert E.validate_config(SAMPLE) == []
    warnings = E.validate_config("[all]\nMY_KEY=7\nBOOT_UART=1\n")
    assert warnings == ["config: unknown bootloader key MY_KEY (section [all]) kept as is"]
    assert "MY_KEY=7" in E.apply_changes("[all]\nMY_KEY=7\n", ["sd"])
    bad = {
        "BOOT_UART=2": "BOOT_UART: '2' must be 0 or 1",
        "DHCP_TIMEOUT=100": "DHCP_TIMEOUT: '100' is below the minimum 5000",
        "DHCP_REQ_TIMEOUT=100": "below the minimum 500",
        "TFTP_FILE_TIMEOUT=4999": "below the minimum 5000",
        "USB_MSD_DISCOVER_TIMEOUT=10": "below the minimum 5000",
        "TFTP_PREFIX=3": "TFTP_PREFIX: '3' is above the maximum 2",
        "TFTP_PREFIX_STR=" + "a" * 33: "longer than 32",
        "TFTP_IP=10.0.0.300": "not an IPv4 address",
        "SD_BOOT_MAX_RETRIES=-2": "below the minimum -1",
        "BOOT_ORDER=0xf31": "rpiboot must be the last",
        "BOOT_ORDER=0xf91": "unknown boot mode code 0x9",
        "HTTP_PORT=70000": "above the maximum 65535",
        "POWER_OFF_ON_HALT=yes": "not an integer",
    }
    for line, message in bad.items():
        with pytest.raises(CarrierError, match=re.escape(message)):
            E.validate_config("[all]\n%s\n" % line)
    assert E.validate_config("[all]\nNET_BOOT_MAX_RETRIES=-1\nDHCP_TIMEOUT=45000\nTFTP_IP=192.168.1.3\n") == []


config_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)
line_text = st.one_of(
    st.sampled_from(["", "# comment", "[all]", "[gpio4=1]", "[0x1234abcd]", "  ", "garbage line"]),
    st.builds(lambda k, v: "%s=%s" % (k, v), st.from_regex(r"[A-Z_][A-Z0-9_]{0,12}", fullmatch=True),
              st.text(alphabet="0123456789abcdefx.", max_size=8)),
)
config_lines = st.builds(lambda lines, nl: "\n".join(lines) + ("\n" if nl else ""),
                         st.lists(line_text, max_size=15), st.booleans())


@given(st.one_of(config_text, config_lines))
@settings(deadline=None)
def test_parse_render_round_trip(text):
    assert E.BootConfig.parse(text).render() == text


@given(config_lines, st.from_regex(r"[A-Z][A-Z0-9_]{0,10}", fullmatch=True),
       st.from_regex(r"[0-9a-z]{1,6}", fullmatch=True), st.sampled_from(["all", "gpio8=0", "tryboot"]))
@settings(max_examples=200, deadline=None)
def test_set_get_remove_properties(text, key, value, section):
    cfg = E.BootConfig.parse(text)
    cfg.set(key, value, section)
    out = cfg.render()
    again = E.BootConfig.parse(out)
    assert again.get(key, section) == value
    # Setting again is a no-op; the other keys of every section keep their values.
    assert again.set(key, value, section) is False
    before = E.BootConfig.parse(text)
    for sec in before.sections():
        expected = {k: v for k, v in before.settings(sec).items() if not (sec == section and k == key)}
        got = {k: v for k, v in again.settings(sec).items() if not (sec == section and k == key)}
        assert got == expected
    # Comments survive.
    comments = [line.raw for line in before.lines if line.kind == "comment"]
    assert [line.raw for line in again.lines if line.kind == "comment"] == comments
    again.remove(key, section)
    assert again.get(key, section) is None


# --- .sig files ---------------------------------------------------------------------------------

_KEYS = {}


def _key(n=0):
    if n not in _KEYS:
        from cryptography.hazmat.primitives.asymmetric import rsa
        _KEYS[n] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _KEYS[n]


def test_sig_plain():
    data = b"image bytes"
    text = E.make_sig(data, ts=1700000000)
    assert text == hashlib.sha256(data).hexdigest() + "\nts: 1700000000\n"
    sig = E.verify_sig(data, text)
    assert sig.ts == 1700000000 and sig.rsa2048 is None


def test_sig_rsa():
    data = b"x" * 1000
    key = _key()
    text = E.make_sig(data, ts=5, private_key=key)
    lines = text.splitlines()
    assert lines[1] == "ts: 5" and lines[2].startswith("rsa2048: ") and len(lines[2]) == 9 + 512
    E.verify_sig(data, text, key.public_key())
    with pytest.raises(CarrierError, match="does not verify"):
        E.verify_sig(data, text, _key(1).public_key())
    # Same data and ts: same text (PKCS#1 v1.5 is deterministic).
    assert E.make_sig(data, ts=5, private_key=key) == text


@pytest.mark.parametrize("text,message", [
    ("", "first line must be a lowercase sha256"),
    ("ABC\nts: 1\n", "first line must be a lowercase sha256"),
    (hashlib.sha256(b"other").hexdigest() + "\nts: 1\n", "does not match the data"),
    (hashlib.sha256(b"data").hexdigest() + "\n", "no 'ts:' line"),
    (hashlib.sha256(b"data").hexdigest() + "\nts: soon\n", "ts 'soon' is not a number"),
    (hashlib.sha256(b"data").hexdigest() + "\nts: 1\nrsa2048: 00\n", "rsa2048 must be 512 hex digits"),
])
def test_bad_sig(text, message):
    with pytest.raises(CarrierError, match=r"^sig: bad \.sig file: .*" + re.escape(message)):
        E.verify_sig(b"data", text)


def test_sig_missing_rsa_when_key_given():
    with pytest.raises(CarrierError, match="no rsa2048 signature"):
        E.verify_sig(b"d", E.make_sig(b"d"), _key().public_key())


def test_build_image_signed_is_stable():
    base = E.EepromImage(E.make_synthetic_image("bcm2711"))
    key = _key()
    one = E.build_image(base, "[all]\nSIGNED_BOOT=1\n", key)
    sig_text = one.get_file("bootconf.sig").decode()
    E.verify_sig(b"[all]\nSIGNED_BOOT=1\n", sig_text, key.public_key())
    assert K.public_key_from_bin(one.get_file("pubkey.bin")).public_numbers() == key.public_key().public_numbers()
    two = E.build_image(base, "[all]\nSIGNED_BOOT=1\n", key, existing=one)
    assert two.to_bytes() == one.to_bytes()


def test_keys_rejected():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = small.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    with pytest.raises(CarrierError, match="RSA 2048-bit"):
        K.load_private_key(pem)
    with pytest.raises(CarrierError, match="not a usable PEM private key"):
        K.load_private_key(b"-----BEGIN nonsense")
    with pytest.raises(CarrierError, match="empty"):
        K.public_key_from_bin(b"\0" * 264)


# --- node helpers -------------------------------------------------------------------------------


def test_detect_soc(tmp_path):
    compat = tmp_path / "compatible"
    compat.write_bytes(b"raspberrypi,4-compute-module\0brcm,bcm2711\0")
    assert E.detect_soc(str(compat)) == "bcm2711"
    compat.write_bytes(b"raspberrypi,5-model-b\0brcm,bcm2712\0")
    assert E.detect_soc(str(compat)) == "bcm2712"
    compat.write_bytes(b"raspberrypi,3-model-b\0brcm,bcm2837\0")
    with pytest.raises(CarrierError, match="not a Raspberry Pi 4/5.*bcm2837"):
        E.detect_soc(str(compat))
    with pytest.raises(CarrierError, match="not a Raspberry Pi with a bootloader EEPROM"):
        E.detect_soc(str(tmp_path / "missing"))


def test_find_firmware_image(tmp_path):
    for rel, name in [("default", "pieeprom-2025-01-01.bin"), ("default", "pieeprom-2026-05-17.bin"),
                      ("latest", "pieeprom-2026-09-01.bin")]:
        d = tmp_path / "bootloader-2711" / rel
        d.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(b"")
    assert E.find_firmware_image(str(tmp_path), "bcm2711").endswith("default/pieeprom-2026-05-17.bin")
    assert E.find_firmware_image(str(tmp_path), "bcm2711", "latest").endswith("latest/pieeprom-2026-09-01.bin")
    with pytest.raises(CarrierError, match="no bootloader image for bcm2712"):
        E.find_firmware_image(str(tmp_path), "bcm2712")


def test_read_blconfig(tmp_path):
    dt = tmp_path / "sys/firmware/devicetree/base"
    node = dt / "reserved-memory/nvram@0"
    node.mkdir(parents=True)
    (dt / "aliases").mkdir()
    (dt / "aliases/blconfig").write_bytes(b"/reserved-memory/nvram@0\0")
    devs = tmp_path / "sys/bus/nvmem/devices"
    for name, target in (("rmem0", dt / "reserved-memory"), ("rmem1", node)):
        (devs / name).mkdir(parents=True)
        (devs / name / "of_node").symlink_to(target)
        (devs / name / "nvmem").write_bytes(b"[all]\nBOOT_UART=1\n" + b"\0" * 100 if name == "rmem1" else b"x")
    assert E.read_blconfig(str(dt), str(devs)) == "[all]\nBOOT_UART=1\n"
    (dt / "aliases/blconfig").unlink()
    assert E.read_blconfig(str(dt), str(devs)) is None
