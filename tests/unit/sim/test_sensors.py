# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The emulated sensors and fan controllers: registers and byte order through a bus socket, the
load they measure (current with power, temperature following, RPM following duty), the
sensor-missing fault and the latches kept across a simulator restart."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

from carrier_sim import sensors
from carrier_sim.client import ControlError
from simkit import SimThread, fill

PROFILE = {
    "name": "sensed", "kind": "gpio",
    "chips": {"u1": {"type": "pca9554", "address": 0x20}},
    "slots": {1: {"power": {"bit": 0, "pull": "down"}, "led": {"bit": 4, "pull": "down"},
                  "monitor": {"chip": "ina3221", "channel": 2}},
              2: {"power": {"bit": 1, "pull": "down"}, "monitor": {"chip": "ina219"}},
              3: {"power": {"bit": 2, "pull": "down"}, "monitor": {"chip": "ina226", "shunt_ohms": 0.002}}},
    "sensors": {"ina3221": {"type": "ina3221", "address": 0x40, "shunt_ohms": 0.01},
                "ina219": {"type": "ina219", "address": 0x41, "shunt_ohms": 0.1},
                "ina226": {"type": "ina226", "address": 0x44},
                "t1": {"type": "tmp102", "address": 0x48}, "t2": {"type": "lm75a", "address": 0x49},
                "t3": {"type": "lm75", "address": 0x4A}},
    "fans": {"f1": {"type": "emc2301"}, "f2": {"type": "emc2305", "address": 0x4D, "channel": 2}},
}
TOPOLOGY = {
    "controllers": {"c": {}},
    "profiles": {"sensed": PROFILE},
    "boards": {"b1": {"profile": "sensed", "bus": "sim:{dir}/bus.sock", "sim": {"thermal_tau": 0},
                      "slots": {1: {"host": "s1", "model": "cm5"}, 2: {"host": "s2", "sim": {"current": 0.25}},
                                3: "s3"}}},
}


@pytest.fixture
def sim(run_sim):
    return run_sim(TOPOLOGY)


@pytest.fixture
def bus(sim):
    client = sim.bus("b1")
    yield client
    client.close()


def msb_first(word):
    return ((word & 0xFF) << 8) | (word >> 8)


def test_ids_come_msb_first_in_the_smbus_word(bus):
    # INA3221 manufacturer ID 0x5449 ("TI") is sent 0x54 then 0x49: smbus word 0x4954
    assert bus.read_word_data(0x40, 0xFE) == 0x4954
    assert msb_first(bus.read_word_data(0x40, 0xFF)) == 0x3220
    assert msb_first(bus.read_word_data(0x44, 0xFF)) == 0x2260
    assert msb_first(bus.read_word_data(0x44, 0xFE)) == 0x5449
    assert bus.read_byte_data(0x2F, 0xFD) == 0x37 and bus.read_byte_data(0x2F, 0xFE) == 0x5D
    assert bus.read_byte_data(0x4D, 0xFD) == 0x34


def test_power_on_defaults_and_pointer(bus):
    assert msb_first(bus.read_word_data(0x40, 0x00)) == 0x7127
    assert msb_first(bus.read_word_data(0x41, 0x00)) == 0x399F
    assert msb_first(bus.read_word_data(0x44, 0x00)) == 0x4127
    assert msb_first(bus.read_word_data(0x48, 0x01)) == 0x60A0
    assert msb_first(bus.read_word_data(0x48, 0x03)) == 0x5000  # T_high 80 C
    bus.write_byte(0x48, 0x02)  # the pointer; a read byte is the register's MSB
    assert bus.read_byte(0x48) == 0x4B
    assert bus.read_byte_data(0x4A, 0x01) == 0x00  # the LM75's configuration is one byte
    assert bus.read_byte_data(0x2F, 0x32) == 0x2B and bus.read_byte_data(0x2F, 0x30) == 0x00


def test_word_writes_are_taken_msb_first_and_reset_restores_defaults(bus):
    bus.write_word_data(0x44, 0x05, msb_first(0x0A00))  # calibration
    assert msb_first(bus.read_word_data(0x44, 0x05)) == 0x0A00
    bus.write_word_data(0x44, 0x00, msb_first(0x8000))  # RST
    assert msb_first(bus.read_word_data(0x44, 0x05)) == 0
    bus.write_word_data(0x44, 0xFE, 0)  # read-only: acknowledged, dropped
    assert msb_first(bus.read_word_data(0x44, 0xFE)) == 0x5449


