# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node faults for the node state tests: panic, boot loop, under-voltage (the hang fault is in test_nodes)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from simkit import REPO, gpio_topology
from test_nodes import Lines


@pytest.fixture
def sim(run_sim):
    return run_sim(gpio_topology("itx4", {1: "n1", 2: "n2"}), boot_time=0.3)


@pytest.fixture
def lines(sim):
    bus = sim.bus("b1")
    yield Lines(bus)
    bus.close()


def test_panic_prints_a_kernel_panic_and_stops(sim, lines):
    reply = sim.control({"op": "fault", "host": "n1", "panic": True})
    assert reply["fault"] == {"host": "n1", "hang": False, "panic": True, "boot_loop": False, "undervolt": False}
    console = sim.console("n1")
    lines.set(power=True)
    text = console.read_until("on unknown-block(179,2) ]---\r\n")
    assert "Booting Linux" in text and "login:" not in text
    sim.wait_state("n1", "panic")
    assert console.read_for(0.5) == ""  # nothing after the panic
    sim.control({"op": "fault", "host": "n1", "panic": False})
    lines.set(run=False)
    lines.set(run=True)
    console.read_until("n1 login: ")
    console.close()


def test_boot_loop_resets_before_login_at_every_boot(sim, lines):
    sim.control({"op": "fault", "host": "n1", "boot_loop": True})
    console = sim.console("n1")
    lines.set(power=True)
    text = ""
    while text.count("RPi: BOOTLOADER release") < 3:
        text += console.read_until("RPi: BOOTLOADER release")
    assert "login:" not in text and text.count("Booting Linux") >= 2
    assert sim.node("n1")["boots"] >= 3
    assert sim.node("n1")["state"] in ("bootloader", "kernel")
    sim.control({"op": "fault", "host": "n1", "boot_loop": False})
    console.read_until("n1 login: ")  # the boot after that one reaches login
    console.close()


def test_undervolt_prints_the_kernel_warning_and_vcgencmd_answers_the_bits(sim, lines):
    sim.control({"op": "fault", "host": "n1", "undervolt": True})
    console = sim.console("n1")
    lines.set(power=True)
    text = console.read_until("n1 login: ")
    assert "Under-voltage detected! (0x00000005)" not in text and "Under-voltage detected! (0x00050005)" in text
    sim.wait_state("n1", "login")
    console.login("n1")
    assert console.run("vcgencmd get_throttled") == "throttled=0x50005"
    sim.control({"op": "fault", "host": "n1", "undervolt": False})
    assert "Voltage normalised (0x00000000)" in console.read_until("Voltage normalised (0x00000000)\r\n")
    assert console.run("vcgencmd get_throttled") == "throttled=0x50000"  # since boot
    sim.control({"op": "fault", "host": "n1", "undervolt": True})
    assert "Under-voltage detected! (0x00050005)" in console.read_until("(0x00050005)")
    console.close()
    assert sim.node("n2")["undervolt"] is False


def test_fault_requests_are_checked(sim):
    with pytest.raises(Exception, match="needs one of hang, panic, boot_loop, undervolt"):
        check(sim.control({"op": "fault", "host": "n1"}))
    with pytest.raises(Exception, match="panic"):
        check(sim.control({"op": "fault", "host": "n1", "panic": "maybe", "hang": True}))
    assert sim.node("n1")["hang"] is False  # nothing set when one value is bad


def check(reply):
    if not reply.get("ok"):
        raise RuntimeError(reply.get("error"))
    return reply


def test_cli_fault_flags(sim):
    command = [sys.executable, os.path.join(REPO, "sim", "carrier-sim"), "fault", "--host", "n2", "--panic", "true",
               "--boot-loop", "false", "--undervolt", "yes", "--state-dir", sim.state_dir]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert '"panic": true' in proc.stdout and '"undervolt": true' in proc.stdout
    node = sim.node("n2")
    assert node["panic"] is True and node["undervolt"] is True and node["boot_loop"] is False
    status = subprocess.run(command[:2] + ["status", "--state-dir", sim.state_dir], capture_output=True, text=True,
                            timeout=60, check=False)
    assert "node n2: panics while booting" in status.stdout and "node n2: under-voltage" in status.stdout
    bad = subprocess.run(command[:4] + ["n2", "--state-dir", sim.state_dir], capture_output=True, text=True,
                         timeout=60, check=False)
    assert bad.returncode == 2 and "--panic, --boot-loop or --undervolt" in bad.stderr
