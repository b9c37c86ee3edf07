# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Getting from a node in its slot to its storage as a disk on the controller, and back.

Real hardware: the node is held in USB boot (nRPIBOOT low) and powered through the board (the
same library call as ``node_power usb_boot=true``), ``rpiboot -d <mass-storage gadget> -p <port>``
serves its boot ROM the mass-storage gadget, and a few seconds later its eMMC appears as a SCSI
disk under that USB port. The simulator does the same through ``<state>/usb.sock`` (op
``rpiboot``), its disk in a sysfs-shaped tree under its state directory (docs/internals.md, Flash).
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time

from ansible_collections.picluster.carrier.plugins.module_utils import _command
from ansible_collections.picluster.carrier.plugins.module_utils._bus import parse_bus_spec
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._flash import device as _device
from ansible_collections.picluster.carrier.plugins.module_utils._power import PowerRequest, execute

DEFAULT_GADGET_DIR = "/usr/share/rpiboot/mass-storage-gadget64"
DEFAULT_RPIBOOT = "rpiboot"


class UsbBootError(CarrierError):
    """The node could not be put into USB boot, served, or its disk did not appear."""


class Access(object):
    """Where a board's nodes' disks appear: the real /sys and /dev, or a simulator's state directory."""

    def __init__(self, bus_spec, rpiboot_command=DEFAULT_RPIBOOT, gadget_dir=DEFAULT_GADGET_DIR, runner=None):
        kind, where = ("bmc", None)
        if not (isinstance(bus_spec, str) and bus_spec.startswith(("http://", "https://"))):
            kind, where = parse_bus_spec(bus_spec)
        self.sim_root = os.path.dirname(where) if kind == "sim" else None
        self.sys_root = os.path.join(self.sim_root, "sys") if self.sim_root else "/sys"
        self.dev_root = os.path.join(self.sim_root, "dev") if self.sim_root else "/dev"
        self.rpiboot_command = rpiboot_command
        self.gadget_dir = gadget_dir
        # run(argv, timeout) -> (rc, out, err), the exit codes of _command.timed_runner
        self.runner = runner

    def disks(self, usb_port):
        return _device.disks_on_port(self.sys_root, self.dev_root, usb_port)

    def rpiboot(self, usb_port, timeout, storage="emmc"):
        """Serve the mass-storage gadget to the boot ROM waiting on ``usb_port``; the simulator's answer
        (``device``: the disk of ``storage``), or None from the real rpiboot."""
        if self.sim_root:
            return _sim_rpiboot(os.path.join(self.sim_root, "usb.sock"), usb_port, timeout, storage)
        if not os.path.isdir(self.gadget_dir):
            raise UsbBootError("gadget_dir: %s is not a directory: install Raspberry Pi's usbboot (its "
                               "mass-storage-gadget64 directory) on the controller, or set gadget_dir"
                               % self.gadget_dir)
        argv = [self.rpiboot_command, "-d", self.gadget_dir, "-p", usb_port]
        if self.runner is None:
            raise UsbBootError("rpiboot_command: no command runner to start %s (Access(runner=...))" % argv[0])
        rc, out, err = self.runner(argv, timeout)
        if rc == _command.NOT_FOUND or rc == _command.CANNOT_RUN:
            raise UsbBootError("rpiboot_command: %s is not installed: build Raspberry Pi's usbboot "
                               "(https://github.com/raspberrypi/usbboot) or install its package, or set rpiboot_command"
                               % argv[0])
        if rc == _command.TIMED_OUT:
            raise UsbBootError("usb_port: %s found no node in USB boot mode within %g s" % (" ".join(argv), timeout))
        if rc != 0:
            raise UsbBootError("usb_port: %s exited %s serving the node on USB port %s: %s"
                               % (" ".join(argv), rc, usb_port, (err or out or "").strip()[-500:]))
        return None

    def wait_for_disk(self, usb_port, timeout, sleep=time.sleep, clock=time.monotonic):
        """The disks (with a medium) that appear on ``usb_port`` within ``timeout`` seconds."""
        deadline = clock() + timeout
        while True:
            disks = [d for d in self.disks(usb_port) if d.size > 0]
            if disks:
                return disks
            if clock() >= deadline:
                raise UsbBootError("usb_port: no disk appeared on USB port %s within %g s (is the node's USB-boot "
                                   "port cabled to that port?)" % (usb_port, timeout))
            sleep(0.2)


def _sim_rpiboot(path, usb_port, timeout, storage="emmc"):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
        request = {"op": "rpiboot", "port": usb_port, "target": storage}
        sock.sendall(json.dumps(request).encode("ascii") + b"\n")
        line = sock.makefile("rb").readline()
    except socket.timeout:
        raise UsbBootError("usb_port: the simulator's USB host %s did not answer rpiboot for port %s within %g s"
                           % (path, usb_port, timeout)) from None
    except OSError as exc:
        raise UsbBootError("usb_port: cannot reach the simulator's USB host %s: %s" % (path, exc.strerror or exc)
                           ) from None
    finally:
        sock.close()
    try:
        reply = json.loads(line)
    except ValueError:
        raise UsbBootError("usb_port: the simulator's USB host %s answered %r" % (path, line[:200])) from None
    if "errno" in reply:
        code = reply.get("errno")
        hint = {errno.ENODEV: "the node is not powered with nRPIBOOT held (not in USB boot mode)",
                errno.EBUSY: "rpiboot is already running for that port"}.get(code, "")
        suffix = " (%s)" % hint if hint else ""
        raise UsbBootError("usb_port: rpiboot on port %s: %s%s" % (usb_port, reply.get("error"), suffix))
    return reply.get("value")


def hold_in_usb_boot(board, slot, force=False, sleep=time.sleep):
    """Power the node with nRPIBOOT held (a running node is reset into USB boot)."""
    if "rpiboot" not in board.profile.lines(slot) and board.profile.kind != "turingpi2":
        raise UsbBootError("slot: slot %d of board %s (profile %s) has no rpiboot line, so the node cannot be put into "
                           "USB boot mode from here: hold its nRPIBOOT by hand (jumper), power it, and set "
                           "power_control=false" % (slot, board.name, board.profile.name))
    return execute(PowerRequest(board, slot, "on", usb_boot=True, force=force), sleep=sleep)


def release(board, slot, boot, force=False, sleep=time.sleep):
    """Release nRPIBOOT; the node is left off, or with ``boot`` started from its storage."""
    if boot:
        return execute(PowerRequest(board, slot, "on", usb_boot=False, force=force), sleep=sleep)
    result = execute(PowerRequest(board, slot, "off", force=force), sleep=sleep)
    if "rpiboot" in board.profile.lines(slot):
        board.set_lines({slot: {"rpiboot": False}})
    return result
