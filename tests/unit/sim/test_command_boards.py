# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ClusterCTRL's command protocol and Turing Pi 1's power register (docs/hardware.md section 3),
through a bus socket, and the nodes they power."""

from __future__ import annotations

import errno
import time

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils._board import Board

DATA0, CMD, STATUS = 0x0C, 0x0D, 0x0E


def _topology(profile, count, board_sim=None):
    board = {"profile": profile, "bus": "sim:{dir}/bus.sock",
             "slots": {n: {"host": "p%d" % n, "model": "pizero"} for n in range(1, count + 1)}}
    if board_sim:
        board["sim"] = board_sim
    return {"controllers": {"ctrl0": {}}, "boards": {"b1": board}}


def _wait_done(bus, timeout=2.0):
    deadline = time.monotonic() + timeout
    while bus.read_byte_data(0x20, CMD) != 0:
        assert time.monotonic() < deadline, "command did not finish"
        time.sleep(0.001)


def _command(bus, code, node):
    bus.write_byte_data(0x20, DATA0, node)
    bus.write_byte_data(0x20, CMD, code)
    _wait_done(bus)
    assert bus.read_byte_data(0x20, STATUS) == 0
    return bus.read_byte_data(0x20, DATA0)


def test_clusterctrl_registers_and_commands(run_sim):
    sim = run_sim(_topology("clusterctrl", 3, {"pending_time": 0.05}))
    bus = sim.bus("b1")
    assert bus.read_byte_data(0x20, 0x01) == 3  # MAXPI: the slots of the board
    bus.write_byte_data(0x20, 0x01, 9)  # read-only: ignored
    assert bus.read_byte_data(0x20, 0x01) == 3
    assert _command(bus, 0x0F, 2) == 0  # GET power status: off
    # a command is pending for pending_time: CMD reads back non-zero, writes are not acknowledged
    bus.write_byte_data(0x20, DATA0, 2)
    bus.write_byte_data(0x20, CMD, 0x03)
    assert bus.read_byte_data(0x20, CMD) == 0x03
    with pytest.raises(OSError) as info:
        bus.write_byte_data(0x20, DATA0, 1)
    assert info.value.errno == errno.EREMOTEIO
    _wait_done(bus)
    assert bus.read_byte_data(0x20, STATUS) == 0
    assert _command(bus, 0x0F, 2) == 1
    assert _command(bus, 0x0F, 1) == 0
    sim.wait_state("p2", "login")
    assert sim.node("p1")["state"] == "off"
    _command(bus, 0x04, 2)  # OFF
    assert sim.node("p2")["state"] == "off"
    assert _command(bus, 0x0F, 2) == 0
    # USB boot: the node starts in the boot ROM's rpiboot wait
    _command(bus, 0x12, 3)
    assert _command(bus, 0x14, 3) == 1
    _command(bus, 0x03, 3)
    sim.wait_state("p3", "rpiboot")
    _command(bus, 0x13, 3)
    assert _command(bus, 0x14, 3) == 0
    assert sim.node("p3")["state"] == "rpiboot"  # nRPIBOOT counts at power-on/reset only
    bus.write_byte_data(0x20, DATA0, 7)  # no node 7: the command fails
    bus.write_byte_data(0x20, CMD, 0x03)
    _wait_done(bus)
    assert bus.read_byte_data(0x20, STATUS) != 0
    bus.close()


def test_clusterctrl_with_the_library(run_sim):
    sim = run_sim(_topology("clusterctrl", 4))
    board = Board("b1", "clusterctrl", sim.sim.boards["b1"].spec.bus, lock_dir=sim.state_dir)
    board.set_lines({1: {"power": True}, 4: {"rpiboot": True, "power": True}})
    state = board.read_state([1, 2, 4])
    assert state[1]["power"] and not state[2]["power"] and state[4]["power"] and state[4]["rpiboot"]
    sim.wait_state("p1", "login")
    sim.wait_state("p4", "rpiboot")


def test_turingpi1_power_register(run_sim):
    sim = run_sim(_topology("turingpi1", 7))
    bus = sim.bus("b1")
    assert bus.read_byte_data(0x57, 0xF2) == 0x00
    bus.write_byte_data(0x57, 0xF2, 0x02 | 0x80)  # nodes 1 and 5
    assert bus.read_byte_data(0x57, 0xF4) == 0x82  # the RAM shadow reads the same state
    sim.wait_state("p1", "login")
    sim.wait_state("p5", "login")
    assert [sim.node("p%d" % n)["state"] for n in (2, 3, 4, 6, 7)] == ["off"] * 5
    bus.write_byte_data(0x57, 0xF2, 0x20)  # node 7 only
    assert sim.node("p1")["state"] == "off" and sim.node("p5")["state"] == "off"
    sim.wait_state("p7", "login")
    with pytest.raises(OSError) as info:
        bus.read_byte_data(0x57, 0x00)
    assert info.value.errno == errno.EREMOTEIO
    bus.close()
    board = Board("b1", "turingpi1", sim.sim.boards["b1"].spec.bus, lock_dir=sim.state_dir)
    board.set_lines({3: {"power": True}})
    assert board.read_state([3, 7]) == {3: {"power": True, "run": None, "rpiboot": None, "eeprom_wp": None},
                                        7: {"power": True, "run": None, "rpiboot": None, "eeprom_wp": None}}
    sim.wait_state("p3", "login")
