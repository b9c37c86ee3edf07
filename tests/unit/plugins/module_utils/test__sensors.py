# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sensor and fan drivers transaction by transaction (the exact registers, the byte order), the
profile schema and its refusals, reading a board on the simulator's chips, fan duty and curve."""

from __future__ import annotations

import errno

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils import _sensors
from ansible_collections.picluster.carrier.plugins.module_utils._board import get_profile
from ansible_collections.picluster.carrier.plugins.module_utils._errors import BusError, CarrierError


class FakeBus:
    """Answers from a table ``{(op, reg): value}`` (words as smbus2 returns them) and records every op."""

    def __init__(self, answers=None, nack=False):
        self.answers = dict(answers or {})
        self.ops = []
        self.nack = nack

    def _answer(self, op, addr, reg):
        self.ops.append((op, addr, reg))
        if self.nack:
            raise OSError(errno.EREMOTEIO, "no acknowledge")
        return self.answers[(op, reg)]

    def read_word_data(self, addr, reg):
        return self._answer("read_word_data", addr, reg)

    def read_byte_data(self, addr, reg):
        return self._answer("read_byte_data", addr, reg)

    def write_byte_data(self, addr, reg, value):
        self.ops.append(("write_byte_data", addr, reg, value))

    def write_word_data(self, addr, reg, value):
        self.ops.append(("write_word_data", addr, reg, value))


def word(msb_first):
    """What smbus2's read_word_data returns for a register the chip sends MSB first."""
    return ((msb_first & 0xFF) << 8) | (msb_first >> 8)


def test_swap16_is_the_smbus_byte_order():
    assert _sensors.swap16(0x1234) == 0x3412
    assert _sensors.swap16(_sensors.swap16(0xBEEF)) == 0xBEEF


def test_ina219_reads_shunt_then_bus_msb_first():
    # shunt 0x0258 = 600 x 10 uV = 6 mV; bus 0x27D2: bits 15-3 = 1274 x 4 mV = 5.096 V, CNVR set, OVF clear
    bus = FakeBus({("read_word_data", 0x01): word(0x0258), ("read_word_data", 0x02): word(0x27D2)})
    got = _sensors.INA219(bus, 0x40).read_channel(1, 0.01)
    assert bus.ops == [("read_word_data", 0x40, 0x01), ("read_word_data", 0x40, 0x02)]
    assert got == {"bus_voltage": 5.096, "shunt_voltage": 0.006, "current": 0.6, "power": round(5.096 * 0.6, 5),
                   "overflow": False}


def test_ina219_negative_shunt_and_overflow_bit():
    bus = FakeBus({("read_word_data", 0x01): word(0xFF38), ("read_word_data", 0x02): word(0x0001)})
    got = _sensors.INA219(bus, 0x41).read_channel(1, 0.1)
    assert got["shunt_voltage"] == pytest.approx(-200 * 10e-6)
    assert got["current"] == pytest.approx(-0.02)
    assert got["overflow"] is True and got["bus_voltage"] == 0.0


def test_ina226_lsbs_and_ids():
    # shunt 2400 x 2.5 uV = 6 mV; bus 4000 x 1.25 mV = 5 V
    bus = FakeBus({("read_word_data", 0x01): word(2400), ("read_word_data", 0x02): word(4000),
                   ("read_word_data", 0xFE): word(0x5449), ("read_word_data", 0xFF): word(0x2260)})
    chip = _sensors.INA226(bus, 0x44)
    got = chip.read_channel(1, 0.002)
    assert got["shunt_voltage"] == pytest.approx(0.006) and got["bus_voltage"] == pytest.approx(5.0)
    assert got["current"] == pytest.approx(3.0) and got["power"] == pytest.approx(15.0)
    assert chip.identify() == {"manufacturer_id": 0x5449, "die_id": 0x2260}
    assert [op[2] for op in bus.ops] == [0x01, 0x02, 0xFE, 0xFF]


@pytest.mark.parametrize("channel,shunt_reg", [(1, 0x01), (2, 0x03), (3, 0x05)])
def test_ina3221_channel_registers_and_lsbs(channel, shunt_reg):
    # shunt: 150 counts in bits 15-3 x 40 uV = 6 mV; bus: 637 x 8 mV = 5.096 V
    bus = FakeBus({("read_word_data", shunt_reg): word(150 << 3), ("read_word_data", shunt_reg + 1): word(637 << 3)})
    got = _sensors.INA3221(bus, 0x40).read_channel(channel, 0.01)
    assert bus.ops == [("read_word_data", 0x40, shunt_reg), ("read_word_data", 0x40, shunt_reg + 1)]
    assert got["shunt_voltage"] == pytest.approx(0.006) and got["bus_voltage"] == pytest.approx(5.096)
    assert got["current"] == pytest.approx(0.6)


