# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Register semantics of the emulated expanders (docs/hardware.md section 2), through a bus socket."""

from __future__ import annotations

import errno

import pytest

# One chip per slot of a user profile; every slot: power bit 0 (active high, pull down; active low on a
# PCF8574, which cannot drive a line high against a pull-down), run bit 1
# (pull up), rpiboot bit 2 (active low, pull up); 16-bit chips also eeprom_wp on bit 9 (pull down).
CHIPS = {
    "pca9554": 0x20, "tca9554": 0x21, "pca9554a": 0x38, "xra1200": 0x22, "pca9555": 0x23, "tca9535": 0x24,
    "tca6416": 0x25, "mcp23008": 0x26, "mcp23017": 0x27, "pcf8574": 0x28, "pcf8574a": 0x39,
}
WIDE = ("pca9555", "tca9535", "tca6416", "mcp23017")
# (input, output, polarity, direction) register of port 0; None where the chip has none
REGS = {
    "pca9554": (0x00, 0x01, 0x02, 0x03), "tca9554": (0x00, 0x01, 0x02, 0x03), "pca9554a": (0x00, 0x01, 0x02, 0x03),
    "xra1200": (0x00, 0x01, 0x02, 0x03), "pca9555": (0x00, 0x02, 0x04, 0x06), "tca9535": (0x00, 0x02, 0x04, 0x06),
    "tca6416": (0x00, 0x02, 0x04, 0x06), "mcp23008": (0x09, 0x0A, 0x01, 0x00), "mcp23017": (0x12, 0x14, 0x02, 0x00),
}
REGISTER_CHIPS = sorted(REGS)


def _profile():
    chips = {name: {"type": name, "address": addr} for name, addr in CHIPS.items()}
    slots = {}
    for slot, name in enumerate(CHIPS, start=1):
        # A PCF8574 drives only low (a 1 is a weak pull-up), so its power line is active low.
        lines = {
            "power": {"chip": name, "bit": 0, "active": "low" if name.startswith("pcf") else "high", "pull": "down"},
            "run": {"chip": name, "bit": 1, "active": "high", "pull": "up"},
            "rpiboot": {"chip": name, "bit": 2, "active": "low", "pull": "up"},
        }
        if name in WIDE:
            lines["eeprom_wp"] = {"chip": name, "bit": 9, "active": "low", "pull": "down"}
        slots[slot] = lines
    return {"name": "allchips", "kind": "gpio", "chips": chips, "slots": slots}


TOPOLOGY = {
    "controllers": {"ctrl0": {}},
    "profiles": {"allchips": _profile()},
    "boards": {"b1": {"profile": "allchips", "bus": "sim:{dir}/bus.sock",
                      "slots": {slot: {"host": "n%02d" % slot} for slot in range(1, len(CHIPS) + 1)}}},
}


def _pull(name):
    return 0xFDFE if name in WIDE else 0xFE


@pytest.fixture
def sim(run_sim):
    return run_sim(TOPOLOGY)


@pytest.fixture
def bus(sim):
    client = sim.bus("b1")
    yield client
    client.close()


def _read(bus, name, reg):
    addr = CHIPS[name]
    if name in WIDE:
        return bus.read_word_data(addr, reg)
    return bus.read_byte_data(addr, reg)


def _write(bus, name, reg, value):
    addr = CHIPS[name]
    if name in WIDE:
        bus.write_word_data(addr, reg, value)
    else:
        bus.write_byte_data(addr, reg, value)


@pytest.mark.parametrize("name", REGISTER_CHIPS)
def test_power_on_defaults(bus, name):
    inp, out, pol, dirn = REGS[name]
    full = 0xFFFF if name in WIDE else 0xFF
    assert _read(bus, name, dirn) == full  # all inputs
    # MCP230xx latches power on at 0 (datasheet), the NXP/TI/Exar parts at all ones
    assert _read(bus, name, out) == (0 if name.startswith("mcp") else full)
    assert _read(bus, name, pol) == 0
    assert _read(bus, name, inp) == _pull(name)  # inputs read the board's pulls


@pytest.mark.parametrize("name", REGISTER_CHIPS)
def test_outputs_drive_pins_inputs_read_pulls(bus, name):
    inp, out, pol, dirn = REGS[name]
    _write(bus, name, out, 0x0005 if name in WIDE else 0x05)  # latch: bit 0 and 2 high, rest low
    assert _read(bus, name, inp) == _pull(name)  # still inputs: the latch does not reach the pins
    _write(bus, name, dirn, (0xFFFF if name in WIDE else 0xFF) & ~0x07)  # bits 0-2 outputs
    expected = (_pull(name) & ~0x07) | 0x05
    assert _read(bus, name, inp) == expected
    _write(bus, name, pol, 0x0003)
    assert _read(bus, name, inp) == expected ^ 0x0003  # input register = pins XOR polarity
    assert _read(bus, name, out) == 0x0005  # the latch reads back what was written


