# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The simulator: boards, buses and nodes of a topology, served on Unix sockets and ptys.

One asyncio loop runs everything: a socket per ``sim:`` bus (the wire protocol of
docs/internals.md), a pty per node, and the control socket ``<state-dir>/control.sock``
(the same newline-delimited JSON; ops: ping, status, fault, reset_counters, stop).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import socket
import time

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._topology import load_topology

from .boards import SimBoard
from .devices import EMULATORS, DeviceBoard, make_emulator, simulated
from .bus import SimBus
from .nodes import Node
from .twin import TwinError, TwinRack, twin_settings
from .uart import Uart
from .usb import UsbHost

HOST_FAULTS = ("hang", "panic", "boot_loop", "undervolt")
MAX_SOCKET_PATH = 107  # sun_path is 108 bytes with its NUL
EMULATED_KINDS = tuple(EMULATORS)


class SimError(Exception):
    """A simulator setup error a user can act on."""


def load(topology):
    """A validated topology (``_topology.Topology``) from a path or a mapping."""
    try:
        return load_topology(topology)
    except CarrierError as exc:
        raise SimError(str(exc)) from None


def socket_in_use(path):
    """True when something accepts connections on the Unix socket ``path``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(1.0)
    try:
        sock.connect(path)
        return True
    except OSError:
        return False
    finally:
        sock.close()


class Simulator:
    def __init__(self, topology, state_dir, boot_time=None, baud=115200, transaction_time=None, log=None,
                 gadget_time=None):
        self.topology = topology if hasattr(topology, "boards") else load(topology)
        self.topology_source = getattr(self.topology, "source", None)
        self.state_dir = os.path.abspath(state_dir)
        self.console_dir = os.path.join(self.state_dir, "console")
        self.nodes_dir = os.path.join(self.state_dir, "nodes")  # <host>/root, <host>/eeprom: removed at stop
        self.control_path = os.path.join(self.state_dir, "control.sock")
        self.boot_time = boot_time
        self.gadget_time = gadget_time
        self.usb_hosts = {}  # directory of bus sockets -> UsbHost (usb.sock, sys/, dev/)
        self.baud = baud
        self.log = log or (lambda msg: None)
        self.buses = {}  # socket path -> SimBus
        self.boards = {}  # name -> SimBoard
        self.nodes = {}  # host -> Node
        self.skipped = []  # boards on real buses
        self.servers = []
        self.created = []  # files this process made (sockets, symlinks), removed at shutdown
        self.started_at = None
        self.stopping = None
        self._loop = None
        self._clients = set()
        self.twins = None  # TwinRack when some node has sim.twin
        self._build(transaction_time)

    # --- construction ------------------------------------------------------------------------------
    def _build(self, transaction_time):
        for spec in self.topology.boards.values():
            if spec.profile.kind in EMULATED_KINDS:
                self._build_device(spec)
                continue
            if not spec.bus.startswith("sim:"):
                self.skipped.append(spec.name)
                continue
            path = spec.bus[4:]
            if len(path.encode()) > MAX_SOCKET_PATH:
                raise SimError("boards.%s.bus: socket path %r is %d bytes; a Unix socket path must be under 108"
                               % (spec.name, path, len(path.encode())))
            board = SimBoard(spec)
            bus = self.buses.get(path)
            if bus is None:
                bus = self.buses[path] = SimBus(path)
                bus.transaction_time = 0.0
                bus.lock = None
                bus.on_change = self._device_changed
            tt = spec.sim.get("transaction_time", transaction_time) if spec.sim else transaction_time
            bus.transaction_time = max(bus.transaction_time, float(tt or 0.0))
            for device in board.devices.values():
                try:
                    bus.attach(device)
                except ValueError as exc:
                    raise SimError(str(exc)) from None
                device.on_change = self._device_changed
            self.boards[spec.name] = board
            for slot, nspec in spec.nodes.items():
                uart = Uart(nspec.host, baud=self.baud)
                node = self._node(spec, slot, nspec, uart)
                uart.on_input = node.feed
                board.nodes[slot] = node
                self.nodes[nspec.host] = node
        self._build_usb()
        self._build_twins()
        if not self.boards:
            raise SimError("%s: no board is on a simulator bus (bus: sim:/path.sock)" % self.topology_source)
        if len(self.control_path.encode()) > MAX_SOCKET_PATH:
            raise SimError("state dir %r is too long for a Unix socket path (control.sock); use a shorter one"
                           % self.state_dir)

    def _build_usb(self):
        """A USB host (rpiboot, the gadget's disks) in each directory holding bus sockets, for its boards' nodes."""
        by_dir = {}
        for board in self.boards.values():
            if isinstance(board, DeviceBoard):
                continue  # a Turing Pi 2's USB goes to its BMC; a plug, hub port or PoE port has no USB boot line
            gadget_time = (board.spec.sim or {}).get("gadget_time", self.gadget_time)
            by_dir.setdefault(os.path.dirname(board.spec.bus[4:]), []).append((board, gadget_time))
        for directory, boards in by_dir.items():
            nodes = [node for board, _g in boards for node in board.nodes.values()]
            rates = {b.spec.name: (b.spec.sim or {}).get("usb_rate") for b, _g in boards}
            try:
                self.usb_hosts[directory] = UsbHost(directory, nodes, gadget_time=boards[0][1], log=self.log,
                                                    board_rates=rates)
            except ValueError as exc:
                raise SimError("%s: %s" % (", ".join(b.spec.name for b, _g in boards), exc)) from None

    def _build_twins(self):
        try:
            pairs = [(node, settings) for board in self.boards.values() for node in board.nodes.values()
                     for settings in [twin_settings(node.spec, board.spec)] if settings is not None]
            if pairs:
                self.twins = TwinRack(pairs, self.state_dir, log=self.log)
        except TwinError as exc:
            raise SimError(str(exc)) from None

    def _node(self, spec, slot, nspec, uart):
        try:
            return Node(nspec, uart, boot_time=self.boot_time)
        except (CarrierError, OSError, ValueError) as exc:  # sim.eeprom_image unreadable or not an image of its SoC
            raise SimError("boards.%s.slots.%s.sim: %s" % (spec.name, slot, exc)) from None

    def _build_device(self, spec):
        """A board whose nodes an emulated device switches (devices.py): a Turing Pi 2's BMC listening on
        the board's URL, a smart plug, a PoE switch or a USB hub."""
        if not simulated(spec, self.state_dir):
            self.skipped.append(spec.name)
            return
        board = DeviceBoard(spec)
        for slot, nspec in spec.nodes.items():
            uart = Uart(nspec.host, baud=self.baud)
            node = self._node(spec, slot, nspec, uart)
            uart.on_input = node.feed
            board.nodes[slot] = node
            self.nodes[nspec.host] = node
        try:
            board.device = make_emulator(spec, board.nodes, self.state_dir, log=self.log)
        except ValueError as exc:
            raise SimError(str(exc)) from None
        self.boards[spec.name] = board

    # --- events ----------------------------------------------------------------------------------
    def _device_changed(self, device):
        board = device.board
        if board is None:
            return
        for slot, node in board.nodes.items():
            node.apply_lines(board.line_levels(slot))

    # --- start and stop ----------------------------------------------------------------------------
    async def start(self, progress=None):
        """Open every socket and console. ``progress(text)`` is told how far the nodes have got
        (about every 50 nodes), so a starter waits for as long as a large topology needs."""
        self._loop = asyncio.get_running_loop()
        progress = progress or (lambda text: None)
        self.stopping = asyncio.Event()
        os.makedirs(self.console_dir, exist_ok=True)
        try:
            for path, bus in self.buses.items():
                bus.lock = asyncio.Lock()
                await self._listen(path, lambda r, w, bus=bus: self._bus_client(bus, r, w))
            await self._listen(self.control_path, self._control_client)
            for host in self.usb_hosts.values():
                await self._listen(host.path, lambda r, w, host=host: self._tracked(host.client, r, w))
                host.clear_stale()
            for board in self.boards.values():
                if isinstance(board, DeviceBoard):
                    await board.device.start()
                    self.created.extend(board.device.created)
            for board in self.boards.values():
                for device in board.devices.values():
                    if hasattr(device, "scheduler"):
                        device.scheduler = self._loop.call_later
            total = len(self.nodes)
            for i, node in enumerate(self.nodes.values(), 1):
                node.attach_tree(os.path.join(self.nodes_dir, node.host))
                if i % 50 == 0:
                    progress("node trees %d/%d" % (i, total))
            for i, node in enumerate(self.nodes.values(), 1):
                if i % 50 == 0:
                    progress("consoles %d/%d" % (i, total))
                node.uart.start(self._loop)
                self._symlink(node.uart.path, os.path.join(self.console_dir, node.host))
                console = node.spec.console
                if console and "://" not in console and os.path.isabs(console):
                    link = os.path.abspath(console)
                    if link != os.path.join(self.console_dir, node.host):
                        self._symlink(node.uart.path, link)
            if self.twins is not None:
                progress("twin nodes: network and disks")
                try:
                    await self.twins.start()
                except TwinError as exc:
                    raise SimError(str(exc)) from None
            # power-on state of every board: apply pulls and defaults to the nodes
            for board in self.boards.values():
                if isinstance(board, DeviceBoard):
                    continue  # the device applied its own state when it started
                for slot, node in board.nodes.items():
                    node.apply_lines(board.line_levels(slot))
        except BaseException:
            await self.shutdown()
            raise
        self.started_at = time.time()
        self.log("started: %d bus(es), %d board(s), %d node(s)" % (len(self.buses), len(self.boards), len(self.nodes)))

    async def _listen(self, path, handler):
        if os.path.lexists(path):
            if socket_in_use(path):
                raise SimError("socket %s is in use (another simulator running on it?)" % path)
            os.unlink(path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        server = await asyncio.start_unix_server(handler, path=path)
        self.servers.append(server)
        self.created.append(path)

    def _symlink(self, target, link):
        if os.path.islink(link):
            os.unlink(link)
        elif os.path.lexists(link):
            raise SimError("console path %s exists and is not a symlink: not replacing it" % link)
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(target, link)
        self.created.append(link)

    async def run(self):
        await self.stopping.wait()
        await self.shutdown()

    def request_stop(self):
        if self.stopping is not None:
            self.stopping.set()

    async def shutdown(self):
        for server in self.servers:
            server.close()
        for server in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)
        self.servers = []
        for board in self.boards.values():
            if isinstance(board, DeviceBoard) and board.device is not None:
                board.device.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(board.device.wait_closed(), 2.0)
                for path in board.device.created:
                    if path not in self.created:
                        self.created.append(path)
        clients = [t for t in self._clients if t is not asyncio.current_task()]
        for task in clients:
            task.cancel()
        if clients:
            await asyncio.wait(clients, timeout=2.0)
        tasks = []
        for node in self.nodes.values():
            tasks.extend(t for t in (node._task, node.uart._task) if t is not None)
            node.close()
            node.uart.close()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        for path in reversed(self.created):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        self.created = []
        with contextlib.suppress(OSError):
            os.rmdir(self.console_dir)
        for host in self.usb_hosts.values():
            host.close()
        if self.twins is not None:
            await self.twins.shutdown()
        for node in self.nodes.values():
            node.remove_tree()
        with contextlib.suppress(OSError):
            os.rmdir(self.nodes_dir)
        self.log("stopped")

    # --- bus sockets ---------------------------------------------------------------------------------
    async def _bus_client(self, bus, reader, writer):
        self._clients.add(asyncio.current_task())
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    request = json.loads(line)
                except ValueError:
                    reply = {"errno": errno.EINVAL, "error": "not a JSON request: %r" % line[:80]}
                else:
                    async with bus.lock:  # one transaction at a time on this bus
                        if bus.transaction_time:
                            await asyncio.sleep(bus.transaction_time)
                        reply = bus.handle(request)
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client went away, or the simulator is stopping
        finally:
            self._clients.discard(asyncio.current_task())
            writer.close()

    async def _tracked(self, handler, reader, writer):
        """A connection the shutdown cancels (an rpiboot waiting for its gadget, say)."""
        self._clients.add(asyncio.current_task())
        try:
            await handler(reader, writer)
        finally:
            self._clients.discard(asyncio.current_task())

    # --- control socket ----------------------------------------------------------------------------
    async def _control_client(self, reader, writer):
        self._clients.add(asyncio.current_task())
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                request = None
                try:
                    request = json.loads(line)
                    reply = self.control(request)
                except ValueError as exc:
                    reply = {"ok": False, "error": str(exc)}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
                if isinstance(request, dict) and request.get("op") == "stop":
                    self.request_stop()
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self._clients.discard(asyncio.current_task())
            writer.close()

    def control(self, request):
        """One control request -> a reply. Raises ValueError for a bad request."""
        if not isinstance(request, dict):
            raise ValueError("a request is a JSON object with an op")
        op = request.get("op")
        if op == "ping":
            return {"ok": True, "pid": os.getpid()}
        if op == "status":
            return {"ok": True, "status": self.status()}
        if op == "stop":
            return {"ok": True, "pid": os.getpid()}
        if op == "reset_counters":
            for bus in self.buses.values():
                bus.reset_counters()
            return {"ok": True}
        if op == "fault":
            return {"ok": True, "fault": self.fault(request)}
        raise ValueError("unknown op %r (ping, status, fault, reset_counters, stop)" % (op,))

    def fault(self, request):
        """Set a fault: i2c_error_rate or stuck (board), hang, panic, boot_loop or undervolt (host)."""
        if request.get("host") is not None:
            node = self.nodes.get(request["host"])
            if node is None:
                raise ValueError("host %r is not a simulated node (nodes: %s)"
                                 % (request["host"], ", ".join(sorted(self.nodes))))
            given = [name for name in HOST_FAULTS if name in request]
            if not given:
                raise ValueError("a host fault needs one of %s: true|false" % ", ".join(HOST_FAULTS))
            values = {name: _bool(request[name], name) for name in given}  # every value checked first
            for name, value in values.items():
                if name == "undervolt":
                    node.set_undervolt(value)
                else:
                    setattr(node, name, value)
            return dict({"host": node.host}, **{name: getattr(node, name) for name in HOST_FAULTS})
        board = self.boards.get(request.get("board"))
        if board is None:
            raise ValueError("board %r is not a simulated board (boards: %s)"
                             % (request.get("board"), ", ".join(sorted(self.boards))))
        if isinstance(board, DeviceBoard):
            if hasattr(board.device, "fault"):
                return dict({"board": board.name}, **board.device.fault(request))
            raise ValueError("board %s is a %s: its device is not on an I2C bus, there is none to fault"
                             % (board.name, "Turing Pi 2" if board.kind == "turingpi2" else board.kind))
        done = {"board": board.name}
        if "i2c_error_rate" in request:
            rate = request["i2c_error_rate"]
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
                raise ValueError("i2c_error_rate %r is not a number from 0 to 1" % (rate,))
            board.error_rate = float(rate)
            done["i2c_error_rate"] = board.error_rate
        if "stuck" in request:
            chip = request.get("chip")
            bit = request.get("bit")
            if board.kind != "gpio":
                raise ValueError("board %s (%s) has no expander pins to stick" % (board.name, board.kind))
            device = board.devices.get(chip)
            if device is None:
                raise ValueError("board %s has no chip %r (chips: %s)" % (board.name, chip, ", ".join(board.devices)))
            if isinstance(bit, bool) or not isinstance(bit, int) or not 0 <= bit < device.width:
                raise ValueError("bit %r is not a bit of %s %s (0-%d)" % (bit, device.kind, chip, device.width - 1))
            level = request["stuck"]
            if level not in (0, 1, None) or isinstance(level, bool):
                raise ValueError("stuck %r: 0, 1 or null (none)" % (level,))
            device.set_stuck(bit, level)
            self._device_changed(device)
            done.update({"chip": chip, "bit": bit, "stuck": level})
        if "sensor" in request:
            device = board.devices.get(request["sensor"])
            if device is None or not hasattr(device, "load"):
                names = sorted(n for n, d in board.devices.items() if hasattr(d, "load"))
                raise ValueError("board %s has no sensor %r (sensors and fans: %s)"
                                 % (board.name, request["sensor"], ", ".join(names) or "none"))
            device.missing = _bool(request.get("missing"), "missing")
            done.update({"sensor": request["sensor"], "missing": device.missing})
        if len(done) == 1:
            raise ValueError("a board fault needs i2c_error_rate, chip + bit + stuck, or sensor + missing")
        return done

    def status(self):
        boards = {}
        for name, board in self.boards.items():
            snap = board.snapshot()
            snap["slots"] = {str(slot): node.snapshot() for slot, node in board.nodes.items()}
            for slot, node in board.nodes.items():
                snap["slots"][str(slot)]["console"] = os.path.join(self.console_dir, node.host)
            boards[name] = snap
        return {
            "pid": os.getpid(),
            "state_dir": self.state_dir,
            "topology": self.topology_source,
            "started_at": self.started_at,
            "control": self.control_path,
            "buses": {path: bus.snapshot() for path, bus in self.buses.items()},
            "boards": boards,
            "skipped_boards": list(self.skipped),
            "usb": {host.path: {"ports": {port: node.host for port, node in sorted(host.ports.items())},
                                "gadget_time": host.gadget_time,
                                "disks": [d.describe() for _n, d in sorted(host.disks.items())]}
                    for host in self.usb_hosts.values()},
            "nodes": {host: {"board": n.board, "slot": n.slot, "state": n.state} for host, n in self.nodes.items()},
            "twins": ({"network": str(self.twins.network), "host_address": str(self.twins.host_address),
                       "namespace": self.twins.rack_ns} if self.twins is not None else None),
        }


def _bool(value, field):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on"):
        return True
    if isinstance(value, str) and value.lower() in ("false", "no", "0", "off"):
        return False
    raise ValueError("%s: %r is not true or false" % (field, value))
