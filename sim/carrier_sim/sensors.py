# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Emulated board sensors and fan controllers, register by register, and the load they measure.

Chips (register maps from their datasheets; sim/README.md, "Sensors"):

- INA219, INA226, INA3221 current/voltage monitors; LM75, LM75A, TMP102 thermometers: 16-bit
  registers sent most significant byte first, so an SMBus read word carries the MSB in its low
  byte (``read_word_data`` returns the register byte-swapped); a one-byte write sets the register
  pointer and a read byte returns the MSB of the register pointed at;
- EMC2301 / EMC2305 fan controllers: byte registers; reading a TACH high byte latches its low
  byte (the datasheet's shadow register).

Values come from :class:`Load`: a slot's current rises when its power line is asserted (its
model's typical draw, or ``sim.current`` of the slot), the bus voltage sags by the shunt and
wiring, the board's temperature moves toward ambient + heat (less with the fan running) with a
time constant, and a fan's RPM follows its drive setting.

A register a chip does not have is not acknowledged (errno 121), as for the expanders.
"""

from __future__ import annotations

import math
import time

from .chips import Device

# Typical draw at 5 V of a running node, by model (A).
MODEL_CURRENT = {"cm4": 0.6, "cm5": 0.95, "pi4": 0.65, "pi5": 1.0}
DEFAULT_CURRENT = 0.6


def swap16(value):
    return ((value & 0xFF) << 8) | ((value >> 8) & 0xFF)


def to_u16(value):
    """A signed register value (two's complement) as 16 bits."""
    value = int(value)
    value = max(-0x8000, min(0x7FFF, value))
    return value & 0xFFFF


class Load:
    """The simulated electrical and thermal state of one board (``board``: a SimBoard)."""

    def __init__(self, board, clock=time.monotonic):
        self.board = board
        self.clock = clock
        sim = board.sim
        self.supply = float(sim.get("supply_voltage", 5.1))
        self.ambient = float(sim.get("ambient", 25.0))
        self.tau = float(sim.get("thermal_tau", 20.0))
        self.heat = float(sim.get("celsius_per_watt", 2.5))
        self.max_rpm = float(sim.get("fan_max_rpm", 5000.0))
        self.celsius = None
        self._at = None

    def slot_current(self, slot):
        if slot is None or not self.board.line_levels(slot).get("power"):
            return 0.0
        node = self.board.spec.nodes.get(slot) if getattr(self.board.spec, "nodes", None) else None
        sim = getattr(node, "sim", None) or {}
        if "current" in sim:
            return float(sim["current"])
        return MODEL_CURRENT.get(getattr(node, "model", None), DEFAULT_CURRENT)

    def board_current(self):
        return sum(self.slot_current(slot) for slot in getattr(self.board.profile, "slot_numbers", ()))

    def total_power(self):
        return self.board_current() * self.supply

    def fan_duty(self):
        duties = [dev.duty(ch) for dev in self.board.devices.values() if isinstance(dev, EMC230x)
                  for ch in range(1, dev.channels + 1)]
        return max(duties) if duties else 0.0

    def temperature(self):
        """Degrees C now: a first-order lag toward ambient + heat x (1 - 0.6 x fan duty), from ambient."""
        target = self.ambient + self.heat * self.total_power() * (1.0 - 0.6 * self.fan_duty())
        now = self.clock()
        if self.tau <= 0:
            self.celsius = target
        elif self.celsius is None:
            self.celsius = self.ambient
        else:
            self.celsius += (target - self.celsius) * (1.0 - math.exp(-max(0.0, now - self._at) / self.tau))
        self._at = now
        return self.celsius

    def rpm(self, duty):
        return self.max_rpm * duty


class WordChip(Device):
    """A chip of 16-bit registers, MSB first on the wire. REGS: reg -> (name, default, writable);
    ``measure(reg)`` gives the computed registers (names in MEASURED)."""

    REGS = {}
    MEASURED = ()
    BYTE_REGS = ()  # 8-bit registers (the LM75's configuration)
    RESET_BIT = None  # a configuration bit that resets every register

    def __init__(self, address, name="", board=None, load=None, channels=None):
        super().__init__(address, name, board)
        self.load = load
        self.channel_slots = dict(channels or {})  # channel -> slot
        self.shunts = {}  # channel -> ohms
        self.regs = {reg: default for reg, (_n, default, _w) in self.REGS.items()}
        self.pointer = 0

    def _check(self, reg):
        if reg not in self.REGS:
            self._nack("register 0x%02x" % reg)

    def value(self, reg):
        self._check(reg)
        if reg in self.MEASURED:
            return self.measure(reg) & 0xFFFF
        return self.regs[reg]

    def store(self, reg, value):
        self._check(reg)
        if not self.REGS[reg][2]:
            return  # read-only: acknowledged and dropped
        if self.RESET_BIT is not None and reg == 0x00 and value & self.RESET_BIT:
            self.regs = {r: default for r, (_n, default, _w) in self.REGS.items()}
            return
        self.regs[reg] = value & (0xFF if reg in self.BYTE_REGS else 0xFFFF)

    def measure(self, reg):
        raise NotImplementedError

    # smbus operations
    def write_byte(self, value):
        self._check(value)
        self.pointer = value

    def read_byte(self):
        value = self.value(self.pointer)
        return value if self.pointer in self.BYTE_REGS else value >> 8

    def read_byte_data(self, reg):
        self.pointer = reg
        return self.read_byte()

    def write_byte_data(self, reg, value):
        self._check(reg)
        self.pointer = reg
        if reg in self.BYTE_REGS:
            self.store(reg, value)
        else:  # one data byte of a two-byte register: the chip takes it as the MSB
            self.store(reg, (value << 8) | (self.regs[reg] & 0xFF))

    def read_word_data(self, reg):
        self._check(reg)
        self.pointer = reg
        value = self.value(reg)
        if reg in self.BYTE_REGS:
            return value | (value << 8)
        return swap16(value)

    def write_word_data(self, reg, value):
        self._check(reg)
        self.pointer = reg
        self.store(reg, value & 0xFF if reg in self.BYTE_REGS else swap16(value))

    # the electrical values of a channel
    def current(self, channel):
        """A monitored slot's current; a channel no slot is wired to measures the whole board's."""
        if self.load is None:
            return 0.0
        if channel in self.channel_slots:
            return self.load.slot_current(self.channel_slots[channel])
        return self.load.board_current() if channel in self.shunts else 0.0

    def shunt_voltage(self, channel):
        return self.current(channel) * self.shunts.get(channel, 0.01)

    def bus_voltage(self, channel):
        if self.load is None:
            return 0.0
        return max(0.0, self.load.supply - self.current(channel) * 0.05)

    def snapshot(self):
        out = super().snapshot()
        out["registers"] = {"0x%02x" % r: self.value(r) for r in sorted(self.REGS)}
        out["missing"] = bool(getattr(self, "missing", False))
        return out


class INA219(WordChip):
    kind = "ina219"
    RESET_BIT = 0x8000
    REGS = {
        0x00: ("configuration", 0x399F, True),
        0x01: ("shunt_voltage", 0, False),
        0x02: ("bus_voltage", 0, False),
        0x03: ("power", 0, False),
        0x04: ("current", 0, False),
        0x05: ("calibration", 0, True),
    }
    MEASURED = (0x01, 0x02, 0x03, 0x04)
    SHUNT_LSB, BUS_LSB, CURRENT_DIV, POWER_DIV = 10e-6, 4e-3, 4096, 5000

    def shunt_raw(self):
        return int(round(self.shunt_voltage(1) / self.SHUNT_LSB))

    def bus_raw(self):
        return int(round(self.bus_voltage(1) / self.BUS_LSB))

    def current_raw(self):
        return self.shunt_raw() * self.regs[0x05] // self.CURRENT_DIV

    def measure(self, reg):
        if reg == 0x01:
            return to_u16(self.shunt_raw())
        if reg == 0x02:
            return (self.bus_raw() << 3) | 0x02  # CNVR: a conversion is ready; OVF clear
        if reg == 0x04:
            return to_u16(self.current_raw())
        return to_u16(self.current_raw() * self.bus_raw() // self.POWER_DIV)


class INA226(INA219):
    kind = "ina226"
    REGS = {
        0x00: ("configuration", 0x4127, True),
        0x01: ("shunt_voltage", 0, False),
        0x02: ("bus_voltage", 0, False),
        0x03: ("power", 0, False),
        0x04: ("current", 0, False),
        0x05: ("calibration", 0, True),
        0x06: ("mask_enable", 0, True),
        0x07: ("alert_limit", 0, True),
        0xFE: ("manufacturer_id", 0x5449, False),
        0xFF: ("die_id", 0x2260, False),
    }
    SHUNT_LSB, BUS_LSB, CURRENT_DIV, POWER_DIV = 2.5e-6, 1.25e-3, 2048, 20000

    def measure(self, reg):
        if reg == 0x02:
            return self.bus_raw() & 0x7FFF
        return super().measure(reg)


class INA3221(WordChip):
    kind = "ina3221"
    RESET_BIT = 0x8000
    REGS = {
        0x00: ("configuration", 0x7127, True),
        0x01: ("ch1_shunt_voltage", 0, False), 0x02: ("ch1_bus_voltage", 0, False),
        0x03: ("ch2_shunt_voltage", 0, False), 0x04: ("ch2_bus_voltage", 0, False),
        0x05: ("ch3_shunt_voltage", 0, False), 0x06: ("ch3_bus_voltage", 0, False),
        0x07: ("ch1_critical_limit", 0x7FF8, True), 0x08: ("ch1_warning_limit", 0x7FF8, True),
        0x09: ("ch2_critical_limit", 0x7FF8, True), 0x0A: ("ch2_warning_limit", 0x7FF8, True),
        0x0B: ("ch3_critical_limit", 0x7FF8, True), 0x0C: ("ch3_warning_limit", 0x7FF8, True),
        0x0D: ("shunt_voltage_sum", 0, False), 0x0E: ("shunt_voltage_sum_limit", 0x7FFE, True),
        0x0F: ("mask_enable", 0x0002, True),
        0x10: ("power_valid_upper_limit", 0x2710, True), 0x11: ("power_valid_lower_limit", 0x2328, True),
        0xFE: ("manufacturer_id", 0x5449, False),
        0xFF: ("die_id", 0x3220, False),
    }
    MEASURED = (0x01, 0x02, 0x03, 0x04, 0x05, 0x06)

    def measure(self, reg):
        channel = (reg + 1) // 2
        if reg % 2:  # shunt: 40 uV per count in bits 15-3
            return to_u16(int(round(self.shunt_voltage(channel) / 40e-6)) << 3)
        return to_u16(int(round(self.bus_voltage(channel) / 8e-3)) << 3)


class LM75(WordChip):
    """LM75: 9-bit temperature (0.5 C) in bits 15-7; configuration is one byte; Thyst 75 C, Tos 80 C."""

    kind = "lm75"
    BITS = 9
    REGS = {
        0x00: ("temperature", 0, False),
        0x01: ("configuration", 0x00, True),
        0x02: ("t_hyst", 0x4B00, True),
        0x03: ("t_os", 0x5000, True),
    }
    MEASURED = (0x00,)
    BYTE_REGS = (0x01,)

    def measure(self, reg):
        celsius = self.load.temperature() if self.load else 25.0
        bits = self.BITS
        counts = int(math.floor(celsius * (1 << (bits - 1)) / 128.0))
        return to_u16(counts << (16 - bits))


class LM75A(LM75):
    kind = "lm75a"
    BITS = 11


class TMP102(LM75):
    """TMP102: 12 bits (0.0625 C) in bits 15-4; a 16-bit configuration (0x60A0), EM = bit 4."""

    kind = "tmp102"
    BITS = 12
    REGS = dict(LM75.REGS)
    REGS[0x01] = ("configuration", 0x60A0, True)
    BYTE_REGS = ()

    def measure(self, reg):
        if self.regs[0x01] & 0x0010:  # extended mode: 13 bits, bit 0 set to say so
            celsius = self.load.temperature() if self.load else 25.0
            return to_u16(int(math.floor(celsius * 16)) << 3) | 0x01
        return super().measure(reg)


class EMC230x(Device):
    """EMC2301 (one fan, 0x2f) / EMC2305 (five): byte registers, a block of 0x10 per fan."""

    kind = "emc2301"
    channels = 1
    PRODUCT_ID = 0x37
    FAN_REGS = {  # offset within a fan's block -> (name, default, writable)
        0x0: ("fan_setting", 0x00, True),
        0x1: ("pwm_divide", 0x01, True),
        0x2: ("fan_configuration1", 0x2B, True),
        0x3: ("fan_configuration2", 0x28, True),
        0x5: ("gain", 0x2A, True),
        0x6: ("spin_up_configuration", 0x19, True),
        0x7: ("max_step", 0x10, True),
        0x8: ("minimum_drive", 0x66, True),
        0x9: ("valid_tach_count", 0xF5, True),
        0xA: ("drive_fail_band_low", 0x00, True),
        0xB: ("drive_fail_band_high", 0x00, True),
        0xC: ("tach_target_low", 0xF8, True),
        0xD: ("tach_target_high", 0xFF, True),
        0xE: ("tach_reading_high", 0xFF, False),
        0xF: ("tach_reading_low", 0xF8, False),
    }

    def __init__(self, address, name="", board=None, load=None):
        super().__init__(address, name, board)
        self.load = load
        self.regs = {0x20: 0x40, 0x24: 0x00, 0xFD: self.PRODUCT_ID, 0xFE: 0x5D, 0xFF: 0x80}
        self.writable = {0x20}
        for channel in range(1, self.channels + 1):
            base = 0x30 + 0x10 * (channel - 1)
            for offset, (_name, default, writable) in self.FAN_REGS.items():
                self.regs[base + offset] = default
                if writable:
                    self.writable.add(base + offset)
        self.shadow = {}  # channel -> latched low byte
        self.pointer = 0

    def duty(self, channel):
        return self.regs[0x30 + 0x10 * (channel - 1)] / 255.0

    def tach_count(self, channel):
        rpm = self.load.rpm(self.duty(channel)) if self.load else 0.0
        multiplier = (1, 2, 4, 8)[(self.regs[0x32 + 0x10 * (channel - 1)] >> 5) & 0x03]
        if rpm < 1.0:
            return 0x1FFF
        return max(1, min(0x1FFF, int(round(3932160 * multiplier / rpm))))

    def _get(self, reg):
        if reg not in self.regs:
            self._nack("register 0x%02x" % reg)
        if 0x30 <= reg < 0x30 + 0x10 * self.channels and reg & 0x0F in (0xE, 0xF):
            channel = (reg - 0x30) // 0x10 + 1
            if reg & 0x0F == 0xE:
                count = self.tach_count(channel)
                self.shadow[channel] = (count & 0x1F) << 3
                return count >> 5
            return self.shadow.get(channel, (self.tach_count(channel) & 0x1F) << 3)
        return self.regs[reg]

    def read_byte(self):
        return self._get(self.pointer)

    def write_byte(self, value):
        if value not in self.regs:
            self._nack("register 0x%02x" % value)
        self.pointer = value

    def read_byte_data(self, reg):
        self.pointer = reg
        return self._get(reg)

    def write_byte_data(self, reg, value):
        if reg not in self.regs:
            self._nack("register 0x%02x" % reg)
        self.pointer = reg
        if reg in self.writable:
            self.regs[reg] = value & 0xFF

    def read_word_data(self, reg):
        self._nack("word read of register 0x%02x (byte registers only)" % reg)

    def write_word_data(self, reg, value):
        self._nack("word write of register 0x%02x (byte registers only)" % reg)

    def snapshot(self):
        out = super().snapshot()
        out["fans"] = {str(ch): {"duty": round(self.duty(ch) * 100, 1), "tach_count": self.tach_count(ch)}
                       for ch in range(1, self.channels + 1)}
        out["missing"] = bool(getattr(self, "missing", False))
        return out


class EMC2305(EMC230x):
    kind = "emc2305"
    channels = 5
    PRODUCT_ID = 0x34


SENSOR_CLASSES = {cls.kind: cls for cls in (INA219, INA226, INA3221, LM75, LM75A, TMP102)}
FAN_CLASSES = {cls.kind: cls for cls in (EMC230x, EMC2305)}


def build(board):
    """The sensor and fan devices of a SimBoard's profile: name -> Device (fans share a chip by address)."""
    profile = board.profile
    load = Load(board)
    board.load = load
    devices = {}
    for name, spec in (getattr(profile, "sensors", None) or {}).items():
        device = SENSOR_CLASSES[spec["type"]](spec["address"], name=name, board=board, load=load)
        if "shunt_ohms" in spec:
            device.shunts[1] = spec["shunt_ohms"]
        devices[name] = device
    for slot, monitor in (getattr(profile, "monitors", None) or {}).items():
        device = devices[monitor["chip"]]
        device.channel_slots[monitor["channel"]] = slot
        device.shunts[monitor["channel"]] = monitor["shunt_ohms"]
    by_address = {}
    for name, spec in (getattr(profile, "fans", None) or {}).items():
        device = by_address.get(spec["address"])
        if device is None:  # the fans of one EMC2305 are one device, named after its first fan
            cls = FAN_CLASSES[spec["type"]]
            device = by_address[spec["address"]] = cls(spec["address"], name=name, board=board, load=load)
            devices[name] = device
    return devices