@pytest.mark.parametrize("name", REGISTER_CHIPS)
def test_input_register_is_read_only(bus, name):
    inp = REGS[name][0]
    before = _read(bus, name, inp)
    _write(bus, name, inp, 0x0000)  # acknowledged and ignored, like the chips
    assert _read(bus, name, inp) == before


@pytest.mark.parametrize("name", REGISTER_CHIPS)
def test_register_the_chip_lacks_is_not_acknowledged(bus, name):
    with pytest.raises(OSError) as info:
        bus.read_byte_data(CHIPS[name], 0x40)
    assert info.value.errno == errno.EREMOTEIO


def test_unknown_address_nacks(bus):
    for op in (lambda: bus.read_byte_data(0x50, 0), lambda: bus.write_byte(0x50, 1), lambda: bus.read_byte(0x50)):
        with pytest.raises(OSError) as info:
            op()
        assert info.value.errno == 121


@pytest.mark.parametrize("name", ("pca9555", "tca9535", "tca6416"))
def test_pca9555_word_access_stays_in_the_pair(bus, name):
    addr = CHIPS[name]
    bus.write_byte_data(addr, 0x02, 0x12)
    bus.write_byte_data(addr, 0x03, 0x34)
    assert bus.read_word_data(addr, 0x02) == 0x3412  # low byte = the register named
    assert bus.read_word_data(addr, 0x03) == 0x1234  # then the other of the pair
    bus.write_word_data(addr, 0x06, 0xABCD)
    assert (bus.read_byte_data(addr, 0x06), bus.read_byte_data(addr, 0x07)) == (0xCD, 0xAB)


def test_pca9554_has_no_auto_increment(bus):
    addr = CHIPS["pca9554"]
    bus.write_byte_data(addr, 0x01, 0x5A)
    assert bus.read_word_data(addr, 0x01) == 0x5A5A


def test_mcp23017_sequential_and_gpio_writes_the_latch(bus):
    addr = CHIPS["mcp23017"]
    bus.write_word_data(addr, 0x14, 0xBEEF)  # OLATA, OLATB
    assert bus.read_byte_data(addr, 0x14) == 0xEF and bus.read_byte_data(addr, 0x15) == 0xBE
    bus.write_byte_data(addr, 0x12, 0x01)  # a write to GPIOA goes to OLATA
    assert bus.read_byte_data(addr, 0x14) == 0x01
    assert bus.read_byte_data(addr, 0x0A) == 0  # IOCON, mirrored at 0x0B
    bus.write_byte_data(addr, 0x0B, 0xA0)  # BANK=1 requested: not modelled, stays 0; SEQOP set
    assert bus.read_byte_data(addr, 0x0A) == 0x20
    assert bus.read_word_data(addr, 0x15) == 0x01BE  # SEQOP: the pointer toggles within the A/B pair
    assert bus.read_word_data(addr, 0x14) == 0xBE01


def test_mcp23008_pullup_register_is_storage(bus):
    addr = CHIPS["mcp23008"]
    bus.write_byte_data(addr, 0x06, 0xF0)
    assert bus.read_byte_data(addr, 0x06) == 0xF0
    assert bus.read_word_data(addr, 0x09) == 0x00FE  # GPIO then OLAT (sequential), OLAT = 0
    assert bus.read_word_data(addr, 0x0A) == 0xFF00  # OLAT, then the pointer wraps to IODIR


def test_one_byte_write_sets_the_register_pointer(bus):
    addr = CHIPS["pca9555"]
    bus.write_byte_data(addr, 0x04, 0x0F)
    bus.write_byte(addr, 0x04)
    assert bus.read_byte(addr) == 0x0F
    with pytest.raises(OSError):
        bus.write_byte(addr, 0x09)  # no such register: NACK


@pytest.mark.parametrize("name", ("pcf8574", "pcf8574a"))
def test_pcf8574_quasi_bidirectional(bus, name):
    addr = CHIPS[name]
    assert bus.read_byte(addr) == 0xFE  # latch 0xFF = weak highs; bit 0 pulled down by the board
    bus.write_byte(addr, 0xFA)  # drive bit 2 low
    assert bus.read_byte(addr) == 0xFA
    bus.write_byte(addr, 0x00)
    assert bus.read_byte(addr) == 0x00
    # smbus byte-data on a register-less chip: the "register" byte is latched too
    assert bus.read_byte_data(addr, 0xFF) == 0xFE
    bus.write_byte_data(addr, 0x00, 0xF0)
    assert bus.read_byte(addr) == 0xF0


