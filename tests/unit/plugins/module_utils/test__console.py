# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_console against real ptys: a socat pty pair with the test writing and reading the node's end,
and a node process (tests/integration/console_node.py) that runs a real bash after its login prompt."""

from __future__ import annotations

import os
import socket
import stat
import sys
import threading
import time
from pathlib import Path

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils._console import (
    ConsoleBusyError,
    ConsoleError,
    ConsoleSession,
    ConsoleTimeout,
)
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError

REPO = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(REPO / "tests" / "integration"))
from console_rig import NodeOnPty, PtyPair, free_port  # noqa: E402

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


@pytest.fixture
def pty(tmp_path):
    pair = PtyPair(str(tmp_path))
    yield pair
    pair.stop()


@pytest.fixture
def node(tmp_path):
    proc = NodeOnPty(str(tmp_path))
    yield proc
    proc.stop()


def test_capture_until_prompt_with_crlf_split_utf8_and_bad_bytes(pty):
    chunks = [b"  0.96 RPi: BOOTLOADER release VERSION:5f18ffb6\r", b"\n[    0.000000] Booting Linux\r\n",
              b"caf\xc3", b"\xa9 \xff\xfe ok\r\n", b"\x1b[0;32m[  OK  ]\x1b[0m Started x.\r\n",
              b"\r\nDebian GNU/Linux 12 node01 ttyS0\r\n\r\nnode01 login: "]

    def writer():
        for chunk in chunks:
            time.sleep(0.05)
            pty.write(chunk)

    with ConsoleSession(pty.dev) as session:
        thread = threading.Thread(target=writer)
        thread.start()
        result = session.capture(until=r"login: $", timeout=10)
        thread.join()
    assert result["match"] == "login: "
    assert result["lines"] == [
        "  0.96 RPi: BOOTLOADER release VERSION:5f18ffb6",
        "[    0.000000] Booting Linux",
        "caf\u00e9 \ufffd\ufffd ok",
        "[  OK  ] Started x.",
        "",
        "Debian GNU/Linux 12 node01 ttyS0",
        "",
        "node01 login: ",
    ]
    assert result["state"] == "login"
    assert session.bytes_received == sum(len(c) for c in chunks)


def test_capture_groups_and_named_groups(pty):
    with ConsoleSession(pty.dev) as session:
        pty.write(b"  0.97 BOOTMODE: 0x06 partition 0 build-ts BUILD_TIMESTAMP=1722344555 serial f0560721 "
                  b"boardrev c03141\r\n")
        result = session.capture(until=r"serial (?P<serial>[0-9a-f]{8}) boardrev ([0-9a-f]+)", timeout=5)
    assert result["named_groups"] == {"serial": "f0560721"}
    assert result["groups"] == ["f0560721", "c03141"]
    assert result["state"] == "bootloader"


def test_capture_duration_reads_everything_and_appends_to_the_log(pty, tmp_path):
    log = tmp_path / "node01.log"
    with ConsoleSession(pty.dev, log_file=str(log)) as session:
        pty.write("\r\n".join(BOOT[:3]) + "\r\n")
        started = time.monotonic()
        result = session.capture(duration=0.5)
        assert time.monotonic() - started >= 0.5
    assert result["lines"] == BOOT[:3]
    assert result["match"] is None
    assert stat.S_IMODE(os.stat(log).st_mode) == 0o600
    with ConsoleSession(pty.dev, log_file=str(log)) as session:
        pty.write(BOOT[3] + "\r\n")
        session.capture(duration=0.3)
    assert log.read_text() == "\n".join(BOOT[:4]) + "\n"


def test_expect_steps_send_answers_with_the_newline(pty):
    with ConsoleSession(pty.dev, newline="cr") as session:
        pty.write(b"Hit any key to stop autoboot:  2 \r\n")
        steps = session.run_steps([
            {"match": r"autoboot:\s+(\d)", "send": " ", "newline": False},
            {"send": "printenv bootcmd"},
        ])
        assert pty.read(timeout=2, until=b"bootcmd\r") == b" printenv bootcmd\r"
        pty.write(b"=> ")
        steps += session.run_steps([{"match": r"=> $", "timeout": 5}])
    assert [s["match"] for s in steps] == ["autoboot:  2", None, "=> "]
    assert steps[0]["groups"] == ["2"]
    assert [s["sent"] for s in steps] == [True, True, False]


def test_expect_step_timeout_names_the_step_and_carries_the_last_lines(pty):
    with ConsoleSession(pty.dev) as session:
        pty.write("\r\n".join(BOOT) + "\r\n")
        started = time.monotonic()
        with pytest.raises(ConsoleTimeout) as caught:
            session.run_steps([{"match": "Read", "timeout": 5}, {"match": "never", "timeout": 0.5}])
        assert time.monotonic() - started < 3
    message = str(caught.value)
    assert "expect[1].match /never/" in message
    assert "timed out after 0.5 s" in message
    assert BOOT[-1] in message
    assert caught.value.lines[-1] == BOOT[-1]
    assert caught.value.state == "bootloader"


@pytest.mark.parametrize("steps, text", [
    ([{"match": "(", "send": "x"}], "expect[1].match: '(' is not a valid regular expression"),
    ([{"send": "x"}, {"timeout": 3}], "expect[2]: give match, send or both"),
    ([{"match": "a", "timeout": 0}], "expect[1].timeout: 0 is not a positive number"),
    ([{"match": "a", "answer": "b"}], "expect[1]: unknown key(s) answer"),
    ([], "expect: [] is not a non-empty list"),
])
def test_bad_steps_are_refused_before_anything_is_sent(pty, steps, text):
    """A good first step then a bad one: refused before the good step sends anything."""
    with ConsoleSession(pty.dev) as session:
        with pytest.raises(CarrierError) as caught:
            session.run_steps([{"send": "first"}] + steps if steps else steps)
    assert text in str(caught.value)
    assert pty.read(timeout=0.3) == b""


def test_wait_for_a_line_that_never_shows_login_times_out_with_the_last_lines(pty):
    with ConsoleSession(pty.dev) as session:
        pty.write("\r\n".join(BOOT) + "\r\n[    1.190877] mmcblk0: mmc0:0001 BJTD4R 29.1 GiB\r\n")
        with pytest.raises(ConsoleTimeout) as caught:
            session.wait_for("login", 2.5, poke_after=1.0)
    message = str(caught.value)
    assert "timed out after 2.5 s waiting for the node to reach state 'login' (last state seen: kernel)" in message
    assert "mmcblk0: mmc0:0001 BJTD4R 29.1 GiB" in message
    assert caught.value.lines[-2:] == [BOOT[-1], "[    1.190877] mmcblk0: mmc0:0001 BJTD4R 29.1 GiB"]
    assert pty.read(timeout=0.2).count(b"\r") >= 1  # it poked: Enter, twice in 2.5 s


def test_wait_for_without_poke_sends_nothing(pty):
    with ConsoleSession(pty.dev) as session:
        with pytest.raises(ConsoleTimeout) as caught:
            session.wait_for("kernel", 1.0, poke=False, poke_after=0.2)
    assert "nothing was received" in str(caught.value)
    assert pty.read(timeout=0.2) == b""


def test_wait_for_needs_the_prompt_not_just_the_issue_line(pty):
    with ConsoleSession(pty.dev) as session:
        pty.write(b"\r\nDebian GNU/Linux 12 node01 ttyS0\r\n\r\n")

        def later():
            time.sleep(0.6)
            pty.write(b"node01 login: ")

        thread = threading.Thread(target=later)
        thread.start()
        started = time.monotonic()
        assert session.wait_for("login", 5, poke=False) == "login"
        assert time.monotonic() - started >= 0.6
        thread.join()


def test_wait_for_an_earlier_state_accepts_a_later_one(pty):
    with ConsoleSession(pty.dev) as session:
        pty.write(b"pi@node01:~$ ")
        assert session.wait_for("kernel", 5) == "shell"


def test_a_half_line_ending_in_a_prompt_character_is_not_a_prompt(pty):
    """A long kernel line cut by a read after '#' must not count as a shell prompt (it is not quiet)."""
    with ConsoleSession(pty.dev) as session:
        def writer():
            for _round in range(15):
                pty.write(b"[    0.001234] Linux version 6.6.51 #")
                time.sleep(0.02)
                pty.write(b"1 SMP PREEMPT\r\n")
                time.sleep(0.02)
            pty.write(b"node01 login: ")

        thread = threading.Thread(target=writer)
        thread.start()
        assert session.wait_for("login", 5, poke=False) == "login"
        thread.join()


def test_a_device_held_by_another_client_is_busy_at_once(pty):
    with ConsoleSession(pty.dev):
        started = time.monotonic()
        with pytest.raises(ConsoleBusyError) as caught:
            ConsoleSession(pty.dev).open()
        assert time.monotonic() - started < 3  # at once: not after open_timeout (5 s) or a read timeout
    assert "is busy: another process has it open with exclusive access" in str(caught.value)
    assert pty.dev in str(caught.value)
    ConsoleSession(pty.dev).open().close()  # free again once the first client closed it


def test_a_device_under_a_live_uucp_lock_is_busy(pty):
    name = pty.dev.replace("/", "_")
    lock = Path("/var/lock") / ("LCK.." + name)
    if not os.access("/var/lock", os.W_OK):
        pytest.skip("/var/lock is not writable")
    lock.write_text("%10d\n" % pty.proc.pid)  # the socat process: alive, not us
    try:
        with pytest.raises(ConsoleBusyError) as caught:
            ConsoleSession(pty.dev).open()
        assert "process %d holds its UUCP lock" % pty.proc.pid in str(caught.value)
        lock.write_text("%10d\n" % 4194304)  # above pid_max: a stale lock is ignored
        ConsoleSession(pty.dev).open().close()
    finally:
        lock.unlink()


def test_no_terminal_server_listening_is_a_clear_error():
    port = free_port()  # bound then released: nothing listens there
    with pytest.raises(ConsoleError) as caught:
        ConsoleSession("rfc2217://127.0.0.1:%d?ign_set_control" % port).open()
    assert not isinstance(caught.value, ConsoleBusyError)
    assert "nothing accepts connections on 127.0.0.1:%d" % port in str(caught.value)


def test_a_socket_server_that_says_busy_and_hangs_up_is_busy():
    """ser2net's answer to a second raw-TCP client: telnet options, the banner, then close."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def serve():  # every client gets the banner, as from ser2net while its one client is connected
        while True:
            try:
                conn = server.accept()[0]
            except OSError:
                return
            conn.sendall(b"\xff\xfb\x03\xff\xfb\x01Port already in use\r\n")
            conn.close()

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with ConsoleSession("socket://127.0.0.1:%d" % server.getsockname()[1]) as session:
            with pytest.raises(ConsoleBusyError) as caught:
                session.capture(duration=2)
    finally:
        server.shutdown(socket.SHUT_RDWR)
        server.close()
        thread.join()
    assert "is busy: the terminal server says 'Port already in use'" in str(caught.value)


