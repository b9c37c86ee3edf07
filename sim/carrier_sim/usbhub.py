# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An emulated USB hub with per-port power switching: the sysfs files the kernel shows for it.

The board's bus is the hub's directory, which must lie under the simulator's state directory
(``<state>/sys/bus/usb/devices/1-1``). The emulator writes there what the kernel shows for a hub:
``idVendor``, ``idProduct``, ``product``, ``manufacturer``, ``bcdDevice``, ``busnum``, ``devnum``,
``speed``, ``maxchild``, ``bConfigurationValue``, and per port ``<hub>:1.0/<hub>-portN/disable``
(a root hub ``usbB``: ``B-0:1.0/usbB-portN``); a slot's ``hub`` (``1-1.4``) is a second hub beside
it. A hub port powers a Pi through its power input only (no data), so no child device appears.

The ``disable`` files are watched with inotify (IN_CLOSE_WRITE, no polling: idle CPU stays at 0;
a 20 Hz poll of the files' mtimes where inotify is missing). ``0`` written: the port is powered and
its node powers on; ``1``: off. A value other than 0 or 1 is put back (the kernel refuses it). A hub
behind another (``1-1.4`` on port 4 of ``1-1``) vanishes while that port is off and comes back with
every port powered, as the kernel binds a hub again.

Simulator settings (the board's ``sim:`` mapping): ``disabled`` (slots whose port starts off;
default none: the kernel powers every port when it binds a hub), ``stuck`` (slot -> ``on`` | ``off``:
a port that does not follow, as a hub without power switching: the write is taken, VBUS stays, and
the file reads the old value again), ``vendor_id`` (``2109``), ``product_id`` (``2817``), ``product``
(``USB2.0 Hub``), ``manufacturer`` (``VIA Labs, Inc.``), ``ports`` (the board hub's port count:
default the highest port its slots use, at least 4).

Faults (control socket ``fault`` with ``board``): ``{"slot": N, "stuck": "on" | "off" | null}``
(or ``"port": N``, of the board's hub), ``{"gone": true}`` (the hub unplugged: its directory removed,
every port unpowered) and ``{"gone": false}`` (plugged in again: the kernel powers its ports on).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import shutil
import struct

from .devices import DeviceEmulator

IN_CLOSE_WRITE = 0x00000008
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
POLL = 0.05


class _Inotify:
    """inotify(7) through libc: a descriptor and a watch per file."""

    def __init__(self):
        self.libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self.fd = self.libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")

    def watch(self, path):
        wd = self.libc.inotify_add_watch(self.fd, os.fsencode(path), IN_CLOSE_WRITE)
        if wd < 0:
            raise OSError(ctypes.get_errno(), "inotify_add_watch %s" % path)
        return wd

    def events(self):
        """The watch descriptors of the events waiting."""
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return []
        found, offset = [], 0
        while offset + 16 <= len(data):
            wd, _mask, _cookie, length = struct.unpack_from("iIII", data, offset)
            found.append(wd)
            offset += 16 + length
        return found

    def close(self):
        os.close(self.fd)


def _write(path, text):
    with open(path, "w") as handle:
        handle.write(text)


class HubEmulator(DeviceEmulator):
    """One hub board (and the hubs behind it that its slots name). ``nodes``: slot -> simulator Node."""

    def __init__(self, spec, nodes, state_dir, log=None):
        super().__init__(spec, nodes, state_dir, log)
        self.root = spec.bus
        self.devices = os.path.dirname(self.root)
        self.hub = os.path.basename(self.root)
        sim = dict(spec.sim or {})
        self.ids = {"idVendor": str(sim.get("vendor_id", "2109")), "idProduct": str(sim.get("product_id", "2817")),
                    "product": str(sim.get("product", "USB2.0 Hub")),
                    "manufacturer": str(sim.get("manufacturer", "VIA Labs, Inc."))}
        self.slot_port = {slot: (outlet.get("hub") or self.hub, outlet["port"])
                          for slot, outlet in spec.profile.outlets.items()}
        self.port_slot = {where: slot for slot, where in self.slot_port.items()}
        self.hubs = {self.hub: max(4, int(sim.get("ports", 0) or 0))}
        for hub, port in self.slot_port.values():
            self.hubs[hub] = max(self.hubs.get(hub, 4), port)
        self.upstream = {}  # a hub plugged into a port of another of the board's hubs: hub -> that port
        for hub in list(self.hubs):
            parent, _dot, number = hub.rpartition(".")
            if parent in self.hubs and number.isdigit():
                self.upstream[hub] = (parent, int(number))
                self.hubs[parent] = max(self.hubs[parent], int(number))
        self.ports = {(hub, port): True for hub, count in self.hubs.items() for port in range(1, count + 1)}
        for slot in sim.get("disabled") or []:
            self.ports[self.slot_port[self._slot(int(slot), None, None)]] = False
        self.stuck = {}
        for slot, level in dict(sim.get("stuck") or {}).items():
            self._set_stuck(self._slot(int(slot), None, None), level)
        for slot, on in self.stuck.items():
            self.ports[self.slot_port[slot]] = on
        self.gone = False
        self.created = []
        self.mechanism = None
        self._inotify = None
        self._watches = {}
        self._mtimes = {}
        self._poller = None
        self._loop = None

    # --- the files ---------------------------------------------------------------------------------
    def disable_path(self, hub, port):
        if hub.startswith("usb"):
            return os.path.join(self.devices, hub, "%s-0:1.0" % hub[3:], "%s-port%d" % (hub, port), "disable")
        return os.path.join(self.devices, hub, "%s:1.0" % hub, "%s-port%d" % (hub, port), "disable")

    def present(self, hub):
        """Whether the kernel shows the hub: plugged in, and powered by its upstream port."""
        if self.gone:
            return False
        if hub not in self.upstream:
            return True
        parent, port = self.upstream[hub]
        return self.present(parent) and self.ports[(parent, port)]

    def _build_hub(self, number, hub):
        """A hub's directory and files, as the kernel shows them once it has bound the hub."""
        hub_dir = os.path.join(self.devices, hub)
        shutil.rmtree(hub_dir, ignore_errors=True)  # a tree a killed simulator left
        os.makedirs(hub_dir)
        bus = hub[3:] if hub.startswith("usb") else hub.split("-", 1)[0]
        files = dict(self.ids, bcdDevice="9013", busnum=bus, devnum=str(1 if hub.startswith("usb") else number),
                     speed="480", maxchild=str(self.hubs[hub]), bConfigurationValue="1", bDeviceClass="09")
        for name, value in files.items():
            _write(os.path.join(hub_dir, name), value + "\n")
        for port in range(1, self.hubs[hub] + 1):
            path = self.disable_path(hub, port)
            os.makedirs(os.path.dirname(path))
            _write(path, "0\n" if self.ports[(hub, port)] else "1\n")
            self._watch(hub, port, path)

    def _drop_hub(self, hub):
        shutil.rmtree(os.path.join(self.devices, hub), ignore_errors=True)
        self._watches = {key: where for key, where in self._watches.items() if where[0] != hub}

    def _remove(self):
        for hub in self.hubs:
            self._drop_hub(hub)
        self._watches.clear()
        self._mtimes.clear()
        directory = self.devices
        while os.path.abspath(directory).startswith(os.path.abspath(self.state_dir) + os.sep):
            try:
                os.rmdir(directory)  # only when empty: another board's hubs may live there
            except OSError:
                break
            directory = os.path.dirname(directory)

    def _watch(self, hub, port, path):
        if self._inotify is not None:
            self._watches[self._inotify.watch(path)] = (hub, port)
        else:
            self._watches[path] = (hub, port)
            self._mtimes[path] = os.stat(path).st_mtime_ns

    # --- the ports -----------------------------------------------------------------------------------
    def lines(self, slot):
        hub, port = self.slot_port[slot]
        return {"power": self.present(hub) and self.ports[(hub, port)], "run": True, "rpiboot": False,
                "eeprom_wp": False}

    def apply(self, slot):
        node = self.nodes.get(slot)
        if node is not None:
            node.apply_lines(self.lines(slot))

    def _present_hubs(self):
        return {hub for hub in self.hubs if self.present(hub)}

    def _settle(self, before):
        """Hubs that lost power or were unplugged vanish; hubs that came back are bound again with every
        port powered (as the kernel does), a stuck one excepted; then every node follows its port."""
        after = self._present_hubs()
        for hub in before - after:
            self._drop_hub(hub)
        for number, hub in enumerate(sorted(self.hubs), 2):
            if hub in after - before:
                for port in range(1, self.hubs[hub] + 1):
                    slot = self.port_slot.get((hub, port))
                    self.ports[(hub, port)] = self.stuck.get(slot, True)
                self._build_hub(number, hub)
        for slot in self.nodes:
            self.apply(slot)

    def _switch(self, where, on):
        before = self._present_hubs()
        self.ports[where] = on
        slot = self.port_slot.get(where)
        named = "" if slot is None else " (slot %d)" % slot
        self.log("usb hub %s: port %s-%d %s%s" % (self.name, where[0], where[1], "on" if on else "off", named))
        self._settle(before)

    def _written(self, hub, port):
        """A port's ``disable`` file was written: follow it, or put back what the port really does."""
        path = self.disable_path(hub, port)
        try:
            with open(path) as handle:
                text = handle.read().strip()
        except OSError:
            return
        where = (hub, port)
        wanted = self.ports[where] if text not in ("0", "1") else text == "0"
        slot = self.port_slot.get(where)
        if slot in self.stuck:
            wanted = self.stuck[slot]
        if wanted != self.ports[where]:
            self._switch(where, wanted)
        if text != ("0" if wanted else "1") and self.present(hub):
            _write(path, "0\n" if wanted else "1\n")
            if self._inotify is None:
                self._mtimes[path] = os.stat(path).st_mtime_ns

    def _on_inotify(self):
        for wd in self._inotify.events():
            where = self._watches.get(wd)
            if where is not None:
                self._written(*where)

    async def _poll(self):
        while True:
            await asyncio.sleep(POLL)
            for path, where in list(self._watches.items()):
                try:
                    mtime = os.stat(path).st_mtime_ns
                except OSError:
                    continue
                if mtime != self._mtimes.get(path):
                    self._mtimes[path] = mtime
                    self._written(*where)

    # --- the emulator protocol -----------------------------------------------------------------------
    async def start(self):
        self._loop = asyncio.get_running_loop()
        try:
            self._inotify = _Inotify()
            self.mechanism = "inotify"
        except (OSError, AttributeError):
            self._inotify, self.mechanism = None, "poll"
        for number, hub in enumerate(sorted(self.hubs), 2):
            if self.present(hub):
                self._build_hub(number, hub)
        if self._inotify is not None:
            self._loop.add_reader(self._inotify.fd, self._on_inotify)
        else:
            self._poller = self._loop.create_task(self._poll())
        for slot in self.nodes:
            self.apply(slot)
        self.log("usb hub %s at %s (%d port(s), %s)" % (self.name, self.root, self.hubs[self.hub], self.mechanism))

    def close(self):
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None
        if self._inotify is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._inotify.fd)
            self._inotify.close()
            self._inotify = None
        self._remove()

    async def wait_closed(self):
        return None

    def snapshot(self):
        return {"path": self.root, "gone": self.gone, "mechanism": self.mechanism,
                "power": {str(slot): self.lines(slot)["power"] for slot in self.slot_port},
                "stuck": {str(s): "on" if on else "off" for s, on in self.stuck.items()},
                "hubs": {hub: {"ports": count, "present": self.present(hub)} for hub, count in self.hubs.items()}}

    # --- faults --------------------------------------------------------------------------------------
    def _slot(self, slot, port, hub):
        if slot is None and port is not None:
            slot = self.port_slot.get((hub or self.hub, port))
            if slot is None:
                raise ValueError("board %s: port %s of hub %s has no slot" % (self.name, port, hub or self.hub))
        if isinstance(slot, bool) or slot not in self.slot_port:
            raise ValueError("board %s has no slot %r (slots: %s)"
                             % (self.name, slot, ", ".join(map(str, sorted(self.slot_port)))))
        return slot

    def _set_stuck(self, slot, level):
        if level is None:
            self.stuck.pop(slot, None)
        elif level in ("on", "off"):
            self.stuck[slot] = level == "on"
        else:
            raise ValueError("stuck %r: on, off or null (none)" % (level,))

    def fault(self, request):
        done = {}
        if "stuck" in request:
            slot = self._slot(request.get("slot"), request.get("port"), request.get("hub"))
            self._set_stuck(slot, request["stuck"])
            where = self.slot_port[slot]
            if slot in self.stuck and self.stuck[slot] != self.ports[where]:  # held from now on
                self._switch(where, self.stuck[slot])
                if self.present(where[0]):
                    _write(self.disable_path(*where), "0\n" if self.ports[where] else "1\n")
            done.update(slot=slot, stuck=request["stuck"])
        if "gone" in request:
            if not isinstance(request["gone"], bool):
                raise ValueError("gone %r: true or false" % (request["gone"],))
            before = self._present_hubs()
            self.gone = request["gone"]
            self._settle(before)
            done["gone"] = self.gone
        if not done:
            raise ValueError("a usb_hub fault needs slot (or port) + stuck, or gone")
        return done
