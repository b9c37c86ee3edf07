# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Board backends: how each kind of board's control lines are read and driven.

A backend session is what :meth:`_board.Board.session` yields: ``read_state(slots)`` (slot ->
line -> asserted, ``None`` for a line the slot lacks or the board cannot read), ``set_lines(changes)``
(drive and verify ``{slot: {line: asserted}}``) and ``chip_facts()``; a board that resets by a
command of its own (``Profile.native_reset``) also has ``reset(slots)``.

- :class:`GpioSession`: I2C GPIO expanders, one bit per line (``_expanders``);
- :class:`ClusterCtrlSession` and :class:`TuringPi1Session`: the command protocol and the power
  register of those boards, over I2C (:class:`CommandDevice`);
- :class:`TuringPi2Session`: the Turing Pi 2 BMC, through :class:`_turingpi.BmcClient`.

A session is built from the :class:`_board.Board` it serves (its profile, chips, retries) and an
open bus (or, for the BMC, a client); it holds the bus lock for its whole life, which the board
takes before it builds one.
"""

from __future__ import annotations

import time

from ansible_collections.picluster.carrier.plugins.module_utils._bus import with_retries
from ansible_collections.picluster.carrier.plugins.module_utils._errors import BusError, CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._expanders import make_chip

# docs/hardware.md section 3, Turing Pi 1: register 0xF2, one bit per node, nodes 1-7.
TURINGPI1_BITS = (1, 2, 3, 4, 7, 6, 5)  # masks 0x02, 0x04, 0x08, 0x10, 0x80, 0x40, 0x20
TURINGPI1_REG_POWER = 0xF2

# docs/hardware.md section 3, ClusterCTRL: a command protocol over an emulated I2C device.
CC_REG_VERSION = 0x00
CC_REG_MAXPI = 0x01
CC_REG_DATA0 = 0x0C
CC_REG_CMD = 0x0D
CC_REG_STATUS = 0x0E
CC_CMD_ON = 0x03
CC_CMD_OFF = 0x04
CC_CMD_GET_PSTATUS = 0x0F
CC_CMD_USBBOOT_EN = 0x12
CC_CMD_USBBOOT_DIS = 0x13
CC_CMD_GET_USTATUS = 0x14


class GpioSession(object):
    """Line access on expander chips. Chip configuration is read once per session."""

    def __init__(self, board, bus):
        self.board = board
        self.drivers = {name: make_chip(t, bus, a, retries=board.retries) for name, (t, a) in board.chips.items()}
        self._polarity = {}
        self._direction = {}
        self._pins = {}  # pins read back after this session's last write to the chip

    def _lines(self, slots):
        return {slot: self.board.profile.lines(slot) for slot in slots}

    def polarity(self, chip):
        if chip not in self._polarity:
            self._polarity[chip] = self.drivers[chip].read_polarity()
        return self._polarity[chip]

    def direction(self, chip):
        if chip not in self._direction:
            self._direction[chip] = self.drivers[chip].read_direction()
        return self._direction[chip]

    def read_pins(self, chip, fresh=False):
        if fresh or chip not in self._pins:
            self._pins[chip] = self.drivers[chip].read_inputs(polarity=self.polarity(chip))
        return self._pins[chip]

    def read_state(self, slots):
        by_slot = self._lines(slots)
        pins = {}
        for lines in by_slot.values():
            for line in lines.values():
                if line.chip not in pins:
                    pins[line.chip] = self.read_pins(line.chip)
        result = {}
        for slot, lines in by_slot.items():
            state = self.board.profile.blank_state()
            for name, line in lines.items():
                state[name] = line.asserted_at(pins[line.chip] & line.mask)
            result[slot] = state
        return result

    def chip_facts(self):
        facts = {}
        for name, driver in sorted(self.drivers.items()):
            facts[name] = {"type": driver.chip, "address": "0x%02x" % driver.address, "width": driver.width,
                           "direction": "0x%0*x" % (driver.width // 4, self.direction(name)),
                           "inputs": "0x%0*x" % (driver.width // 4, self.read_pins(name)),
                           "first_use": self.direction(name) == driver.mask}
        return facts

    def set_lines(self, changes):
        """Drive lines: ``{slot: {line: asserted}}``. Verifies every pin by reading it back."""
        plan = {}
        for slot, wanted in changes.items():
            lines = self.board.profile.lines(slot)
            for name, asserted in wanted.items():
                if name not in lines:
                    raise CarrierError("slot %d of profile %s has no %s line" % (slot, self.board.profile.name, name))
                line = lines[name]
                mask, value, owners = plan.setdefault(line.chip, [0, 0, {}])
                plan[line.chip][0] = mask | line.mask
                if line.level_for(asserted):
                    plan[line.chip][1] = value | line.mask
                owners[line.bit] = (slot, name, asserted)
        for chip in sorted(plan):
            mask, value, owners = plan[chip]
            driver = self.drivers[chip]
            latch = driver.read_outputs()
            if self.direction(chip) & mask:
                # First use of these bits: make them outputs at their present level (no glitch).
                latch = driver.configure_outputs(mask, direction=self.direction(chip), polarity=self.polarity(chip),
                                                 latch=latch, pins=self.read_pins(chip))
                self._direction[chip] = self.direction(chip) & ~mask
            new_latch = (latch & ~mask) | value
            if new_latch != latch:
                driver.write_outputs(new_latch)
            pins = self.read_pins(chip, fresh=True)
            wrong = (pins ^ new_latch) & mask
            if wrong:
                back = driver.read_outputs()
                if (back ^ new_latch) & mask:
                    raise BusError("%s: wrote output latch 0x%x but read back 0x%x"
                                   % (driver.describe(), new_latch, back))
                bad = []
                for bit in range(driver.width):
                    if wrong & (1 << bit):
                        slot, name, asserted = owners[bit]
                        bad.append("slot %d %s (bit %d) should be %s but the pin reads %d"
                                   % (slot, name, bit, "asserted" if asserted else "released", (pins >> bit) & 1))
                raise BusError("%s on board %s: line did not follow: %s (stuck line or short?)"
                               % (driver.describe(), self.board.name, "; ".join(bad)))
        return True


class CommandDevice(object):
    """Register access to a command-style board with retries."""

    def __init__(self, board, bus, address):
        self.board = board
        self.bus = bus
        self.address = address

    def read(self, reg):
        return with_retries(lambda: self.bus.read_byte_data(self.address, reg),
                            "%s (0x%02x): read register 0x%02x" % (self.board.profile.kind, self.address, reg),
                            attempts=self.board.retries) & 0xFF

    def write(self, reg, value):
        with_retries(lambda: self.bus.write_byte_data(self.address, reg, value & 0xFF),
                     "%s (0x%02x): write register 0x%02x = 0x%02x"
                     % (self.board.profile.kind, self.address, reg, value & 0xFF), attempts=self.board.retries)


class TuringPi1Session(object):
    """docs/hardware.md section 3: one power bit per node in register 0xF2 (bit set = on)."""

    def __init__(self, board, bus):
        self.board = board
        self.device = CommandDevice(board, bus, board.profile.device_address)

    def read_state(self, slots):
        value = self.device.read(TURINGPI1_REG_POWER)
        result = {}
        for slot in slots:
            state = self.board.profile.blank_state()
            state["power"] = bool(value & self.board.profile.lines(slot)["power"].mask)
            result[slot] = state
        return result

    def chip_facts(self):
        return {"device": {"type": "turingpi1", "address": "0x%02x" % self.device.address,
                           "power_register": "0x%02x" % self.device.read(TURINGPI1_REG_POWER)}}

    def set_lines(self, changes):
        current = self.device.read(TURINGPI1_REG_POWER)
        new = current
        for slot, wanted in changes.items():
            lines = self.board.profile.lines(slot)
            for name, asserted in wanted.items():
                if name not in lines:
                    raise CarrierError("slot %d of a Turing Pi 1 has no %s line (only power)" % (slot, name))
                new = (new | lines[name].mask) if asserted else (new & ~lines[name].mask)
        if new != current:
            self.device.write(TURINGPI1_REG_POWER, new)
        back = self.device.read(TURINGPI1_REG_POWER)
        if back != new:
            raise BusError("turingpi1 (0x%02x): wrote power register 0x%02x but read back 0x%02x"
                           % (self.device.address, new, back))
        return True


class ClusterCtrlSession(object):
    """docs/hardware.md section 3: write the node to DATA0, the command to CMD; the firmware runs it
    from its main loop, clears CMD when done and leaves STATUS 0 for OK; GET commands answer in
    DATA0 (read from the firmware source). A write while a command is pending is NACKed, which
    the bus retries absorb."""

    POLL_TIMEOUT = 2.0

    def __init__(self, board, bus):
        self.board = board
        self.device = CommandDevice(board, bus, board.profile.device_address)
        self._maxpi = None

    def maxpi(self):
        if self._maxpi is None:
            self._maxpi = self.device.read(CC_REG_MAXPI)
        return self._maxpi

    def _check_slot(self, slot):
        if slot > self.maxpi():
            raise CarrierError("slot: %d is beyond this ClusterCTRL's %d nodes (MAXPI)" % (slot, self.maxpi()))

    def command(self, code, node):
        self.device.write(CC_REG_DATA0, node)
        self.device.write(CC_REG_CMD, code)
        deadline = time.monotonic() + self.POLL_TIMEOUT
        while self.device.read(CC_REG_CMD) != 0:
            if time.monotonic() > deadline:
                raise BusError("clusterctrl: command 0x%02x for node %d did not finish in %.0f s"
                               % (code, node, self.POLL_TIMEOUT))
            time.sleep(0.001)
        status = self.device.read(CC_REG_STATUS)
        if status != 0:
            raise BusError("clusterctrl: command 0x%02x for node %d failed with status 0x%02x" % (code, node, status))
        return self.device.read(CC_REG_DATA0)

    def read_state(self, slots):
        result = {}
        for slot in slots:
            self._check_slot(slot)
            state = self.board.profile.blank_state()
            state["power"] = bool(self.command(CC_CMD_GET_PSTATUS, slot))
            state["rpiboot"] = bool(self.command(CC_CMD_GET_USTATUS, slot))
            result[slot] = state
        return result

    def chip_facts(self):
        return {"device": {"type": "clusterctrl", "address": "0x%02x" % self.device.address,
                           "version": self.device.read(CC_REG_VERSION), "maxpi": self.maxpi()}}

    def set_lines(self, changes):
        codes = {"power": (CC_CMD_ON, CC_CMD_OFF), "rpiboot": (CC_CMD_USBBOOT_EN, CC_CMD_USBBOOT_DIS)}
        for slot in sorted(changes):
            self._check_slot(slot)
            # rpiboot before power, so a node switched on with USB boot starts in it.
            for name in sorted(changes[slot], key=lambda n: n != "rpiboot"):
                if name not in codes:
                    raise CarrierError("slot %d of a ClusterCTRL has no %s line (power and rpiboot only)"
                                       % (slot, name))
                self.command(codes[name][0] if changes[slot][name] else codes[name][1], slot)
        after = self.read_state(sorted(changes))
        for slot, wanted in changes.items():
            for name, asserted in wanted.items():
                if after[slot][name] != asserted:
                    raise BusError("clusterctrl: node %d %s reads %s after the command"
                                   % (slot, name, "on" if after[slot][name] else "off"))
        return True


class TuringPi2Session(object):
    """docs/hardware.md section 3, Turing Pi 2: the BMC's HTTP API. Power is what the BMC last switched
    (it does not sense it); the USB boot mode cannot be read back, so it reads as unknown (None)."""

    def __init__(self, board, client):
        self.board = board
        self.client = client
        self._power = None  # the power read back after this session's last set (or its first read)

    def read_state(self, slots):
        if self._power is None:
            self._power = self.client.power()
        power = self._power
        return {slot: dict(self.board.profile.blank_state(), power=power[slot]) for slot in slots}

    def chip_facts(self):
        return {"bmc": {"type": "turingpi2", "url": self.client.url,
                        "power_source": "the BMC's saved state (not sensed)"}}

    def set_lines(self, changes):
        power = {}
        for slot in sorted(changes):
            lines = self.board.profile.lines(slot)
            for name, asserted in changes[slot].items():
                if name not in lines:
                    raise CarrierError("slot %d of a Turing Pi 2 has no %s line (power and rpiboot; reset is a "
                                       "BMC command)" % (slot, name))
                if name == "rpiboot":
                    self.client.usb_boot(slot, asserted)
                else:
                    power[slot] = asserted
        if power:
            self.client.set_power(power)
            after = self._power = self.client.power()
            wrong = [slot for slot, on in power.items() if after[slot] != on]
            if wrong:
                raise BusError("turingpi2 BMC %s: node(s) %s still read %s after the power set"
                               % (self.client.url, ", ".join(map(str, wrong)),
                                  ", ".join("on" if after[s] else "off" for s in wrong)))
        return True

    def reset(self, slots):
        for slot in slots:
            self.client.reset(slot)
        self._power = None


#: The session class of each profile kind whose board is reached over an I2C bus.
BUS_SESSIONS = {"gpio": GpioSession, "turingpi1": TuringPi1Session, "clusterctrl": ClusterCtrlSession}