def test_ina3221_negative_shunt_keeps_its_sign():
    bus = FakeBus({("read_word_data", 0x01): word((-25 << 3) & 0xFFFF), ("read_word_data", 0x02): word(0)})
    assert _sensors.INA3221(bus, 0x40).read_channel(1, 0.01)["shunt_voltage"] == pytest.approx(-0.001)


@pytest.mark.parametrize("cls,raw,celsius", [
    (_sensors.LM75, 0x1900, 25.0),  # 9 bits: 0x032 x 0.5
    (_sensors.LM75, 0xFF80, -0.5),
    (_sensors.LM75A, 0x1920, 25.125),  # 11 bits in 15-5: 0x0C9 x 0.125
    (_sensors.LM75A, 0xE700, -25.0),
    (_sensors.TMP102, 0x1910, 25.0625),  # 12 bits in 15-4: 0x191 x 0.0625
    (_sensors.TMP102, 0xE700, -25.0),
    (_sensors.TMP102, 0x7FF0, 127.9375),
    (_sensors.TMP102, 0x4B01, 150.0),  # extended mode (bit 0): 13 bits in 15-3, 0x960 x 0.0625
])
def test_thermometers_two_complement_left_aligned(cls, raw, celsius):
    bus = FakeBus({("read_word_data", 0x00): word(raw)})
    assert cls(bus, 0x48).read_temperature() == pytest.approx(celsius)
    assert bus.ops == [("read_word_data", 0x48, 0x00)]


def test_emc2301_reads_setting_config_then_tach_high_before_low():
    # count 0x0C35 = 3125: high byte 0x0C35 >> 5 = 0x61, low byte (0x0C35 & 0x1F) << 3 = 0xA8; RANGE 01: m = 2
    bus = FakeBus({("read_byte_data", 0x30): 0x80, ("read_byte_data", 0x32): 0x2B,
                   ("read_byte_data", 0x3E): 0x61, ("read_byte_data", 0x3F): 0xA8})
    got = _sensors.EMC230x("emc2301", bus, 0x2F).read(1)
    assert bus.ops == [("read_byte_data", 0x2F, 0x30), ("read_byte_data", 0x2F, 0x32),
                       ("read_byte_data", 0x2F, 0x3E), ("read_byte_data", 0x2F, 0x3F)]
    assert got["tach_count"] == 3125
    assert got["rpm"] == pytest.approx(3932160 * 2 / 3125, abs=0.05)
    assert got["setting"] == 0x80 and got["duty"] == 50.2 and got["algorithm"] is False


@pytest.mark.parametrize("config,multiplier", [(0x0B, 1), (0x2B, 2), (0x4B, 4), (0x6B, 8)])
def test_emc_range_multiplier(config, multiplier):
    bus = FakeBus({("read_byte_data", 0x50): 0, ("read_byte_data", 0x52): config,
                   ("read_byte_data", 0x5E): 0x40, ("read_byte_data", 0x5F): 0x00})
    got = _sensors.EMC230x("emc2305", bus, 0x4D).read(3)  # fan 3: block 0x50
    assert got["rpm"] == pytest.approx(3932160 * multiplier / (0x40 << 5), abs=0.05)


def test_emc_stalled_fan_reads_zero_rpm():
    bus = FakeBus({("read_byte_data", 0x30): 0, ("read_byte_data", 0x32): 0x2B,
                   ("read_byte_data", 0x3E): 0xFF, ("read_byte_data", 0x3F): 0xF8})
    assert _sensors.EMC230x("emc2301", bus, 0x2F).read(1)["rpm"] == 0.0


def test_emc_ids_and_channel_range():
    bus = FakeBus({("read_byte_data", 0xFD): 0x37, ("read_byte_data", 0xFE): 0x5D})
    chip = _sensors.EMC230x("emc2301", bus, 0x2F)
    assert chip.identify() == {"product_id": 0x37, "manufacturer_id": 0x5D}
    with pytest.raises(CarrierError, match="fan channel: 2 is not a channel of emc2301"):
        chip.read_setting(2)


def test_a_missing_chip_is_a_bus_error_after_its_retries():
    bus = FakeBus(nack=True)
    with pytest.raises(BusError, match=r"tmp102 at 0x48: read temperature \(0x00\) failed after 2 attempt"):
        _sensors.TMP102(bus, 0x48, retries=2).read_temperature()
    assert len(bus.ops) == 2


