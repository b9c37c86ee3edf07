# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bootloader config text (``bootconf.txt``, docs/hardware.md section 5): lines and sections, BOOT_ORDER,
the known keys and their ranges, and edits that keep every line they do not own.

The syntax is config.txt's (``_sections``). A ``#`` starts a comment only at the start of a line
(Raspberry Pi's config.txt documentation), so ``BOOT_UART=1 # debug`` is a setting whose text
after ``=`` is ``1 # debug``: the firmware reads a number from the start of such a text and
ignores what follows it (raspberrypi/firmware issue 1669 shows a number followed by other text read
as that number), while a text value keeps the ``#`` and everything after it. The line itself is
kept byte for byte, as Raspberry Pi's ``rpi-eeprom-config`` copies the config file it is given.
"""

from __future__ import annotations

import ipaddress
import re

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._sections import (
    ALL,
    ConfigLine,
    header_line,
    parse_lines,
    render_lines,
    section_name,
)
from ansible_collections.picluster.carrier.plugins.module_utils._values import check_number

#: ``bootconf.txt`` is one file section of the image: a 4 KiB erase sector minus its 20-byte header.
MAX_CONFIG_SIZE = 4076

_SETTING_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$")
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: A number, then blanks and a ``#``: what the firmware reads as the number alone.
_NUMBER_THEN_HASH_RE = re.compile(r"^(-?(?:0[xX][0-9a-fA-F]+|[0-9]+))(\s+#.*)$")


def decode_config(raw, label):
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CarrierError("%s: not UTF-8 text (byte %d)" % (label, e.start)) from e


def encode_config(text):
    """The bytes of a config text; CarrierError when over 4076 bytes (docs/hardware.md section 5)."""
    data = text.encode("utf-8")
    if len(data) > MAX_CONFIG_SIZE:
        raise CarrierError("config: too big: %d bytes, the maximum is %d" % (len(data), MAX_CONFIG_SIZE))
    return data


# --- Lines and sections ------------------------------------------------------------------------


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
        lines, trailing = parse_lines(text, _SETTING_RE)
        return cls(lines, trailing)

    def render(self):
        return render_lines(self.lines, self.trailing_newline)

    def __str__(self):
        return self.render()

    def sections(self):
        """Section filters in order of first appearance (``all`` first when lines precede a filter)."""
        seen = []
        for line in self.lines:
            if line.section not in seen and line.kind != "blank":
                seen.append(line.section)
        return seen

    def settings(self, section=ALL):
        """Effective ``{key: value}`` of one section (the last occurrence wins)."""
        out = {}
        for line in self.lines:
            if line.kind == "setting" and line.section == section:
                out[line.key] = line.value
        return out

    def items(self):
        """All ``(section, key, value)`` in order."""
        return [(line.section, line.key, line.value) for line in self.lines if line.kind == "setting"]

    def get(self, key, section=ALL):
        return self.settings(section).get(key)

    def set(self, key, value, section=ALL):
        """Set ``key=value`` in ``section``; returns True when the text changed."""
        _check_key(key)
        value = str(value)
        if "\n" in value or "\r" in value:
            raise CarrierError("settings.%s: value %r contains a newline" % (key, value))
        hits = [i for i, line in enumerate(self.lines) if line.kind == "setting" and line.section == section
                and line.key == key]
        new = ConfigLine("%s=%s" % (key, value), "setting", section, key, value)
        if hits:
            if self.lines[hits[-1]].value == value:
                return False
            self.lines[hits[-1]] = new
            return True
        # After the last non-blank, non-comment line of the last block of this section.
        block_idx = [i for i, line in enumerate(self.lines) if line.section == section
                     and line.kind in ("setting", "section", "other")]
        if block_idx:
            self.lines.insert(block_idx[-1] + 1, new)
        else:
            self.lines.append(header_line(section))
            self.lines.append(new)
            self.trailing_newline = True
        return True

    def remove(self, key, section=ALL):
        """Remove every ``key`` line of ``section``; returns True when the text changed."""
        before = len(self.lines)
        self.lines = [line for line in self.lines
                      if not (line.kind == "setting" and line.section == section and line.key == key)]
        return len(self.lines) != before


def _check_key(key):
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise CarrierError("settings: invalid key %r (letters, digits and _ only)" % (key,))


def split_number(value):
    """``'1 # debug'`` -> ``('1', ' # debug')``: a number the firmware reads and the text it ignores after
    it; any other value -> ``(value, '')``."""
    match = _NUMBER_THEN_HASH_RE.match(value)
    if match:
        return match.group(1), match.group(2)
    return value, ""


# --- BOOT_ORDER (docs/hardware.md section 5) -------------------------------------------------------

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
#: 0x0 (SD CARD DETECT) is deprecated in Raspberry Pi's BOOT_ORDER table; 0x8-0xd are not in it.
#: A config that holds them is read and kept, never written anew.
DEPRECATED_MODES = {0x0: "sd_card_detect"}
#: Boot modes a SoC does not have: BCM2712 (Pi 5, CM5) has no BCM-USB-MSD (0x5).
MISSING_MODES = {"bcm2712": ("bcm_usb",)}
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


def check_soc_modes(names, soc, field_name, value=None):
    """CarrierError naming ``field_name`` and the value when ``names`` holds a mode ``soc`` does not have."""
    for name in names:
        if name in MISSING_MODES.get(soc, ()):
            held = "%r" % name if value is None else "%r holds %s" % (value, name)
            raise CarrierError("%s: %s (0x%x), a boot mode %s images do not have (Pi 5, CM5 have no %s)"
                               % (field_name, held, BOOT_MODES[name], soc.upper(), name))


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


def _boot_order_codes(value, field_name):
    num = value if isinstance(value, int) else parse_int(split_number(str(value))[0], field_name)
    if num <= 0 or num > 0xFFFFFFFF:
        raise CarrierError("%s: %r is out of range (1 to 8 hex digits)" % (field_name, value))
    codes = []
    while num:
        codes.append(num & 0xF)
        num >>= 4
    return codes


def decode_boot_order(value, field_name="BOOT_ORDER", validate=True):
    """``'0xf216'`` (or an int) -> ``['nvme', 'sd', 'network', 'restart']``; every code must be a boot mode."""
    names = []
    for code in _boot_order_codes(value, field_name):
        if code not in BOOT_MODE_NAMES:
            raise CarrierError("%s: unknown boot mode code 0x%x in %r%s"
                               % (field_name, code, value, " (0x0 is deprecated)" if code == 0 else ""))
        names.append(BOOT_MODE_NAMES[code])
    if validate:
        _check_order(names, field_name)
    return names


def read_boot_order(value, field_name="BOOT_ORDER"):
    """A BOOT_ORDER a config already holds -> ``(names, notes)``: every code named (``sd_card_detect`` for
    the deprecated 0x0, ``0x8`` ... for codes Raspberry Pi's table does not define), and a note for each
    such code, so that the config can be read, reported and edited around it."""
    names, notes = [], []
    for code in _boot_order_codes(value, field_name):
        if code in BOOT_MODE_NAMES:
            names.append(BOOT_MODE_NAMES[code])
        elif code in DEPRECATED_MODES:
            names.append(DEPRECATED_MODES[code])
            notes.append("boot mode code 0x0 (SD CARD DETECT) is deprecated")
        else:
            names.append("0x%x" % code)
            notes.append("boot mode code 0x%x is not defined in Raspberry Pi's BOOT_ORDER table" % code)
    return names, notes


# --- Known keys (docs/hardware.md section 5) --------------------------------------------------------


def _numeric(check):
    """Mark a check as one of a key the firmware reads as a number."""
    check.numeric = True
    return check


@_numeric
def _v_bool(key, value):
    if parse_int(value, key) not in (0, 1):
        raise CarrierError("%s: %r must be 0 or 1" % (key, value))


def _v_int(minimum=None, maximum=None):
    @_numeric
    def check(key, value):
        n = parse_int(value, key)
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


@_numeric
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


def is_numeric_key(key):
    return getattr(KNOWN_KEYS.get(key), "numeric", False)


def _check_boot_order_line(label, value, kept, soc, warnings):
    """A BOOT_ORDER line: one the config already held (``kept``) is read leniently and its odd codes
    reported; one being written must hold boot modes only, and none the SoC lacks."""
    if not kept:
        names = decode_boot_order(value, label)
        check_soc_modes(names, soc, label, value)
        return
    names, notes = read_boot_order(value, label)
    for note in notes:
        warnings.append("%s: %r: %s; kept as is" % (label, value, note))
    if not notes:
        _check_order(names, label)
    for name in names:
        if name in MISSING_MODES.get(soc, ()):
            warnings.append("%s: %r: %s (0x%x) is not a boot mode of %s; kept as is"
                            % (label, value, name, BOOT_MODES[name], soc.upper()))


def _check_setting(section, key, value, kept, soc, warnings):
    check = KNOWN_KEYS.get(key)
    label = "config [%s] %s" % (section, key)
    if check is None:
        warnings.append("config: unknown bootloader key %s (section [%s]) kept as is" % (key, section))
        return
    if getattr(check, "numeric", False):
        number, ignored = split_number(value)
        if ignored:
            warnings.append("%s=%s: the bootloader reads %s and ignores %r after it (a # starts a comment only at "
                            "the start of a line)" % (label, value, number, ignored.strip()))
        value = number
    elif re.search(r"\s#", value):
        warnings.append("%s=%s: the bootloader reads the whole text as the value, '#' included (a # starts a "
                        "comment only at the start of a line)" % (label, value))
    if key == "BOOT_ORDER":
        _check_boot_order_line(label, value, kept, soc, warnings)
        return
    try:
        check(key, value)
    except CarrierError as e:
        raise CarrierError("config [%s] %s" % (section, e)) from None


def validate_config(text, base=None, soc=None):
    """Validate a config text; returns a list of warnings (unknown keys are kept, not dropped).

    Raises CarrierError for a config over 4076 bytes and for a known key with a bad value. ``base``:
    the config the text was made from; its lines are kept as they are even with deprecated or
    undefined boot modes (reported as warnings). ``soc``: the image's SoC, whose missing boot modes a
    new BOOT_ORDER may not hold.
    """
    encode_config(text)
    warnings = []
    kept = set(BootConfig.parse(base).items()) if base is not None else set()
    for section, key, value in BootConfig.parse(text).items():
        _check_setting(section, key, value, (section, key, value) in kept, soc, warnings)
    return warnings


# --- Edits -------------------------------------------------------------------------------------


def setting_text(key, value):
    """A setting value as the config holds it: booleans as 1/0; a float must be finite."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if value is None:
        raise CarrierError("settings.%s: no value given" % key)
    if isinstance(value, float):
        check_number(value, "settings.%s" % key)
    return str(value)


def _wanted(boot_order, settings, soc):
    wanted = {}
    for key, value in settings.items():
        _check_key(key)
        wanted[key] = setting_text(key, value)
    if "BOOT_ORDER" in wanted and soc is not None:
        try:
            names = decode_boot_order(wanted["BOOT_ORDER"], "settings.BOOT_ORDER")
        except CarrierError:
            names = []
        check_soc_modes(names, soc, "settings.BOOT_ORDER", wanted["BOOT_ORDER"])
    if boot_order is not None:
        if "BOOT_ORDER" in wanted:
            raise CarrierError("settings.BOOT_ORDER: give the boot order once, in boot_order or in settings")
        wanted["BOOT_ORDER"] = encode_boot_order(boot_order)
        if soc is not None:
            check_soc_modes(decode_boot_order(wanted["BOOT_ORDER"]), soc, "boot_order")
    return wanted


def _same_value(key, current, value):
    """True when ``current`` (as the config holds it) already reads as ``value`` to the bootloader."""
    number = split_number(current)[0] if is_numeric_key(key) else current
    if key == "BOOT_ORDER":
        try:
            return parse_int(number, key) == parse_int(value, key)
        except CarrierError:
            return False
    return number == value


def apply_changes(text, boot_order=None, settings=None, section=ALL, state="present", soc=None):
    """Apply boot_order/settings to a config text; returns the new text.

    ``state=absent`` removes the keys named in ``settings`` (values ignored) and BOOT_ORDER when
    ``boot_order`` is given. A value the bootloader already reads as the wanted one is left as
    written; a number being changed keeps the text that followed it on its line (an inline
    comment). ``soc``: refuse boot modes the image's SoC does not have.
    """
    section = section_name(section)
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
    for key, value in _wanted(boot_order, settings, soc).items():
        current = cfg.get(key, section)
        if current is not None:
            if _same_value(key, current, value):
                continue
            if is_numeric_key(key):
                value += split_number(current)[1]
        cfg.set(key, value, section)
    return cfg.render()


def effective_boot_order(text, section=ALL):
    """The BOOT_ORDER names of a config section (the default 0xf41 when unset; codes outside the boot
    modes named as :func:`read_boot_order` names them; ``[]`` when the value is not a number)."""
    value = BootConfig.parse(text).get("BOOT_ORDER", section_name(section))
    if value is None:
        return decode_boot_order(DEFAULT_BOOT_ORDER, validate=False)
    try:
        return read_boot_order(value)[0]
    except CarrierError:
        return []
