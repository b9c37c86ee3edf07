# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Emulated board controllers on I2C: ClusterCTRL and Turing Pi 1 (docs/hardware.md section 3).

They take the same six smbus2 operations as the expanders of chips.py (a transaction they do not
take is not acknowledged, errno 121), but drive the slots through their own registers.
"""

from __future__ import annotations

import time

from .chips import Device


class ClusterCtrl(Device):
    """ClusterCTRL firmware (docs/hardware.md section 3) at 0x20: registers and the command protocol.

    A command: DATA0 (0x0C) = node number, then CMD (0x0D) = code. The firmware runs it from its
    main loop ``pending_time`` seconds later: until then CMD reads back the code (non-zero) and
    any write to the device is not acknowledged; then CMD reads 0, STATUS 0x00 = OK, answers
    are in DATA0. Node 0 in ON/OFF/USBBOOT means every node (a simulator convenience).
    """

    kind = "clusterctrl"
    VERSION, MAXPI, ORDER, MODE, TYPE = 0x00, 0x01, 0x02, 0x03, 0x04
    DATA7, DATA0, CMD, STATUS = 0x05, 0x0C, 0x0D, 0x0E
    READ_ONLY = (VERSION, MAXPI, MODE, TYPE, STATUS)
    CMD_ON, CMD_OFF, CMD_GET_PSTATUS = 0x03, 0x04, 0x0F
    CMD_USBBOOT_ON, CMD_USBBOOT_OFF, CMD_GET_USTATUS = 0x12, 0x13, 0x14
    NOOP_COMMANDS = (0x05, 0x06, 0x07, 0x10, 0x11, 0x15, 0xF0, 0xF2, 0xF5)
    STATUS_OK, STATUS_ERROR = 0x00, 0x01

    def __init__(self, address=0x20, name="ctrl", board=None, maxpi=4, pending_time=0.005, version=0x14,
                 board_type=0x00):
        super().__init__(address, name, board)
        self.maxpi = maxpi
        self.pending_time = pending_time
        self.regs = {reg: 0 for reg in range(0x00, 0x0F)}
        self.regs[self.VERSION] = version
        self.regs[self.MAXPI] = maxpi
        self.regs[self.TYPE] = board_type
        self.power = {n: False for n in range(1, maxpi + 1)}
        self.usbboot = {n: False for n in range(1, maxpi + 1)}
        self.pending_until = None
        self.scheduler = None  # callable(delay, fn): the server schedules the main-loop run

    # the firmware's main loop
    def poll(self, now=None):
        if self.pending_until is not None and (now or time.monotonic()) >= self.pending_until:
            self._execute()

    def _execute(self):
        code = self.regs[self.CMD]
        node = self.regs[self.DATA0]
        self.pending_until = None
        status = self.STATUS_OK
        nodes = list(self.power) if node == 0 else [node]
        if code in (self.CMD_ON, self.CMD_OFF, self.CMD_USBBOOT_ON, self.CMD_USBBOOT_OFF, self.CMD_GET_PSTATUS,
                    self.CMD_GET_USTATUS) and not all(n in self.power for n in nodes):
            status = self.STATUS_ERROR
        elif code == self.CMD_ON:
            for n in nodes:
                self.power[n] = True
        elif code == self.CMD_OFF:
            for n in nodes:
                self.power[n] = False
        elif code == self.CMD_USBBOOT_ON:
            for n in nodes:
                self.usbboot[n] = True
        elif code == self.CMD_USBBOOT_OFF:
            for n in nodes:
                self.usbboot[n] = False
        elif code == self.CMD_GET_PSTATUS:
            self.regs[self.DATA0] = 1 if node and self.power[node] else 0
        elif code == self.CMD_GET_USTATUS:
            self.regs[self.DATA0] = 1 if node and self.usbboot[node] else 0
        elif code in self.NOOP_COMMANDS:
            pass
        else:
            status = self.STATUS_ERROR
        self.regs[self.STATUS] = status
        self.regs[self.CMD] = 0
        if self.on_change:
            self.on_change(self)

    def _check(self, reg):
        if reg not in self.regs:
            self._nack("register 0x%02x" % reg)

    def read_byte_data(self, reg):
        self.poll()
        self._check(reg)
        return self.regs[reg]

    def write_byte_data(self, reg, value):
        self.poll()
        if self.pending_until is not None:
            self._nack("write while a command is pending")
        self._check(reg)
        if reg in self.READ_ONLY:
            return
        self.regs[reg] = value & 0xFF
        if reg == self.CMD and value:
            self.pending_until = time.monotonic() + self.pending_time
            if self.scheduler:
                self.scheduler(self.pending_time, self.poll)

    def write_word_data(self, reg, value):
        self.poll()
        if self.pending_until is not None:
            self._nack("write while a command is pending")
        self._nack("word write")

    def read_word_data(self, reg):
        self._nack("word read")

    def snapshot(self):
        out = super().snapshot()
        out.update({
            "maxpi": self.maxpi,
            "pending": self.pending_until is not None,
            "power": {str(k): v for k, v in self.power.items()},
            "usbboot": {str(k): v for k, v in self.usbboot.items()},
            "registers": {"0x%02x" % r: v for r, v in sorted(self.regs.items())},
        })
        return out


class TuringPi1(Device):
    """Turing Pi 1 at 0x57: register 0xF2 (EEPROM-backed) one bit per node, bit set = on;
    0xF4 is its RAM shadow and reads back the same state. Other registers are not acknowledged."""

    kind = "turingpi1"
    REG_POWER, REG_SHADOW = 0xF2, 0xF4
    NODE_BITS = {1: 0x02, 2: 0x04, 3: 0x08, 4: 0x10, 5: 0x80, 6: 0x40, 7: 0x20}

    def __init__(self, address=0x57, name="tpi", board=None, initial=0x00):
        super().__init__(address, name, board)
        self.state = initial & 0xFF

    def power(self, node):
        return bool(self.state & self.NODE_BITS[node])

    def _check(self, reg):
        if reg not in (self.REG_POWER, self.REG_SHADOW):
            self._nack("register 0x%02x" % reg)

    def read_byte_data(self, reg):
        self._check(reg)
        return self.state

    def write_byte_data(self, reg, value):
        self._check(reg)
        self.state = value & 0xFF

    def read_word_data(self, reg):
        self._nack("word read")

    def write_word_data(self, reg, value):
        self._nack("word write")

    def snapshot(self):
        out = super().snapshot()
        out["state"] = self.state
        return out
