# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bus specs, the simulator bus client (against sockets that answer, fail, hang up or stay silent),
the bus locks and the retries."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import threading
import time

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils import _bus
from ansible_collections.picluster.carrier.plugins.module_utils._bus import (
    CountingBus,
    SimBus,
    bus_id,
    bus_lock,
    bus_path,
    bus_reachable,
    file_lock,
    lock_directory,
    open_bus,
    parse_bus_spec,
    with_retries,
)
from ansible_collections.picluster.carrier.plugins.module_utils._board import Board
from ansible_collections.picluster.carrier.plugins.module_utils._errors import BusError, CarrierError


@pytest.mark.parametrize("spec,parsed", [
    (1, ("i2c", 1)), ("1", ("i2c", 1)), (" 3 ", ("i2c", 3)), ("/dev/i2c-10", ("i2c", 10)),
    ("sim:/tmp/s/bus.sock", ("sim", "/tmp/s/bus.sock")),
])
def test_parse_bus_spec(spec, parsed):
    assert parse_bus_spec(spec) == parsed


@pytest.mark.parametrize("spec,message", [
    (True, "bus: True is not a bus"), (-1, "bus: -1 is not a bus number"), ("", "bus: '' is not a bus"),
    (None, "bus: None is not a bus"), (1.5, "bus: 1.5 is not a bus"), ("/dev/i2c-x", "bus: '/dev/i2c-x' is not a bus"),
    ("sim:relative.sock", "bus: 'sim:relative.sock': a simulator bus needs an absolute socket path"),
    ("sim:/", "bus: 'sim:/': a simulator bus needs an absolute socket path"),
])
def test_bad_bus_specs_are_named(spec, message):
    with pytest.raises(CarrierError, match="^" + message.replace("(", r"\(")):
        parse_bus_spec(spec)


@pytest.mark.parametrize(
    "bus,device", [("1", "/dev/i2c-1"), ("/dev/i2c-3", "/dev/i2c-3"), ("sim:/tmp/s/bus.sock", "/tmp/s/bus.sock")]
)
def test_bus_path(bus, device):
    assert bus_path(bus) == device


def test_bus_id_and_reachable(tmp_path):
    assert bus_id(1) == bus_id("/dev/i2c-1") == "i2c-1"
    assert bus_id("sim:/tmp/a b/bus.sock") == "sim_tmp_a_b_bus.sock"
    sock = tmp_path / "bus.sock"
    assert not bus_reachable("sim:%s" % sock)
    sock.write_text("")
    assert bus_reachable("sim:%s" % sock)


class Server:
    """A Unix socket server on a thread; ``answer(request_line) -> bytes`` (None: say nothing, keep the line)."""

    def __init__(self, path, answer):
        self.path = str(path)
        self.answer = answer
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(1)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        conn, _addr = self.listener.accept()
        with conn, conn.makefile("rb") as reader:
            for line in reader:
                reply = self.answer(line)
                if reply is None:
                    self.stop.wait(30)  # accepted, read, never answers
                    return
                if reply == b"":
                    return  # hang up
                conn.sendall(reply)

    def close(self):
        self.stop.set()
        self.listener.close()
        self.thread.join(5)


@pytest.fixture
def server(tmp_path):
    servers = []

    def make(answer):
        servers.append(Server(tmp_path / ("bus%d.sock" % len(servers)), answer))
        return servers[-1]

    yield make
    for srv in servers:
        srv.close()


def test_sim_bus_speaks_the_wire_protocol(server):
    seen = []

    def answer(line):
        request = json.loads(line)
        seen.append(request)
        if request["addr"] == 0x27:
            return b'{"errno": 121, "error": "no device acknowledged address 0x27"}\n'
        return json.dumps({"value": 0x1234 if request["op"].startswith("read") else None}).encode() + b"\n"

    srv = server(answer)
    with open_bus("sim:" + srv.path) as bus:
        assert bus.read_word_data(0x20, 6) == 0x1234
        assert bus.write_byte_data(0x20, 2, 0xFF) is None
        assert bus.read_byte(0x38) == 0x1234
        with pytest.raises(OSError) as info:
            bus.read_byte_data(0x27, 0)
    assert info.value.errno == errno.EREMOTEIO and "0x27" in str(info.value)
    assert seen[:3] == [{"op": "read_word_data", "addr": 32, "reg": 6},
                        {"op": "write_byte_data", "addr": 32, "reg": 2, "value": 255},
                        {"op": "read_byte", "addr": 56}]