@pytest.mark.parametrize("duty,setting", [(0, 0), (100, 255), (50, 128), (30, 77), ("40", 102)])
def test_duty_setting(duty, setting):
    assert _sensors.duty_setting(duty) == setting


@pytest.mark.parametrize("duty", [float("nan"), float("inf"), -1, 100.5, True, "fast", None])
def test_duty_refused_naming_the_field(duty):
    with pytest.raises(CarrierError, match=r"^duty: .* is not a duty cycle in percent \(0-100\)"):
        _sensors.duty_setting(duty)


def test_curve_interpolates_and_clamps():
    curve = [[40, 30], [60, 60], [75, 100]]
    assert _sensors.curve_duty(curve, 20) == 30
    assert _sensors.curve_duty(curve, 50) == 45
    assert _sensors.curve_duty(curve, 67.5) == 80
    assert _sensors.curve_duty(curve, 90) == 100


# --- the profile schema ---------------------------------------------------------------------------

BASE = {"name": "s", "chips": {"u1": {"type": "pca9555", "address": 0x20}},
        "slots": {1: {"power": {"bit": 0}}, 2: {"power": {"bit": 1}}}}


def profile(**extra):
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in BASE.items()}
    data["slots"] = {s: dict(lines) for s, lines in BASE["slots"].items()}
    slots = extra.pop("slots", {})
    for slot, lines in slots.items():
        data["slots"][slot].update(lines)
    data.update(extra)
    return get_profile(data)


def test_schema_accepts_the_brief_shapes():
    p = profile(sensors={"t1": {"type": "tmp102", "address": 0x48}, "ina": {"type": "ina3221", "address": "0x40"}},
                fans={"f1": {"type": "emc2301", "address": 0x2F, "curve": [[40, 30], [60, 60], [75, 100]]}},
                slots={1: {"monitor": {"chip": "ina", "channel": 2, "shunt_ohms": 0.01},
                           "led": {"bit": 8, "active": "high", "pull": "down"}}},
                restore="on")
    assert p.sensors["ina"] == {"type": "ina3221", "address": 0x40, "kind": "power"}
    assert p.monitors == {1: {"chip": "ina", "channel": 2, "shunt_ohms": 0.01}}
    assert p.fans["f1"]["curve"] == [[40.0, 30.0], [60.0, 60.0], [75.0, 100.0]] and p.fans["f1"]["channel"] == 1
    assert p.lines(1)["led"].bit == 8 and p.restore == "on"
    assert get_profile(p.to_dict()).to_dict() == p.to_dict()


