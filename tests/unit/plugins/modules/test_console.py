# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The console module run as Ansible runs it (a fresh interpreter, an arguments file) against real ptys."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[4]
COLLECTIONS = REPO / ".collections"
sys.path.insert(0, str(REPO / "tests" / "integration"))
from console_rig import NodeOnPty, PtyPair  # noqa: E402
from modrun import run_module  # noqa: E402


def run_console(args, workdir, check=False, node_says=None):
    """Run the module; ``node_says`` (pty, bytes) is written on the node's end once the module reads the port.

    pyserial flushes the tty's input at the end of open(), after it has taken the port's lock, so data
    written as soon as the port is locked can be lost (as on a real line). The module writes its
    ``log_header`` once the port is open: the node speaks when the header is in the log.
    """
    if node_says is None:
        return run_module("console", args, workdir, check=check, tmpdir=True)
    pty, data = node_says
    args = dict(args)
    log = Path(args.setdefault("log_file", str(Path(workdir) / "console-open.log")))
    header = args.setdefault("log_header", "=== the module has the port open ===")

    def play_node(proc):
        deadline = time.monotonic() + 20
        while not log.exists() or header not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, "the module never opened the port"
            time.sleep(0.01)
        pty.write(data)

    return run_module("console", args, workdir, check=check, tmpdir=True, while_running=play_node)


def documented_return_keys():
    source = (REPO / "plugins" / "modules" / "console.py").read_text()
    start = source.index('RETURN = r"""') + len('RETURN = r"""')
    return set(yaml.safe_load(source[start:source.index('"""', start)]))


COMMON_KEYS = {"changed", "invocation", "failed", "msg", "exception", "skipped"}


@pytest.fixture
def pty(tmp_path):
    pair = PtyPair(str(tmp_path))
    yield pair
    pair.stop()


@pytest.fixture
def node(tmp_path):
    proc = NodeOnPty(str(tmp_path), host="node07")
    yield proc
    proc.stop()


def test_capture_until_runs_in_check_mode_and_returns_documented_keys(pty, tmp_path):
    log = tmp_path / "boot.log"
    result = run_console({"port": pty.dev, "capture": {"until": r"(\S+) login: $", "duration": 10},
                          "log_file": str(log)}, tmp_path, check=True,
                         node_says=(pty, b"  0.96 RPi: BOOTLOADER release VERSION:5f18ffb6\r\n\r\n"
                                         b"Debian GNU/Linux 12 node07 ttyS0\r\n\r\nnode07 login: "))
    assert result.exit_status == 0, result
    assert result["changed"] is False
    assert result["match"] == "node07 login: "
    assert result["groups"] == ["node07"]
    assert result["lines"][-1] == "node07 login: "
    assert result["state"] == "login"
    assert log.read_text().endswith("Debian GNU/Linux 12 node07 ttyS0\n\nnode07 login: ")
    assert pty.read(timeout=0.2) == b""  # capture writes nothing
    assert set(result) - COMMON_KEYS <= documented_return_keys()


def test_capture_duration(pty, tmp_path):
    result = run_console({"port": pty.dev, "capture": {"duration": 1}}, tmp_path,
                         node_says=(pty, b"[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x410fd083]\r\n"))
    assert result.exit_status == 0, result
    assert result["lines"] == ["[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x410fd083]"]
    assert result["state"] == "kernel"
    assert result["match"] is None
    assert result["elapsed"] >= 1


def test_wait_for_login_times_out_with_the_last_lines(pty, tmp_path):
    result = run_console({"port": pty.dev, "wait_for": "login", "timeout": 1.5}, tmp_path,
                         node_says=(pty, b"[    1.190877] mmcblk0: mmc0:0001 BJTD4R 29.1 GiB\r\n"))
    assert result.exit_status == 1
    assert result["failed"] is True
    assert "timed out after 1.5 s waiting for the node to reach state 'login'" in result["msg"]
    assert "mmcblk0: mmc0:0001 BJTD4R 29.1 GiB" in result["msg"]
    assert result["lines"] == ["[    1.190877] mmcblk0: mmc0:0001 BJTD4R 29.1 GiB"]
    assert result["state"] == "kernel"


def test_command_and_expect_are_skipped_in_check_mode(pty, tmp_path):
    for args in ({"command": "poweroff", "login_user": "pi", "login_password": "x"},
                 {"expect": [{"match": "login:", "send": "pi"}]},
                 {"expect": [{"send": "reboot"}]}):
        result = run_console(dict(args, port=pty.dev), tmp_path, check=True)
        assert result.exit_status == 0, result
        assert result["changed"] is False
        assert result["skipped"] is True
    assert pty.read(timeout=0.3) == b""


