# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Raspberry Pi models and node identity: the one table of models, and the one reading of a
serial number and a MAC address (docs/hardware.md, "Node identity").

Who boots how matters to the rest of the library: BCM2711 and BCM2712 boards (Pi 4, CM4, Pi 5,
CM5) boot from a bootloader in SPI EEPROM, which is what eeprom_config edits and what netboots
with TFTP_PREFIX and HTTP boot; the older SoCs run ``bootcode.bin`` from boot ROM or OTP instead.
"""

from __future__ import annotations

import re
from collections import namedtuple

from ansible_collections.picluster.carrier.plugins.module_utils._errors import InvalidValue

#: ``bootloader``: ``eeprom`` (SPI EEPROM, rpi-eeprom images) or ``rom`` (bootcode.bin, no EEPROM).
Model = namedtuple("Model", "name soc dtb bootloader description")

MODELS = {
    m.name: m
    for m in (
        Model("cm3", "bcm2837", "bcm2710-rpi-cm3.dtb", "rom", "Compute Module 3/3+"),
        Model("cm4", "bcm2711", "bcm2711-rpi-cm4.dtb", "eeprom", "Compute Module 4"),
        Model("cm4s", "bcm2711", "bcm2711-rpi-cm4s.dtb", "rom", "Compute Module 4S"),
        Model("cm5", "bcm2712", "bcm2712-rpi-cm5-cm5io.dtb", "eeprom", "Compute Module 5"),
        Model("pi4", "bcm2711", "bcm2711-rpi-4-b.dtb", "eeprom", "Raspberry Pi 4 Model B"),
        Model("pi3", "bcm2837", "bcm2710-rpi-3-b.dtb", "rom", "Raspberry Pi 3 Model B"),
        Model("pi3bplus", "bcm2837", "bcm2710-rpi-3-b-plus.dtb", "rom", "Raspberry Pi 3 Model B+"),
        Model("pi5", "bcm2712", "bcm2712-rpi-5-b.dtb", "eeprom", "Raspberry Pi 5"),
        Model("pizero", "bcm2835", "bcm2708-rpi-zero.dtb", "rom", "Raspberry Pi Zero"),
        Model("pizero2", "bcm2837", "bcm2710-rpi-zero-2-w.dtb", "rom", "Raspberry Pi Zero 2 W"),
    )
}
DEFAULT_MODEL = "cm4"
# Boot-ROM models that network-boot from their built-in Ethernet (docs/hardware.md section 11): the ROM
# fetches bootcode.bin over TFTP. The 3B+ ROM has it enabled; a 3B needs OTP bit 17
# (program_usb_boot_mode=1). Zero 2 W, CM3 and Zero have no Ethernet: USB boot only.
ROM_NETBOOT_MODELS = ("pi3", "pi3bplus")


def eeprom_models():
    """The models whose bootloader lives in SPI EEPROM (network and HTTP boot, eeprom_config)."""
    return tuple(name for name, m in MODELS.items() if m.bootloader == "eeprom")


def no_eeprom_reason(name):
    """Why a boot-ROM model has no bootloader to configure: for messages that refuse it."""
    m = MODELS[name]
    return ("a %s (%s, %s) has no SPI EEPROM; its bootloader is in ROM/bootcode.bin"
            % (m.description, name, m.soc.upper()))


def check_eeprom_model(name, field="model", node=None, purpose="have a bootloader EEPROM configured"):
    """The Model ``name`` when its bootloader is in SPI EEPROM; else InvalidValue naming ``field`` (and
    ``node``) and saying why a boot-ROM model cannot ``purpose``."""
    model = get_model(name, field)
    if model.bootloader == "eeprom":
        return model
    who = "node %s: " % node if node else ""
    raise InvalidValue(field, "%s%s, so it cannot %s (models with an EEPROM: %s)"
                       % (who, no_eeprom_reason(name), purpose, ", ".join(eeprom_models())), name)


# Device-tree compatible strings (Linux's arch/arm/boot/dts/broadcom) of boot-ROM boards, to name the
# board a refusal is about.
_ROM_COMPATIBLE = {
    "raspberrypi,3-model-b-plus": "pi3bplus",
    "raspberrypi,3-model-b": "pi3",
    "raspberrypi,model-zero-2-w": "pizero2",
    "raspberrypi,3-compute-module": "cm3",
    "raspberrypi,3-compute-module-plus": "cm3",
    "raspberrypi,model-zero": "pizero",
}


def rom_model_from_compatible(names):
    """The boot-ROM model whose compatible string is among ``names``, or None."""
    for name in names:
        if name in _ROM_COMPATIBLE:
            return _ROM_COMPATIBLE[name]
    return None


def get_model(name, field="model", allowed=None):
    """The Model called ``name``; ``allowed`` narrows the choice (for example to :func:`eeprom_models`)."""
    choices = tuple(allowed) if allowed is not None else tuple(MODELS)
    if name not in choices:
        raise InvalidValue(field, "unknown model %r; known: %s" % (name, ", ".join(choices)), name)
    return MODELS[name]


_SERIAL_RE = re.compile(r"^(?:[0-9a-f]{8}|[0-9a-f]{16})$")
_MAC_RE = re.compile(r"^[0-9a-f]{2}([:-])[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}$")
_SERIAL_DIR_RE = re.compile(r"^[0-9a-f]{8}$")
_MAC_DIR_RE = re.compile(r"^[0-9a-f]{2}(?:-[0-9a-f]{2}){5}$")


def _text(value, field, what, hint):
    if isinstance(value, int) and not isinstance(value, bool):
        raise InvalidValue(field, "%r was read by YAML as a number: quote the %s" % (value, what), value)
    if not isinstance(value, str):
        raise InvalidValue(field, "%r is not a %s (%s)" % (value, what, hint), value)
    return value.lower()


_SERIAL_HINT = "16 hex digits, or the 8-digit TFTP directory form"
_MAC_HINT = "six hex pairs separated by ':' or '-'"


def normalize_serial(value, field="serial", allow_0x=False):
    """A board serial, lowercased: 16 hex digits (``/proc/cpuinfo``) or the 8-digit TFTP directory
    form. ``allow_0x``: a leading ``0x`` (as ``vcgencmd otp_dump``-style tools print it) is dropped.
    No white space is trimmed: a value with it is refused, not guessed at. InvalidValue naming ``field``."""
    text = _text(value, field, "serial number", _SERIAL_HINT)
    if allow_0x and text.startswith("0x"):
        text = text[2:]
    if not _SERIAL_RE.match(text):
        raise InvalidValue(field, "%r is not a serial number (%s)" % (value, _SERIAL_HINT), value)
    return text


def normalize_mac(value, field="mac"):
    """``DC-A6-32-01-36-C2`` or ``dc:a6:32:01:36:c2`` -> ``dc:a6:32:01:36:c2``; a multicast
    address (the low bit of the first octet set) is no board's MAC."""
    text = _text(value, field, "MAC address", _MAC_HINT)
    if not _MAC_RE.match(text):
        raise InvalidValue(field, "%r is not a MAC address (%s)" % (value, _MAC_HINT), value)
    mac = text.replace("-", ":")
    if int(mac[:2], 16) & 1:
        raise InvalidValue(field, "%r is a multicast address, not a board's MAC" % (value,), value)
    return mac


def serial_dirname(serial):
    """The TFTP_PREFIX=0 directory of a (normalised) serial: its last 8 hex digits."""
    return serial[-8:]


def mac_dirname(mac):
    """The TFTP_PREFIX=2 directory of a (normalised) MAC: ``dc-a6-32-01-36-c2``."""
    return mac.replace(":", "-")


def is_node_dirname(name):
    """Whether ``name`` is a serial or MAC directory name as the bootloader looks them up."""
    return bool(_SERIAL_DIR_RE.match(name) or _MAC_DIR_RE.match(name))