def test_missing_device_and_bad_settings():
    with pytest.raises(ConsoleError, match="no such device"):
        ConsoleSession("/nonexistent/ttyX").open()
    with pytest.raises(CarrierError, match="port: '' is not a device path"):
        ConsoleSession("")
    with pytest.raises(CarrierError, match="baudrate: 0 is not a positive integer"):
        ConsoleSession("loop://", baudrate=0)
    with pytest.raises(CarrierError, match="newline: 'cr\\\\n' is not one of cr, lf, crlf"):
        ConsoleSession("loop://", newline="cr\n")
    with pytest.raises(CarrierError, match="prompt: '\\[' is not a valid regular expression"):
        ConsoleSession("loop://", prompt="[")
    with pytest.raises(CarrierError, match="wait_for: 'up' is not one of bootloader, kernel, login, shell"):
        with ConsoleSession("loop://") as session:
            session.wait_for("up", 1)


def test_log_file_in_a_missing_directory_is_named(pty, tmp_path):
    with pytest.raises(ConsoleError) as caught:
        ConsoleSession(pty.dev, log_file=str(tmp_path / "nope" / "x.log")).open()
    assert "log_file: cannot open %s" % (tmp_path / "nope" / "x.log") in str(caught.value)
    ConsoleSession(pty.dev).open().close()  # the device was released