def test_sim_bus_that_accepts_but_never_answers_times_out_naming_the_bus(server):
    srv = server(lambda line: None)
    bus = SimBus(srv.path, timeout=0.3)
    started = time.monotonic()
    # Through the retries, as a chip driver calls it: a silence is not retried (each retry would
    # wait again, and a late answer would be taken for the next request's).
    with pytest.raises(BusError) as info:
        with_retries(lambda: bus.read_byte_data(0x20, 0), "pca9555 at 0x20: read inputs", sleep=lambda s: None)
    assert time.monotonic() - started < 5
    assert str(info.value) == ("bus sim:%s: the simulator accepted the connection but did not answer read_byte_data "
                               "within 0.3 s (is it hung or stopped?)" % srv.path)


def test_sim_bus_default_timeout_is_bounded():
    assert 0 < _bus.SIM_TIMEOUT <= 30


def test_sim_bus_that_answers_garbage_is_named(server):
    srv = server(lambda line: b"HTTP/1.1 400 Bad Request\r\n")
    bus = SimBus(srv.path, timeout=2)
    with pytest.raises(BusError, match=r"^bus sim:%s: the answer to read_byte is not the simulator's protocol: "
                       r"b'HTTP/1.1 400" % srv.path):
        bus.read_byte(0x20)


def test_sim_bus_that_hangs_up_is_a_bus_error(server):
    srv = server(lambda line: b"")
    bus = SimBus(srv.path, timeout=2)
    with pytest.raises(BusError, match=r"read failed after 1 attempt\(s\): \[Errno 5\] simulator bus .* closed the"):
        with_retries(lambda: bus.read_byte(0x20), "read", attempts=1, sleep=lambda s: None)


def test_sim_bus_nobody_listening(tmp_path):
    with pytest.raises(CarrierError, match=r"^bus: cannot reach simulator bus .*absent.sock"):
        open_bus("sim:%s" % (tmp_path / "absent.sock"))


def test_counting_bus_logs_every_transaction():
    class Inner:
        def read_byte_data(self, addr, reg):
            return 7

        def close(self):
            self.closed = True

    inner = Inner()
    bus = CountingBus(inner)
    assert bus.read_byte_data(0x20, 1) == 7
    bus.close()
    assert bus.log == [("read_byte_data", 0x20, 1)] and inner.closed


def test_with_retries():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise OSError(errno.EIO, "Input/output error")
        return "ok"

    delays = []
    assert with_retries(flaky, "x", sleep=delays.append) == "ok"
    assert delays == [0.005, 0.01]

    def denied():
        raise OSError(errno.EACCES, "Permission denied")

    with pytest.raises(BusError, match=r"^x failed after 1 attempt\(s\): \[Errno 13\] Permission denied"):
        with_retries(denied, "x", sleep=delays.append)


def test_lock_directory(tmp_path):
    assert lock_directory(str(tmp_path)) == str(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(CarrierError, match=r"^lock_dir: '.*file/sub' is not a writable directory"):
        lock_directory(str(blocker / "sub"))
    assert os.path.isdir(lock_directory(None))


def test_file_lock_waits_then_names_the_lock(tmp_path):
    path = str(tmp_path / "bus.lock")
    with file_lock(path):
        # another open file description of the same file: flock conflicts as with another process
        fd = os.open(path, os.O_RDWR)
        try:
            with pytest.raises(OSError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
        with pytest.raises(CarrierError, match=r"^lock: .*bus.lock is held by another process for more than 0 s"):
            with file_lock(path, timeout=0.05):
                pass
    with bus_lock("sim:/x/bus.sock", str(tmp_path)):
        assert os.path.exists(tmp_path / "sim_x_bus.sock.lock")


def test_a_board_on_a_silent_simulator_fails_naming_the_bus(server, tmp_path):
    srv = server(lambda line: None)
    board = Board("b", "itx4", "sim:" + srv.path, lock_dir=str(tmp_path),
                  bus_opener=lambda spec: SimBus(parse_bus_spec(spec)[1], timeout=0.3))
    with pytest.raises(BusError, match=r"^bus sim:%s: the simulator accepted the connection but did not answer"
                       % srv.path):
        board.read_state([1])
