# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Boards whose nodes are switched by a network or sysfs device rather than by chips on an I2C bus:
the Turing Pi 2's BMC (bmc.py), and the devices of boards without a carrier - a smart plug or
power strip (plugs.py), a PoE switch (snmpswitch.py), a USB hub with per-port power (usbhub.py).

An emulator is built as ``Emulator(spec, nodes, state_dir, log=log)`` (``spec`` a topology
BoardSpec, ``nodes`` slot -> Node) and has ``created`` (paths it made, removed at shutdown),
``async start()``, ``close()``, ``async wait_closed()``, ``lines(slot)`` (the slot's line levels,
as ``SimBoard.line_levels``), ``snapshot()``, and optionally ``fault(request) -> dict`` for the
control socket's board faults. On every change of a port it calls
``nodes[slot].apply_lines(self.lines(slot))``, as a node's power follows its port.
"""

from __future__ import annotations

import importlib
import ipaddress
import os
import urllib.parse

EMULATORS = {
    "turingpi2": "bmc:BmcEmulator",
    "smart_plug": "plugs:PlugEmulator",
    "poe_switch": "snmpswitch:PoeEmulator",
    "usb_hub": "usbhub:HubEmulator",
}


class DeviceEmulator:
    """What every emulator keeps of its board: the constructor of the protocol above."""

    def __init__(self, spec, nodes, state_dir, log=None):
        self.spec = spec
        self.name = spec.name
        self.nodes = dict(nodes)
        self.state_dir = state_dir
        self.log = log or (lambda msg: None)


def _loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def simulated(spec, state_dir):
    """Whether the simulator plays this board's device (else the board is on real hardware: skipped).

    A Turing Pi 2 is played at any http(s) URL (the tests give it loopback ones); a plug or a switch
    only at a loopback address, a hub only under the state directory, so a topology that names real
    devices beside simulated ones never has the simulator answer for the real ones."""
    kind, bus = spec.profile.kind, spec.bus
    if kind == "turingpi2":
        return bus.startswith(("http://", "https://"))
    if kind == "usb_hub":
        return os.path.abspath(bus).startswith(os.path.abspath(state_dir) + os.sep)
    return _loopback(urllib.parse.urlsplit(bus).hostname or "")


def make_emulator(spec, nodes, state_dir, log=None):
    module_name, class_name = EMULATORS[spec.profile.kind].split(":")
    module = importlib.import_module("%s.%s" % (__package__, module_name))
    return getattr(module, class_name)(spec, nodes, state_dir, log=log)


class DeviceBoard:
    """A board in the simulator whose nodes an emulated device drives, instead of bus devices."""

    error_rate = 0.0

    def __init__(self, spec):
        self.spec = spec
        self.name = spec.name
        self.kind = spec.profile.kind
        self.devices = {}
        self.nodes = {}
        self.device = None  # the emulator

    def line_levels(self, slot):
        return self.device.lines(slot)

    def snapshot(self):
        data = {"name": self.name, "profile": self.spec.profile_name, "kind": self.kind, "bus": self.spec.bus,
                "i2c_error_rate": 0.0, "devices": {}}
        data["bmc" if self.kind == "turingpi2" else "device"] = self.device.snapshot() if self.device else None
        return data
