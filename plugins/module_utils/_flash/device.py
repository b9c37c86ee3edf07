# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Finding the node's storage on the controller, and refusing any device that is not safe to write.

A USB disk's sysfs node resolves under the USB device it came from, e.g. ``realpath
/sys/block/sda`` = ``/sys/devices/.../usb1/1-1/1-1.3/1-1.3:1.0/host0/target0:0:0/0:0:0:0/block/sda``:
the disk is on port ``1-1.3`` when a path component is ``1-1.3`` and the next one is one of its
interfaces (``1-1.3:1.0``); a disk of a hub further down (``1-1.3.2``) is not. The same reading
serves the simulator, whose tree has the kernel's shape under its state directory (``sys_root`` and
``dev_root`` are then ``<state>/sys`` and ``<state>/dev``).

Vetting (:func:`vet`), before anything is written: on that port; a block device whose numbers are
the sysfs entry's (the simulator's device is a link to the node's backing file, under its state
directory); not read-only; neither it nor a partition of it mounted (``/proc/self/mountinfo``) or
used as swap; not the disk holding the controller's root file system; not smaller than the image.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError

SECTOR = 512


class DeviceError(CarrierError):
    """No device, or a device that must not be written."""


@dataclass(frozen=True)
class Disk:
    name: str           # sda
    sys_path: str       # realpath of <sys_root>/block/<name>
    dev_path: str       # <dev_root>/<name>
    size: int           # bytes
    read_only: bool
    numbers: str | None  # "8:0" (None in a tree without dev files)
    partitions: tuple   # (name, numbers) of its partitions


def _read(path, default=None):
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return default


def on_port(sys_path, usb_port):
    """Whether a resolved sysfs path lies under an interface of the USB device on ``usb_port``."""
    parts = sys_path.split(os.sep)
    return any(a == usb_port and b.startswith(usb_port + ":") for a, b in zip(parts, parts[1:]))


def read_disk(sys_root, dev_root, name):
    link = os.path.join(sys_root, "block", name)
    sys_path = os.path.realpath(link)
    size = _read(os.path.join(sys_path, "size"))
    try:
        sectors = int(size)
    except (TypeError, ValueError):
        sectors = 0
    partitions = []
    try:
        entries = sorted(os.listdir(sys_path))
    except OSError:
        entries = []
    for entry in entries:
        if entry.startswith(name) and os.path.exists(os.path.join(sys_path, entry, "partition")):
            partitions.append((entry, _read(os.path.join(sys_path, entry, "dev"))))
    return Disk(name, sys_path, os.path.join(dev_root, name), sectors * SECTOR,
                _read(os.path.join(sys_path, "ro"), "0") == "1", _read(os.path.join(sys_path, "dev")),
                tuple(partitions))


def lun(disk):
    """The SCSI logical unit of a USB disk (``0:0:0:1`` -> 1): the mass-storage gadget exposes the eMMC as
    LUN 0 and an NVMe disk after it."""
    for part in reversed(disk.sys_path.split(os.sep)):
        fields = part.split(":")
        if len(fields) == 4 and all(f.isdigit() for f in fields):
            return int(fields[3])
    return 0


def disks_on_port(sys_root, dev_root, usb_port):
    """The whole disks whose sysfs node is under ``usb_port``, by name."""
    block = os.path.join(sys_root, "block")
    try:
        names = sorted(os.listdir(block))
    except OSError:
        return []
    found = []
    for name in names:
        if on_port(os.path.realpath(os.path.join(block, name)), usb_port):
            found.append(read_disk(sys_root, dev_root, name))
    return found


def _mounts(mountinfo):
    """(device numbers, mount source, mount point) of every mount."""
    out = []
    try:
        with open(mountinfo) as handle:
            for line in handle:
                fields = line.split()
                if len(fields) < 10 or "-" not in fields:
                    continue
                dash = fields.index("-")
                out.append((fields[2], fields[dash + 2] if len(fields) > dash + 2 else "", fields[4]))
    except OSError:
        pass
    return out


def _swaps(swaps):
    try:
        with open(swaps) as handle:
            return [line.split()[0] for line in handle.readlines()[1:] if line.split()]
    except OSError:
        return []


def root_disk_numbers(mountinfo="/proc/self/mountinfo", sys_root="/sys"):
    """The device numbers (``8:0``) of the disk holding ``/``, and of the root partition itself."""
    numbers = set()
    for dev, _source, point in _mounts(mountinfo):
        if point == "/":
            numbers.add(dev)
            real = os.path.realpath(os.path.join(sys_root, "dev", "block", dev))
            if os.path.exists(os.path.join(real, "partition")):
                parent = _read(os.path.join(os.path.dirname(real), "dev"))
                if parent:
                    numbers.add(parent)
    return numbers


def vet(disk, usb_port, image_size, field="usb_port", sim_root=None, mountinfo="/proc/self/mountinfo",
        swaps="/proc/swaps", real_sys_root="/sys"):
    """Raise a DeviceError naming ``field`` unless ``disk`` is safe to write an ``image_size``-byte image to."""
    where = "%s: %s (%s)" % (field, usb_port, disk.dev_path)
    if not on_port(disk.sys_path, usb_port):
        raise DeviceError("%s is not on USB port %s: its sysfs node is %s" % (where, usb_port, disk.sys_path))
    try:
        st = os.stat(disk.dev_path)
    except OSError as exc:
        raise DeviceError("%s: the device node is missing: %s" % (where, exc.strerror or exc)) from None
    if sim_root is None:
        if not stat.S_ISBLK(st.st_mode):
            raise DeviceError("%s is not a block device" % where)
        if disk.numbers and "%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev)) != disk.numbers:
            raise DeviceError("%s: the device node is %d:%d but sysfs says %s (a stale node?)"
                              % (where, os.major(st.st_rdev), os.minor(st.st_rdev), disk.numbers))
    else:
        target = os.path.realpath(disk.dev_path)
        if not stat.S_ISREG(st.st_mode) or not target.startswith(os.path.realpath(sim_root) + os.sep):
            raise DeviceError("%s: a simulated disk must be a file under the simulator's state directory %s, not %s"
                              % (where, sim_root, target))
    if disk.read_only:
        raise DeviceError("%s is read-only" % where)
    own = set()
    if sim_root is None:  # a simulated disk's numbers are made up: only its paths can be mounted
        own = {disk.numbers} | {n for _name, n in disk.partitions}
        own.discard(None)
    paths = {os.path.realpath(disk.dev_path)}
    paths |= {os.path.realpath(os.path.join(os.path.dirname(disk.dev_path), p)) for p, _numbers in disk.partitions}
    for dev, source, point in _mounts(mountinfo):
        if dev in own or (source.startswith("/") and os.path.realpath(source) in paths):
            raise DeviceError("%s (or a partition of it) is mounted on %s: unmount it first" % (where, point))
    for used in _swaps(swaps):
        if os.path.realpath(used) in paths:
            raise DeviceError("%s (or a partition of it) is in use as swap (%s)" % (where, used))
    if sim_root is None and disk.numbers and disk.numbers in root_disk_numbers(mountinfo, real_sys_root):
        raise DeviceError("%s holds the controller's own root file system" % where)
    if disk.size <= 0:
        raise DeviceError("%s reports no size (no medium?)" % where)
    if image_size is not None and image_size > disk.size:
        raise DeviceError("image: the image is %d bytes, larger than the node's storage %s (%d bytes)"
                          % (image_size, disk.dev_path, disk.size))
