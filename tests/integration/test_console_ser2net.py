# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Consoles end to end through a real ser2net 4: a node on a pty (boot lines, login prompt, then a real
bash; tests/integration/console_node.py), the simulated cluster's nodes, the console module as Ansible
runs it, and playbooks/console.yml with ansible-playbook."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils._console import (
    ConsoleBusyError,
    ConsoleSession,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
from console_rig import NodeOnPty, Ser2net  # noqa: E402
from modrun import run_module  # noqa: E402

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("ser2net") is None or shutil.which("socat") is None,
                       reason="needs ser2net and socat (.ci/run installs them)"),
]


def ansible_playbook(*args, cwd):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"), ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_NOCOLOR="1", PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default", ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    return subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), *args],
                          capture_output=True, text=True, env=env, cwd=str(cwd), timeout=300, check=False)


def node_behind_ser2net(tmp_path, hang=False):
    """A node on a pty behind a real ser2net (telnet rfc2217 on 127.0.0.1, a trace-read log)."""
    node = NodeOnPty(str(tmp_path), host="node01", hang=hang)
    server = None
    try:
        server = Ser2net(str(tmp_path), {"node01": node.dev}, trace=True)
        yield node, server
    finally:
        if server:
            server.stop()
        node.stop()


@pytest.fixture
def rig(tmp_path):
    yield from node_behind_ser2net(tmp_path)


@pytest.fixture
def hung_rig(tmp_path):
    """The same with a node whose boot hangs in the kernel."""
    yield from node_behind_ser2net(tmp_path, hang=True)


def test_capture_a_boot_to_the_login_prompt_through_ser2net(rig):
    node, server = rig
    with ConsoleSession(server.url("node01")) as session:
        node.power_on()
        result = session.capture(until=r"login: $", timeout=20)
    lines = result["lines"]
    assert lines[0] == "  0.96 RPi: BOOTLOADER release VERSION:5f18ffb6 DATE: 2024/07/30 TIME: 14:02:35"
    assert "  1.00 Boot mode: NETWORK (02) order f5641" in lines
    assert "[  OK  ] Reached target multi-user.target - Multi-User System." in lines  # colours removed
    assert lines[-3:] == ["Debian GNU/Linux 12 node01 ttyS0", "", "node01 login: "]
    assert result["state"] == "login"
    # ser2net's own log of the console (trace-read) holds the same boot
    trace = Path(server.logs["node01"]).read_text(errors="replace")
    assert "RPi: BOOTLOADER release VERSION:5f18ffb6" in trace and "node01 login: " in trace


def test_login_and_run_a_command_through_ser2net(rig, tmp_path):
    node, server = rig
    node.power_on()
    result = run_module("console", {"port": server.url("node01"), "command": "echo $((6*7)); ls /nonexistent-dir",
                                    "login_user": "pi", "login_password": "raspberry", "timeout": 30},
                        tmp_path, tmpdir=True)
    assert result.exit_status == 0, result
    assert result["stdout_lines"] == ["42", "ls: cannot access '/nonexistent-dir': No such file or directory"]
    assert result["rc"] == 2
    assert result["logged_in"] is True
    assert result["changed"] is True


def test_a_second_client_gets_the_busy_error(rig, tmp_path):
    node, server = rig
    url = server.url("node01")
    with ConsoleSession(url) as first:
        node.power_on()
        first.wait_for("login", 20, poke=False)
        started = time.monotonic()
        with pytest.raises(ConsoleBusyError) as caught:
            ConsoleSession(url).open()
        assert time.monotonic() - started < 8
        assert "is busy: the terminal server says 'Port already in use'" in str(caught.value)
        result = run_module("console", {"port": url, "wait_for": "login", "timeout": 10}, tmp_path, tmpdir=True)
        assert result.exit_status == 1
        assert "rfc2217://127.0.0.1:%d?ign_set_control is busy" % server.ports["node01"] in result["msg"]
        # the first client is still served
        first.send("")
        assert first.wait_for("login", 10, poke=False) == "login"
    time.sleep(0.3)  # ser2net closes the device after the first client has gone
    with ConsoleSession(url) as again:
        assert again.wait_for("login", 10, poke_after=0.5) == "login"