@pytest.mark.parametrize("extra,message", [
    ({"sensors": {"t": {"type": "ds18b20", "address": 0x48}}}, r"sensors\.t\.type: 'ds18b20' is not one of"),
    ({"sensors": {"t": {"type": "tmp102", "address": 0x20}}}, r"sensors\.t\.address: 0x20 is already the address of "
                                                              r"expander u1"),
    ({"sensors": {"t": {"type": "tmp102", "address": 0x80}}}, r"sensors\.t\.address: 128 is out of range"),
    ({"sensors": {"t": {"type": "tmp102", "address": 0x48, "shunt_ohms": 0.1}}}, r"a tmp102 has no shunt"),
    ({"sensors": {"i": {"type": "ina219", "address": 0x40, "shunt_ohms": float("nan")}}},
     r"sensors\.i\.shunt_ohms: nan is not a shunt resistance"),
    ({"sensors": {"i": {"type": "ina219", "address": 0x40, "shunt_ohms": 0}}}, r"shunt_ohms: 0 is not a shunt"),
    ({"sensors": {"u1": {"type": "tmp102", "address": 0x48}}}, r"'u1' names two things"),
    ({"sensors": {"t": {"type": "tmp102", "address": 0x48, "bus": 2}}}, r"sensors\.t: unknown key\(s\) bus"),
    ({"sensors": {"i": {"type": "ina3221", "address": 0x40}}, "slots": {1: {"monitor": {"chip": "i", "channel": 4,
                                                                                        "shunt_ohms": 0.01}}}},
     r"slots\.1\.monitor\.channel: 4 is out of range \(1\.\.3\)"),
    ({"sensors": {"i": {"type": "ina3221", "address": 0x40}}, "slots": {1: {"monitor": {"chip": "i"}}}},
     r"slots\.1\.monitor\.shunt_ohms: required"),
    ({"slots": {1: {"monitor": {"chip": "x", "shunt_ohms": 0.01}}}}, r"monitor\.chip: 'x' is not one of the profile's "
                                                                     r"current monitors \(none\)"),
    ({"fans": {"f": {"type": "emc2301", "curve": [[40, 30]]}}}, r"fans\.f\.curve: the profile has no temperature"),
    ({"sensors": {"t": {"type": "tmp102", "address": 0x48}},
      "fans": {"f": {"type": "emc2301", "curve": [[60, 30], [40, 60]]}}}, r"curve\[1\]\.celsius: 40 is not above"),
    ({"sensors": {"t": {"type": "tmp102", "address": 0x48}},
      "fans": {"f": {"type": "emc2301", "curve": [[40, 60], [60, 30]]}}}, r"curve\[1\]\.duty: 30 is below"),
    ({"sensors": {"t": {"type": "tmp102", "address": 0x48}},
      "fans": {"f": {"type": "emc2301", "curve": [[40, float("inf")]]}}}, r"curve\[0\]\.duty: inf is not a duty"),
    ({"sensors": {"t": {"type": "tmp102", "address": 0x48}},
      "fans": {"f": {"type": "emc2301", "curve": [[40, "30"]]}}}, r"curve\[0\]\.duty: '30' is not a duty"),
    ({"fans": {"f": {"type": "emc2301", "curve": []}}}, r"fans\.f\.curve: \[\] is not a list"),
    ({"fans": {"f": {"type": "emc2301", "channel": 2}}}, r"fans\.f\.channel: 2 is out of range \(1\.\.1\)"),
    ({"fans": {"f": {"type": "emc2305", "address": 0x4D, "channel": 1},
               "g": {"type": "emc2305", "address": 0x4D, "channel": 1}}}, r"fans\.g\.channel: emc2305 channel 1 is "
                                                                          r"already fan f"),
    ({"fans": {"f": {"type": "emc2301", "sensor": "nope"}}}, r"fans\.f\.sensor: 'nope' is not one of"),
    ({"restore": "sometimes"}, r"profile s\.restore: 'sometimes' is not one of last, off, on"),
    ({"slots": {1: {"led": {"bit": 0}}}}, r"slots\.1\.led\.bit: u1 bit 0 is already slot 1 power"),
])
def test_schema_refusals_name_the_field(extra, message):
    with pytest.raises(CarrierError, match=message):
        profile(**extra)


def test_two_fans_of_one_emc2305_share_its_address():
    p = profile(fans={"f1": {"type": "emc2305", "address": 0x4D, "channel": 1},
                      "f2": {"type": "emc2305", "address": 0x4D, "channel": 2}})
    assert (p.fans["f1"]["channel"], p.fans["f2"]["channel"]) == (1, 2)


def test_turingpi2_profiles_take_no_sensors():
    with pytest.raises(CarrierError, match="turingpi2 profile has no I2C bus"):
        get_profile({"name": "t", "kind": "turingpi2", "sensors": {"t": {"type": "tmp102", "address": 0x48}}})


# --- a board on the simulator's chips -----------------------------------------------------------------

def test_board_reading_locks_per_chip_and_reads_the_minimum(rig, monkeypatch):
    r = rig("itx4_hwmon", nodes=(1, 2, 3, 4))
    locks = []
    real = _sensors.bus_lock

    def counting_lock(spec, lock_dir=None):
        locks.append(len(r.log))
        return real(spec, lock_dir)

    monkeypatch.setattr(_sensors, "bus_lock", counting_lock)
    readings = _sensors.SensorReader(r.board).read()
    # board_temp 1 word, ina3221_1 3 channels x 2 words, ina3221_2 1 channel x 2 words, the fan 4 bytes
    assert len(r.log) == 1 + 6 + 2 + 4
    assert not [op for op in r.log if op[0].startswith("write")]
    assert len(locks) == 4  # one hold per chip
    assert readings["slots"][1]["current"] == 0.0 and readings["slots"][4]["sensor"] == "ina3221_2"
    assert readings["fans"]["fan"]["ok"] is True


def test_current_rises_when_a_node_is_switched_on(rig):
    from ansible_collections.picluster.carrier.plugins.module_utils._power import PowerRequest, execute
    r = rig("itx4_hwmon", nodes=(1, 2, 3, 4))
    execute(PowerRequest(r.board, [2], "on", stagger=0), sleep=lambda s: None)
    slots = _sensors.SensorReader(r.board).read()["slots"]
    assert slots[2]["current"] == pytest.approx(0.6, abs=0.01) and slots[1]["current"] == 0.0
    assert slots[2]["bus_voltage"] < slots[1]["bus_voltage"]


