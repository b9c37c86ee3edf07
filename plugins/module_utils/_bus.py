# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Opening an I2C bus, serialising access to it across processes, and retrying transient errors.

A bus spec is one of:

- ``1`` or ``"1"``: ``/dev/i2c-1`` through smbus2;
- ``"/dev/i2c-1"``: the same, spelt as a path;
- ``"sim:/abs/path.sock"``: a bus of the carrier-board simulator (wire protocol in docs/internals.md).

Every object returned by :func:`open_bus` has smbus2's method names and signatures, and raises
``OSError`` with smbus2's errnos (121 EREMOTEIO for an address nobody acknowledges, 5 EIO for a
bus error), so the chip drivers cannot tell a simulated bus from a real one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import socket
import tempfile
import time

from ansible_collections.picluster.carrier.plugins.module_utils._errors import BusError, CarrierError

try:
    import fcntl
except ImportError:  # pragma: no cover - not a POSIX system
    fcntl = None

DEFAULT_LOCK_DIR = "/run/lock/picluster-carrier"

# Seconds a simulator bus may take to answer one transaction. It answers in microseconds; a
# socket that accepts and stays silent is a hung or stopped simulator, not a busy bus.
SIM_TIMEOUT = 10.0

# Errnos that a retry can cure: a glitch on the wires, a device busy with an internal cycle.
TRANSIENT_ERRNOS = frozenset({errno.EIO, errno.EREMOTEIO, errno.ETIMEDOUT, errno.EAGAIN, errno.ENXIO})

_SIM_PREFIX = "sim:"
_DEV_RE = re.compile(r"^/dev/i2c-(\d+)$")


def parse_bus_spec(spec):
    """Return ``("i2c", N)`` or ``("sim", path)`` for a bus spec; raise CarrierError naming the value."""
    if isinstance(spec, bool):
        raise CarrierError("bus: %r is not a bus (expected N, /dev/i2c-N or sim:/path.sock)" % (spec,))
    if isinstance(spec, int):
        if spec < 0:
            raise CarrierError("bus: %r is not a bus number" % (spec,))
        return ("i2c", spec)
    if not isinstance(spec, str) or not spec:
        raise CarrierError("bus: %r is not a bus (expected N, /dev/i2c-N or sim:/path.sock)" % (spec,))
    text = spec.strip()
    if text.isdigit():
        return ("i2c", int(text))
    match = _DEV_RE.match(text)
    if match:
        return ("i2c", int(match.group(1)))
    if text.startswith(_SIM_PREFIX):
        path = text[len(_SIM_PREFIX):]
        if not os.path.isabs(path) or path == "/":
            raise CarrierError("bus: %r: a simulator bus needs an absolute socket path" % (spec,))
        return ("sim", path)
    raise CarrierError("bus: %r is not a bus (expected N, /dev/i2c-N or sim:/path.sock)" % (spec,))


def bus_id(spec):
    """A short name for a bus, safe in a file name: ``i2c-1`` or ``sim-<path with / as _>``."""
    kind, where = parse_bus_spec(spec)
    if kind == "i2c":
        return "i2c-%d" % where
    return "sim" + re.sub(r"[^A-Za-z0-9.-]", "_", where)


def bus_path(spec):
    """The local file behind a bus spec: ``/dev/i2c-N`` or the simulator's socket path."""
    kind, where = parse_bus_spec(spec)
    return "/dev/i2c-%d" % where if kind == "i2c" else where


def bus_reachable(spec):
    """True when the bus can be opened from here (the device node or the simulator socket exists)."""
    return os.path.exists(bus_path(spec))


