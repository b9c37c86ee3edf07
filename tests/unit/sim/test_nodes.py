# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node state machine, driven through the expander registers; its console through its pty."""

from __future__ import annotations

import time

import pytest
from simkit import gpio_topology

# itx4 (docs/internals.md): PCA9555 at 0x20, slot N: power bit 3(N-1) (active high, pull down),
# run bit 3(N-1)+1 (active high, pull up), rpiboot bit 3(N-1)+2 (active low, pull up).
ADDR = 0x20


class Lines:
    """Drives slot 1's lines the way the library does: latch first, then direction."""

    def __init__(self, bus):
        self.bus = bus
        self.latch = 0xFFFF & ~0x0001  # power released (low), run high, rpiboot high (released)
        bus.write_word_data(ADDR, 0x02, self.latch)
        bus.write_word_data(ADDR, 0x06, 0xFFFF & ~0x0007)

    def set(self, power=None, run=None, rpiboot=None):
        for bit, value, active_high in ((0, power, True), (1, run, True), (2, rpiboot, False)):
            if value is None:
                continue
            level = value if active_high else not value
            self.latch = (self.latch | (1 << bit)) if level else (self.latch & ~(1 << bit))
        self.bus.write_word_data(ADDR, 0x02, self.latch)


@pytest.fixture
def sim(run_sim):
    return run_sim(gpio_topology("itx4", {1: "n1", 2: "n2"},
                                 slot_sim=None), boot_time=0.3)


@pytest.fixture
def lines(sim):
    bus = sim.bus("b1")
    yield Lines(bus)
    bus.close()


def test_power_on_boots_to_login_with_the_slot_identity(sim, lines):
    console = sim.console("n1")
    assert sim.node("n1")["state"] == "off"
    lines.set(power=True)
    text = console.read_until("n1 login: ")
    node = sim.node("n1")
    assert node["state"] == "login" and node["boots"] == 1
    assert "RPi: BOOTLOADER release VERSION:" in text
    assert "serial %s boardrev c03141" % node["serial"][-8:] in text  # docs/hardware.md section 8 BOOTMODE line
    assert "Boot mode: SD (01) order f4" in text
    assert "Machine model: Raspberry Pi Compute Module 4 Rev 1.1" in text
    assert text.endswith("\r\nDebian GNU/Linux 12 n1 ttyS0\r\n\r\nn1 login: ")
    assert text.index("BOOTLOADER") < text.index("Booting Linux") < text.index("login:")
    assert sim.node("n2")["state"] == "off"
    console.close()


def test_states_pass_through_the_pipeline(sim, lines):
    lines.set(power=True)
    seen = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (not seen or seen[-1] != "login"):
        state = sim.node("n1")["state"]
        if not seen or seen[-1] != state:
            seen.append(state)
        time.sleep(0.005)
    history = [h["state"] for h in sim.node("n1")["history"]]
    assert history[-3:] == ["bootloader", "kernel", "login"]


def test_run_low_holds_in_reset_and_rising_run_reboots(sim, lines):
    lines.set(power=True)
    sim.wait_state("n1", "login")
    console = sim.console("n1")
    lines.set(run=False)
    assert sim.node("n1")["state"] == "reset"
    assert console.read_for(0.3) == ""  # silent in reset
    lines.set(run=True)
    text = console.read_until("n1 login: ")
    assert "BOOTLOADER" in text
    assert sim.node("n1")["boots"] == 2
    console.close()


def test_power_off_is_immediate(sim, lines):
    lines.set(power=True)
    sim.wait_state("n1", "kernel")
    lines.set(power=False)
    assert sim.node("n1")["state"] == "off"
    console = sim.console("n1")
    assert console.read_for(0.3) == ""
    console.close()


def test_rpiboot_at_power_on_waits_in_the_boot_rom(sim, lines):
    console = sim.console("n1")
    lines.set(rpiboot=True)
    lines.set(power=True)
    assert sim.node("n1")["state"] == "rpiboot"
    assert console.read_for(0.5) == ""
    assert sim.node("n1")["state"] == "rpiboot"
    # released: nothing happens until a reset
    lines.set(rpiboot=False)
    assert sim.node("n1")["state"] == "rpiboot"
    lines.set(run=False)
    lines.set(run=True)
    console.read_until("n1 login: ")
    # asserted while running: no effect until the next reset, then the boot ROM waits
    lines.set(rpiboot=True)
    assert sim.node("n1")["state"] == "login"
    lines.set(run=False)
    lines.set(run=True)
    assert sim.node("n1")["state"] == "rpiboot"
    console.close()