def test_command_logs_in_and_returns_stdout_and_rc(node, tmp_path):
    node.power_on()
    result = run_console({"port": node.dev, "command": "true; echo serial=b7f44626; exit_code() "
                                                       "{ return 3; }; exit_code",
                          "login_user": "pi", "login_password": "raspberry", "timeout": 30}, tmp_path)
    assert result.exit_status == 0, result
    assert result["changed"] is True
    assert result["stdout"] == "serial=b7f44626"
    assert result["stdout_lines"] == ["serial=b7f44626"]
    assert result["rc"] == 3
    assert result["logged_in"] is True
    assert result["state"] == "shell"
    assert "raspberry" not in json.dumps(result)  # no_log: not in the lines, nor in the invocation (2.19)
    assert set(result) - COMMON_KEYS <= documented_return_keys()
    # the node stays logged in: a second task finds the shell prompt (by sending Enter) and needs no login
    again = run_console({"port": node.dev, "command": "echo again", "login_user": "pi",
                        "login_password": "raspberry", "timeout": 30}, tmp_path)
    assert (again["stdout"], again["rc"], again["logged_in"]) == ("again", 0, False)


def test_expect_steps(pty, tmp_path):
    result = run_console({"port": pty.dev, "expect": [{"match": "=> $", "send": "version", "timeout": 5}]}, tmp_path,
                         node_says=(pty, b"=> "))
    assert result.exit_status == 0, result
    assert result["changed"] is True
    assert result["steps"] == [{"match": "=> ", "groups": [], "named_groups": {}, "sent": True}]
    assert pty.read(timeout=1, until=b"\r") == b"version\r"


def test_a_busy_device_fails_at_once(pty, tmp_path):
    import serial

    holder = serial.Serial(pty.dev, exclusive=True)
    try:
        result = run_console({"port": pty.dev, "capture": {"duration": 5}}, tmp_path)
    finally:
        holder.close()
    assert result.exit_status == 1
    assert "is busy" in result["msg"]
    assert result.get("elapsed") is None


@pytest.mark.parametrize("args, text", [
    ({"capture": {"duration": 1}, "wait_for": "login"}, "parameters are mutually exclusive: capture|expect|wait_for|"
                                                        "command"),
    ({}, "one of the following is required: capture, expect, wait_for, command"),
    ({"capture": {}}, "capture: give duration, until or both"),
    ({"capture": {"until": "("}}, "until: '(' is not a valid regular expression"),
    ({"wait_for": "up"}, "value of wait_for must be one of: bootloader, kernel, login, shell, got: up"),
    ({"wait_for": "login", "timeout": 0}, "timeout: 0.0 is not a positive number"),
    ({"wait_for": "login", "timeout": "nan"}, "timeout: nan is not a positive number"),
    ({"wait_for": "login", "timeout": "inf"}, "timeout: inf is not a positive number"),
    ({"wait_for": "login", "baudrate": 0}, "baudrate: 0 is not a positive number"),
    ({"capture": {"duration": "nan"}}, "capture.duration: nan is not a number of seconds (0 or more)"),
    ({"capture": {"duration": -1}}, "capture.duration: -1.0 is not a number of seconds (0 or more)"),
    ({"expect": [{"match": "x", "timeout": "inf"}]}, "expect[0].timeout: inf is not a number of seconds"),
    ({"command": "id", "login_password": "x"}, "missing parameter(s) required by 'login_password': login_user"),
    ({"command": "echo a\necho b"}, "command: 'echo a\\necho b' has a line break"),
    ({"wait_for": "login", "prompt": "["}, "prompt: '[' is not a valid regular expression"),
])
def test_bad_input_fails_with_the_field_named(pty, tmp_path, args, text):
    result = run_console(dict(args, port=pty.dev), tmp_path)
    assert result.exit_status == 1, result
    assert text in result["msg"]
    assert pty.read(timeout=0.2) == b""  # nothing was sent


def test_missing_device_is_named(tmp_path):
    result = run_console({"port": str(tmp_path / "ttyNOPE"), "wait_for": "login"}, tmp_path)
    assert result.exit_status == 1
    assert "port: %s: no such device" % (tmp_path / "ttyNOPE") in result["msg"]
