# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The carrier-board simulator as users run it: sim/carrier-sim start/status/fault/stop, nodes
booting to a login prompt on their ptys, directly (pyserial) and through a real ser2net."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest
import serial
from carrier_sim.client import BusClient

from ansible_collections.picluster.carrier.plugins.module_utils._errors import BusError

pytestmark = pytest.mark.integration
SIM = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "sim", "carrier-sim")


def _read_until(port, token, timeout=15.0):
    token = token.encode()
    data = b""
    deadline = time.monotonic() + timeout
    while token not in data:
        if time.monotonic() > deadline:
            raise AssertionError("%r not seen in %.0f s; last output %r" % (token, timeout, data[-300:]))
        data += port.read(4096)
    return data.decode("utf-8", "replace")


def _login(port, host):
    port.write(b"\r")
    _read_until(port, "%s login: " % host)
    port.write(b"pi\r")
    _read_until(port, "Password: ")
    port.write(b"raspberry\r")
    _read_until(port, "pi@%s:~$ " % host)


def _run(port, host, command):
    port.write(command.encode() + b"\r")
    text = _read_until(port, "pi@%s:~$ " % host)
    return text.split("\r\n", 1)[1].rsplit("\r\n", 1)[0]


def test_start_status_stop(sim_cluster):
    status = sim_cluster.status()
    assert status["running"] is True and status["pid"] == sim_cluster.pid
    assert sorted(status["nodes"]) == sorted(sim_cluster.hosts) and len(sim_cluster.hosts) == 14
    assert all(node["state"] == "off" for node in status["nodes"].values())
    for board in sim_cluster.boards.values():
        assert os.path.exists(board["socket"])
        assert status["buses"][board["socket"]]["transactions"] == 0
    for host, link in sim_cluster.consoles.items():
        assert os.path.islink(link) and os.readlink(link).startswith("/dev/pts/"), host

    table = sim_cluster.cli("status").stdout
    assert table.splitlines()[1].split() == ["BOARD", "PROFILE", "SLOT", "HOST", "MODEL", "STATE", "BOOTS", "POWER",
                                             "RUN", "RPIBOOT", "USB", "CONSOLE"]
    assert "rack1     backplane10  10    node14  cm5    off    0      off    on   off" in table

    again = sim_cluster.cli("start", "--topology", sim_cluster.topology, check=False)
    assert again.returncode == 1
    assert "already running" in again.stderr and sim_cluster.state_dir in again.stderr

    assert "stopped" in sim_cluster.stop().stdout
    assert sim_cluster.leftovers() == []
    gone = sim_cluster.cli("status", check=False)
    assert gone.returncode == 3 and "not running" in gone.stdout
    assert "not running" in sim_cluster.cli("stop").stdout  # stopping twice is fine


def test_bus_transactions_are_counted(sim_cluster):
    board = sim_cluster.board("rack1")
    board.set_lines({slot: {"power": True} for slot in range(1, 11)})
    status = sim_cluster.status()
    counters = status["buses"][sim_cluster.boards["rack1"]["socket"]]
    assert counters["transactions"] > 0 and counters["writes"] > 0
    assert counters["transactions"] == counters["reads"] + counters["writes"]
    assert status["buses"][sim_cluster.boards["carrier1"]["socket"]]["transactions"] == 0
    for host in ("node05", "node14"):
        sim_cluster.wait_state(host, ("bootloader", "kernel", "login"))