class SimBus(object):
    """A client of one simulator bus socket, with smbus2's interface."""

    def __init__(self, path, timeout=SIM_TIMEOUT):
        self.path = path
        self.timeout = timeout
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(path)
        except OSError as exc:
            self._sock.close()
            raise CarrierError("bus: cannot reach simulator bus %s: %s" % (path, exc.strerror or exc)) from exc
        self._reader = self._sock.makefile("rb")

    def _call(self, op, addr, reg=None, value=None):
        request = {"op": op, "addr": addr}
        if reg is not None:
            request["reg"] = reg
        if value is not None:
            request["value"] = value
        try:
            self._sock.sendall(json.dumps(request).encode("ascii") + b"\n")
            line = self._reader.readline()
        except socket.timeout:
            # Not an OSError for with_retries: a late answer would be read as the next request's.
            self.close()
            raise BusError("bus sim:%s: the simulator accepted the connection but did not answer %s within %g s "
                           "(is it hung or stopped?)" % (self.path, op, self.timeout)) from None
        except OSError as exc:
            raise OSError(exc.errno or errno.EIO, "simulator bus %s: %s" % (self.path, exc)) from exc
        if not line:
            raise OSError(errno.EIO, "simulator bus %s closed the connection" % self.path)
        try:
            reply = json.loads(line)
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            self.close()
            raise BusError("bus sim:%s: the answer to %s is not the simulator's protocol: %r"
                           % (self.path, op, line[:200]))
        if "errno" in reply:
            raise OSError(int(reply["errno"]), reply.get("error") or os.strerror(int(reply["errno"])))
        return reply.get("value")

    def read_byte(self, i2c_addr):
        return self._call("read_byte", i2c_addr)

    def write_byte(self, i2c_addr, value):
        self._call("write_byte", i2c_addr, value=value)

    def read_byte_data(self, i2c_addr, register):
        return self._call("read_byte_data", i2c_addr, reg=register)

    def write_byte_data(self, i2c_addr, register, value):
        self._call("write_byte_data", i2c_addr, reg=register, value=value)

    def read_word_data(self, i2c_addr, register):
        return self._call("read_word_data", i2c_addr, reg=register)

    def write_word_data(self, i2c_addr, register, value):
        self._call("write_word_data", i2c_addr, reg=register, value=value)

    def close(self):
        with contextlib.suppress(OSError):
            self._reader.close()
        with contextlib.suppress(OSError):
            self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class CountingBus(object):
    """Wraps a bus and counts its transactions (used by benchmarks and tests to check bus economy)."""

    _OPS = ("read_byte", "write_byte", "read_byte_data", "write_byte_data", "read_word_data", "write_word_data")

    def __init__(self, inner):
        self.inner = inner
        self.log = []

    def __getattr__(self, name):
        if name in self._OPS:
            target = getattr(self.inner, name)

            def counted(*args):
                self.log.append((name,) + tuple(args))
                return target(*args)

            return counted
        return getattr(self.inner, name)

    def close(self):
        self.inner.close()


def open_bus(spec):
    """Open the bus named by ``spec`` (see the module docstring)."""
    kind, where = parse_bus_spec(spec)
    if kind == "sim":
        return SimBus(where)
    try:
        from smbus2 import SMBus
    except ImportError:
        raise CarrierError("bus: %r needs the Python package smbus2 on the controller (pip install smbus2)"
                           % (spec,)) from None
    try:
        return SMBus(where)
    except OSError as exc:
        raise CarrierError("bus: cannot open /dev/i2c-%d: %s (is the I2C interface enabled, and may this user "
                           "open it?)" % (where, exc.strerror or exc)) from exc


def _writable_dir(path):
    try:
        os.makedirs(path, mode=0o755, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK | os.X_OK)


def lock_directory(lock_dir=None):
    """The directory holding the per-bus and per-board lock files."""
    if lock_dir:
        if not _writable_dir(lock_dir):
            raise CarrierError("lock_dir: %r is not a writable directory" % (lock_dir,))
        return lock_dir
    if _writable_dir(DEFAULT_LOCK_DIR):
        return DEFAULT_LOCK_DIR
    fallback = os.path.join(tempfile.gettempdir(), "picluster-carrier-locks")
    if not _writable_dir(fallback):
        raise CarrierError("lock_dir: neither %s nor %s is writable; set lock_dir" % (DEFAULT_LOCK_DIR, fallback))
    return fallback


@contextlib.contextmanager
def file_lock(path, timeout=60.0):
    """An exclusive advisory lock on ``path`` (created 0644), held for the ``with`` block.

    Waits up to ``timeout`` seconds; the lock dies with the process, so a crashed task never
    leaves a bus locked.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise CarrierError("lock: %s is held by another process for more than %.0f s"
                                       % (path, timeout)) from None
                time.sleep(0.002)
        try:
            yield fd
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def bus_lock(spec, lock_dir=None, timeout=60.0):
    """The inter-process lock of one bus (docs/hardware.md section 2: read-modify-write is not atomic)."""
    return file_lock(os.path.join(lock_directory(lock_dir), bus_id(spec) + ".lock"), timeout=timeout)


def with_retries(action, what, attempts=5, first_delay=0.005, sleep=time.sleep):
    """Run ``action()``; on a transient OSError retry with exponential backoff, then raise BusError.

    ``what`` describes the transaction for the error message (chip, address, register).
    """
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except OSError as exc:
            transient = exc.errno in TRANSIENT_ERRNOS
            if not transient or attempt == attempts:
                raise BusError("%s failed after %d attempt(s): [Errno %s] %s"
                               % (what, attempt, exc.errno, exc.strerror or exc)) from exc
            sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover
