# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Board sensors and fans: the chip drivers, the profile schema, and reading a board's set.

Drivers (register facts from the datasheets; docs/internals.md, "Sensors", lists them):

- TI INA219: configuration 0x00, shunt voltage 0x01 (signed, 10 uV LSB), bus voltage 0x02 (bits
  15-3, 4 mV LSB; bit 1 CNVR, bit 0 OVF), power 0x03, current 0x04, calibration 0x05;
- TI INA226: 0x00-0x07 as the INA219 plus mask/enable 0x06 and alert limit 0x07; shunt 2.5 uV
  LSB (signed), bus 1.25 mV LSB; manufacturer ID 0xFE = 0x5449, die ID 0xFF = 0x2260;
- TI INA3221: three channels, shunt/bus pairs at 0x01/0x02, 0x03/0x04, 0x05/0x06, both with the
  value in bits 15-3 (shunt signed, 40 uV LSB; bus 8 mV LSB); IDs 0xFE = 0x5449, 0xFF = 0x3220;
- LM75 (9-bit, 0.5 C), NXP LM75A (11-bit, 0.125 C) and TI TMP102 (12-bit, 0.0625 C; 13-bit when
  bit 0 of the second byte says extended mode): temperature 0x00, two's complement, left-aligned;
- Microchip EMC2301/EMC2305: fan n setting 0x30 + 0x10 (n-1), configuration 1 0x32 + 0x10 (n-1)
  (bit 7 EN_ALGO, bits 6-5 RANGE), TACH reading high/low 0x3E/0x3F + 0x10 (n-1) (count = high
  << 5 | low >> 3; reading the high byte latches the low byte), product ID 0xFD (0x37 EMC2301,
  0x34 EMC2305), manufacturer ID 0xFE = 0x5D; RPM = 3,932,160 x m / count, m = 1, 2, 4, 8 for
  RANGE 0-3 (the datasheet's simplified equation: 2-pole fan, 5 edges, 32.768 kHz).

SMBus word order: these chips send the most significant byte first, while an SMBus read word
(smbus2's ``read_word_data``) puts the first byte received in the low byte. Every word is
therefore byte-swapped (:func:`swap16`) between the bus and the register value.

Currents are computed from the shunt voltage and the profile's ``shunt_ohms``, so nothing is
ever written to a monitor (no calibration register to program, two reads per channel). Every
chip is read under its own hold of the bus lock (``_bus.bus_lock``), so a long read of a board
never keeps the power lines' writers waiting for more than one chip.
"""

from __future__ import annotations

import math

from ansible_collections.picluster.carrier.plugins.module_utils._bus import bus_lock, with_retries
from ansible_collections.picluster.carrier.plugins.module_utils._errors import BusError, CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._values import check_number

INA_MANUFACTURER_ID = 0x5449  # "TI"
EMC_MANUFACTURER_ID = 0x5D
EMC_PRODUCT_IDS = {"emc2301": 0x37, "emc2305": 0x34}
EMC_TACH_CONSTANT = 3932160  # (n - 1) / poles x 32,768 Hz x 60 s: 2 x 32768 x 60
EMC_TACH_STALLED = 0x1FFF  # the count of a fan too slow to measure (registers FFh / F8h)
EMC_RANGE_MULTIPLIER = (1, 2, 4, 8)


def swap16(word):
    """An SMBus word (first byte received in the low byte) as an MSB-first register value, or back."""
    return ((word & 0xFF) << 8) | ((word >> 8) & 0xFF)


def signed16(value):
    return value - 0x10000 if value & 0x8000 else value


class SensorChip(object):
    """Common part of the sensor drivers: an address on a bus, retried transactions."""

    chip = "sensor"
    channels = 1
    kind = "power"  # power (a current/voltage monitor) or temperature

    def __init__(self, bus, address, retries=5):
        if not isinstance(address, int) or isinstance(address, bool) or not 0x03 <= address <= 0x77:
            raise CarrierError("address: %r is not a 7-bit I2C device address (0x03-0x77)" % (address,))
        self.bus = bus
        self.address = address
        self.retries = retries

    def describe(self):
        return "%s at 0x%02x" % (self.chip, self.address)

    def _do(self, what, action):
        return with_retries(action, "%s: %s" % (self.describe(), what), attempts=self.retries)

    def read_register(self, reg, name):
        """A 16-bit register, MSB first on the wire."""
        word = self._do("read %s (0x%02x)" % (name, reg), lambda: self.bus.read_word_data(self.address, reg))
        return swap16(word & 0xFFFF)

    def write_register(self, reg, name, value):
        value &= 0xFFFF
        self._do("write %s (0x%02x) = 0x%04x" % (name, reg, value),
                 lambda: self.bus.write_word_data(self.address, reg, swap16(value)))

    def identify(self):
        """What the chip says it is, where it can say (None for chips without ID registers)."""
        return None


class INA219(SensorChip):
    chip = "ina219"
    REG_CONFIG = 0x00
    REG_SHUNT = 0x01
    REG_BUS = 0x02
    REG_POWER = 0x03
    REG_CURRENT = 0x04
    REG_CALIBRATION = 0x05
    SHUNT_LSB = 10e-6
    BUS_LSB = 4e-3

    def read_channel(self, channel, shunt_ohms):
        """Bus voltage (V), shunt voltage (V), current (A), power (W) of one channel."""
        shunt = signed16(self.read_register(self.REG_SHUNT, "shunt voltage")) * self.SHUNT_LSB
        raw = self.read_register(self.REG_BUS, "bus voltage")
        result = _channel_values((raw >> 3) * self.BUS_LSB, shunt, shunt_ohms)
        # OVF: the power or current calculation overflowed (the shunt reading is out of range too).
        result["overflow"] = bool(raw & 0x01)
        return result


class INA226(SensorChip):
    chip = "ina226"
    REG_CONFIG = 0x00
    REG_SHUNT = 0x01
    REG_BUS = 0x02
    REG_POWER = 0x03
    REG_CURRENT = 0x04
    REG_CALIBRATION = 0x05
    REG_MASK_ENABLE = 0x06
    REG_ALERT_LIMIT = 0x07
    REG_MANUFACTURER = 0xFE
    REG_DIE = 0xFF
    DIE_ID = 0x2260
    SHUNT_LSB = 2.5e-6
    BUS_LSB = 1.25e-3

    def read_channel(self, channel, shunt_ohms):
        shunt = signed16(self.read_register(self.REG_SHUNT, "shunt voltage")) * self.SHUNT_LSB
        bus = (self.read_register(self.REG_BUS, "bus voltage") & 0x7FFF) * self.BUS_LSB
        return _channel_values(bus, shunt, shunt_ohms)

    def identify(self):
        return {"manufacturer_id": self.read_register(self.REG_MANUFACTURER, "manufacturer ID"),
                "die_id": self.read_register(self.REG_DIE, "die ID")}


class INA3221(INA226):
    chip = "ina3221"
    channels = 3
    DIE_ID = 0x3220
    SHUNT_LSB = 40e-6
    BUS_LSB = 8e-3

    def read_channel(self, channel, shunt_ohms):
        shunt_reg = 0x01 + 2 * (channel - 1)
        shunt_raw = signed16(self.read_register(shunt_reg, "channel %d shunt voltage" % channel))
        bus_raw = signed16(self.read_register(shunt_reg + 1, "channel %d bus voltage" % channel))
        # Both values sit in bits 15-3: an arithmetic shift keeps the sign.
        return _channel_values((bus_raw >> 3) * self.BUS_LSB, (shunt_raw >> 3) * self.SHUNT_LSB, shunt_ohms)


class LM75(SensorChip):
    """LM75: 9 bits (0.5 C) of the left-aligned two's complement temperature register."""

    chip = "lm75"
    kind = "temperature"
    REG_TEMP = 0x00
    BITS = 9
    LSB = 0.5

    def read_temperature(self):
        raw = signed16(self.read_register(self.REG_TEMP, "temperature"))
        return (raw >> (16 - self.bits(raw))) * self.LSB

    def bits(self, raw):
        return self.BITS


class LM75A(LM75):
    chip = "lm75a"
    BITS = 11
    LSB = 0.125


class TMP102(LM75):
    chip = "tmp102"
    BITS = 12
    LSB = 0.0625

    def bits(self, raw):
        return 13 if raw & 0x01 else 12  # bit 0 of the second byte: extended mode (EM)


class EMC230x(SensorChip):
    """EMC2301 (one fan) / EMC2305 (five): direct drive setting and TACH read-back; byte registers."""

    REG_PRODUCT = 0xFD
    REG_MANUFACTURER = 0xFE
    REG_REVISION = 0xFF

    def __init__(self, chip, bus, address, retries=5):
        super().__init__(bus, address, retries=retries)
        self.chip = chip
        self.channels = 1 if chip == "emc2301" else 5

    def _read(self, reg, name):
        return self._do("read %s (0x%02x)" % (name, reg), lambda: self.bus.read_byte_data(self.address, reg)) & 0xFF

    def _write(self, reg, name, value):
        self._do("write %s (0x%02x) = 0x%02x" % (name, reg, value),
                 lambda: self.bus.write_byte_data(self.address, reg, value))

    def _base(self, channel):
        if not 1 <= channel <= self.channels:
            raise CarrierError("fan channel: %r is not a channel of %s (1-%d)" % (channel, self.chip, self.channels))
        return 0x10 * (channel - 1)

    def identify(self):
        return {"product_id": self._read(self.REG_PRODUCT, "product ID"),
                "manufacturer_id": self._read(self.REG_MANUFACTURER, "manufacturer ID")}

    def read_setting(self, channel):
        """The drive setting register, 0-255."""
        return self._read(0x30 + self._base(channel), "fan %d setting" % channel)

    def read_config(self, channel):
        return self._read(0x32 + self._base(channel), "fan %d configuration 1" % channel)

    def read_tach(self, channel):
        """The 13-bit TACH count (high byte first: it latches the low byte)."""
        base = self._base(channel)
        high = self._read(0x3E + base, "fan %d TACH high byte" % channel)
        low = self._read(0x3F + base, "fan %d TACH low byte" % channel)
        return (high << 5) | (low >> 3)

    def read(self, channel):
        """{"duty": percent, "setting": 0-255, "rpm": float (0 when stalled), "algorithm": bool}."""
        setting = self.read_setting(channel)
        config = self.read_config(channel)
        count = self.read_tach(channel)
        multiplier = EMC_RANGE_MULTIPLIER[(config >> 5) & 0x03]
        rpm = 0.0 if count in (0, EMC_TACH_STALLED) else EMC_TACH_CONSTANT * multiplier / count
        return {"setting": setting, "duty": round(setting * 100.0 / 255, 1), "rpm": round(rpm, 1),
                "algorithm": bool(config & 0x80), "tach_count": count}

    def write_setting(self, channel, setting):
        self._write(0x30 + self._base(channel), "fan %d setting" % channel, setting)


def duty_setting(duty, field="duty"):
    """A duty cycle in percent (0-100, finite) as the 0-255 drive setting."""
    value = check_number(duty, field, 0, 100, allow_none=False, what="a duty cycle in percent (0-100)")
    return int(value * 255 / 100.0 + 0.5)  # half up: 30 % is 76.5, setting 77


def _channel_values(bus_voltage, shunt_voltage, shunt_ohms):
    current = shunt_voltage / shunt_ohms
    return {"bus_voltage": round(bus_voltage, 5), "shunt_voltage": round(shunt_voltage, 7),
            "current": round(current, 5), "power": round(bus_voltage * current, 5)}


MONITOR_CHIPS = {"ina219": INA219, "ina226": INA226, "ina3221": INA3221}
TEMPERATURE_CHIPS = {"lm75": LM75, "lm75a": LM75A, "tmp102": TMP102}
SENSOR_TYPES = tuple(sorted(list(MONITOR_CHIPS) + list(TEMPERATURE_CHIPS)))
FAN_TYPES = ("emc2301", "emc2305")


def make_sensor(chip_type, bus, address, retries=5):
    cls = MONITOR_CHIPS.get(chip_type) or TEMPERATURE_CHIPS.get(chip_type)
    if cls is None:
        raise CarrierError("sensor type: %r is not supported (supported: %s)" % (chip_type, ", ".join(SENSOR_TYPES)))
    return cls(bus, address, retries=retries)


def make_fan_chip(chip_type, bus, address, retries=5):
    if chip_type not in FAN_TYPES:
        raise CarrierError("fan type: %r is not supported (supported: %s)" % (chip_type, ", ".join(FAN_TYPES)))
    return EMC230x(chip_type, bus, address, retries=retries)


def curve_duty(curve, celsius):
    """The duty (percent) of a curve ``[[C, %], ...]`` at a temperature: linear between points, the
    first point's duty below it, the last's above it."""
    if celsius <= curve[0][0]:
        return float(curve[0][1])
    for (t0, d0), (t1, d1) in zip(curve, curve[1:]):
        if celsius <= t1:
            return d0 + (d1 - d0) * (celsius - t0) / float(t1 - t0)
    return float(curve[-1][1])


# ---------------------------------------------------------------------------------------------
# Profile schema: ``sensors:`` and ``fans:`` per board, ``monitor:`` per slot.

# The profile's own field checks: _board imports this module only when a profile is parsed.
from ansible_collections.picluster.carrier.plugins.module_utils._board import (  # noqa: E402
    _as_int as as_int,
    _choice as choice,
    _no_unknown as no_unknown,
)


def _number(value, field, low, high, what):
    if isinstance(value, str):
        raise CarrierError("%s: %r is not %s" % (field, value, what))
    return float(check_number(value, field, low, high, allow_none=False, what=what))


def parse_sensors(data, field, taken):
    """``sensors: {name: {type, address, shunt_ohms}}`` -> name -> dict. ``taken``: address -> owner
    of the addresses already used on the board (the expanders)."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CarrierError("%s.sensors: %r is not a mapping of name to {type, address}" % (field, data))
    result = {}
    for name, spec in data.items():
        sfield = "%s.sensors.%s" % (field, name)
        if not isinstance(spec, dict):
            raise CarrierError("%s: %r is not a mapping {type, address}" % (sfield, spec))
        no_unknown(spec, ("type", "address", "shunt_ohms"), sfield)
        chip_type = choice(str(spec.get("type")).lower(), sfield + ".type", SENSOR_TYPES)
        address = as_int(spec.get("address"), sfield + ".address", 0x03, 0x77)
        _claim(taken, address, "sensor %s" % name, sfield + ".address")
        entry = {"type": chip_type, "address": address, "kind": make_sensor(chip_type, None, address).kind}
        if "shunt_ohms" in spec:
            if entry["kind"] != "power":
                raise CarrierError("%s.shunt_ohms: a %s has no shunt" % (sfield, chip_type))
            entry["shunt_ohms"] = _shunt(spec["shunt_ohms"], sfield + ".shunt_ohms")
        result[str(name)] = entry
    return result


def _shunt(value, field):
    return _number(value, field, 1e-6, 1000.0, "a shunt resistance in ohms (0.000001-1000)")


def _claim(taken, address, owner, field):
    if address in taken and taken[address] != owner:
        raise CarrierError("%s: 0x%02x is already the address of %s" % (field, address, taken[address]))
    taken[address] = owner


def parse_monitor(spec, field, sensors):
    """A slot's ``monitor: {chip, channel, shunt_ohms}`` (chip = a name of ``sensors``)."""
    if not isinstance(spec, dict):
        raise CarrierError("%s: %r is not a mapping {chip, channel, shunt_ohms}" % (field, spec))
    no_unknown(spec, ("chip", "channel", "shunt_ohms"), field)
    powers = sorted(n for n, s in sensors.items() if s["kind"] == "power")
    chip = str(spec.get("chip", powers[0] if len(powers) == 1 else ""))
    if chip not in powers:
        raise CarrierError("%s.chip: %r is not one of the profile's current monitors (%s)"
                           % (field, spec.get("chip"), ", ".join(powers) or "none"))
    channels = MONITOR_CHIPS[sensors[chip]["type"]].channels
    channel = as_int(spec.get("channel", 1), field + ".channel", 1, channels)
    if "shunt_ohms" in spec:
        shunt = _shunt(spec["shunt_ohms"], field + ".shunt_ohms")
    elif "shunt_ohms" in sensors[chip]:
        shunt = sensors[chip]["shunt_ohms"]
    else:
        raise CarrierError("%s.shunt_ohms: required (the sensor %s gives none)" % (field, chip))
    return {"chip": chip, "channel": channel, "shunt_ohms": shunt}


def parse_curve(curve, field):
    """``[[celsius, duty], ...]``: temperatures rising, duties 0-100 and never falling."""
    if not isinstance(curve, (list, tuple)) or not curve:
        raise CarrierError("%s: %r is not a list of [celsius, duty percent] points" % (field, curve))
    points = []
    for index, point in enumerate(curve):
        pfield = "%s[%d]" % (field, index)
        if not isinstance(point, (list, tuple)) or len(point) != 2:
            raise CarrierError("%s: %r is not a [celsius, duty percent] pair" % (pfield, point))
        temp = _number(point[0], pfield + ".celsius", -55, 150, "a temperature in C (-55-150)")
        duty = _number(point[1], pfield + ".duty", 0, 100, "a duty cycle in percent (0-100)")
        if points and temp <= points[-1][0]:
            raise CarrierError("%s.celsius: %r is not above the previous point's %r"
                               % (pfield, point[0], points[-1][0]))
        if points and duty < points[-1][1]:
            raise CarrierError("%s.duty: %r is below the previous point's %r (a fan must not slow as it warms)"
                               % (pfield, point[1], points[-1][1]))
        points.append([temp, duty])
    return points


def parse_fans(data, field, taken, sensors):
    """``fans: {name: {type, address, channel, curve, sensor}}`` -> name -> dict."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CarrierError("%s.fans: %r is not a mapping of name to {type, address}" % (field, data))
    result = {}
    used = {}
    temps = sorted(n for n, s in sensors.items() if s["kind"] == "temperature")
    for name, spec in data.items():
        ffield = "%s.fans.%s" % (field, name)
        if not isinstance(spec, dict):
            raise CarrierError("%s: %r is not a mapping {type, address}" % (ffield, spec))
        no_unknown(spec, ("type", "address", "channel", "curve", "sensor"), ffield)
        chip_type = choice(str(spec.get("type")).lower(), ffield + ".type", FAN_TYPES)
        default_address = 0x2F if chip_type == "emc2301" else None  # the EMC2301's one address
        address = as_int(spec.get("address", default_address), ffield + ".address", 0x03, 0x77)
        _claim(taken, address, "fan controller %s 0x%02x" % (chip_type, address), ffield + ".address")
        channel = as_int(spec.get("channel", 1), ffield + ".channel", 1, 1 if chip_type == "emc2301" else 5)
        if (address, channel) in used:
            raise CarrierError("%s.channel: %s channel %d is already fan %s"
                               % (ffield, chip_type, channel, used[(address, channel)]))
        used[(address, channel)] = name
        entry = {"type": chip_type, "address": address, "channel": channel, "curve": None, "sensor": None}
        if spec.get("curve") is not None:
            entry["curve"] = parse_curve(spec["curve"], ffield + ".curve")
        if spec.get("sensor") is not None:
            if spec["sensor"] not in temps:
                raise CarrierError("%s.sensor: %r is not one of the profile's temperature sensors (%s)"
                                   % (ffield, spec["sensor"], ", ".join(temps) or "none"))
            entry["sensor"] = spec["sensor"]
        elif entry["curve"] is not None and not temps:
            raise CarrierError("%s.curve: the profile has no temperature sensor to follow" % ffield)
        result[str(name)] = entry
    return result


# ---------------------------------------------------------------------------------------------
# Reading a board's sensors and driving its fans.


def _missing(exc):
    return isinstance(exc, BusError) and isinstance(exc.__cause__, OSError) and exc.__cause__.errno == 121


class SensorReader(object):
    """Reads a :class:`_board.Board`'s sensors and fans: one open bus, the bus lock per chip.

    ``read()`` returns ``{"sensors": {name: entry}, "slots": {slot: entry}, "fans": {name: entry}}``;
    every entry has ``ok`` (False with ``error`` and ``missing`` when the chip failed: a chip that
    does not acknowledge its address is ``missing: true``), so one dead sensor never hides the rest.
    """

    def __init__(self, board, retries=None):
        self.board = board
        self.profile = board.profile
        self.retries = board.retries if retries is None else retries
        self.transactions = 0

    def _locked(self, bus, action):
        with bus_lock(self.board.bus_spec, self.board.lock_dir):
            return action(bus)

    def _entry(self, kind, address, action, bus):
        entry = {"type": kind, "address": "0x%02x" % address}
        try:
            entry.update(self._locked(bus, action))
            entry["ok"] = True
        except BusError as exc:
            entry.update({"ok": False, "missing": _missing(exc), "error": str(exc)})
        return entry

    def read(self, names=None):
        wanted = None if names is None else set(names)
        result = {"sensors": {}, "slots": {}, "fans": {}}
        if not (self.profile.sensors or self.profile.fans):
            return result
        bus = self.board.new_bus()
        try:
            channels = {}
            for slot, mon in sorted(self.profile.monitors.items()):
                channels.setdefault(mon["chip"], {})[mon["channel"]] = (mon["shunt_ohms"], slot)
            for name, spec in sorted(self.profile.sensors.items()):
                if wanted is not None and name not in wanted:
                    continue
                result["sensors"][name] = self._read_sensor(bus, name, spec, channels.get(name, {}))
            for name, entry in result["sensors"].items():
                for channel, values in (entry.get("channels") or {}).items():
                    slot = values.get("slot")
                    if slot is not None:
                        result["slots"][slot] = dict(values, sensor=name, channel=channel, ok=True)
                if not entry["ok"]:
                    for channel, (_shunt_ohms, slot) in channels.get(name, {}).items():
                        result["slots"][slot] = {"sensor": name, "channel": channel, "ok": False,
                                                 "missing": entry["missing"], "error": entry["error"]}
            for name, spec in sorted(self.profile.fans.items()):
                if wanted is not None and name not in wanted:
                    continue
                result["fans"][name] = self._read_fan(bus, spec)
        finally:
            bus.close()
        return result

    def _read_sensor(self, bus, name, spec, channels):
        def action(locked_bus):
            chip = make_sensor(spec["type"], locked_bus, spec["address"], retries=self.retries)
            if chip.kind == "temperature":
                return {"temperature": round(chip.read_temperature(), 4)}
            if not channels and "shunt_ohms" in spec:
                channels[1] = (spec["shunt_ohms"], None)
            out = {}
            for channel, (shunt_ohms, slot) in sorted(channels.items()):
                out[channel] = dict(chip.read_channel(channel, shunt_ohms), slot=slot)
            return {"channels": out}
        return self._entry(spec["type"], spec["address"], action, bus)

    def _read_fan(self, bus, spec):
        def action(locked_bus):
            chip = make_fan_chip(spec["type"], locked_bus, spec["address"], retries=self.retries)
            return dict(chip.read(spec["channel"]), channel=spec["channel"])
        return self._entry(spec["type"], spec["address"], action, bus)

    def set_fans(self, wanted, check_mode=False):
        """Drive fans: ``{fan name: duty percent}``. Returns name -> (setting before, setting after);
        a setting already in place is not written."""
        settings = {name: duty_setting(duty, "duty") for name, duty in wanted.items()}
        done = {}
        bus = self.board.new_bus()
        try:
            for name, setting in sorted(settings.items()):
                spec = self.profile.fans[name]

                def action(locked_bus, spec=spec, setting=setting, name=name):
                    chip = make_fan_chip(spec["type"], locked_bus, spec["address"], retries=self.retries)
                    before = chip.read_setting(spec["channel"])
                    if chip.read_config(spec["channel"]) & 0x80:
                        raise CarrierError("fan %s: %s runs its RPM-based control (EN_ALGO set): the chip sets the "
                                           "duty, not this module" % (name, chip.describe()))
                    if before != setting and not check_mode:
                        chip.write_setting(spec["channel"], setting)
                        if chip.read_setting(spec["channel"]) != setting:
                            raise BusError("fan %s: %s did not keep setting 0x%02x" % (name, chip.describe(), setting))
                    return before
                done[name] = (self._locked(bus, action), setting)
        finally:
            bus.close()
        return done


def curve_targets(profile, readings):
    """Per fan with a curve: the duty its curve asks for at its sensor's temperature (the hottest
    board sensor when it names none); 100 % when that temperature cannot be read (fail safe)."""
    temps = {name: entry.get("temperature") for name, entry in readings["sensors"].items()
             if entry.get("ok") and "temperature" in entry}
    targets = {}
    for name, fan in profile.fans.items():
        if fan["curve"] is None:
            continue
        if fan["sensor"] is not None:
            celsius = temps.get(fan["sensor"])
        else:
            known = [t for t in temps.values() if t is not None and math.isfinite(t)]
            celsius = max(known) if known else None
        targets[name] = 100.0 if celsius is None else round(curve_duty(fan["curve"], celsius), 1)
    return targets


def fan_plan(profile, fans=None, duty=None, follow_curve=False):
    """What board_sensors is asked to do to the fans, checked before anything is read:
    ``{"mode": None | "duty" | "curve", "fans": [names], "duty": percent}``."""
    if duty is not None and follow_curve:
        raise CarrierError("duty: %r cannot be given with follow_curve (the curve sets the duty)" % (duty,))
    if duty is None and not follow_curve:
        return {"mode": None, "fans": [], "duty": None}
    if fans is not None:
        unknown = [name for name in fans if name not in profile.fans]
        if unknown or not fans:
            raise CarrierError("fans: %r are not fans of profile %s (fans: %s)"
                               % (unknown or fans, profile.name, ", ".join(sorted(profile.fans)) or "none"))
    names = sorted(profile.fans if fans is None else set(fans))
    if duty is not None:
        duty_setting(duty, "duty")
        if not names:
            raise CarrierError("duty: %r, but profile %s has no fans" % (duty, profile.name))
        return {"mode": "duty", "fans": names, "duty": float(duty)}
    curved = [name for name in names if profile.fans[name]["curve"] is not None]
    if fans is not None and len(curved) != len(names):
        raise CarrierError("follow_curve: fan(s) %s of profile %s have no curve"
                           % (", ".join(n for n in names if n not in curved), profile.name))
    if not curved:
        raise CarrierError("follow_curve: profile %s has no fan with a curve" % profile.name)
    return {"mode": "curve", "fans": curved, "duty": None}


def read_and_drive(board, plan, names=None, check_mode=False):
    """Read a board's sensors (``names``: a subset) and apply a :func:`fan_plan`; the board_sensors result."""
    known = set(board.profile.sensors) | set(board.profile.fans)
    if names is not None:
        unknown = sorted(set(names) - known)
        if unknown:
            raise CarrierError("sensors: %s not sensors or fans of profile %s (known: %s)"
                               % (", ".join(unknown), board.profile.name, ", ".join(sorted(known)) or "none"))
    reader = SensorReader(board)
    targets = {}
    if plan["mode"] == "duty":
        targets = dict.fromkeys(plan["fans"], plan["duty"])
    elif plan["mode"] == "curve":
        wanted = curve_targets(board.profile, reader.read())
        targets = {name: wanted[name] for name in plan["fans"]}
    done = reader.set_fans(targets, check_mode=check_mode) if targets else {}
    readings = reader.read(names)
    changes = [{"fan": name, "before": before, "after": after} for name, (before, after) in sorted(done.items())
               if before != after]

    def duty_lines(index):
        return "".join("fan %s: %.1f %%\n" % (c["fan"], c[index] * 100.0 / 255) for c in changes)

    return dict(readings, changed=bool(changes), board=board.name, fan_changes=changes,
                diff={"before": duty_lines("before"), "after": duty_lines("after")})