def test_stuck_pin_overrides_latch_and_pull(sim, bus):
    addr = CHIPS["pca9555"]
    sim.control({"op": "fault", "board": "b1", "chip": "pca9555", "bit": 3, "stuck": 0})
    assert bus.read_word_data(addr, 0x00) == 0xFDFE & ~0x08
    bus.write_word_data(addr, 0x02, 0xFFFF)
    bus.write_word_data(addr, 0x06, 0x0000)  # all outputs, all high
    assert bus.read_word_data(addr, 0x00) == 0xFFF7
    sim.control({"op": "fault", "board": "b1", "chip": "pca9555", "bit": 3, "stuck": None})
    assert bus.read_word_data(addr, 0x00) == 0xFFFF


def test_fault_requests_are_validated(sim):
    from carrier_sim.client import ControlError

    for bad in ({"op": "fault", "board": "nope", "i2c_error_rate": 0.1},
                {"op": "fault", "board": "b1", "i2c_error_rate": 2},
                {"op": "fault", "board": "b1", "chip": "zz", "bit": 1, "stuck": 1},
                {"op": "fault", "board": "b1", "chip": "pca9554", "bit": 8, "stuck": 1},
                {"op": "fault", "board": "b1", "chip": "pca9554", "bit": 1, "stuck": 2},
                {"op": "fault", "board": "b1"},
                {"op": "fault", "host": "nobody", "hang": True},
                {"op": "explode"}):
        with pytest.raises(ControlError):
            sim.control(bad)


def test_i2c_error_rate(sim, bus):
    addr = CHIPS["pca9554"]
    sim.control({"op": "fault", "board": "b1", "i2c_error_rate": 1.0})
    with pytest.raises(OSError) as info:
        bus.read_byte_data(addr, 0)
    assert info.value.errno == errno.EIO
    with pytest.raises(OSError):
        bus.write_byte_data(addr, 1, 0)
    sim.control({"op": "fault", "board": "b1", "i2c_error_rate": 0.3})
    failures = 0
    for _attempt in range(400):
        try:
            bus.read_byte_data(addr, 0)
        except OSError as exc:
            assert exc.errno == errno.EIO
            failures += 1
    assert 60 < failures < 180  # about 30 %
    sim.control({"op": "fault", "board": "b1", "i2c_error_rate": 0.0})
    for _attempt in range(50):
        bus.read_byte_data(addr, 0)


def test_failed_write_does_not_change_the_chip(sim, bus):
    addr = CHIPS["pca9554"]
    sim.control({"op": "fault", "board": "b1", "i2c_error_rate": 1.0})
    with pytest.raises(OSError):
        bus.write_byte_data(addr, 0x01, 0x00)
    sim.control({"op": "fault", "board": "b1", "i2c_error_rate": 0.0})
    assert bus.read_byte_data(addr, 0x01) == 0xFF


def test_transaction_counters(sim, bus):
    sim.control({"op": "reset_counters"})
    addr = CHIPS["pca9555"]
    bus.read_word_data(addr, 0x00)
    bus.write_word_data(addr, 0x02, 0)
    with pytest.raises(OSError):
        bus.read_byte_data(0x77, 0)
    counters = sim.status()["buses"][sim.sim.boards["b1"].spec.bus[4:]]
    assert counters["transactions"] == 3
    assert counters["reads"] == 2 and counters["writes"] == 1 and counters["nacks"] == 1
    assert counters["by_op"]["read_word_data"] == 1 and counters["by_op"]["write_word_data"] == 1


def test_malformed_requests_get_errors_not_crashes(sim):
    import json
    import socket

    path = sim.sim.boards["b1"].spec.bus[4:]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    reader = sock.makefile("rb")
    for raw in (b"not json\n", b'{"op": "read_byte_data", "addr": 32}\n', b'{"op": "format_disk", "addr": 32}\n',
                b'{"op": "write_byte_data", "addr": 32, "reg": 1, "value": 256}\n', b"[1, 2]\n"):
        sock.sendall(raw)
        reply = json.loads(reader.readline())
        assert reply["errno"] == errno.EINVAL, raw
    sock.sendall(b'{"op": "read_byte_data", "addr": 32, "reg": 3}\n')
    assert json.loads(reader.readline()) == {"value": 255}
    sock.close()
