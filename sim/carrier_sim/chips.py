# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Emulated I2C targets: the base :class:`Device` and the GPIO expanders (docs/hardware.md section 2).
The board controllers (ClusterCTRL, Turing Pi 1) are in controllers.py.

Every target implements the six smbus2 operations. A target that does not take a transaction
raises ``I2CError(121)`` (NACK), as the real part does by not acknowledging.

Expander model (all register chips):
- direction bit 1 = input, 0 = output; power-on: all inputs;
- pin level = the latch bit where the bit is an output, else the board's pull for that bit;
  a stuck fault overrides both (a pin held at a level by something else);
- input register = pin levels XOR polarity inversion;
- writes to read-only registers are ignored (the chips acknowledge and drop them);
- a register the chip does not have is not acknowledged (errno 121): stricter than some parts,
  so a driver that addresses a wrong register fails loudly in the simulator.
"""

from __future__ import annotations

import errno

EREMOTEIO = errno.EREMOTEIO  # 121: no acknowledge
EIO = errno.EIO  # 5: bus error


class I2CError(Exception):
    """A transaction that fails the way smbus2 reports it: an OSError errno and a message."""

    def __init__(self, code, message):
        super().__init__(message)
        self.errno = code
        self.message = message


class Device:
    """An I2C target. Subclasses override the operations they take; the rest NACK."""

    kind = "device"
    width = 8

    def __init__(self, address, name="", board=None):
        self.address = address
        self.name = name
        self.board = board
        self.on_change = None  # called after a transaction that may change pin levels

    def _nack(self, what="register"):
        raise I2CError(EREMOTEIO, "0x%02x (%s) did not acknowledge the %s" % (self.address, self.kind, what))

    def read_byte(self):
        self._nack("read")

    def write_byte(self, value):
        self._nack("write")

    def read_byte_data(self, reg):
        self._nack("register 0x%02x" % reg)

    def write_byte_data(self, reg, value):
        self._nack("register 0x%02x" % reg)

    def read_word_data(self, reg):
        lo = self.read_byte_data(reg)
        hi = self.read_byte_data(self.next_register(reg))
        return lo | (hi << 8)

    def write_word_data(self, reg, value):
        self.write_byte_data(reg, value & 0xFF)
        self.write_byte_data(self.next_register(reg), (value >> 8) & 0xFF)

    def next_register(self, reg):
        return (reg + 1) & 0xFF

    def snapshot(self):
        return {"name": self.name, "type": self.kind, "address": self.address}


# --------------------------------------------------------------------------------------------
# GPIO expanders


class GpioChip(Device):
    """Common pin model of the expanders: pulls from the board, stuck faults, levels."""

    width = 8

    def __init__(self, address, name="", board=None, pull=None):
        super().__init__(address, name, board)
        self.mask = (1 << self.width) - 1
        self.pull = self.mask if pull is None else pull & self.mask  # unused bits pull up
        self.stuck = {}  # bit -> 0|1

    # the three full-width views a subclass provides
    def direction(self):  # 1 = input
        raise NotImplementedError

    def latch(self):
        raise NotImplementedError

    def polarity(self):
        return 0

    def levels(self):
        """Pin levels as a full-width int."""
        d = self.direction()
        value = (self.latch() & ~d) | (self.pull & d)
        for bit, level in self.stuck.items():
            value = (value | (1 << bit)) if level else (value & ~(1 << bit))
        return value & self.mask

    def pin(self, bit):
        return (self.levels() >> bit) & 1

    def input_value(self):
        return (self.levels() ^ self.polarity()) & self.mask

    def set_stuck(self, bit, level):
        if not 0 <= bit < self.width:
            raise ValueError("bit %d out of range for %s (%d bits)" % (bit, self.kind, self.width))
        if level is None:
            self.stuck.pop(bit, None)
        else:
            self.stuck[bit] = 1 if level else 0

    def snapshot(self):
        out = super().snapshot()
        out.update({
            "width": self.width,
            "direction": self.direction(),
            "latch": self.latch(),
            "polarity": self.polarity(),
            "levels": self.levels(),
            "pull": self.pull,
            "stuck": {str(k): v for k, v in sorted(self.stuck.items())},
        })
        return out


class RegisterChip(GpioChip):
    """An expander with a register pointer and a register map.

    REGS: reg -> (name, power-on default, writable). Registers named in INPUT are computed from
    the pins. Full-width views are assembled from port registers (port 0 = bits 0-7).
    """

    REGS = {}
    INPUT = ()
    OUTPUT = ()
    POLARITY = ()
    DIRECTION = ()
    # registers whose write goes to another register (MCP GPIO -> OLAT)
    WRITE_ALIAS = {}

    def __init__(self, address, name="", board=None, pull=None):
        super().__init__(address, name, board, pull)
        self.regs = {reg: default for reg, (_n, default, _w) in self.REGS.items()}
        self.pointer = 0

    def _full(self, regs):
        value = 0
        for port, reg in enumerate(regs):
            value |= self.regs[reg] << (8 * port)
        return value

    def direction(self):
        return self._full(self.DIRECTION)

    def latch(self):
        return self._full(self.OUTPUT)

    def polarity(self):
        return self._full(self.POLARITY) if self.POLARITY else 0

    def _check(self, reg):
        if reg not in self.REGS:
            self._nack("register 0x%02x" % reg)

    def _get(self, reg):
        self._check(reg)
        if reg in self.INPUT:
            port = self.INPUT.index(reg)
            return (self.input_value() >> (8 * port)) & 0xFF
        return self.regs[reg]

    def _set(self, reg, value):
        self._check(reg)
        reg = self.WRITE_ALIAS.get(reg, reg)
        if self.REGS[reg][2]:
            self.regs[reg] = value & 0xFF
            self._after_write(reg)
        # read-only: acknowledged and ignored

    def _after_write(self, reg):
        pass

    # smbus operations
    def read_byte(self):
        return self._get(self.pointer)

    def write_byte(self, value):
        # a one-byte write is the register pointer
        self._check(value)
        self.pointer = value

    def read_byte_data(self, reg):
        self._check(reg)
        self.pointer = reg
        return self._get(reg)

    def write_byte_data(self, reg, value):
        self._check(reg)
        self.pointer = reg
        self._set(reg, value)

    def read_word_data(self, reg):
        self._check(reg)
        second = self.next_register(reg)
        lo = self._get(reg)
        hi = self._get(second) if second in self.REGS else 0xFF
        self.pointer = second if second in self.REGS else reg
        return lo | (hi << 8)

    def write_word_data(self, reg, value):
        self._check(reg)
        second = self.next_register(reg)
        self._set(reg, value & 0xFF)
        if second in self.REGS:
            self._set(second, (value >> 8) & 0xFF)
            self.pointer = second

    def snapshot(self):
        out = super().snapshot()
        out["registers"] = {"0x%02x" % r: self._get(r) for r in sorted(self.REGS)}
        return out


class PCA9554(RegisterChip):
    """PCA9554/TCA9554/PCA9554A: 8 bits; input 0x00, output 0x01, polarity 0x02, config 0x03.

    No auto-increment: the second byte of a word access is the same register again.
    """

    kind = "pca9554"
    width = 8
    REGS = {
        0x00: ("input", 0x00, False),
        0x01: ("output", 0xFF, True),
        0x02: ("polarity", 0x00, True),
        0x03: ("config", 0xFF, True),
    }
    INPUT = (0x00,)
    OUTPUT = (0x01,)
    POLARITY = (0x02,)
    DIRECTION = (0x03,)

    def next_register(self, reg):
        return reg


class TCA9554(PCA9554):
    kind = "tca9554"


class PCA9554A(PCA9554):
    kind = "pca9554a"


class XRA1200(PCA9554):
    """XRA1200(P): the PCA9554 map plus pull-up enable 0x04 and interrupt/filter registers.

    The internal pull-up (PUR) is stored; the board's external pull decides an input's level.
    """

    kind = "xra1200"
    REGS = dict(PCA9554.REGS)
    REGS.update({
        0x04: ("pull_up_enable", 0x00, True),
        0x05: ("input_interrupt_enable", 0x00, True),
        0x06: ("output_three_state", 0x00, True),
        0x07: ("input_interrupt_status", 0x00, False),
        0x08: ("rising_edge_interrupt_enable", 0x00, True),
        0x09: ("falling_edge_interrupt_enable", 0x00, True),
        0x0A: ("input_filter_enable", 0xFF, True),
    })


class PCA9555(RegisterChip):
    """PCA9555/TCA9535/TCA6416: 16 bits in register pairs; a word access stays in its pair."""

    kind = "pca9555"
    width = 16
    REGS = {
        0x00: ("input0", 0x00, False),
        0x01: ("input1", 0x00, False),
        0x02: ("output0", 0xFF, True),
        0x03: ("output1", 0xFF, True),
        0x04: ("polarity0", 0x00, True),
        0x05: ("polarity1", 0x00, True),
        0x06: ("config0", 0xFF, True),
        0x07: ("config1", 0xFF, True),
    }
    INPUT = (0x00, 0x01)
    OUTPUT = (0x02, 0x03)
    POLARITY = (0x04, 0x05)
    DIRECTION = (0x06, 0x07)

    def next_register(self, reg):
        return reg ^ 1


class TCA9535(PCA9555):
    kind = "tca9535"


class TCA6416(PCA9555):
    kind = "tca6416"


# MCP23008/MCP23017: output latches power on at 0x00 (datasheet POR value of OLAT), unlike the
# NXP/TI parts (0xFF). A glitch-free driver copies the pin levels into the latch first, so it
# never depends on either default.
MCP_OLAT_DEFAULT = 0x00


class MCP23008(RegisterChip):
    """MCP23008: IODIR 0x00, IPOL 0x01, GPPU 0x06, GPIO 0x09 (write = OLAT), OLAT 0x0A.

    Sequential addressing (IOCON.SEQOP = 0, the default): a word access covers reg and reg + 1.
    """

    kind = "mcp23008"
    width = 8
    REGS = {
        0x00: ("iodir", 0xFF, True),
        0x01: ("ipol", 0x00, True),
        0x02: ("gpinten", 0x00, True),
        0x03: ("defval", 0x00, True),
        0x04: ("intcon", 0x00, True),
        0x05: ("iocon", 0x00, True),
        0x06: ("gppu", 0x00, True),
        0x07: ("intf", 0x00, False),
        0x08: ("intcap", 0x00, False),
        0x09: ("gpio", 0x00, False),
        0x0A: ("olat", MCP_OLAT_DEFAULT, True),
    }
    INPUT = (0x09,)
    OUTPUT = (0x0A,)
    POLARITY = (0x01,)
    DIRECTION = (0x00,)
    WRITE_ALIAS = {0x09: 0x0A}
    IOCON = (0x05,)
    SEQOP = 0x20

    def _seqop_disabled(self):
        return bool(self.regs[self.IOCON[0]] & self.SEQOP)

    def next_register(self, reg):
        if self._seqop_disabled():
            return reg
        return 0 if reg == max(self.REGS) else reg + 1  # the pointer wraps after the last register


class MCP23017(MCP23008):
    """MCP23017 with IOCON.BANK = 0: A/B registers interleaved, IOCON at 0x0A and 0x0B.

    Sequential addressing moves to reg + 1; with SEQOP set the pointer toggles within the A/B
    pair. BANK = 1 is not modelled: the BANK bit is kept at 0.
    """

    kind = "mcp23017"
    width = 16
    REGS = {
        0x00: ("iodira", 0xFF, True),
        0x01: ("iodirb", 0xFF, True),
        0x02: ("ipola", 0x00, True),
        0x03: ("ipolb", 0x00, True),
        0x04: ("gpintena", 0x00, True),
        0x05: ("gpintenb", 0x00, True),
        0x06: ("defvala", 0x00, True),
        0x07: ("defvalb", 0x00, True),
        0x08: ("intcona", 0x00, True),
        0x09: ("intconb", 0x00, True),
        0x0A: ("iocon", 0x00, True),
        0x0B: ("iocon", 0x00, True),
        0x0C: ("gppua", 0x00, True),
        0x0D: ("gppub", 0x00, True),
        0x0E: ("intfa", 0x00, False),
        0x0F: ("intfb", 0x00, False),
        0x10: ("intcapa", 0x00, False),
        0x11: ("intcapb", 0x00, False),
        0x12: ("gpioa", 0x00, False),
        0x13: ("gpiob", 0x00, False),
        0x14: ("olata", MCP_OLAT_DEFAULT, True),
        0x15: ("olatb", MCP_OLAT_DEFAULT, True),
    }
    INPUT = (0x12, 0x13)
    OUTPUT = (0x14, 0x15)
    POLARITY = (0x02, 0x03)
    DIRECTION = (0x00, 0x01)
    WRITE_ALIAS = {0x12: 0x14, 0x13: 0x15}
    IOCON = (0x0A, 0x0B)

    def _after_write(self, reg):
        if reg in self.IOCON:
            value = self.regs[reg] & ~0x80  # BANK stays 0
            self.regs[0x0A] = self.regs[0x0B] = value

    def next_register(self, reg):
        if self._seqop_disabled():
            return reg ^ 1
        return 0 if reg == max(self.REGS) else reg + 1


class PCF8574(GpioChip):
    """PCF8574/PCF8574A: quasi-bidirectional, no registers.

    read_byte returns the pins; write_byte sets the latch. A latch bit 0 drives low; a latch bit
    1 is a weak high (the bit works as an input): the board's pull decides its level (a pull-down
    resistor overcomes the weak current source). Power-on latch 0xFF.
    Byte/word-data operations are what the bus does with them: the command byte and data bytes
    are all written to the latch in turn; a read after the command byte returns the pins.
    """

    kind = "pcf8574"
    width = 8

    def __init__(self, address, name="", board=None, pull=None):
        super().__init__(address, name, board, pull)
        self._latch = 0xFF

    def direction(self):
        return self._latch  # 1 = weak high = input

    def latch(self):
        return self._latch

    def read_byte(self):
        return self.input_value()

    def write_byte(self, value):
        self._latch = value & 0xFF

    def read_byte_data(self, reg):
        self._latch = reg & 0xFF
        return self.input_value()

    def write_byte_data(self, reg, value):
        self._latch = reg & 0xFF
        self._latch = value & 0xFF

    def read_word_data(self, reg):
        self._latch = reg & 0xFF
        value = self.input_value()
        return value | (value << 8)

    def write_word_data(self, reg, value):
        self._latch = (value >> 8) & 0xFF


class PCF8574A(PCF8574):
    kind = "pcf8574a"


CHIP_CLASSES = {
    cls.kind: cls
    for cls in (PCA9554, TCA9554, PCA9554A, XRA1200, PCA9555, TCA9535, TCA6416, MCP23008, MCP23017, PCF8574,
                PCF8574A)
}


def make_chip(chip_type, address, name="", board=None, pull=None):
    try:
        cls = CHIP_CLASSES[chip_type]
    except KeyError:
        raise ValueError("unknown chip type %r (known: %s)" % (chip_type, ", ".join(sorted(CHIP_CLASSES))))
    return cls(address, name=name, board=board, pull=pull)


# --------------------------------------------------------------------------------------------
# Command-style boards