def test_node_boots_to_login_on_its_pty(sim_cluster):
    port = serial.serial_for_url(sim_cluster.consoles["node02"], baudrate=115200, timeout=0.2)
    try:
        started = time.monotonic()
        sim_cluster.board("carrier1").set_lines({2: {"power": True}})
        text = _read_until(port, "node02 login: ")
        elapsed = time.monotonic() - started
        assert "BOOTMODE: 0x06 partition 0 build-ts BUILD_TIMESTAMP=1722344555 serial 8306d03b boardrev c03141" \
            in text
        assert text.endswith("Debian GNU/Linux 12 node02 ttyS0\r\n\r\nnode02 login: ")
        assert elapsed >= len(text) / 11520.0 * 0.9  # no faster than a 115200 8N1 line
        assert sim_cluster.node("node02")["state"] == "login"
        _login(port, "node02")
        assert _run(port, "node02", "hostname") == "node02"
        assert "Serial\t\t: 100000008306d03b" in _run(port, "node02", "cat /proc/cpuinfo")
        # pacing on a long answer: ten copies of /proc/cpuinfo
        started = time.monotonic()
        out = _run(port, "node02", "; ".join(["cat /proc/cpuinfo"] * 10))
        assert time.monotonic() - started >= len(out) / 11520.0 * 0.9
    finally:
        port.close()


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(shutil.which("ser2net") is None, reason="ser2net is not installed (.ci/run installs it)")
def test_node_console_through_ser2net(sim_cluster, tmp_path):
    tcp_port = _free_port()
    config = tmp_path / "ser2net.yaml"
    config.write_text(
        "%%YAML 1.1\n---\n"
        "connection: &node09\n"
        "  accepter: telnet(rfc2217),tcp,127.0.0.1,%d\n"
        "  connector: serialdev,%s,115200n81,local\n"
        "  options:\n"
        "    kickolduser: false\n" % (tcp_port, sim_cluster.consoles["node09"]))
    proc = subprocess.Popen(["ser2net", "-n", "-d", "-u", "-c", str(config), "-P", str(tmp_path / "ser2net.pid")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", tcp_port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "ser2net did not listen"
                time.sleep(0.1)
        time.sleep(0.2)  # let ser2net close the device after the probe connection
        port = serial.serial_for_url("rfc2217://127.0.0.1:%d?ign_set_control" % tcp_port, baudrate=115200,
                                     timeout=0.2)
        try:
            sim_cluster.board("rack1").set_lines({5: {"power": True}})
            text = _read_until(port, "node09 login: ")
            assert "RPi: BOOTLOADER release" in text and "Debian GNU/Linux 12 node09 ttyS0" in text
            _login(port, "node09")
            assert _run(port, "node09", "hostname") == "node09"
            assert _run(port, "node09", "nosuch; echo $?") == "-sh: nosuch: not found\r\n127"
        finally:
            port.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def test_faults_from_the_command_line(sim_cluster):
    # I2C errors: every transaction of carrier1 fails with EIO; rack1 is untouched
    sim_cluster.fault("--board", "carrier1", "--i2c-error-rate", "1")
    with BusClient(sim_cluster.boards["carrier1"]["socket"]) as bus:
        with pytest.raises(OSError) as info:
            bus.read_word_data(0x20, 0x00)
        assert info.value.errno == errno.EIO
    with pytest.raises(BusError):
        sim_cluster.board("carrier1").read_state()
    assert sim_cluster.board("rack1").read_state([1])[1]["power"] is False
    assert "i2c error rate 1" in sim_cluster.cli("status").stdout
    sim_cluster.fault("--board", "carrier1", "--i2c-error-rate", "0")
    assert sim_cluster.board("carrier1").read_state([1])[1]["power"] is False

    # a stuck pin: slot 1's power enable (u1 bit 0) held high powers node01 whatever the latch
    sim_cluster.fault("--board", "carrier1", "--chip", "u1", "--bit", "0", "--stuck", "1")
    assert sim_cluster.board("carrier1").read_state([1])[1]["power"] is True
    sim_cluster.wait_state("node01", ("bootloader", "kernel", "login"))
    assert sim_cluster.status()["boards"]["carrier1"]["devices"]["u1"]["stuck"] == {"0": 1}
    with pytest.raises(BusError, match="did not follow"):
        sim_cluster.board("carrier1").set_lines({1: {"power": False}})
    sim_cluster.fault("--board", "carrier1", "--chip", "u1", "--bit", "0", "--stuck", "none")
    assert sim_cluster.node("node01")["state"] == "off"

    # a node that hangs while booting
    sim_cluster.fault("--host", "node03", "--hang", "true")
    sim_cluster.board("carrier1").set_lines({3: {"power": True}})
    sim_cluster.wait_state("node03", "hung")
    time.sleep(0.5)
    assert sim_cluster.node("node03")["state"] == "hung"
    assert "node node03: hangs while booting" in sim_cluster.cli("status").stdout

    bad = sim_cluster.fault("--board", "nosuch", "--i2c-error-rate", "0.1", check=False)
    assert bad.returncode == 1 and "nosuch" in bad.stderr
    bad = sim_cluster.fault("--board", "carrier1", "--i2c-error-rate", "2", check=False)
    assert bad.returncode == 2


def test_start_failures_are_clear_and_leave_nothing(sim_cluster_factory, tmp_path):
    missing = sim_cluster_factory(start=False)
    result = missing.cli("start", "--topology", str(tmp_path / "nope.carrier.yml"), check=False)
    assert result.returncode == 2 and "not found" in result.stderr

    bad = sim_cluster_factory(topology={
        "controllers": {"c": {}},
        "boards": {"b": {"profile": "itx4", "bus": "sim:{dir}/b.sock", "slots": {9: {"host": "x"}}}}},
        start=False)
    result = bad.cli("start", "--topology", bad.topology, check=False)
    assert result.returncode == 1 and "boards.b.slots.9" in result.stderr
    assert bad.leftovers() == []

    long_path = "/tmp/" + "x" * 120 + ".sock"
    too_long = sim_cluster_factory(topology={
        "controllers": {"c": {}},
        "boards": {"b": {"profile": "itx4", "bus": "sim:" + long_path, "slots": {1: {"host": "x"}}}}},
        start=False)
    result = too_long.cli("start", "--topology", too_long.topology, check=False)
    assert result.returncode == 1 and "108" in result.stderr
    assert too_long.leftovers() == []


def test_stop_cleans_up_after_a_killed_daemon(sim_cluster):
    os.kill(sim_cluster.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while os.path.exists("/proc/%d" % sim_cluster.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    result = sim_cluster.cli("stop")
    assert "dead pid" in result.stdout
    assert sim_cluster.leftovers() == []
    sim_cluster.start()  # and it starts again on the same state dir


@pytest.mark.skipif(not os.path.exists("/usr/bin/python3"), reason="no Debian python3")
def test_runs_with_debians_python(sim_cluster_factory):
    probe = subprocess.run(["/usr/bin/python3", "-c", "import yaml"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("Debian's python3 has no PyYAML (python3-yaml)")
    cluster = sim_cluster_factory(python="/usr/bin/python3", boot_time=0.5)
    cluster.board("carrier1").set_lines({4: {"power": True}})
    assert cluster.wait_state("node04", "login") == "login"
    assert "stopped" in cluster.stop().stdout
    assert cluster.leftovers() == []


def test_a_second_simulator_on_the_same_buses_is_refused(sim_cluster, tmp_path):
    other_state = os.path.join(sim_cluster.dir, "other-state")
    result = subprocess.run([sim_cluster.python, SIM, "start", "--topology",
                             sim_cluster.topology, "--state-dir", other_state],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1 and "in use" in result.stderr
    assert not os.path.exists(os.path.join(other_state, "carrier-sim.pid"))
    # the first one is untouched
    assert sim_cluster.status()["running"] is True
    for board in sim_cluster.boards.values():
        assert os.path.exists(board["socket"])
    sim_cluster.board("carrier1").set_lines({1: {"power": True}})
    sim_cluster.wait_state("node01", ("bootloader", "kernel", "login"))
