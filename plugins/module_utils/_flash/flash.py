# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The whole flash of one node, as ``node_flash`` runs it.

Order, so that nothing is touched before every input is known good and nothing reads as done
before it is: check every option (:class:`FlashRequest`); take the node's flash lock; hash the
image file (refused on a ``sha256`` mismatch: nothing written); compare with the record (same:
unchanged, the node is not touched); learn the uncompressed size (bmap, xz index, or a streaming
pass, which also proves a gzip/zstd stream whole before the node is touched); hold the node in
USB boot and serve it rpiboot; wait for its disk on its USB port; vet the disk; remove the record;
write; verify by read-back; write the first-boot files (read back too); save the record; release
the node (off, or booted with ``boot``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import time

from ansible_collections.picluster.carrier.plugins.module_utils import _firstboot
from ansible_collections.picluster.carrier.plugins.module_utils._bus import file_lock, lock_directory
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._flash import bmap as _bmap
from ansible_collections.picluster.carrier.plugins.module_utils._flash import device as _device
from ansible_collections.picluster.carrier.plugins.module_utils._flash import source as _source
from ansible_collections.picluster.carrier.plugins.module_utils._flash import state as _state
from ansible_collections.picluster.carrier.plugins.module_utils._flash import turingpi as _turingpi
from ansible_collections.picluster.carrier.plugins.module_utils._flash import usb as _usb
from ansible_collections.picluster.carrier.plugins.module_utils._flash import write as _write
from ansible_collections.picluster.carrier.plugins.module_utils._topology import USB_PORT_RE
from ansible_collections.picluster.carrier.plugins.module_utils._values import check_name, check_number

STORAGES = ("emmc", "nvme")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
LOCK_WAIT = 5.0


class FlashRequest(object):
    """What the user asked for, every value checked before anything is read from the node."""

    def __init__(self, host, image, slot, usb_port=None, sha256=None, bmap=None, customize=None, device=None,
                 storage="emmc", boot=False, force=False, power_control=True, timeout=120.0, state_dir=None,
                 progress_interval=10.0, is_bmc=False, max_parallel=0):
        self.host = check_name(host, "host", what="host name")
        if not isinstance(image, str) or not image:
            raise CarrierError("image: a path is required, got %r" % (image,))
        self.source = _source.ImageSource(image)
        self.image = image
        if sha256 is not None:
            text = str(sha256).strip().lower()
            text = text.split()[0] if text else text  # the first word of a sha256sum line
            if not _SHA256_RE.match(text):
                raise CarrierError("sha256: %r is not a SHA-256 (64 hex digits)" % (sha256,))
            sha256 = text
        self.sha256 = sha256
        self.bmap_path = bmap
        self.bmap = _bmap.parse(bmap) if bmap else None
        self.customization = _firstboot.check_customize(customize) if customize else None
        if is_bmc:
            usb_port = None
        elif not isinstance(usb_port, str) or not USB_PORT_RE.fullmatch(usb_port):
            raise CarrierError("usb_port: %r is not a USB port path as the kernel names it under /sys/bus/usb/devices "
                               "(for example 1-1.3); set the slot's usb_port in the topology" % (usb_port,))
        self.usb_port = usb_port
        self.slot = int(check_number(slot, "slot", 1, 999, integer=True, allow_none=False))
        if storage not in STORAGES:
            raise CarrierError("storage: %r is not one of %s" % (storage, ", ".join(STORAGES)))
        self.storage = storage
        self.device = device
        self.boot = bool(boot)
        self.force = bool(force)
        self.power_control = bool(power_control)
        self.timeout = float(check_number(timeout, "timeout", 1, 3600, allow_none=False))
        self.progress_interval = float(check_number(progress_interval, "progress_interval", 0.1, 3600,
                                                    allow_none=False))
        self.max_parallel = int(check_number(max_parallel, "max_parallel", 0, 64, integer=True, allow_none=False))
        self.state_dir = state_dir or _state.DEFAULT_STATE_DIR
        self.record_path = _state.record_path(self.state_dir, self.host)
        self.progress_path = os.path.join(self.state_dir, self.host + ".progress")

    def wanted(self, board, image_sha256):
        return {
            "image_sha256": image_sha256,
            "bmap_sha256": _source.file_sha256(self.bmap_path, "bmap") if self.bmap_path else None,
            "customize_fingerprint": _firstboot.fingerprint(self.customization) if self.customization else None,
            "board": board.name, "slot": self.slot, "usb_port": self.usb_port, "storage": self.storage,
        }


def image_sha256(req, record):
    """The image file's SHA-256 (from the record when the file is the one hashed then); a mismatch
    with ``sha256`` is refused here, before anything is touched."""
    known = _state.known_sha256(record, req.image)
    digest = known or _source.file_sha256(req.image)
    if req.sha256 and digest != req.sha256:
        raise CarrierError("sha256: %s has SHA-256 %s, not %s: nothing was written" % (req.image, digest, req.sha256))
    return digest


def _describe(record):
    if not record:
        return "no verified flash recorded\n"
    return "image %s (sha256 %s), customize %s, flashed %s\n" % (
        record.get("image"), record.get("image_sha256"), record.get("customize_fingerprint") or "none",
        record.get("flashed_at"))


def run(req, board, access=None, check_mode=False, sleep=time.sleep, flasher=None):
    """Flash the node (or, in check mode, say what would be written). Returns the module's result."""
    access = access or _usb.Access(board.bus_spec)
    lock_path = os.path.join(lock_directory(board.lock_dir), "flash-%s.lock" % req.host)
    try:
        lock = file_lock(lock_path, timeout=LOCK_WAIT)
        lock.__enter__()
    except CarrierError:
        raise CarrierError("host: %s is being flashed by another task (lock %s held)" % (req.host, lock_path)) from None
    try:
        record = _state.load(req.record_path)
        digest = image_sha256(req, record)
        wanted = req.wanted(board, digest)
        result = {"host": req.host, "image": req.image, "image_sha256": digest, "record": req.record_path,
                  "compression": req.source.compression, "bmap": bool(req.bmap), "storage": req.storage}
        before = _describe(record)
        if not req.force and _state.matches(record, wanted):
            result.update(changed=False, image_size=record.get("image_size"), written=0, device=record.get("device"),
                          msg="already flashed with this image and customisation (%s)" % record.get("flashed_at"),
                          diff={"before": before, "after": before})
            return result
        size = req.bmap.image_size if req.bmap else req.source.declared_size()
        after = "image %s (sha256 %s), customize %s, flashed now\n" % (
            req.image, digest, wanted["customize_fingerprint"] or "none")
        result["diff"] = {"before": before, "after": after}
        if check_mode:
            result.update(changed=True, image_size=size, written=0, msg="would write %s" % req.image)
            return result
        if size is None:
            size = req.source.measure()
        if flasher is None:
            flasher = _turingpi.flash_bmc if board.profile.kind == "turingpi2" else flash_usb
        with parallel_slot(board.lock_dir, req.max_parallel, req.timeout * 30, sleep):
            result.update(flasher(req, board, access, size, wanted, sleep))
        result.update(changed=True, image_size=size)
        return result
    finally:
        lock.__exit__(None, None, None)


def _try_lock(path):
    """An fd holding an exclusive flock on ``path``, or None when another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return None
        raise
    return fd


@contextlib.contextmanager
def parallel_slot(lock_dir, count, timeout, sleep=time.sleep, clock=time.monotonic):
    """One of ``count`` flash slots of this controller (lock files beside the bus locks); 0: no limit.
    Waits while ``count`` flashes run, so a play over many nodes writes ``count`` at a time."""
    if not count:
        yield None
        return
    directory = lock_directory(lock_dir)
    deadline = clock() + timeout
    fd = None
    while fd is None:
        for index in range(count):
            fd = _try_lock(os.path.join(directory, "flash-parallel-%d.lock" % index))
            if fd is not None:
                break
        else:
            if clock() >= deadline:
                raise CarrierError("max_parallel: %d flashes ran on this controller for more than %.0f s; none ended"
                                   % (count, timeout))
            sleep(0.5)
    try:
        yield index
    finally:
        os.close(fd)  # closing the only fd releases the flock


def _pick(disks, req, served=None):
    """The disk to write: the one ``device`` names (refused when it is not on the port), else the one
    the simulator served for ``storage``, else by LUN (eMMC first, an NVMe disk after it)."""
    if req.device:
        wanted = os.path.realpath(req.device)
        for disk in disks:
            if disk.dev_path == req.device or os.path.realpath(disk.dev_path) == wanted:
                return disk
        raise _device.DeviceError("device: %s is not the disk on USB port %s (there: %s)"
                                  % (req.device, req.usb_port, ", ".join(d.dev_path for d in disks)))
    if served and served.get("device"):
        for disk in disks:
            if disk.name == served["device"]:
                return disk
    if len(disks) == 1:
        return disks[0]
    ordered = sorted(disks, key=_device.lun)
    if len(ordered) == 2:
        return ordered[0] if req.storage == "emmc" else ordered[1]
    raise _device.DeviceError("device: USB port %s has %d disks (%s): say which with device"
                              % (req.usb_port, len(disks), ", ".join(d.dev_path for d in disks)))


def flash_usb(req, board, access, size, wanted, sleep=time.sleep):
    """Through USB boot: hold, serve, find, vet, write, verify, customise, record, release."""
    held = False
    try:
        if req.power_control:
            _usb.hold_in_usb_boot(board, req.slot, sleep=sleep)
            held = True
        served = access.rpiboot(req.usb_port, req.timeout, req.storage)
        disk = _pick(access.wait_for_disk(req.usb_port, req.timeout, sleep=sleep), req, served)
        _device.vet(disk, req.usb_port, size, sim_root=access.sim_root)
        written = write_and_record(req, disk.dev_path, disk.size, size, wanted)
    except BaseException:
        if held:
            with contextlib.suppress(Exception):
                _usb.release(board, req.slot, boot=False, sleep=sleep)
        raise
    after = None
    if req.power_control:
        after = _usb.release(board, req.slot, req.boot, sleep=sleep)["slots"][0]["after"]
    written.update(device=disk.dev_path, device_size=disk.size, usb_port=req.usb_port,
                   node=after["state"] if after else "left as it was (power_control=false)")
    return written


def write_and_record(req, path, device_size, size, wanted):
    """Invalidate the record, write and verify, customise, then record what was verified."""
    _state.invalidate(req.record_path)
    progress = _write.Progress(_write.progress_file(req.progress_path), req.progress_interval)
    if req.bmap:
        res = _write.write_bmap(req.source, req.bmap, path, device_size, progress)
    else:
        res = _write.write_stream(req.source, path, device_size, progress, image_size=size)
    customized = None
    if req.customization is not None:
        customized = _firstboot.apply_to_image(path, req.customization).result()
    record = dict(wanted, image=req.image, image_identity=_state.file_identity(req.image), image_size=res.image_size,
                  written=res.written, device=path, device_size=device_size,
                  verified="bmap ranges" if req.bmap else "sha256 %s" % res.sha256,
                  flashed_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    _state.save(req.record_path, record)
    return {"written": res.written, "seconds": round(res.seconds, 3), "verified": record["verified"],
            "ranges": res.ranges, "customized": customized, "progress_file": req.progress_path}