def test_missing_sensor_is_reported_and_the_rest_still_read(rig):
    r = rig("itx4_hwmon", nodes=(1, 2, 3, 4))
    r.chip("ina3221_1").missing = True
    readings = _sensors.SensorReader(r.board, retries=1).read()
    assert readings["sensors"]["ina3221_1"]["ok"] is False and readings["sensors"]["ina3221_1"]["missing"] is True
    assert readings["slots"][1] == {"sensor": "ina3221_1", "channel": 1, "ok": False, "missing": True,
                                    "error": readings["sensors"]["ina3221_1"]["error"]}
    assert readings["slots"][4]["ok"] is True and readings["sensors"]["board_temp"]["ok"] is True


def test_fan_duty_is_written_once_and_read_back(rig):
    r = rig("itx4_hwmon", nodes=(1,))
    reader = _sensors.SensorReader(r.board)
    assert reader.set_fans({"fan": 60}) == {"fan": (0, 153)}
    writes = [op for op in r.log if op[0].startswith("write")]
    assert writes == [("write_byte_data", 0x2F, 0x30, 153)]
    del r.log[:]
    assert reader.set_fans({"fan": 60}) == {"fan": (153, 153)}
    assert not [op for op in r.log if op[0].startswith("write")]
    fan = reader.read(["fan"])["fans"]["fan"]
    assert fan["duty"] == 60.0 and fan["rpm"] == pytest.approx(3000, rel=0.01)


def test_check_mode_writes_no_fan(rig):
    r = rig("itx4_hwmon", nodes=(1,))
    assert _sensors.SensorReader(r.board).set_fans({"fan": 60}, check_mode=True) == {"fan": (0, 153)}
    assert not [op for op in r.log if op[0].startswith("write")]


def test_rpm_control_on_the_chip_is_refused(rig):
    r = rig("itx4_hwmon", nodes=(1,))
    r.chip("fan").regs[0x32] |= 0x80
    with pytest.raises(CarrierError, match="EN_ALGO"):
        _sensors.SensorReader(r.board).set_fans({"fan": 60})


def test_curve_follows_the_board_temperature_and_fails_safe(rig):
    r = rig("itx4_hwmon", nodes=(1,))
    readings = {"sensors": {"board_temp": {"ok": True, "temperature": 50.0}}}
    assert _sensors.curve_targets(r.board.profile, readings) == {"fan": 45.0}
    readings = {"sensors": {"board_temp": {"ok": False, "missing": True}}}
    assert _sensors.curve_targets(r.board.profile, readings) == {"fan": 100.0}


def test_fan_plan_refusals():
    p = get_profile("itx4_hwmon")
    assert _sensors.fan_plan(p) == {"mode": None, "fans": [], "duty": None}
    assert _sensors.fan_plan(p, duty=20) == {"mode": "duty", "fans": ["fan"], "duty": 20.0}
    assert _sensors.fan_plan(p, follow_curve=True)["mode"] == "curve"
    with pytest.raises(CarrierError, match=r"fans: \['nope'\] are not fans of profile itx4_hwmon"):
        _sensors.fan_plan(p, fans=["nope"], duty=20)
    with pytest.raises(CarrierError, match="duty: nan is not a duty"):
        _sensors.fan_plan(p, duty=float("nan"))
    with pytest.raises(CarrierError, match="has no fans"):
        _sensors.fan_plan(get_profile("itx4"), duty=20)
    with pytest.raises(CarrierError, match="cannot be given with follow_curve"):
        _sensors.fan_plan(p, duty=20, follow_curve=True)


def test_read_and_drive_result(rig):
    r = rig("itx4_hwmon", nodes=(1,))
    plan = _sensors.fan_plan(r.board.profile, duty=30)
    result = _sensors.read_and_drive(r.board, plan)
    assert result["changed"] is True and result["fan_changes"] == [{"fan": "fan", "before": 0, "after": 77}]
    assert result["diff"] == {"before": "fan fan: 0.0 %\n", "after": "fan fan: 30.2 %\n"}
    assert result["fans"]["fan"]["setting"] == 77
    assert _sensors.read_and_drive(r.board, plan)["changed"] is False
    with pytest.raises(CarrierError, match="sensors: nope not sensors or fans"):
        _sensors.read_and_drive(r.board, plan, names=["nope"])
