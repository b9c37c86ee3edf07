# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real console plumbing for the console tests and the benchmark: socat pty pairs, a node on a pty,
a real ser2net 4 in front of a device. Every process started here is stopped by ``stop()``.

- ``PtyPair(dir)``: ``socat pty,raw,echo=0,link=<dir>/dev pty,raw,echo=0,link=<dir>/node``: the
  console client opens ``dev``; the test plays the node on ``node`` (``write``/``read``).
- ``NodeOnPty(dir, ...)``: ``socat pty,...,link=<dir>/dev EXEC:console_node.py,pty,setsid,ctty``: a
  node that boots when ``power_on()`` is called, shows a login prompt and then runs a real bash.
- ``Ser2net(dir, {name: device}, base_port)``: ser2net -n -c <yaml> in the foreground, one
  ``telnet(rfc2217)`` accepter per device on 127.0.0.1; ``url(name)`` is the pyserial URL.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NODE_SCRIPT = HERE / "console_node.py"


def _wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise RuntimeError("timed out waiting for %s" % what)


def _stop_group(proc):
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def start_socat(directory, name, addresses, timeout=10):
    """Run ``socat -d -d ADDRESS...`` and return once its set-up is complete.

    socat creates a pty's ``link=`` symlink before it applies the pty's termios options (``raw``,
    ``echo=0``): a client that opens the link as soon as it appears can write while the pty still has
    ONLCR on, and every ``\\n`` it writes arrives as ``\\r\\n`` (an extra empty line). socat logs
    "starting data transfer loop" (notice level, ``-d -d``) only after every address is set up; wait
    for that line.
    """
    log = os.path.join(directory, name + ".socat.log")
    with open(log, "wb") as err:
        proc = subprocess.Popen(["socat", "-d", "-d"] + list(addresses), stdout=subprocess.DEVNULL,
                                stderr=err, start_new_session=True)

    def ready():
        if proc.poll() is not None:
            output = Path(log).read_text(errors="replace")
            raise RuntimeError("socat %s exited with %s: %s" % (" ".join(addresses), proc.returncode, output))
        return b"starting data transfer loop" in Path(log).read_bytes()

    try:
        _wait_for(ready, timeout, "socat to set up %s" % " ".join(addresses))
    except BaseException:
        _stop_group(proc)
        raise
    return proc


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PtyPair:
    def __init__(self, directory, name="dev"):
        self.dev = os.path.join(directory, name)
        self.node = os.path.join(directory, name + "-node")
        self.proc = start_socat(directory, name, ["pty,raw,echo=0,link=%s" % self.dev,
                                                  "pty,raw,echo=0,link=%s" % self.node])
        self.fd = os.open(self.node, os.O_RDWR | os.O_NOCTTY)

    def write(self, data):
        if isinstance(data, str):
            data = data.encode()
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]

    def read(self, timeout=1.0, until=None):
        """What the client sent, read for ``timeout`` seconds or until the bytes ``until`` came."""
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))[0]
            if ready:
                data += os.read(self.fd, 4096)
                if until is not None and until in data:
                    break
        return data

    def stop(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        _stop_group(self.proc)


class NodeOnPty:
    def __init__(self, directory, name="dev", host="node01", hang=False, user="pi", password="raspberry",
                 line_delay=0.01):
        self.dir = directory
        self.dev = os.path.join(directory, name)
        self.trigger = os.path.join(directory, name + ".power")
        self.pidfile = os.path.join(directory, name + ".pid")
        command = [sys.executable, str(NODE_SCRIPT), "--host", host, "--trigger", self.trigger,
                   "--pidfile", self.pidfile, "--user", user, "--password", password, "--line-delay", str(line_delay)]
        if hang:
            command.append("--hang")
        exec_arg = "EXEC:'%s',pty,setsid,ctty,stderr" % " ".join(command)
        self.proc = start_socat(directory, name, ["pty,raw,echo=0,link=%s" % self.dev, exec_arg])
        _wait_for(lambda: os.path.exists(self.dev) and os.path.exists(self.pidfile), 10, "the node on its pty")

    def power_on(self):
        Path(self.trigger).touch()

    def stop(self):
        try:
            pid = int(Path(self.pidfile).read_text())
        except (OSError, ValueError):
            pid = None
        _stop_group(self.proc)
        if pid:  # the node (or the bash it became) has its own session: end it by its pid
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class Ser2net:
    def __init__(self, directory, devices, trace=False):
        """``devices``: {name: device path}; one accepter per device on a free 127.0.0.1 port."""
        if shutil.which("ser2net") is None:
            raise RuntimeError("ser2net is not installed (apt-get install ser2net)")
        self.ports = {name: free_port() for name in devices}
        self.config = os.path.join(directory, "ser2net.yaml")
        self.logs = {name: os.path.join(directory, "%s.log" % name) for name in devices}
        lines = []
        for name, device in devices.items():
            lines += ["connection: &%s" % name,
                      "  accepter: telnet(rfc2217),tcp,127.0.0.1,%d" % self.ports[name],
                      "  connector: serialdev,%s,115200n81,local" % device,
                      "  options:",
                      "    kickolduser: false"]
            if trace:
                lines.append("    trace-read: %s" % self.logs[name])
        Path(self.config).write_text("\n".join(lines) + "\n")
        # -n: stay in the foreground; -u: no UUCP lock files (the test devices are not in /dev)
        self.proc = subprocess.Popen(["ser2net", "-n", "-u", "-c", self.config, "-P", os.path.join(directory, "s.pid")],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        for port in self.ports.values():
            _wait_for(lambda port=port: self._listening(port), 10, "ser2net on port %d" % port)

    def _listening(self, port):
        if self.proc.poll() is not None:
            raise RuntimeError("ser2net exited: %s" % self.proc.stdout.read().decode(errors="replace"))
        with open("/proc/net/tcp") as handle:
            return any(":%04X " % port in line and " 0A " in line for line in handle)

    def url(self, name):
        return "rfc2217://127.0.0.1:%d?ign_set_control" % self.ports[name]

    def stop(self):
        _stop_group(self.proc)
        if self.proc.stdout:
            self.proc.stdout.close()
