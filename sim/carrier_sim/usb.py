# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The controller's USB host as the simulator plays it: rpiboot and the mass-storage gadget.

On hardware, a CM4/CM5 powered with nRPIBOOT held enumerates as a Broadcom boot-ROM device on the
controller's USB port; ``rpiboot -d mass-storage-gadget64 -p <port>`` sends it the gadget, which
boots (a few seconds) and exposes the module's eMMC (and an NVMe disk behind it, as a second LUN) as
a USB disk: /dev/sdX, whose sysfs node sits under that port. Power-off or reset takes the disk away.

Here the controller-side tool's work is a request on ``<dir>/usb.sock`` (``<dir>``: the directory of
the boards' ``sim:`` bus sockets), newline-delimited JSON as on the bus socket:

- ``{"op": "rpiboot", "port": "1-1.3"}`` (optional ``"target": "emmc"|"nvme"``) ->
  ``{"value": {"device": "sda", "size": <bytes>, "devices": [...]}}`` after the gadget's boot time,
  or ``{"errno": 19, ...}`` (ENODEV: nothing in USB-boot mode on that port, or no storage rpiboot can
  reach) or ``{"errno": 16, ...}`` (EBUSY: rpiboot already running for that port);
- ``{"op": "list"}`` -> every disk the gadgets expose.

The disks appear as the kernel shows them, under ``<dir>/sys`` and ``<dir>/dev`` (see
:meth:`UsbHost._attach`); the device node is a symlink to the node's backing file
``<state>/nodes/<host>/emmc.img`` (``nvme.img``), a sparse file of the module's size, served at the
speed of eMMC over USB 2.0 (``sim.usb_rate`` MB/s of the slot or the board, default 30) through
:mod:`pacing` where nbdkit, nbdfuse and /dev/fuse are there; ``usb_rate: 0``, or a machine without
them, links the backing file itself (unpaced).
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import re
import shutil
import string

from . import pacing, storage

GIB = 1024 ** 3
DEFAULT_EMMC_GB = 32
# eMMC sizes sold per model (GB); 0 is the Lite module (no eMMC: its SD slot is on the carrier).
EMMC_SIZES = {"cm4": (0, 8, 16, 32), "cm4s": (0, 8, 16, 32), "cm3": (0, 8, 16, 32), "cm5": (0, 16, 32, 64)}
NVME_MODELS = ("cm4", "cm5", "pi5")  # a PCIe lane an NVMe disk can sit on
DEFAULT_USB_RATE = 30.0  # MB/s: eMMC behind the gadget on USB 2.0 (480 Mbit/s less the protocol's share)
DEFAULT_GADGET_TIME = 2.0  # seconds from rpiboot to the disk (a real mass-storage-gadget64 takes ~5 s)
PORT_RE = re.compile(r"^[0-9]+-[0-9]+(\.[0-9]+)*$")
VENDOR, PRODUCT = "Linux   ", "File-Stor Gadget"  # what Linux's f_mass_storage reports over SCSI


def node_media(model, sim):
    """``{"emmc": bytes or None, "nvme": bytes or None}`` from a slot's ``sim.emmc_gb``/``sim.nvme_gb``.
    Raises ValueError naming the field for a size the model is not sold with."""
    sim = sim or {}
    sizes = EMMC_SIZES.get(model)
    emmc = sim.get("emmc_gb")
    if sizes is None:
        if emmc not in (None, 0):
            raise ValueError("sim.emmc_gb: %r: a %s has no eMMC (an SD card slot)" % (emmc, model))
        emmc_bytes = None
    else:
        if emmc is None:
            emmc = DEFAULT_EMMC_GB
        if isinstance(emmc, bool) or emmc not in sizes:
            raise ValueError("sim.emmc_gb: %r is not an eMMC size of a %s (%s; 0 for a Lite module)"
                             % (emmc, model, ", ".join(str(s) for s in sizes[1:])))
        emmc_bytes = emmc * GIB or None
    nvme = sim.get("nvme_gb")
    if nvme is not None:
        if isinstance(nvme, bool) or not isinstance(nvme, int) or not 1 <= nvme <= 16384:
            raise ValueError("sim.nvme_gb: %r is not a disk size in GB (1-16384)" % (nvme,))
        if model not in NVME_MODELS:
            raise ValueError("sim.nvme_gb: a %s has no PCIe for an NVMe disk (%s do)" % (model, ", ".join(NVME_MODELS)))
    return {"emmc": emmc_bytes, "nvme": nvme * GIB if nvme else None}


