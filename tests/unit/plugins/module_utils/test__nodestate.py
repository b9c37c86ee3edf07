# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""node_state: lines and console text in, a node's lifecycle state out; read_log's incremental reads."""

from __future__ import annotations

import os
import time

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._nodestate import (
    STATES,
    log_path,
    node_state,
    read_log,
)

ON = {"power": True, "run": True, "rpiboot": False}
OFF = {"power": False, "run": True, "rpiboot": False}
RESET = {"power": True, "run": False, "rpiboot": False}
USB = {"power": True, "run": True, "rpiboot": True}

BOOTLOADER = ("  0.96 RPi: BOOTLOADER release VERSION:5f18ffb6 DATE: 2024/07/30 TIME: 14:02:35\r\n"
              "  1.03 Boot mode: SD (01) order f4\r\n")
KERNEL = ("[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x410fd083]\r\n"
          "[    1.180212] mmc0: new DDR MMC card at address 0001\r\n")
SYSTEMD = ("\r\nWelcome to \x1b[1mDebian GNU/Linux 12 (bookworm)\x1b[0m!\r\n"
           "[\x1b[0;32m  OK  \x1b[0m] Reached target x.\r\n")
LOGIN = "\r\nDebian GNU/Linux 12 node01 ttyS0\r\n\r\nnode01 login: "
BOOT = BOOTLOADER + KERNEL + SYSTEMD + LOGIN
PANIC = "[    2.100000] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(179,2)\r\n"
RESTART = "[    2.200000] reboot: Restarting system\r\n"


def feed(chunks, lines=None, model="cm4", start=1000.0, step=5.0, **options):
    """Feed chunks one call each, ``step`` seconds apart (written = now), the lines ON by default; the last state."""
    lines = ON if lines is None else lines
    history = None
    state = None
    for index, chunk in enumerate(chunks):
        now = start + index * step
        state, history = node_state(lines, chunk, written=now, now=now, model=model, history=history, **options)
    return state, history


@pytest.mark.parametrize("lines, state", [(OFF, "off"), (RESET, "held_in_reset"), (USB, "usb_boot")])
def test_the_lines_come_first(lines, state):
    result, _h = node_state(lines, BOOT, written=1.0, now=2.0)
    assert result["state"] == state
    assert result["boots"] == 1  # the console was still read


def test_a_boot_to_login_stage_by_stage_with_time_to_login():
    result, history = feed([BOOTLOADER])
    assert result["state"] == "bootloader" and result["boots"] == 1
    result, history = node_state(ON, KERNEL, written=1005.0, now=1005.0, history=history)
    assert result["state"] == "kernel"
    result, history = node_state(ON, SYSTEMD + LOGIN, written=1010.0, now=1010.0, history=history)
    assert result["state"] == "login"
    # the first text a history sees is not dated: the boot started in it, so no time to login
    assert result["boot_seen"] is None and result["time_to_login"] is None and result["login_seen"] == 1010.0
    result, _h = feed(["", BOOTLOADER, KERNEL, LOGIN])
    assert result["boot_seen"] == 1005.0 and result["login_seen"] == 1015.0 and result["time_to_login"] == 10.0
    assert result["last_power_on"] == 1005.0


def test_a_login_prompt_without_its_line_break_counts_and_is_read_again():
    result, history = node_state(ON, "", partial="node01 login: ", written=1.0, now=1.0)
    assert result["state"] == "login"


def test_panic_and_oops():
    assert feed([BOOTLOADER + KERNEL + PANIC])[0]["state"] == "panic"
    result, _h = feed([BOOTLOADER + KERNEL + "[ 5.0] Internal error: Oops: 96000004 [#1] PREEMPT SMP\r\n"])
    assert result["state"] == "panic" and result["panic"].endswith("PREEMPT SMP")
    # an Oops after which the node still reached login: a warning, not a panic
    result, _h = feed([BOOTLOADER + KERNEL + "[ 5.0] Internal error: Oops: 96000004 [#1]\r\n" + LOGIN])
    assert result["state"] == "login" and result["warnings"] == ["oops"]


def test_boot_loop_needs_three_boots_in_a_row_without_login():
    result, history = feed([BOOTLOADER + KERNEL + RESTART, BOOTLOADER + KERNEL + RESTART])
    assert result["state"] == "kernel" or result["state"] == "on"
    assert result["boots_without_login"] == 2
    result, history = node_state(ON, BOOTLOADER, written=1010.0, now=1010.0, history=history)
    assert result["state"] == "boot_loop" and result["boots"] == 3
    result, history = node_state(ON, KERNEL + LOGIN, written=1015.0, now=1015.0, history=history)
    assert result["state"] == "login" and result["boots_without_login"] == 0


def test_a_reboot_after_login_is_no_loop():
    result, _h = feed([BOOT + "\r\n" + RESTART + BOOT + "\r\n" + RESTART + BOOT + "\r\n" + RESTART + BOOTLOADER])
    assert result["state"] == "bootloader" and result["boots"] == 4 and result["boots_without_login"] == 1