def test_loop_url_echoes_what_is_sent():
    with ConsoleSession("loop://", newline="lf") as session:
        session.send("pi@node01:~$ ", newline=False)
        assert session.wait_for("shell", 2, poke=False) == "shell"


# -- a node with a real bash behind its login prompt --------------------------------------------

def test_login_and_run_commands_on_a_real_shell(node):
    with ConsoleSession(node.dev) as session:
        node.power_on()
        assert session.login("pi", "raspberry", timeout=20) is True
        assert session.state == "shell"
        stdout, rc = session.run_command("echo hello; echo to-stderr >&2; false", timeout=10)
        assert (stdout, rc) == ("hello\nto-stderr", 1)
        stdout, rc = session.run_command("printf 'no newline'", timeout=10)
        assert (stdout, rc) == ("no newline", 0)
        stdout, rc = session.run_command("(exit 42);", timeout=10)
        assert (stdout, rc) == ("", 42)
        # the typed line and the prompt never leak: a command whose output mentions neither
        stdout, rc = session.run_command("echo $((6*7))", timeout=10)
        assert (stdout, rc) == ("42", 0)
        assert any(line.startswith("pi@node01:~$") for line in session.lines)
        # already at a shell prompt: login() does nothing and says so
        assert session.login("pi", "raspberry", timeout=10) is False
        with pytest.raises(CarrierError, match="has a line break"):
            session.run_command("echo a\necho b")


def test_a_wrong_password_fails_with_what_the_node_said(node):
    with ConsoleSession(node.dev) as session:
        node.power_on()
        with pytest.raises(ConsoleError) as caught:
            session.login("pi", "wrong", timeout=20)
    assert "login as 'pi' failed" in str(caught.value)
    assert "Login incorrect" in str(caught.value)


def test_a_second_session_finds_the_node_at_its_prompt_by_poking(node):
    node.power_on()
    with ConsoleSession(node.dev) as session:
        assert session.wait_for("login", 20) == "login"
    with ConsoleSession(node.dev) as session:
        started = time.monotonic()
        assert session.wait_for("login", 10, poke_after=0.5) == "login"  # silent line: Enter, the prompt again
        assert time.monotonic() - started < 5
        assert session.current_line() == "node01 login: "


def test_the_bootloader_and_kernel_states_in_order(tmp_path):
    seen = []
    node = NodeOnPty(str(tmp_path), line_delay=0.1)
    try:
        with ConsoleSession(node.dev) as session:
            node.power_on()
            for state in ("bootloader", "kernel", "login"):
                seen.append(session.wait_for(state, 20, poke=False))
    finally:
        node.stop()
    assert seen == ["bootloader", "kernel", "login"]