def create_backing(directory, media):
    """The sparse backing files in ``directory``: ``{"emmc": path, "nvme": path}`` for the media present."""
    paths = {}
    for kind, size in media.items():
        if not size:
            continue
        path = os.path.join(directory, "%s.img" % kind)
        with open(path, "ab") as f:
            f.truncate(size)
        paths[kind] = path
    return paths


def _partition_files(block, name, minor, image):
    """The partitions the kernel lists under the disk (``sda1/`` with dev, partition, start, size) when the
    disk already holds a partition table, as it reads one when the disk appears."""
    try:
        with open(image, "rb") as f:
            _scheme, _header, parts = storage.partitions(f)
    except (storage.StorageError, OSError):
        return {}
    files = {}
    for number, part in enumerate(sorted(parts, key=lambda p: p.index), 1):
        entry = os.path.join(block, "%s%d" % (name, number))
        files.update({os.path.join(entry, "dev"): "8:%d\n" % (minor + number),
                      os.path.join(entry, "partition"): "%d\n" % number,
                      os.path.join(entry, "start"): "%d\n" % part.start,
                      os.path.join(entry, "size"): "%d\n" % part.sectors})
    return files


class Disk:
    def __init__(self, name, node, kind, host_no, lun, port_dir):
        self.name = name
        self.node = node
        self.kind = kind
        self.host_no = host_no
        self.lun = lun
        self.port_dir = port_dir  # sys/devices/.../usb1/<port>: the USB device, gone with the gadget
        self.size = node.storage[kind]
        self.target = node.storage_files[kind]  # what <dir>/dev/<name> links to: the backing or the paced file
        self.paced = None  # a pacing.PacedDisk while one serves the disk

    def describe(self):
        return {"device": self.name, "size": self.size, "media": self.kind, "lun": self.lun,
                "host": self.node.host, "port": self.node.spec.usb_port, "file": self.node.storage_files[self.kind],
                "rate_mbps": self.paced.rate if self.paced else 0}