def test_lines_with_the_chip_still_inputs_follow_the_pulls(sim):
    # Nothing written: power pulled down (off), run pulled up, rpiboot pulled up (released).
    node = sim.node("n1")
    assert node["lines"] == {"power": False, "run": True, "rpiboot": False, "eeprom_wp": False}
    assert node["state"] == "off"


def test_stuck_power_line_powers_the_node(sim):
    sim.control({"op": "fault", "board": "b1", "chip": "u1", "bit": 3, "stuck": 1})  # slot 2 power
    sim.wait_state("n2", "login")
    sim.control({"op": "fault", "board": "b1", "chip": "u1", "bit": 3, "stuck": None})
    assert sim.node("n2")["state"] == "off"


def test_hang_fault_stops_the_boot_midway(sim, lines):
    sim.control({"op": "fault", "host": "n1", "hang": True})
    console = sim.console("n1")
    lines.set(power=True)
    sim.wait_state("n1", "hung")
    text = console.read_for(0.6)
    assert "Booting Linux" in text and "login:" not in text
    assert sim.node("n1")["state"] == "hung"
    assert console.read_for(0.3) == ""  # silent from then on
    sim.control({"op": "fault", "host": "n1", "hang": False})
    assert sim.node("n1")["state"] == "hung"  # until a reset
    lines.set(run=False)
    lines.set(run=True)
    console.read_until("n1 login: ")
    console.close()


def test_login_and_shell(sim, lines):
    lines.set(power=True)
    sim.wait_state("n1", "login")
    console = sim.console("n1")
    console.send("\r")
    console.read_until("n1 login: ")
    console.send("pi\r")
    console.read_until("Password: ")
    console.send("wrong\r")
    assert "Login incorrect" in console.read_until("n1 login: ")
    console.send("pi\r")
    console.read_until("Password: ")
    console.send("raspberry\r")
    console.read_until("pi@n1:~$ ")
    assert sim.node("n1")["state"] == "shell"
    assert console.run("hostname") == "n1"
    serial = sim.node("n1")["serial"]
    assert "Serial\t\t: %s" % serial in console.run("cat /proc/cpuinfo")
    assert console.run("grep Serial /proc/cpuinfo") == "Serial\t\t: %s" % serial
    assert console.run("nosuchcmd") == "-sh: nosuchcmd: not found"
    assert console.run("echo $?") == "127"
    assert console.run("false; echo $? && echo '$?' \"$HOSTNAME\"") == "1\r\n$? n1"
    assert console.run("true && echo yes || echo no") == "yes"
    assert " up " in console.run("uptime")
    console.send("exit\r")
    assert "Debian GNU/Linux 12 n1 ttyS0" in console.read_until("n1 login: ")
    assert sim.node("n1")["state"] == "login"


SHELL_CASES = [  # command, output, $? after it
    ("uname", "Linux", 0), ("uname -n -m", "n1 aarch64", 0), ("uname -x", "uname: invalid option -- 'x'", 1),
    ("uname -a", "Linux n1 6.6.51+rpt-rpi-v8 #1 SMP PREEMPT Debian 1:6.6.51-1+rpt3 (2024-10-08) aarch64 GNU/Linux", 0),
    ("echo -n a b; echo c", "a bc", 0), ("echo", "", 0), ("sudo sudo hostname", "n1", 0),
    ("seq 3", "1\r\n2\r\n3", 0), ("seq 2 4", "2\r\n3\r\n4", 0), ("seq 10 -3 4", "10\r\n7\r\n4", 0),
    ("seq 1 0 2", "1\r\n2", 0), ("seq x", "seq: invalid arguments", 1), ("sleep x", "sleep: invalid time interval", 1),
    ("sleep 0.01", "", 0), ("cat /nothing", "cat: /nothing: No such file or directory", 1),
    ("cat /etc/hostname | cat", "n1", 0), ("grep -c Serial /proc/cpuinfo", "1", 0),
    ("grep x /nothing", "grep: /nothing: No such file or directory", 2), ("seq 5 | grep -v 3 | wc -l", "4", 0),
    ("seq 5 | head -n 2", "1\r\n2", 0), ("seq 5 | tail -n 1", "5", 0),
    ("vcgencmd", "Usage: vcgencmd [-t] command", 255),
]


