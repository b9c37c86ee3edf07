# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``usb_hub`` boards: a node on each port of a USB hub that switches its ports' power (VBUS).

Mechanism: the kernel's port ``disable`` attribute (Linux 6.0 and later; docs/hardware.md section
14). Port N of hub ``H`` is ``<devices>/H/H:<config>.0/H-portN/disable`` (a root hub ``usbB``:
``<devices>/usbB/B-0:1.0/usbB-portN/disable``). Reading it asks the hub for the port's status (``0``:
the port is powered, ``1``: it is not); writing ``1`` switches the port off (and its VBUS, on a hub
with per-port power switching), ``0`` on again. A slot's ``hub`` names a hub behind the board's
(``1-1.4``), found beside it in the same devices directory.

Whether a hub switches each port by itself (wHubCharacteristics bits 1:0 of its hub descriptor:
``01`` per-port, ``00`` ganged, ``1x`` none) is not in sysfs; :meth:`HubDriver.facts` asks the hub
for its descriptor through usbfs (``/dev/bus/usb/BBB/DDD``) where it may, else says ``unknown``.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import struct
import time

from ansible_collections.picluster.carrier.plugins.module_utils._errors import BusError, CarrierError

# struct usbdevfs_ctrltransfer in native layout: bRequestType, bRequest, wValue, wIndex, wLength, timeout
# (ms), data pointer: 24 bytes on a 64-bit kernel, 16 on a 32-bit one (Raspberry Pi OS armhf).
_CTRL = "@BBHHHIP"
# USBDEVFS_CONTROL = _IOWR('U', 0, struct usbdevfs_ctrltransfer)
USBDEVFS_CONTROL = 0xC0000000 | (struct.calcsize(_CTRL) << 16) | (ord("U") << 8)
SWITCHING = {0: "ganged", 1: "per-port", 2: "none", 3: "none"}
#: How long a switched port may take to read as written (a hub's bPwrOn2PwrGood is at most 510 ms).
SETTLE = 0.6
#: A port just switched is read back no sooner than this (power-on to power-good of a typical hub).
POWER_GOOD = 0.1


def _read(path):
    with open(path) as handle:
        return handle.read().strip()


def _read_optional(path):
    try:
        return _read(path)
    except OSError:
        return None


def parse_hub_descriptor(data):
    """``(ports, switching)`` from a hub descriptor (USB 2.0 type 0x29 or USB 3 type 0x2a)."""
    if len(data) < 5 or data[1] not in (0x29, 0x2A):
        raise ValueError("not a hub descriptor: %r" % bytes(data[:8]))
    characteristics = data[3] | (data[4] << 8)
    return data[2], SWITCHING[characteristics & 0x3]


def read_hub_descriptor(hub_dir, dev_root="/dev/bus/usb", opener=os.open, ioctl=fcntl.ioctl):
    """Ask the hub for its descriptor through usbfs (GET_DESCRIPTOR, class request); bytes or None
    (no such device node, not allowed to open it - usbfs wants root or a udev rule -, or refused)."""
    busnum, devnum = _read_optional(os.path.join(hub_dir, "busnum")), _read_optional(os.path.join(hub_dir, "devnum"))
    speed = _read_optional(os.path.join(hub_dir, "speed")) or ""
    if not (busnum and devnum and busnum.isdigit() and devnum.isdigit()):
        return None
    kind = 0x2A if speed.isdigit() and int(speed) >= 5000 else 0x29
    buffer = ctypes.create_string_buffer(64)
    request = struct.pack(_CTRL, 0xA0, 6, kind << 8, 0, len(buffer), 1000, ctypes.addressof(buffer))
    try:
        fd = opener(os.path.join(dev_root, "%03d" % int(busnum), "%03d" % int(devnum)), os.O_RDWR)
    except OSError:
        return None
    try:
        length = ioctl(fd, USBDEVFS_CONTROL, bytearray(request), True)  # True: the call's result, the length
    except OSError:
        return None
    finally:
        os.close(fd)
    return buffer.raw[:length] if length and length > 0 else None