@pytest.mark.parametrize("addr,reg", [(0x40, 0x12), (0x41, 0x06), (0x48, 0x04), (0x2F, 0x40), (0x2F, 0x4E)])
def test_registers_a_chip_lacks_are_not_acknowledged(bus, addr, reg):
    with pytest.raises(OSError) as info:
        bus.read_byte_data(addr, reg)
    assert info.value.errno == errno.EREMOTEIO


def test_emc_takes_no_word_transfers(bus):
    with pytest.raises(OSError) as info:
        bus.read_word_data(0x2F, 0x3E)
    assert info.value.errno == errno.EREMOTEIO


def test_current_follows_the_power_line(sim, bus):
    assert bus.read_word_data(0x40, 0x03) == 0  # slot 1 (channel 2) off: no shunt voltage
    bus.write_byte_data(0x20, 0x01, 0x07)  # latch: slots 1-3 on
    bus.write_byte_data(0x20, 0x03, 0xF8)  # bits 0-2 outputs
    sim.wait_state("s1", ("bootloader", "kernel", "login"))
    # slot 1: cm5, 0.95 A x 0.01 ohm = 9.5 mV = 237.5 counts of 40 uV in bits 15-3
    shunt = msb_first(bus.read_word_data(0x40, 0x03)) >> 3
    assert shunt in (237, 238)
    bus_v = (msb_first(bus.read_word_data(0x40, 0x04)) >> 3) * 8e-3
    assert 5.0 < bus_v < 5.1
    # slot 2: sim.current 0.25 A x 0.1 ohm = 25 mV = 2500 x 10 uV on the INA219; bus 4 mV in bits 15-3, CNVR
    assert msb_first(bus.read_word_data(0x41, 0x01)) == 2500
    raw = msb_first(bus.read_word_data(0x41, 0x02))
    assert raw & 0x03 == 0x02 and 5.0 < (raw >> 3) * 4e-3 < 5.1
    # slot 3: cm4 default 0.6 A x 0.002 ohm = 1.2 mV = 480 x 2.5 uV on the INA226
    assert msb_first(bus.read_word_data(0x44, 0x01)) == 480
    # a channel no slot is wired to reads nothing
    assert bus.read_word_data(0x40, 0x05) == 0


def test_temperature_follows_the_load_and_the_fan(bus):
    def celsius():
        return (msb_first(bus.read_word_data(0x48, 0x00)) >> 4) * 0.0625

    idle = celsius()
    assert idle == pytest.approx(25.0, abs=0.07)
    bus.write_byte_data(0x20, 0x01, 0x07)
    bus.write_byte_data(0x20, 0x03, 0xF8)
    hot = celsius()
    assert hot > idle + 5
    bus.write_byte_data(0x2F, 0x30, 0xFF)
    assert celsius() < hot
    lm75a = msb_first(bus.read_word_data(0x49, 0x00))
    assert lm75a & 0x1F == 0  # 11 bits: the low five are zero
    lm75 = msb_first(bus.read_word_data(0x4A, 0x00))
    assert lm75 & 0x7F == 0  # 9 bits


def test_tmp102_extended_mode_flags_bit_0(bus):
    bus.write_word_data(0x48, 0x01, msb_first(0x60B0))  # EM
    raw = msb_first(bus.read_word_data(0x48, 0x00))
    assert raw & 0x01 and (raw >> 3) * 0.0625 == pytest.approx(25.0, abs=0.07)


def test_rpm_follows_duty_and_the_high_byte_latches_the_low(bus):
    assert (bus.read_byte_data(0x2F, 0x3E), bus.read_byte_data(0x2F, 0x3F)) == (0xFF, 0xF8)  # stopped
    bus.write_byte_data(0x2F, 0x30, 0x80)
    high = bus.read_byte_data(0x2F, 0x3E)
    low = bus.read_byte_data(0x2F, 0x3F)
    count = (high << 5) | (low >> 3)
    rpm = 3932160 * 2 / count
    assert rpm == pytest.approx(5000 * 0x80 / 255, rel=0.01)
    # fan 2 of the EMC2305: its own block at 0x40
    bus.write_byte_data(0x4D, 0x40, 0xFF)
    count = (bus.read_byte_data(0x4D, 0x4E) << 5) | (bus.read_byte_data(0x4D, 0x4F) >> 3)
    assert 3932160 * 2 / count == pytest.approx(5000, rel=0.01)


