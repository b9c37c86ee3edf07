# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a node's console output means: line states, events, cleaning (ser2net trace lines among it)."""

from __future__ import annotations

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils._bootlog import (
    StreamCleaner,
    classify,
    clean,
    event,
)

# docs/hardware.md section 8, as the EEPROM bootloader prints them (seconds since reset first).
BOOT = [
    "  0.96 RPi: BOOTLOADER release VERSION:5f18ffb6 DATE: 2024/07/30 TIME: 14:02:35",
    "  0.97 BOOTMODE: 0x06 partition 0 build-ts BUILD_TIMESTAMP=1722344555 serial f0560721 boardrev c03141 "
    "stc 2417058",
    "  1.03 Boot mode: NETWORK (02) order f5641",
    "  1.20 NET 192.168.1.17 255.255.255.0 gw 0.0.0.0 tftp 192.168.1.3",
    "  1.25 TFTP_GET: dc:a6:32:01:36:c2 192.168.1.17 b7f44626/config.txt",
    "  1.26 Read b7f44626/config.txt bytes     1540 hnd 0x0",
]


@pytest.mark.parametrize("line, state", [
    (BOOT[0], "bootloader"),
    (BOOT[1], "bootloader"),
    (BOOT[2], "bootloader"),
    (BOOT[3], "bootloader"),
    (BOOT[4], "bootloader"),
    (BOOT[5], "bootloader"),
    ("Boot mode: NVME (06) order f", "bootloader"),
    ("HTTP: GET request for http://host:80/path/boot.sig", "bootloader"),
    ("RPi: BOOTLOADER release VERSION:5f18ffb6 DATE: 2024/07/30 TIME: 14:02:35", "bootloader"),
    ("[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x410fd083]", "kernel"),
    ("[    2.403311] Run /sbin/init as init process", "kernel"),
    ("[  OK  ] Reached target multi-user.target - Multi-User System.", "kernel"),
    ("Welcome to Debian GNU/Linux 12 (bookworm)!", "kernel"),
    ("Debian GNU/Linux 12 node01 ttyS0", "login"),
    ("node01 login: pi", None),  # the prompt with the typed user after it: not a prompt any more
    ("", None),
    ("hello world", None),
    ("pi@node01:~$ hostname", None),
])
def test_classify_complete_lines(line, state):
    assert classify(line) == state


@pytest.mark.parametrize("line, state", [
    ("node01 login: ", "login"),
    ("node01 login:", "login"),
    ("Password: ", "login"),
    ("pi@node01:~$ ", None),  # shell prompts are the session's prompt regex, not classify's
    ("[    0.001234] Linux version 6.6.51 #", None),
])
def test_classify_unfinished_lines(line, state):
    assert classify(line, partial=True) == state


@pytest.mark.parametrize("line, name", [
    (BOOT[0], "boot"),
    ("RPi: BOOTLOADER release VERSION:5f18ffb6", "boot"),
    (BOOT[2], "bootloader"),
    ("[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x410fd083]", "linux"),
    ("[    2.403311] Run /sbin/init as init process", "kernel"),
    ("[    7.100000] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(179,2)", "panic"),
    ("[   12.000000] Internal error: Oops: 96000004 [#1] PREEMPT SMP", "oops"),
    ("[57522.618196] Under-voltage detected! (0x00050005)", "undervoltage"),
    ("[  101.000000] hwmon hwmon1: Undervoltage detected!", "undervoltage"),
    ("[57528.858296] Voltage normalised (0x00000000)", "voltage_ok"),
    ("[  900.1] thermal thermal_zone0: critical temperature reached, shutting down", "thermal"),
    ("[  300.0] reboot: Restarting system", "restart"),
    ("[  300.0] reboot: Power down", "halt"),
    ("Debian GNU/Linux 12 node01 ttyS0", "login"),
    ("node01 login: ", "login"),
    ("hello", None),
])
def test_events(line, name):
    assert event(line) == name


def test_clean_removes_ser2net_trace_lines_even_after_a_prompt():
    # ser2net 4.3 with trace-timestamp, as measured: the CLOSE line follows an unfinished prompt
    raw = ("2026/12/02 17:40:08 OPEN (ipv4,127.0.0.1,35004)\n"
           "\x1b[0;32m[  OK  ]\x1b[0m Started x.\r\n"
           "node01 login: 2026/12/02 17:40:10 CLOSE netcon (network read close)\n"
           "2026/12/02 17:40:10 CLOSE port (All users disconnected)\n"
           "2026/12/02 17:40:11 OPEN (ipv4,127.0.0.1,54910)\n"
           "x\r\n")
    assert clean(raw) == "[  OK  ] Started x.\nnode01 login: x\n"


def test_stream_cleaner_joins_a_crlf_and_an_escape_cut_by_reads():
    cleaner = StreamCleaner()
    pieces = ["one\r", "\ntwo \x1b[0;3", "2mgreen\x1b[0m\r\n", "lone\rcr"]
    assert "".join(cleaner.feed(p) for p in pieces) == "one\ntwo green\nlone\ncr"