class HubDriver(object):
    """The ports of one hub board (and of the hubs behind it its slots name), through sysfs."""

    settle = SETTLE

    def __init__(self, board, sleep=time.sleep, clock=time.monotonic):
        self.board = board
        self.root = board.bus_spec
        self.devices = os.path.dirname(self.root)
        self.name = os.path.basename(self.root)
        self._sleep = sleep
        self._clock = clock
        self._switched = None

    # --- where a slot's port is ------------------------------------------------------------------
    def hub_dir(self, slot):
        hub = self.board.profile.outlets[slot].get("hub") or self.name
        return os.path.join(self.devices, hub)

    def port_dir(self, slot):
        hub_dir = self.hub_dir(slot)
        hub = os.path.basename(hub_dir)
        port = self.board.profile.outlets[slot]["port"]
        if hub.startswith("usb"):
            return os.path.join(hub_dir, "%s-0:1.0" % hub[3:], "%s-port%d" % (hub, port))
        config = _read_optional(os.path.join(hub_dir, "bConfigurationValue")) or "1"
        return os.path.join(hub_dir, "%s:%s.0" % (hub, config if config.isdigit() else "1"), "%s-port%d" % (hub, port))

    def _where(self, slot, path):
        return "usb_hub board %s slot %d (%s)" % (self.board.name, slot, path)

    def _gone(self, slot):
        return BusError("%s: the hub is gone (its directory does not exist: unplugged, without power, or reset?)"
                        % self._where(slot, self.hub_dir(slot)))

    def _disable_file(self, slot):
        if slot not in self.board.profile.outlets:
            raise CarrierError("usb_hub board %s has no slot %r" % (self.board.name, slot))
        if not os.path.isdir(self.hub_dir(slot)):
            raise self._gone(slot)
        port_dir = self.port_dir(slot)
        if not os.path.isdir(port_dir):
            port = self.board.profile.outlets[slot]["port"]
            raise BusError("%s: the hub has no port %d (no directory %s)"
                           % (self._where(slot, self.hub_dir(slot)), port, port_dir))
        path = os.path.join(port_dir, "disable")
        if not os.path.exists(path):
            raise BusError("%s: no %s: the kernel has no port disable attribute (Linux 6.0 or later needed)"
                           % (self._where(slot, port_dir), path))
        return path

    def _os_error(self, slot, path, exc, doing):
        if exc.errno == errno.ENODEV or not os.path.isdir(self.hub_dir(slot)):
            return self._gone(slot)
        if exc.errno in (errno.EACCES, errno.EPERM):
            return BusError("%s: permission denied %s %s: switching a hub port needs root on the controller "
                            "(become: true, or a udev rule that opens the port's disable file to a group)"
                            % (self._where(slot, path), doing, path))
        return BusError("%s: %s %s failed: %s" % (self._where(slot, path), doing, path, exc.strerror or exc))

    # --- the driver protocol ---------------------------------------------------------------------
    def read(self, slots):
        if self._switched is not None:
            wait = POWER_GOOD - (self._clock() - self._switched)
            if wait > 0:
                self._sleep(wait)
            self._switched = None
        power = {}
        for slot in slots:
            path = self._disable_file(slot)
            try:
                value = _read(path)
            except OSError as exc:
                raise self._os_error(slot, path, exc, "reading") from None
            if value not in ("0", "1"):
                raise BusError("%s: %s reads %r, not 0 or 1" % (self._where(slot, path), path, value))
            power[slot] = value == "0"
        return power

    def write(self, slot, on):
        path = self._disable_file(slot)
        try:
            with open(path, "w") as handle:
                handle.write("0\n" if on else "1\n")
        except OSError as exc:
            raise self._os_error(slot, path, exc, "writing") from None
        self._switched = self._clock()

    def facts(self):
        hubs = sorted({self.hub_dir(slot) for slot in self.board.profile.outlets})
        if not os.path.isdir(self.root):
            raise BusError("usb_hub board %s (%s): the hub is gone (its directory does not exist: unplugged, "
                           "without power, or reset?)" % (self.board.name, self.root))
        facts = dict(self._hub_facts(self.root), mechanism="sysfs")
        behind = {os.path.basename(h): self._hub_facts(h) for h in hubs if h != self.root}
        if behind:
            facts["hubs"] = behind
        return facts

    def _hub_facts(self, hub_dir):
        def read(name):
            return _read_optional(os.path.join(hub_dir, name))

        facts = {"model": read("product"), "manufacturer": read("manufacturer"), "vendor_id": read("idVendor"),
                 "product_id": read("idProduct"), "firmware": read("bcdDevice"), "ports": None,
                 "power_switching": "unknown"}
        ports = read("maxchild")
        facts["ports"] = int(ports) if ports and ports.isdigit() else None
        descriptor = read_hub_descriptor(hub_dir) if hub_dir.startswith("/sys/") else None
        if descriptor:
            try:
                facts["ports"], facts["power_switching"] = parse_hub_descriptor(descriptor)
            except ValueError:
                pass
        if not os.path.isdir(hub_dir):
            facts["present"] = False
        return facts

    def close(self):
        pass