def test_sensor_missing_fault(sim, bus):
    reply = sim.control({"op": "fault", "board": "b1", "sensor": "t1", "missing": True})
    assert reply["fault"] == {"board": "b1", "sensor": "t1", "missing": True}
    with pytest.raises(OSError) as info:
        bus.read_word_data(0x48, 0x00)
    assert info.value.errno == errno.EREMOTEIO
    assert sim.status()["boards"]["b1"]["devices"]["t1"]["missing"] is True
    sim.control({"op": "fault", "board": "b1", "sensor": "t1", "missing": False})
    assert bus.read_word_data(0x48, 0x00) is not None
    for request, message in [({"sensor": "nope", "missing": True}, "has no sensor 'nope'"),
                             ({"sensor": "u1", "missing": True}, "has no sensor 'u1'"),
                             ({"sensor": "t1", "missing": "maybe"}, "missing: 'maybe' is not true or false")]:
        with pytest.raises(ControlError, match=message):
            sim.control(dict(request, op="fault", board="b1"))


def test_fault_cli_takes_sensor_and_missing(sim):
    cli = os.path.join(os.path.dirname(__file__), "..", "..", "..", "sim", "carrier-sim")
    run = subprocess.run([sys.executable, cli, "fault", "--state-dir", sim.state_dir, "--board", "b1",
                          "--sensor", "f1", "--missing", "true"], check=False, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    assert '"missing": true' in run.stdout and sim.sim.boards["b1"].devices["f1"].missing is True
    run = subprocess.run([sys.executable, cli, "fault", "--state-dir", sim.state_dir, "--board", "b1",
                          "--sensor", "f1"], check=False, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "--sensor and --missing go together" in run.stderr


def test_led_line_reaches_the_pin(sim, bus):
    bus.write_byte_data(0x20, 0x01, 0x10)
    bus.write_byte_data(0x20, 0x03, 0xEF)
    assert sim.sim.boards["b1"].line_levels(1)["led"] is True


def test_latches_kept_across_a_restart(short_dir):
    latch_file = os.path.join(short_dir, "latches.json")
    topology = fill({"controllers": {"c": {}},
                     "boards": {"b1": {"profile": "itx4", "bus": "sim:{dir}/bus.sock",
                                       "sim": {"latch_file": latch_file}, "slots": {1: "k1", 2: "k2"}}}}, short_dir)
    state = os.path.join(short_dir, "state")
    first = SimThread(topology, state, boot_time=0.05)
    try:
        with first.bus("b1") as client:
            client.write_word_data(0x20, 0x02, 0xFFFF)  # latch: slot 1 power high
            client.write_word_data(0x20, 0x06, 0xFFFE)  # slot 1 power an output: the node starts
        first.wait_state("k1", ("bootloader", "kernel", "login"))
    finally:
        first.stop()
    second = SimThread(topology, state, boot_time=0.05)
    try:
        with second.bus("b1") as client:
            assert client.read_word_data(0x20, 0x06) == 0xFFFE and client.read_word_data(0x20, 0x02) == 0xFFFF
        second.wait_state("k1", ("bootloader", "kernel", "login"))
        assert second.node("k2")["state"] == "off"
    finally:
        second.stop()


def test_load_model_lag():
    now = [0.0]
    board = type("B", (), {})()
    board.sim = {"thermal_tau": 10.0, "celsius_per_watt": 2.0, "supply_voltage": 5.0}
    board.devices = {}
    board.profile = type("P", (), {"slot_numbers": (1,)})()
    board.spec = type("S", (), {"nodes": {}})()
    board.line_levels = lambda slot: {"power": True}
    load = sensors.Load(board, clock=lambda: now[0])
    assert load.temperature() == 25.0
    now[0] = 10.0  # one time constant: 63 % of the way to 25 + 2 x 3 W
    assert load.temperature() == pytest.approx(25.0 + 6.0 * (1 - 2.718281828 ** -1), abs=0.01)
