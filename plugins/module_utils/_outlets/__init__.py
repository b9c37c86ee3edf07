# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Boards without a carrier: nodes powered through a port of a device that switches it.

Three profile kinds, one per device family, each reached on its own protocol by a driver:

- ``usb_hub``: per-port power of a USB hub (the kernel's port ``disable`` attribute, ``usbhub``);
- ``poe_switch``: per-port PoE of a managed switch over SNMP (POWER-ETHERNET-MIB, ``poe``);
- ``smart_plug``: a relay of a Tasmota or Shelly plug or power strip over HTTP (``plug``).

A slot has one line, ``power``; ``reset`` is a power cycle (``_power`` cycles a slot without a
run line). What the device reports is what a read returns: nothing is assumed from the last
write, and a write is verified by reading the port back (:class:`OutletSession`).

Profile shape (validated by :func:`parse_profile`)::

    kind: smart_plug
    api: tasmota                  # smart_plug only: tasmota | shelly_gen1 | shelly_gen2
    snmp: {version: "2c"}         # poe_switch only: version 2c | 3, auth_protocol, priv_protocol
    slots:
      1: {outlet: 1}              # smart_plug: relay number (1-based), url: a plug of its own
      2: 3                        # shorthand for the slot's port or outlet number
      # poe_switch: {port: N, group: 1}; usb_hub: {port: N, hub: "1-1.4"} (a hub behind the board's)

The board's ``bus`` is the device's address (:func:`check_address`): ``http(s)://HOST[:PORT]`` for a
plug, ``snmp://HOST[:PORT]`` for a switch, and for a hub its sysfs directory
(``/sys/bus/usb/devices/1-1``; ``usb:1-1`` is short for that). Credentials come from the board's
``bmc`` options (``user``, ``password``, ``priv_password``, ``ca_path``, ``validate_certs``).

A driver (:func:`make_driver`: ``usbhub.HubDriver``, ``poe.PoeDriver``, ``plug.PlugDriver``) is built
as ``Driver(board)`` and has ``read(slots) -> {slot: bool}`` (the ports' power as the device reports
it), ``write(slot, on)``, ``facts() -> dict``, ``close()`` and ``settle`` (seconds a port may take to follow a write).
"""

from __future__ import annotations

import re
import time
import urllib.parse

from ansible_collections.picluster.carrier.plugins.module_utils._errors import BusError, CarrierError

OUTLET_KINDS = ("usb_hub", "poe_switch", "smart_plug")
PLUG_APIS = ("tasmota", "shelly_gen1", "shelly_gen2")
SNMP_VERSIONS = ("2c", "3")
SNMP_AUTH = ("md5", "sha", "sha224", "sha256", "sha384", "sha512")
SNMP_PRIV = ("none", "des", "aes", "aes192", "aes256")

# A port number per slot, the key it is given under, and what else a slot may say.
_SLOT_KEYS = {
    "smart_plug": ("outlet", ("outlet", "url"), 64),
    "poe_switch": ("port", ("port", "group"), 9999),
    "usb_hub": ("port", ("port", "hub"), 31),
}
_HUB_NAME = re.compile(r"^(usb[0-9]+|[0-9]+-[0-9]+(\.[0-9]+)*)$")
SYSFS_USB = "/sys/bus/usb/devices"

#: Built-in profiles of common devices (merged into ``_board.BUILTIN_PROFILES``).
BUILTIN_PROFILES = {
    "usb_hub4": {"name": "usb_hub4", "kind": "usb_hub", "slots": {n: {"port": n} for n in range(1, 5)},
                 "description": "A 4-port USB hub with per-port power switching (a node on each port)"},
    "usb_hub7": {"name": "usb_hub7", "kind": "usb_hub", "slots": {n: {"port": n} for n in range(1, 8)},
                 "description": "A 7-port USB hub with per-port power switching (a node on each port)"},
    "poe_switch8": {"name": "poe_switch8", "kind": "poe_switch", "slots": {n: {"port": n} for n in range(1, 9)},
                    "description": "An 8-port PoE switch managed over SNMP v2c (ports 1-8 of PSE group 1)"},
    "tasmota_strip4": {"name": "tasmota_strip4", "kind": "smart_plug", "api": "tasmota",
                       "slots": {n: {"outlet": n} for n in range(1, 5)},
                       "description": "A Tasmota power strip with four switched outlets (POWER1-POWER4)"},
    "shelly_pro4": {"name": "shelly_pro4", "kind": "smart_plug", "api": "shelly_gen2",
                    "slots": {n: {"outlet": n} for n in range(1, 5)},
                    "description": "A Shelly Pro 4PM (Gen2 RPC), one node per relay (Switch ids 0-3)"},
}


def _int(value, field, low, high):
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit():
        raise CarrierError("%s: %r is not a whole number (%d-%d)" % (field, value, low, high))
    number = int(value)
    if not low <= number <= high:
        raise CarrierError("%s: %r is out of range (%d-%d)" % (field, value, low, high))
    return number


def _choice(value, field, choices):
    if value not in choices:
        raise CarrierError("%s: %r is not one of %s" % (field, value, ", ".join(choices)))
    return value


def check_url(value, field="bus"):
    """``http(s)://host[:port]`` -> the normalised base URL."""
    parts = urllib.parse.urlsplit(value.strip()) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise CarrierError("%s: %r is not a device URL (http://HOST[:PORT] or https://HOST[:PORT])" % (field, value))
    try:
        parts.port
    except ValueError:
        raise CarrierError("%s: %r has a port that is not a number (1-65535)" % (field, value)) from None
    return "%s://%s" % (parts.scheme, parts.netloc)


def check_address(kind, value, field="bus"):
    """The device address of a board of ``kind``, normalised (CarrierError naming ``field`` and the value)."""
    if kind == "smart_plug":
        return check_url(value, field)
    if kind == "poe_switch":
        parts = urllib.parse.urlsplit(value.strip()) if isinstance(value, str) else None
        try:
            port = parts.port if parts is not None else None
        except ValueError:
            port = -1
        if parts is None or parts.scheme != "snmp" or not parts.hostname or port == -1 or parts.path not in ("", "/"):
            raise CarrierError("%s: %r is not an SNMP agent address (snmp://HOST or snmp://HOST:PORT)" % (field, value))
        return "snmp://%s:%d" % (("[%s]" % parts.hostname) if ":" in parts.hostname else parts.hostname, port or 161)
    if kind == "usb_hub":
        if isinstance(value, str) and value.startswith("usb:") and _HUB_NAME.match(value[4:]):
            return "%s/%s" % (SYSFS_USB, value[4:])
        if isinstance(value, str) and value.startswith("/") and _HUB_NAME.match(value.rstrip("/").rsplit("/", 1)[-1]):
            return value.rstrip("/")
        raise CarrierError("%s: %r is not a USB hub (usb:1-1, or its sysfs directory such as "
                           "/sys/bus/usb/devices/1-1)" % (field, value))
    raise CarrierError("%s: kind %r is not a kind of outlet board" % (field, kind))


def lock_key(kind, address):
    """A file-name-safe identity of the device, for its lock file."""
    return "%s-%s" % (kind.replace("_", ""), re.sub(r"[^A-Za-z0-9.-]", "_", address.split("://")[-1].strip("/")))


def _parse_slot(kind, slot, spec, field):
    number_key, allowed, highest = _SLOT_KEYS[kind]
    if not isinstance(spec, dict):
        spec = {number_key: spec}
    unknown = sorted(str(k) for k in spec if k not in allowed)
    if unknown:
        raise CarrierError("%s: unknown key(s) %s (allowed: %s)" % (field, ", ".join(unknown), ", ".join(allowed)))
    outlet = {number_key: _int(spec.get(number_key, 1 if kind == "smart_plug" else None),
                               "%s.%s" % (field, number_key), 1, highest)}
    if kind == "smart_plug" and spec.get("url") is not None:
        outlet["url"] = check_url(spec["url"], field + ".url")
    if kind == "poe_switch":
        outlet["group"] = _int(spec.get("group", 1), field + ".group", 1, 999)
    if kind == "usb_hub" and spec.get("hub") is not None:
        if not isinstance(spec["hub"], str) or not _HUB_NAME.match(spec["hub"]):
            raise CarrierError("%s.hub: %r is not a USB hub name (such as 1-1.4)" % (field, spec["hub"]))
        outlet["hub"] = spec["hub"]
    return outlet


def refuse_options(data, field):
    """A profile of another kind names none of the outlet kinds' own settings."""
    if data.get("api") is not None:
        raise CarrierError("%s.api: only a smart_plug profile has an api" % field)
    if data.get("snmp") is not None:
        raise CarrierError("%s.snmp: only a poe_switch profile has snmp settings" % field)


def parse_profile(data, field, as_int):
    """``(outlets, options)`` of an outlet profile: slot -> port settings, and the kind's own settings
    (``api`` of a plug, ``snmp`` of a switch). ``as_int`` is the profile's slot-number reader."""
    kind = data.get("kind")
    for key in ("chips", "device", "max_slots", "sensors", "fans"):
        if data.get(key):
            raise CarrierError("%s.%s: a %s profile has none (the device switches its ports itself)"
                               % (field, key, kind))
    options = {}
    if kind == "smart_plug":
        options["api"] = _choice(data.get("api"), field + ".api", PLUG_APIS)
    elif data.get("api") is not None:
        raise CarrierError("%s.api: only a smart_plug profile has an api" % field)
    if kind == "poe_switch":
        snmp = data.get("snmp") or {}
        if not isinstance(snmp, dict):
            raise CarrierError("%s.snmp: %r is not a mapping" % (field, snmp))
        unknown = sorted(str(k) for k in snmp if k not in ("version", "auth_protocol", "priv_protocol"))
        if unknown:
            raise CarrierError("%s.snmp: unknown key(s) %s (allowed: version, auth_protocol, priv_protocol)"
                               % (field, ", ".join(unknown)))
        options["snmp"] = {
            "version": _choice(str(snmp.get("version", "2c")), field + ".snmp.version", SNMP_VERSIONS),
            "auth_protocol": _choice(snmp.get("auth_protocol", "sha"), field + ".snmp.auth_protocol", SNMP_AUTH),
            "priv_protocol": _choice(snmp.get("priv_protocol", "aes"), field + ".snmp.priv_protocol", SNMP_PRIV),
        }
    elif data.get("snmp") is not None:
        raise CarrierError("%s.snmp: only a poe_switch profile has snmp settings" % field)
    slots = data.get("slots")
    if not isinstance(slots, dict) or not slots:
        raise CarrierError("%s.slots: a mapping of slot number to the slot's port is required, got %r" % (field, slots))
    outlets, seen = {}, {}
    for key, spec in slots.items():
        slot = as_int(key, "%s.slots" % field, 1, 999)
        sfield = "%s.slots.%s" % (field, slot)
        if slot in outlets:
            raise CarrierError("%s: slot %d is listed twice" % (field, slot))
        outlet = outlets[slot] = _parse_slot(kind, slot, spec, sfield)
        identity = tuple(sorted(outlet.items()))
        if identity in seen:
            raise CarrierError("%s: the same port as slot %d" % (sfield, seen[identity]))
        seen[identity] = slot
    return outlets, options


def to_dict(profile):
    """The kind's own part of ``Profile.to_dict``."""
    data = {"slots": {slot: dict(outlet) for slot, outlet in profile.outlets.items()}}
    data.update(profile.outlet_options)
    return data


def make_driver(board):
    """The kind's driver for ``board``. Each import is by name, in this function: AnsiballZ ships with a
    module only the module_utils it finds imported by name (an import in a function is an optional one
    to it), and a driver's own third-party library is loaded only for its kind."""
    kind = board.profile.kind
    if kind == "usb_hub":
        from ansible_collections.picluster.carrier.plugins.module_utils._outlets.usbhub import HubDriver as driver
    elif kind == "poe_switch":
        from ansible_collections.picluster.carrier.plugins.module_utils._outlets.poe import PoeDriver as driver
    elif kind == "smart_plug":
        from ansible_collections.picluster.carrier.plugins.module_utils._outlets.plug import PlugDriver as driver
    else:
        raise CarrierError("board %s: kind %r is not a kind of outlet board" % (board.name, kind))
    return driver(board)


class OutletSession(object):
    """The backend session of an outlet board (``_backends`` protocol) over a kind's driver."""

    POLL = 0.05

    def __init__(self, board, driver, sleep=time.sleep, clock=time.monotonic):
        self.board = board
        self.driver = driver
        self._sleep = sleep
        self._clock = clock

    def read_state(self, slots):
        power = self.driver.read(list(slots))
        return {slot: dict(self.board.profile.blank_state(), power=power[slot]) for slot in slots}

    def chip_facts(self):
        return {"device": dict(self.driver.facts(), type=self.board.profile.kind)}

    def set_lines(self, changes):
        wanted = {}
        for slot in sorted(changes):
            for name, asserted in changes[slot].items():
                if name != "power":
                    raise CarrierError("slot %d of board %s (%s) has no %s line: it has power only (a reset is a "
                                       "power cycle)" % (slot, self.board.name, self.board.profile.kind, name))
                wanted[slot] = bool(asserted)
        for slot, on in sorted(wanted.items()):
            self.driver.write(slot, on)
        deadline = self._clock() + float(getattr(self.driver, "settle", 0.0) or 0.0)
        while True:
            power = self.driver.read(sorted(wanted))
            wrong = sorted(slot for slot, on in wanted.items() if power.get(slot) != on)
            if not wrong or self._clock() >= deadline:
                break
            self._sleep(self.POLL)
        if wrong:
            raise BusError("%s board %s: slot(s) %s did not follow: %s (a port that does not switch?)"
                           % (self.board.profile.kind, self.board.name, ", ".join(map(str, wrong)),
                              "; ".join("slot %d reads %s, wanted %s" % (s, _word(power.get(s)), _word(wanted[s]))
                                        for s in wrong)))
        return True

    def close(self):
        self.driver.close()


def _word(on):
    return "unknown" if on is None else ("on" if on else "off")
