# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drivers for the I2C GPIO expanders used on carrier boards (docs/hardware.md section 2).

Every driver works on an smbus2-like bus object (see _bus.py) and exposes full-width integers:
bit N of a 16-bit chip is port N // 8, bit N % 8. Direction bits are 1 = input, 0 = output.

Every transaction goes through :func:`_bus.with_retries`, so a transient NACK or EIO is retried
with backoff and a persistent one becomes a BusError naming the chip, address and register.
"""

from __future__ import annotations

from ansible_collections.picluster.carrier.plugins.module_utils._bus import with_retries
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError


class Expander(object):
    """Common part of all drivers. Subclasses set ``width`` and the register access."""

    chip = "expander"
    width = 8

    def __init__(self, bus, address, retries=5):
        if not isinstance(address, int) or not 0x03 <= address <= 0x77:
            raise CarrierError("address: %r is not a 7-bit I2C device address (0x03-0x77)" % (address,))
        self.bus = bus
        self.address = address
        self.retries = retries

    @property
    def mask(self):
        return (1 << self.width) - 1

    def describe(self):
        return "%s at 0x%02x" % (self.chip, self.address)

    def _do(self, what, action):
        return with_retries(action, "%s: %s" % (self.describe(), what), attempts=self.retries)

    # The interface every driver implements.
    def read_inputs(self, polarity=None):
        """Pin levels, with polarity inversion undone."""
        raise NotImplementedError

    def read_outputs(self):
        """The output latch (what was last written)."""
        raise NotImplementedError

    def read_direction(self):
        """1 = input, 0 = output."""
        raise NotImplementedError

    def write_outputs(self, value):
        raise NotImplementedError

    def write_direction(self, value):
        raise NotImplementedError

    def read_polarity(self):
        return 0

    def configure_outputs(self, mask, direction=None, polarity=None, latch=None, pins=None):
        """Make the ``mask`` bits outputs without a glitch (docs/hardware.md section 2).

        The latch of every bit that is still an input gets the pin's present level first, and only
        then does the bit become an output, so a running node never sees its line move. Returns
        the output latch now in effect. A chip reading all-inputs (0xFF / 0xFFFF) is on its first
        use since power-on. Values the caller has just read may be passed to save transactions.
        """
        if direction is None:
            direction = self.read_direction()
        to_switch = direction & mask
        if latch is None:
            latch = self.read_outputs()
        if not to_switch:
            return latch
        if pins is None:
            pins = self.read_inputs(polarity=polarity)
        new_latch = (latch & ~to_switch) | (pins & to_switch)
        if new_latch != latch:
            self.write_outputs(new_latch)
        self.write_direction(direction & ~to_switch & self.mask)
        return new_latch


class RegisterExpander(Expander):
    """Chips with input/output/polarity/direction registers (PCA9554 family, MCP230xx, XRA1200).

    For 16-bit chips the two ports of each register are adjacent (port 0 first) and read or written
    with one SMBus word transaction: low byte = port 0.
    """

    REG_INPUT = 0x00
    REG_OUTPUT = 0x01
    REG_POLARITY = 0x02
    REG_DIRECTION = 0x03

    def _read(self, reg, name):
        if self.width == 16:
            return self._do("read %s (0x%02x, word)" % (name, reg),
                            lambda: self.bus.read_word_data(self.address, reg)) & 0xFFFF
        return self._do("read %s (0x%02x)" % (name, reg), lambda: self.bus.read_byte_data(self.address, reg)) & 0xFF

    def _write(self, reg, name, value):
        value &= self.mask
        if self.width == 16:
            self._do("write %s (0x%02x, word) = 0x%04x" % (name, reg, value),
                     lambda: self.bus.write_word_data(self.address, reg, value))
        else:
            self._do("write %s (0x%02x) = 0x%02x" % (name, reg, value),
                     lambda: self.bus.write_byte_data(self.address, reg, value))

    def read_polarity(self):
        return self._read(self.REG_POLARITY, "polarity")

    def read_raw_inputs(self):
        """The input register as the chip reports it (pin XOR polarity inversion)."""
        return self._read(self.REG_INPUT, "input")

    def read_inputs(self, polarity=None):
        if polarity is None:
            polarity = self.read_polarity()
        return self.read_raw_inputs() ^ polarity

    def read_outputs(self):
        return self._read(self.REG_OUTPUT, "output latch")

    def read_direction(self):
        return self._read(self.REG_DIRECTION, "direction")

    def write_outputs(self, value):
        self._write(self.REG_OUTPUT, "output latch", value)

    def write_direction(self, value):
        self._write(self.REG_DIRECTION, "direction", value)


class PCA9554(RegisterExpander):
    """PCA9554/TCA9554 (0x20-0x27) and PCA9554A (0x38-0x3F): input 0x00, output 0x01,
    polarity 0x02, configuration 0x03 (docs/hardware.md section 2)."""

    chip = "pca9554"


class XRA1200(RegisterExpander):
    """XRA1200(P): the PCA9554 register layout; pull-up enable at 0x04 (docs/hardware.md section 2)."""

    chip = "xra1200"
    REG_PULLUP = 0x04


class PCA9555(RegisterExpander):
    """PCA9555/TCA9535/TCA6416: register pairs input 0x00/0x01, output 0x02/0x03, polarity
    0x04/0x05, configuration 0x06/0x07, port 0 then port 1 (docs/hardware.md section 2)."""

    chip = "pca9555"
    width = 16
    REG_INPUT = 0x00
    REG_OUTPUT = 0x02
    REG_POLARITY = 0x04
    REG_DIRECTION = 0x06


class MCP23008(RegisterExpander):
    """MCP23008: IODIR 0x00, IPOL 0x01, GPPU 0x06, GPIO 0x09, OLAT 0x0A (docs/hardware.md section 2)."""

    chip = "mcp23008"
    REG_DIRECTION = 0x00
    REG_POLARITY = 0x01
    REG_PULLUP = 0x06
    REG_INPUT = 0x09
    REG_OUTPUT = 0x0A


class MCP23017(RegisterExpander):
    """MCP23017 with IOCON.BANK=0 (its power-on mode): IODIRA/B 0x00/0x01, IPOLA/B 0x02/0x03,
    GPPUA/B 0x0C/0x0D, GPIOA/B 0x12/0x13, OLATA/B 0x14/0x15 (docs/hardware.md section 2)."""

    chip = "mcp23017"
    width = 16
    REG_DIRECTION = 0x00
    REG_POLARITY = 0x02
    REG_PULLUP = 0x0C
    REG_INPUT = 0x12
    REG_OUTPUT = 0x14


class PCF8574(Expander):
    """PCF8574 (0x20-0x27) / PCF8574A (0x38-0x3F): no registers (docs/hardware.md section 2).

    A read returns the pins; a write sets the latch. The pins are quasi-bidirectional: a latch
    bit of 1 is a weak high that anything outside can pull low (so it doubles as an input), a 0
    drives low. The latch cannot be read back: :meth:`read_outputs` returns the pins, which equal
    the latch for every bit that nothing outside pulls low. Direction does not exist: every bit
    reads as an output, and :meth:`configure_outputs` has nothing to do.
    """

    chip = "pcf8574"

    def read_inputs(self, polarity=None):
        return self._do("read pins", lambda: self.bus.read_byte(self.address)) & 0xFF

    def read_raw_inputs(self):
        return self.read_inputs()

    def read_outputs(self):
        return self.read_inputs()

    def read_direction(self):
        return 0

    def write_outputs(self, value):
        value &= 0xFF
        self._do("write latch = 0x%02x" % value, lambda: self.bus.write_byte(self.address, value))

    def write_direction(self, value):
        if value & 0xFF:
            raise CarrierError("%s has no direction register: a bit is an input when its latch is 1"
                               % self.describe())


_CHIPS = {
    "pca9554": PCA9554,
    "tca9554": PCA9554,
    "pca9554a": PCA9554,
    "pca9555": PCA9555,
    "tca9535": PCA9555,
    "tca6416": PCA9555,
    "mcp23008": MCP23008,
    "mcp23017": MCP23017,
    "pcf8574": PCF8574,
    "pcf8574a": PCF8574,
    "xra1200": XRA1200,
}

CHIP_TYPES = tuple(sorted(_CHIPS))


def chip_width(chip_type):
    """8 or 16, for a chip type name (CarrierError for an unknown one)."""
    return _chip_class(chip_type).width


def _chip_class(chip_type):
    try:
        return _CHIPS[str(chip_type).lower()]
    except KeyError:
        raise CarrierError("chip type: %r is not a supported expander (supported: %s)"
                           % (chip_type, ", ".join(CHIP_TYPES))) from None


def make_chip(chip_type, bus, address, retries=5):
    """A driver for ``chip_type`` at ``address`` on ``bus``."""
    cls = _chip_class(chip_type)
    driver = cls(bus, address, retries=retries)
    driver.chip = str(chip_type).lower()
    return driver