def test_shell_commands(sim, lines):
    lines.set(power=True)
    sim.wait_state("n1", "login")
    console = sim.console("n1")
    console.login("n1")
    for command, output, status in SHELL_CASES:
        assert (console.run(command), console.run("echo $?")) == (output, str(status)), command
    console.close()


def test_poweroff_halts_and_leaves_the_power_line(sim, lines):
    lines.set(power=True)
    sim.wait_state("n1", "login")
    console = sim.console("n1")
    console.login("n1")
    console.send("poweroff\r")
    assert "reboot: Power down" in console.read_until("Power down")
    sim.wait_state("n1", "halted")
    assert sim.node("n1")["lines"]["power"] is True
    assert lines.bus.read_word_data(ADDR, 0x00) & 0x1  # the pin is still high: the controller owns it
    # a power cycle starts it again
    lines.set(power=False)
    lines.set(power=True)
    console.read_until("n1 login: ")
    console.close()


def test_reboot_from_the_shell(sim, lines):
    lines.set(power=True)
    sim.wait_state("n1", "login")
    console = sim.console("n1")
    console.login("n1")
    console.send("reboot\r")
    text = console.read_until("n1 login: ")
    assert "reboot: Restarting system" in text and "BOOTLOADER" in text
    assert sim.node("n1")["boots"] == 2
    console.close()


def test_output_is_lost_when_nobody_listens(sim, lines):
    lines.set(power=True)
    sim.wait_state("n1", "login")
    console = sim.console("n1")
    seen = console.read_for(0.2)
    assert seen == "", (sim.node("n1")["uart"], sim.node("n1")["history"])  # nobody had the port open
    console.close()


def test_ctrl_c_stops_a_long_output(sim, lines):
    lines.set(power=True)
    sim.wait_state("n1", "login")
    console = sim.console("n1")
    console.login("n1")
    console.send("seq 100000\r")  # 588,895 bytes: 5 s at this test's line speed
    console.read_until("\r\n1000\r\n")
    console.send("\x03")
    text = console.read_until("pi@n1:~$ ", timeout=5.0)
    assert "^C" in text and len(text) < 100000
    assert console.run("echo $?") == "130"
    console.close()


def test_a_new_client_sees_no_stale_output(sim, lines):
    lines.set(power=True)
    sim.wait_state("n1", "login")
    console = sim.console("n1")
    console.login("n1")
    console.send("seq 3000\r")  # 13,893 bytes, then a prompt: more than the pty buffers
    console.read_until("\r\n10\r\n")
    console.close()  # the rest is never read
    time.sleep(0.5)  # the command's output is over
    again = sim.console("n1")
    assert again.read_for(0.3) == ""  # nothing from before the reopen
    again.send("\r")
    assert again.read_until("pi@n1:~$ ").endswith("\r\npi@n1:~$ ")
    again.close()


@pytest.mark.parametrize("order, expected, state", [
    ("0xf12", ["Boot mode: NETWORK (02) order f1", "Boot mode: SD (01) order f"], "login"),
    ("0xf416", ["Boot mode: NVME (06) order f41", "Boot mode: SD (01) order f4"], "login"),
    ("0x32", ["Boot mode: NETWORK (02) order 3", "Boot mode: USB-DEV (03) order 0"], "rpiboot"),
])
def test_boot_order_from_the_bootloader_config(run_sim, plain_modes, order, expected, state):
    sim = run_sim(gpio_topology("itx4", {1: "n1"}, slot_sim={"bootconf": {"BOOT_ORDER": order}}))
    console = sim.console("n1")
    bus = sim.bus("b1")
    Lines(bus).set(power=True)
    sim.wait_state("n1", state)
    text = console.read_until("n1 login: ") if state == "login" else console.read_for(0.5)
    found = [line for line in text.split("\r\n") if "Boot mode:" in line]
    assert [line[7:] for line in found] == expected
    bus.close()
    console.close()


def test_no_bootable_mode_keeps_the_bootloader_trying(run_sim, plain_modes):
    sim = run_sim(gpio_topology("itx4", {1: "n1"}, slot_sim={"media": {"sd": False}}))
    console = sim.console("n1")
    bus = sim.bus("b1")
    Lines(bus).set(power=True)
    text = console.read_for(0.8)
    assert "SD card not detected" in text and text.count("Boot mode: SD (01)") >= 2  # RESTART loops
    assert "login:" not in text and sim.node("n1")["state"] == "bootloader"
    bus.close()
    console.close()