def test_hung_after_the_boot_timeout_without_progress():
    result, history = node_state(ON, BOOTLOADER + KERNEL, written=1000.0, now=1000.0, model="cm5")
    assert result["state"] == "kernel" and result["boot_timeout"] == 120.0
    result, history = node_state(ON, "", written=1000.0, now=1119.0, model="cm5", history=history)
    assert result["state"] == "kernel"
    result, history = node_state(ON, "", written=1000.0, now=1121.0, model="cm5", history=history)
    assert result["state"] == "hung" and result["silent_for"] == 121.0
    # a node at its login prompt is silent, not hung
    result, _h = node_state(ON, BOOT, written=1000.0, now=5000.0)
    assert result["state"] == "login"
    # the timeout option
    assert node_state(ON, BOOTLOADER, written=1000.0, now=1011.0, timeout=10)[0]["state"] == "hung"


def test_a_node_seen_switched_on_that_prints_nothing_hangs_and_an_old_login_does_not_count():
    result, history = node_state(ON, BOOT, written=10.0, now=100.0)
    assert result["state"] == "login"
    result, history = node_state(OFF, "", written=10.0, now=200.0, history=history)
    assert result["state"] == "off"
    result, history = node_state(ON, "", written=10.0, now=300.0, history=history)
    assert result["state"] == "on" and result["last_power_on"] == 300.0
    result, history = node_state(ON, "", written=10.0, now=481.0, history=history)
    assert result["state"] == "hung"


def test_a_node_without_console_is_on_never_hung():
    result, _h = node_state(ON, "", now=10_000.0, console=False)
    assert result["state"] == "on"
    assert node_state(None, "", now=1.0, console=False)[0]["state"] == "unknown"


def test_undervoltage_and_thermal_warnings():
    text = BOOT + "pi\r\n[  100.1] Under-voltage detected! (0x00050005)\r\n"
    result, history = feed([text])
    assert result["state"] == "login" and result["warnings"] == ["undervoltage"]
    assert result["events"]["undervoltage"] == {"count": 1, "last": "[  100.1] Under-voltage detected! (0x00050005)",
                                                "active": True}
    result, history = node_state(ON, "[  106.0] Voltage normalised (0x00000000)\r\n"
                                     "[  900.1] thermal thermal_zone0: critical temperature reached\r\n",
                                 written=2.0, now=2.0, history=history)
    assert result["warnings"] == ["thermal"] and result["events"]["undervoltage"]["active"] is False
    # a new boot starts with no warnings
    assert node_state(ON, BOOTLOADER, written=3.0, now=3.0, history=history)[0]["warnings"] == []


def test_a_model_without_bootloader_output_counts_its_boots_from_linux():
    result, _h = feed([KERNEL + LOGIN + "\r\n" + RESTART + KERNEL], model="cm3")
    assert result["boots"] == 2 and result["state"] == "kernel"


def test_halted_and_unknown_model():
    assert feed([BOOT + "\r\n[  50.0] reboot: Power down\r\n"])[0]["state"] == "halted"
    with pytest.raises(CarrierError, match="model: 'cm9'"):
        node_state(ON, "", now=1.0, model="cm9")


def test_every_state_is_listed():
    assert {"off", "held_in_reset", "usb_boot", "bootloader", "kernel", "login", "panic", "hung",
            "boot_loop"} <= set(STATES)


def test_ser2net_trace_lines_in_the_log(tmp_path):
    log = tmp_path / "node01.log"
    log.write_bytes(("2026/12/02 17:40:08 OPEN (ipv4,127.0.0.1,35004)\n" + BOOT
                     + "2026/12/02 17:40:10 CLOSE netcon (network read close)\n").encode())
    text, partial, written, history = read_log(str(log))
    result, history = node_state(ON, text, partial=partial, written=written, now=written + 1)
    assert result["state"] == "login" and result["boots"] == 1


def test_read_log_reads_only_what_is_new_and_starts_again_after_rotation(tmp_path):
    log = tmp_path / "node01.log"
    assert read_log(str(log))[0] is None
    log.write_bytes(BOOTLOADER.encode() + b"half a li")
    text, partial, _w, history = read_log(str(log))
    assert text == BOOTLOADER and partial == "half a li"
    with open(log, "ab") as fh:
        fh.write(b"ne\r\n" + KERNEL.encode())
    text, partial, _w, history = read_log(str(log), history)
    assert text == "half a line\r\n" + KERNEL and partial == ""
    assert history["offset"] == log.stat().st_size
    log.write_bytes(b"x\n")  # copytruncate: smaller than the offset
    text, _p, _w, history = read_log(str(log), history)
    assert text == "x\n"
    os.unlink(log)
    log.write_bytes(b"a new file, longer than the last one was\n")
    assert read_log(str(log), history)[0].startswith("a new file")
    assert log_path("/var/log/picluster/console", "node01") == "/var/log/picluster/console/node01.log"


def test_a_large_log_is_read_fast_and_once(tmp_path):
    log = tmp_path / "node01.log"
    one = (BOOT + "pi\r\n" + "".join("[ %d.0] some kernel message number %d\r\n" % (i, i) for i in range(200))
           + RESTART)
    log.write_bytes((one * 500).encode())  # ~6 MB, 500 boots
    started = time.perf_counter()
    text, partial, written, history = read_log(str(log))
    result, history = node_state(ON, text, partial=partial, written=written, now=written, history=history)
    first = time.perf_counter() - started
    assert result["boots"] == 500
    started = time.perf_counter()
    text, partial, written, history = read_log(str(log), history)
    result, history = node_state(ON, text, partial=partial, written=written, now=written, history=history)
    again = time.perf_counter() - started
    assert text == "" and result["boots"] == 500
    print("first read %.2f s, again %.4f s, %d bytes" % (first, again, log.stat().st_size))
    assert first < 20 and again < 0.05