def test_a_node_that_hangs_makes_wait_for_login_time_out_with_the_last_lines(hung_rig, tmp_path):
    node, server = hung_rig
    log = tmp_path / "console.log"

    def power_on_once_the_module_reads(_proc):
        deadline = time.monotonic() + 20
        while not log.exists() or "=== reading ===" not in log.read_text():  # log_header: the port is open
            assert time.monotonic() < deadline, "the module never opened the console"
            time.sleep(0.01)
        node.power_on()

    args = {"port": server.url("node01"), "wait_for": "login", "timeout": 4, "log_file": str(log),
            "log_header": "=== reading ==="}
    result = run_module("console", args, tmp_path, tmpdir=True, while_running=power_on_once_the_module_reads)
    assert result.exit_status == 1
    assert "timed out after 4.0 s waiting for the node to reach state 'login' (last state seen: kernel)" \
        in result["msg"]
    assert "printk: console [ttyS0] enabled" in result["msg"]
    assert result["lines"][-1] == "[    1.003702] printk: console [ttyS0] enabled"
    assert result["lines"][0].startswith("  0.96 RPi: BOOTLOADER release")
    assert result["state"] == "kernel"


def test_the_last_kernel_lines_are_in_the_timeout_error(tmp_path):
    node = NodeOnPty(str(tmp_path), host="node01", hang=True)
    server = Ser2net(str(tmp_path), {"node01": node.dev})
    try:
        with ConsoleSession(server.url("node01")) as session:
            node.power_on()
            with pytest.raises(Exception) as caught:
                session.wait_for("login", 3)
    finally:
        server.stop()
        node.stop()
    message = str(caught.value)
    assert "timed out after 3.0 s waiting for the node to reach state 'login' (last state seen: kernel)" in message
    assert "printk: console [ttyS0] enabled" in message
    assert caught.value.lines[-1] == "[    1.003702] printk: console [ttyS0] enabled"


def test_console_playbook_runs_a_command(rig, tmp_path):
    node, server = rig
    node.power_on()
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(json.dumps({"all": {"children": {"carrier_nodes": {"hosts": {"node01": {
        "carrier_console": server.url("node01"), "carrier_controller": "ctrl"}}}},
        "hosts": {"ctrl": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    proc = ansible_playbook(str(REPO / "playbooks" / "console.yml"), "-i", str(inventory),
                            "-e", "console_action=command", "-e", "console_command='echo from-console; true'",
                            "-e", "console_password=raspberry", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "rc=0 ['from-console']" in proc.stdout
    assert "raspberry" not in proc.stdout


def test_sim_node_boot_log_captured_by_the_playbook_through_ser2net(sim_cluster, tmp_path):
    """A simulated node behind a real ser2net: the playbook opens its console, powers it on over its bus and
    keeps the boot log up to the login prompt; then a command over the console."""
    server = Ser2net(str(tmp_path), {"node03": sim_cluster.consoles["node03"]})
    try:
        urls = json.dumps({"carrier_console_urls": {"node03": server.url("node03")}})
        log_dir = tmp_path / "logs"
        proc = ansible_playbook(str(REPO / "playbooks" / "console.yml"), "-i", sim_cluster.inventory, "-l", "node03",
                                "-e", urls, "-e", "console_action=capture", "-e", "console_power_on=true",
                                "-e", "console_log_dir=%s" % log_dir, "-e", "console_seconds=60", cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        log = (log_dir / "node03-boot.log").read_text()
        assert log.startswith("=== node03: capture node03-")
        assert "RPi: BOOTLOADER release VERSION:" in log
        assert "BOOTMODE: 0x06 partition 0 build-ts BUILD_TIMESTAMP=1722344555 serial 1a466884" in log
        assert log.endswith("Debian GNU/Linux 12 node03 ttyS0\n\nnode03 login: ")
        assert os.stat(log_dir / "node03-boot.log").st_mode & 0o777 == 0o600
        assert sim_cluster.node("node03")["state"] == "login"
        proc = ansible_playbook(str(REPO / "playbooks" / "console.yml"), "-i", sim_cluster.inventory, "-l", "node03",
                                "-e", urls, "-e", "console_action=command", "-e", "console_command=hostname",
                                "-e", "console_password=raspberry", cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "rc=0 ['node03']" in proc.stdout
        assert sim_cluster.node("node03")["state"] == "shell"
    finally:
        server.stop()
