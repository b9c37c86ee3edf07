# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Chip drivers: which registers are read and written, with which values, in which order."""

from __future__ import annotations

import pytest
from carrier_sim import chips as simchips
from carrier_sim.bus import SimBus as EmulatedBus
from emulated import HandleBus

from ansible_collections.picluster.carrier.plugins.module_utils._bus import CountingBus
from ansible_collections.picluster.carrier.plugins.module_utils._errors import BusError, CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._expanders import CHIP_TYPES, chip_width, make_chip

# chip type -> (input, output, polarity, direction) registers, docs/hardware.md section 2
REGISTER_MAPS = {
    "pca9554": (0x00, 0x01, 0x02, 0x03),
    "tca9554": (0x00, 0x01, 0x02, 0x03),
    "pca9554a": (0x00, 0x01, 0x02, 0x03),
    "xra1200": (0x00, 0x01, 0x02, 0x03),
    "pca9555": (0x00, 0x02, 0x04, 0x06),
    "tca9535": (0x00, 0x02, 0x04, 0x06),
    "tca6416": (0x00, 0x02, 0x04, 0x06),
    "mcp23008": (0x09, 0x0A, 0x01, 0x00),
    "mcp23017": (0x12, 0x14, 0x02, 0x00),
}
ADDRESS = {"pca9554a": 0x38, "pcf8574a": 0x38}


def wire(chip_type, pull=None):
    address = ADDRESS.get(chip_type, 0x20)
    device = simchips.make_chip(chip_type, address, name="u1", pull=pull)
    bus = EmulatedBus("inproc")
    bus.attach(device)
    counting = CountingBus(HandleBus(bus))
    return make_chip(chip_type, counting, address), device, counting.log, address


def test_every_chip_type_is_covered():
    assert set(CHIP_TYPES) == set(REGISTER_MAPS) | {"pcf8574", "pcf8574a"}


@pytest.mark.parametrize("chip_type", sorted(REGISTER_MAPS))
def test_register_access(chip_type):
    driver, device, log, addr = wire(chip_type)
    reg_in, reg_out, reg_pol, reg_dir = REGISTER_MAPS[chip_type]
    wide = chip_width(chip_type) == 16
    rd, wr = ("read_word_data", "write_word_data") if wide else ("read_byte_data", "write_byte_data")
    full = 0xFFFF if wide else 0xFF

    assert driver.read_direction() == full  # power-on: all inputs
    driver.write_outputs(0x1234 & full)
    driver.write_direction(0x00F0 & full)
    assert driver.read_outputs() == 0x1234 & full
    assert log == [
        (rd, addr, reg_dir),
        (wr, addr, reg_out, 0x1234 & full),
        (wr, addr, reg_dir, 0x00F0 & full),
        (rd, addr, reg_out),
    ]
    del log[:]
    # outputs show the latch, inputs the pull (all up here); polarity is undone
    pins = driver.read_inputs()
    assert pins == ((0x1234 & ~0x00F0) | 0x00F0) & full
    assert log == [(rd, addr, reg_pol), (rd, addr, reg_in)]
    device.write_byte_data(reg_pol, 0x0F)  # invert four bits of port 0
    assert driver.read_inputs() == pins
    assert driver.read_raw_inputs() == pins ^ 0x0F


@pytest.mark.parametrize("chip_type", sorted(REGISTER_MAPS))
def test_configure_outputs_is_glitch_free(chip_type):
    """First use: latch := present pin levels, then direction; the pins never move."""
    wide = chip_width(chip_type) == 16
    full = 0xFFFF if wide else 0xFF
    pull = 0xA5A5 & full  # some bits pulled down, some up
    driver, device, log, addr = wire(chip_type, pull=pull)
    seen = []
    before = device.levels()
    original = device.write_byte_data

    def watch(reg, value):
        original(reg, value)
        seen.append(device.levels())

    device.write_byte_data = watch  # every byte written, the word writes included
    mask = 0x0F0F & full
    latch = driver.configure_outputs(mask)
    assert all(level == before for level in seen), "a pin moved while the chip was configured"
    assert device.direction() == full & ~mask
    assert latch == device.latch()
    assert latch & mask == before & mask
    reg_in, reg_out, reg_pol, reg_dir = REGISTER_MAPS[chip_type]
    ops = [entry[:3] for entry in log]
    rd = "read_word_data" if wide else "read_byte_data"
    wr = "write_word_data" if wide else "write_byte_data"
    # direction read, latch read, pins (polarity, input), latch written before direction
    assert ops == [(rd, addr, reg_dir), (rd, addr, reg_out), (rd, addr, reg_pol), (rd, addr, reg_in),
                   (wr, addr, reg_out), (wr, addr, reg_dir)]
    del log[:]
    assert driver.configure_outputs(mask) == latch  # already outputs: reads only
    assert all(entry[0].startswith("read") for entry in log)


@pytest.mark.parametrize("chip_type", ["pcf8574", "pcf8574a"])
def test_pcf8574_quasi_bidirectional(chip_type):
    driver, device, log, addr = wire(chip_type, pull=0xF0)
    assert driver.read_inputs() == 0xF0  # latch 0xFF at power-on: pins follow the pulls
    driver.write_outputs(0xFE)  # drive bit 0 low, the rest weak high
    assert driver.read_inputs() == 0xF0 & 0xFE
    assert log == [("read_byte", addr), ("write_byte", addr, 0xFE), ("read_byte", addr)]
    assert driver.read_direction() == 0
    assert driver.configure_outputs(0x01) == driver.read_outputs()
    with pytest.raises(CarrierError, match="no direction register"):
        driver.write_direction(0x01)


def test_unknown_chip_and_bad_address():
    with pytest.raises(CarrierError, match="'pca9999' is not a supported expander"):
        make_chip("pca9999", None, 0x20)
    with pytest.raises(CarrierError, match="0x80|128"):
        make_chip("pca9555", None, 0x80)


def test_nack_is_retried_then_reported():
    bus = EmulatedBus("inproc")  # nothing attached: every address NACKs
    driver = make_chip("pca9555", CountingBus(HandleBus(bus)), 0x27, retries=3)
    with pytest.raises(BusError, match=r"pca9555 at 0x27: read direction.*3 attempt\(s\).*Errno 121"):
        driver.read_direction()
    assert bus.counters["nacks"] == 3


def test_transient_errors_are_absorbed():
    class Flaky:
        def __init__(self):
            self.calls = 0

        def read_byte_data(self, addr, reg):
            self.calls += 1
            if self.calls < 3:
                raise OSError(5, "Input/output error")
            return 0x42

    flaky = Flaky()
    driver = make_chip("pca9554", flaky, 0x20)
    assert driver.read_outputs() == 0x42
    assert flaky.calls == 3
