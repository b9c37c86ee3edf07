# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers of the simulator's unit tests: a Simulator running in a thread of the test process,
and a raw console client. Tests talk to the simulator only through its real interfaces: the bus
sockets, the control socket and the node ptys."""

from __future__ import annotations

import asyncio
import os
import select
import sys
import threading
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
if os.path.join(REPO, "sim") not in sys.path:
    sys.path.insert(0, os.path.join(REPO, "sim"))

from carrier_sim.client import BusClient, control  # noqa: E402
from carrier_sim.server import Simulator  # noqa: E402


class SimThread:
    def __init__(self, topology, state_dir, **options):
        self.state_dir = state_dir
        self.sim = Simulator(topology, state_dir, **options)
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.ready.wait(20):
            raise RuntimeError("simulator did not start")
        if self.error:
            raise self.error

    def _run(self):
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        finally:
            self.loop.close()

    async def _main(self):
        try:
            await self.sim.start()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            self.error = exc
            self.ready.set()
            return
        self.ready.set()
        await self.sim.run()

    def stop(self):
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.sim.request_stop)
            self.thread.join(20)

    # helpers over the real interfaces
    def bus(self, board):
        return BusClient(self.sim.boards[board].spec.bus[4:])

    def control(self, request):
        return control(self.state_dir, request)

    def status(self):
        return self.control({"op": "status"})["status"]

    def node(self, host):
        for board in self.status()["boards"].values():
            for node in board["slots"].values():
                if node["host"] == host:
                    return node
        raise KeyError(host)

    def wait_state(self, host, states, timeout=10.0):
        states = (states,) if isinstance(states, str) else tuple(states)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            node = self.node(host)
            if node["state"] in states:
                return node
            time.sleep(0.02)
        raise AssertionError("%s did not reach %s in %.1f s (state %s)" % (host, states, timeout, node["state"]))

    def console(self, host):
        return Console(os.path.join(self.state_dir, "console", host))


class Console:
    """A raw client of a node's pty (what a terminal program does)."""

    def __init__(self, path):
        import termios
        import tty

        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)
        termios.tcflush(self.fd, termios.TCIFLUSH)
        self.seen = b""

    def read_until(self, token, timeout=10.0):
        token = token.encode() if isinstance(token, str) else token
        deadline = time.monotonic() + timeout
        while token not in self.seen:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("%r not seen in %.1f s; last output: %r" % (token, timeout, self.seen[-300:]))
            ready, _w, _x = select.select([self.fd], [], [], min(remaining, 0.1))
            if ready:
                try:
                    self.seen += os.read(self.fd, 4096)
                except BlockingIOError:
                    pass
        index = self.seen.index(token) + len(token)
        out, self.seen = self.seen[:index], self.seen[index:]
        return out.decode("utf-8", "replace")

    def read_for(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            ready, _w, _x = select.select([self.fd], [], [], 0.05)
            if ready:
                try:
                    self.seen += os.read(self.fd, 4096)
                except BlockingIOError:
                    pass
        out, self.seen = self.seen, b""
        return out.decode("utf-8", "replace")

    def send(self, text):
        os.write(self.fd, text.encode())

    def login(self, host, user="pi", password="raspberry"):
        self.send("\r")
        self.read_until("%s login: " % host)
        self.send(user + "\r")
        self.read_until("Password: ")
        self.send(password + "\r")
        return self.read_until("$ ")

    def run(self, command):
        """Send a command line; the output between the echoed line and the next prompt."""
        self.send(command + "\r")
        text = self.read_until("$ ")
        body = text.split("\r\n", 1)[1] if "\r\n" in text else ""
        return body.rsplit("\r\n", 1)[0] if "\r\n" in body else ""

    def close(self):
        os.close(self.fd)


def fill(value, directory):
    if isinstance(value, dict):
        return {k: fill(v, directory) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, directory) for v in value]
    if isinstance(value, str):
        return value.replace("{dir}", directory)
    return value


def gpio_topology(profile="itx4", nodes=None, board_sim=None, profiles=None, slot_sim=None):
    """A one-board topology on ``sim:{dir}/bus.sock``."""
    nodes = nodes or {1: "n1"}
    slots = {}
    for slot, host in nodes.items():
        entry = {"host": host, "model": "cm4"}
        if slot_sim:
            entry["sim"] = dict(slot_sim)
        slots[slot] = entry
    data = {
        "controllers": {"ctrl0": {}},
        "boards": {"b1": {"profile": profile, "controller": "ctrl0", "bus": "sim:{dir}/bus.sock", "slots": slots}},
    }
    if board_sim:
        data["boards"]["b1"]["sim"] = dict(board_sim)
    if profiles:
        data["profiles"] = profiles
    return data
