# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A simulated board: the I2C targets of a profile and the level of each slot's lines."""

from __future__ import annotations

import json
import os
import random

from . import chips as chipmod
from . import sensors as sensormod
from .controllers import ClusterCtrl, TuringPi1


class SimBoard:
    """A board of the topology on a simulated bus.

    ``spec`` is a ``_topology.BoardSpec``. Devices are built from its profile with the board's
    address overrides; ``pulls`` come from the profile lines (unused bits pull up).
    """

    def __init__(self, spec, pending_time=None):
        self.spec = spec
        self.name = spec.name
        self.profile = spec.profile
        self.kind = spec.profile.kind
        self.sim = dict(spec.sim or {})
        self.error_rate = float(self.sim.get("i2c_error_rate", 0.0) or 0.0)
        seed = self.sim.get("seed")
        self.rng = random.Random(seed)
        self.devices = {}  # name -> Device
        self.nodes = {}  # slot -> Node (set by the simulator)
        addresses = dict(spec.addresses or {})
        if self.kind == "gpio":
            pulls = {}
            for slot in self.profile.slot_numbers:
                for line in self.profile.lines(slot).values():
                    mask = pulls.setdefault(line.chip, None)
                    if mask is None:
                        mask = 0xFFFF
                    if not line.pull_up:
                        mask &= ~(1 << line.bit)
                    pulls[line.chip] = mask
            for chip_name, (chip_type, address) in self.profile.chips.items():
                address = addresses.get(chip_name, address)
                self.devices[chip_name] = chipmod.make_chip(chip_type, address, name=chip_name, board=self,
                                                            pull=pulls.get(chip_name))
        elif self.kind == "clusterctrl":
            highest = max([0] + list(spec.nodes))
            maxpi = max(int(self.sim.get("maxpi") or highest or 4), highest)
            pending = float(self.sim.get("pending_time", 0.005 if pending_time is None else pending_time))
            self.devices["ctrl"] = ClusterCtrl(self.profile.device_address, name="ctrl", board=self,
                                               maxpi=maxpi, pending_time=pending)
        elif self.kind == "turingpi1":
            self.devices["tpi"] = TuringPi1(self.profile.device_address, name="tpi", board=self,
                                            initial=int(self.sim.get("initial_state", 0)))
        else:  # pragma: no cover - the profile validator knows the kinds
            raise ValueError("board %s: unknown profile kind %r" % (self.name, self.kind))
        self.load = None
        self.devices.update(sensormod.build(self))
        # sim.latch_file: the chips' registers outlive the simulator process, as a board that keeps
        # its power while its controller restarts keeps its latches.
        self.latch_file = self.sim.get("latch_file")
        self._restore_latches()

    def _latch_state(self):
        state = {}
        for name, dev in self.devices.items():
            if isinstance(dev, chipmod.RegisterChip):
                state[name] = {"regs": {str(r): v for r, v in dev.regs.items()}}
            elif isinstance(dev, chipmod.PCF8574):
                state[name] = {"latch": dev._latch}
        return state

    def _restore_latches(self):
        if not self.latch_file or not os.path.exists(self.latch_file):
            return
        with open(self.latch_file) as fh:
            state = json.load(fh)
        for name, saved in state.items():
            dev = self.devices.get(name)
            if dev is None:
                continue
            if "regs" in saved and isinstance(dev, chipmod.RegisterChip):
                dev.regs.update({int(r): int(v) for r, v in saved["regs"].items() if int(r) in dev.regs})
            elif "latch" in saved and isinstance(dev, chipmod.PCF8574):
                dev._latch = int(saved["latch"])

    def persist(self):
        """Save the chips' registers to sim.latch_file (after every write on the bus)."""
        if not self.latch_file:
            return
        tmp = self.latch_file + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(self._latch_state(), fh, sort_keys=True)
        os.replace(tmp, self.latch_file)

    def chip(self, name):
        try:
            return self.devices[name]
        except KeyError:
            raise ValueError("board %s has no chip %r (chips: %s)"
                             % (self.name, name, ", ".join(sorted(self.devices)))) from None

    def line_levels(self, slot):
        """{line: asserted (bool)} for every line the profile gives the slot, plus defaults for
        the missing ones (run asserted, rpiboot and eeprom_wp released)."""
        state = {"power": False, "run": True, "rpiboot": False, "eeprom_wp": False}
        if self.kind == "gpio":
            for name, line in self.profile.lines(slot).items():
                level = self.devices[line.chip].pin(line.bit)
                state[name] = bool(level) == bool(line.active_high)
        elif self.kind == "clusterctrl":
            ctrl = self.devices["ctrl"]
            state["power"] = ctrl.power.get(slot, False)
            state["rpiboot"] = ctrl.usbboot.get(slot, False)
        else:
            state["power"] = self.devices["tpi"].power(slot)
        return state

    def snapshot(self):
        return {
            "name": self.name,
            "profile": self.spec.profile_name,
            "kind": self.kind,
            "bus": self.spec.bus,
            "i2c_error_rate": self.error_rate,
            "devices": {name: dev.snapshot() for name, dev in self.devices.items()},
        }