class UsbHost:
    """The USB host of one directory of bus sockets: its nodes by port, the disks, the sysfs tree."""

    def __init__(self, directory, nodes, gadget_time=None, log=None, usb_rate=None, board_rates=None):
        """``usb_rate``: MB/s of the disks (default 30, 0 unpaced); ``board_rates``: a board's own
        ``sim.usb_rate`` by board name; a slot's ``sim.usb_rate`` wins over both."""
        self.dir = directory
        self.path = os.path.join(directory, "usb.sock")
        self.sys = os.path.join(directory, "sys")
        self.dev = os.path.join(directory, "dev")
        self.gadget_time = DEFAULT_GADGET_TIME if gadget_time is None else float(gadget_time)
        self.log = log or (lambda msg: None)
        self.ports = {}  # port -> Node
        self.disks = {}  # "sda" -> Disk
        self.pending = {}  # port -> the node rpiboot is serving
        self.aborted = set()
        self.made = []  # directories this host created (removed at close when empty)
        self.usb_rate = pacing.check_rate(DEFAULT_USB_RATE if usb_rate is None else usb_rate, "sim.usb_rate")
        self.rates = {}  # host -> MB/s
        self.unpaced_said = False
        for node in nodes:
            port = getattr(node.spec, "usb_port", None)
            if not port:
                continue
            if port in self.ports:
                raise ValueError("usb_port %s: both %s and %s are on it (one USB port per node)"
                                 % (port, self.ports[port].host, node.host))
            self.ports[port] = node
            node.on_stop.append(self.released)
            self.rates[node.host] = self._rate(node, board_rates or {})

    def _rate(self, node, board_rates):
        sim = node.spec.sim or {}
        if "usb_rate" in sim:
            return pacing.check_rate(sim["usb_rate"], "slots.%s.sim.usb_rate" % node.slot)
        if board_rates.get(node.board) is not None:
            return pacing.check_rate(board_rates[node.board], "boards.%s.sim.usb_rate" % node.board)
        return self.usb_rate

    # --- requests ----------------------------------------------------------------------------------------
    async def client(self, reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    request = json.loads(line)
                    reply = await self.handle(request)
                except ValueError:
                    reply = {"errno": errno.EINVAL, "error": "not a JSON request: %r" % line[:80]}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def handle(self, request):
        if not isinstance(request, dict):
            return {"errno": errno.EINVAL, "error": "a request is a JSON object with an op"}
        op = request.get("op")
        if op == "list":
            return {"value": [d.describe() for d in sorted(self.disks.values(), key=lambda d: d.name)]}
        if op != "rpiboot":
            return {"errno": errno.EINVAL, "error": "unknown op %r (rpiboot, list)" % (op,)}
        return await self.rpiboot(request.get("port"), request.get("target", "emmc"))

    async def rpiboot(self, port, target="emmc"):
        """Serve the mass-storage gadget to the node on ``port``; the disks once it has booted."""
        if not isinstance(port, str) or not PORT_RE.match(port):
            return {"errno": errno.EINVAL, "error": "port %r is not a USB port path such as 1-1.3" % (port,)}
        if target not in ("emmc", "nvme"):
            return {"errno": errno.EINVAL, "error": "target %r: emmc or nvme" % (target,)}
        if port in self.pending:
            return {"errno": errno.EBUSY, "error": "rpiboot is already running for port %s (%s)"
                    % (port, self.pending[port].host)}
        node = self.ports.get(port)
        if node is None:
            return {"errno": errno.ENODEV, "error": "no device in USB boot mode on port %s (no node is cabled to it)"
                    % port}
        if node.state != "rpiboot":
            extra = ""
            if node.state == "mass_storage":
                extra = ": it already runs the mass-storage gadget (%s)" % ", ".join(self.names(node))
            return {"errno": errno.ENODEV, "error": "no device in USB boot mode on port %s (%s is %s%s)"
                    % (port, node.host, node.state, extra)}
        kinds = [k for k in ("emmc", "nvme") if node.storage.get(k)]
        if not kinds:
            return {"errno": errno.ENODEV, "error": "%s on port %s (%s) has no eMMC or NVMe for the mass-storage "
                    "gadget to expose (an SD card is not reachable by rpiboot)" % (node.host, port, node.model)}
        if target not in kinds:
            return {"errno": errno.ENODEV, "error": "%s on port %s (%s) has no %s"
                    % (node.host, port, node.model, "NVMe disk" if target == "nvme" else "eMMC")}
        self.pending[port] = node
        self.aborted.discard(port)
        try:
            await asyncio.sleep(self.gadget_time)
            if port in self.aborted or node.state != "rpiboot":
                return {"errno": errno.ENODEV, "error": "%s on port %s went away while the gadget booted (%s)"
                        % (node.host, port, node.state)}
            try:
                disks = self._attach(node, kinds)
                await self._pace(node, disks)
            except OSError as exc:
                self.released(node)  # what was made of the tree goes again
                return {"errno": exc.errno or errno.EIO, "error": "port %s: the disk could not be exposed: %s"
                        % (port, exc)}
            if port in self.aborted or node.state != "rpiboot":  # powered off while the paced disks mounted
                self.released(node)
                return {"errno": errno.ENODEV, "error": "%s on port %s went away while the gadget booted (%s)"
                        % (node.host, port, node.state)}
        finally:
            self.pending.pop(port, None)
        node.usb_devices = [d.describe() for d in disks]
        node.set_state("mass_storage")
        self.log("rpiboot %s: %s" % (port, ", ".join(d.name for d in disks)))
        chosen = [d for d in disks if d.kind == target][0]
        return {"value": {"device": chosen.name, "size": chosen.size, "devices": [d.describe() for d in disks]}}

    async def _pace(self, node, disks):
        """Serve each disk through a paced file (pacing.py) and point its /dev link there; a machine
        without the tools keeps the backing file, said once in the log."""
        rate = self.rates.get(node.host, self.usb_rate)
        if not rate:
            return
        why = pacing.unavailable()
        if why:
            if not self.unpaced_said:
                self.log("usb: disks unpaced (sim.usb_rate %g MB/s asked): %s" % (rate, why))
                self.unpaced_said = True
            return
        for disk in disks:
            paced = pacing.PacedDisk(self.dir, disk.name, disk.target, rate)
            try:
                await paced.start()
            except OSError as exc:
                self.log("usb %s: %s unpaced: %s" % (node.spec.usb_port, disk.name, exc))
                continue
            if self.disks.get(disk.name) is not disk:  # the node went away while it mounted
                paced.stop()
                continue
            link = os.path.join(self.dev, disk.name)
            tmp = link + ".paced"
            try:
                os.symlink(paced.path, tmp)
                os.replace(tmp, link)
            except OSError:
                paced.stop()
                raise
            disk.paced, disk.target = paced, paced.path
            self.log("usb %s: %s paced at %g MB/s (%s)" % (node.spec.usb_port, disk.name, rate, paced.path))

    def names(self, node):
        return sorted(d.name for d in self.disks.values() if d.node is node)

    # --- the kernel's view ----------------------------------------------------------------------------
    def _free_name(self):
        for c in string.ascii_lowercase:
            if "sd" + c not in self.disks:
                return "sd" + c
        raise OSError(errno.ENOSPC, "no free sd name")

    def _free_host(self):
        used = {d.host_no for d in self.disks.values()}
        n = 0
        while n in used:
            n += 1
        return n

    def _attach(self, node, kinds):
        port = node.spec.usb_port
        host_no = self._free_host()
        bus = port.split("-", 1)[0]
        iface = os.path.join(self.sys, "devices", "platform", "sim-xhci", "usb" + bus, port, port + ":1.0")
        target = os.path.join(iface, "host%d" % host_no, "target%d:0:0" % host_no)
        disks = []
        for lun, kind in enumerate(kinds):
            name = self._free_name()
            scsi = os.path.join(target, "%d:0:0:%d" % (host_no, lun))
            block = os.path.join(scsi, "block", name)
            os.makedirs(block)
            disk = Disk(name, node, kind, host_no, lun, os.path.dirname(iface))
            self.disks[name] = disk  # from here on, released() undoes what a failure leaves
            size = node.storage[kind]
            minor = 16 * (ord(name[2]) - ord("a"))
            uevent = "MAJOR=8\nMINOR=%d\nDEVNAME=%s\nDEVTYPE=disk\n" % (minor, name)
            files = {os.path.join(block, "size"): "%d\n" % (size // 512), os.path.join(block, "ro"): "0\n",
                     os.path.join(block, "removable"): "1\n", os.path.join(block, "dev"): "8:%d\n" % minor,
                     os.path.join(block, "uevent"): uevent,
                     os.path.join(scsi, "vendor"): VENDOR + "\n", os.path.join(scsi, "model"): PRODUCT + "\n"}
            files.update(_partition_files(block, name, minor, node.storage_files[kind]))
            for path, text in files.items():
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "w") as f:
                    f.write(text)
            for directory in (os.path.join(self.sys, "block"), self.dev):
                if not os.path.isdir(directory):
                    os.makedirs(directory)
                    self.made.append(directory)
            link = os.path.join(self.sys, "block", name)
            os.symlink(os.path.relpath(block, os.path.dirname(link)), link)
            os.symlink(node.storage_files[kind], os.path.join(self.dev, name))
            disks.append(disk)
        return disks

    def released(self, node):
        """The node was powered off or reset: the gadget is gone, and its disks with it."""
        port = node.spec.usb_port
        if port in self.pending:
            self.aborted.add(port)
        gone = [d for d in self.disks.values() if d.node is node]
        for disk in gone:
            block = os.path.join(self.sys, "block", disk.name)
            if os.path.islink(block) and "/sim-xhci/" in os.readlink(block):
                os.unlink(block)
            dev = os.path.join(self.dev, disk.name)  # only our link: a failed attach may have met another one
            if os.path.islink(dev) and os.readlink(dev) == disk.target:
                os.unlink(dev)
            if disk.paced is not None:
                disk.paced.stop()
                disk.paced = None
            del self.disks[disk.name]
        node.usb_devices = []
        if gone:
            shutil.rmtree(gone[0].port_dir, ignore_errors=True)
            self.log("usb %s: %s removed" % (port, ", ".join(d.name for d in gone)))

    def clear_stale(self):
        """Remove the gadget disks a killed simulator left in this directory (called once usb.sock is ours)."""
        shutil.rmtree(os.path.join(self.sys, "devices", "platform", "sim-xhci"), ignore_errors=True)
        for folder in (os.path.join(self.sys, "block"), self.dev):
            for name in (os.listdir(folder) if os.path.isdir(folder) else ()):
                if name.startswith("sd") and os.path.islink(os.path.join(folder, name)):
                    os.unlink(os.path.join(folder, name))
        pacing.clear_stale(self.dir)

    def close(self):
        for node in {d.node for d in self.disks.values()}:
            self.released(node)
        shutil.rmtree(os.path.join(self.sys, "devices", "platform", "sim-xhci"), ignore_errors=True)
        pacing.remove_root(self.dir)
        for path in (os.path.join(self.sys, "devices", "platform"), os.path.join(self.sys, "devices"),
                     *reversed(self.made), self.sys):
            try:
                os.rmdir(path)
            except OSError:
                pass
