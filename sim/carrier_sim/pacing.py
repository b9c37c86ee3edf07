# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A gadget disk at the speed of eMMC behind USB 2.0: the node's backing file served through Debian's
``nbdkit`` (its ``rate`` filter paces reads and writes together, as one USB 2.0 link carries both) and
exposed as a regular file by libnbd's ``nbdfuse`` (FUSE), which the controller opens as ``<dir>/dev/sdX``.

``nbdfuse MOUNT/sda [ nbdkit ... ]`` runs nbdkit as its child over socket activation, so one process
per disk holds everything; ``fusermount3 -u`` ends both. Writes through nbdfuse are not cached by the
kernel: a write returns once nbdkit has taken it at the rate, and fsync becomes an NBD flush (nbdkit's
file plugin fdatasyncs the backing file).

A USB mass-storage gadget has no discard and no write-zeroes: trim and zero requests are refused
(nbdkit's ``error`` filter, EINVAL), so a writer that tries to punch a hole falls back to writing the
zeros, at the rate, as it would on the hardware. The rate filter's bucket is kept short
(``burstiness``) so that a short write is paced too, not served from two seconds of saved-up credit.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time

TOOLS = ("nbdkit", "nbdfuse", "fusermount3")
BURSTINESS = 0.1  # seconds of rate the bucket holds (nbdkit's default, 2 s, lets 60 MB through unpaced)
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
LINGER = 1.0  # seconds nbdfuse may take to exit once unmounted before it is ended (a writer held the file)
MOUNTS = "usb-paced"  # beside dev/ and sys/: <dir>/usb-paced/<name>/<name> is the paced file


def unavailable():
    """Why a paced disk cannot be made here (None when it can): a missing tool or no /dev/fuse."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return "%s not installed (Debian: nbdkit, libnbd-bin, fuse3)" % ", ".join(missing)
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    return None


def check_rate(value, field):
    """A rate in MB/s (10^6 bytes) from a topology's ``sim.usb_rate``: a number >= 0, 0 for unpaced."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100000:
        raise ValueError("%s: %r is not a rate in MB/s (0 for unpaced, up to 100000)" % (field, value))
    return float(value)


class PacedDisk:
    """One disk's backing file at ``rate`` MB/s, as the file :attr:`path` under ``<dir>/usb-paced``."""

    def __init__(self, directory, name, backing, rate):
        self.mount = os.path.join(directory, MOUNTS, name)
        self.path = os.path.join(self.mount, name)
        self.log_path = self.mount + ".log"
        self.backing = backing
        self.rate = rate
        self.proc = None

    def argv(self):
        bits = int(self.rate * 8e6)
        return ["nbdfuse", "-P", self.mount + ".pid", self.path,
                "[", "nbdkit", "--filter=error", "--filter=rate", "file", self.backing,
                "rate=%d" % bits, "burstiness=%g" % BURSTINESS,
                "error-trim=EINVAL", "error-trim-rate=1", "error-zero=EINVAL", "error-zero-rate=1", "]"]

    async def start(self):
        """Mount the paced file; OSError (with nbdfuse's words) when it does not come up."""
        os.makedirs(self.mount, exist_ok=True)
        pidfile = self.mount + ".pid"
        if os.path.exists(pidfile):
            os.unlink(pidfile)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while not (os.path.exists(pidfile) and os.path.exists(self.path)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                words = self._log_tail()
                self.stop()
                raise OSError("nbdfuse did not mount %s: %s" % (self.path, words or "no output"))
            await asyncio.sleep(0.01)

    def _log_tail(self):
        try:
            with open(self.log_path, "rb") as log:
                return log.read()[-400:].decode("utf-8", "replace").strip()
        except OSError:
            return ""

    def stop(self):
        """Unmount (lazily: a writer still holding the file gets errors, as from a disk that went away),
        end nbdfuse and nbdkit, remove the mount point."""
        unmount(self.mount)
        if self.proc is not None:
            try:
                self.proc.wait(LINGER)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
        for path in (self.mount + ".pid", self.log_path):
            if os.path.exists(path):
                os.unlink(path)
        try:
            os.rmdir(self.mount)
        except OSError:
            pass


def mounted(path):
    """Whether ``path`` is a mount point of this mount namespace (/proc/self/mountinfo's fifth field,
    with its octal escapes)."""
    real = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo") as handle:
            for line in handle:
                fields = line.split()
                if len(fields) > 4 and fields[4].encode().decode("unicode_escape") == real:
                    return True
    except OSError:
        pass
    return False


def unmount(mount):
    if mounted(mount) and shutil.which("fusermount3"):
        subprocess.run(["fusermount3", "-u", "-z", mount], stdin=subprocess.DEVNULL, capture_output=True,
                       check=False)


def clear_stale(directory):
    """Unmount and remove the paced disks a killed simulator left in ``directory``."""
    root = os.path.join(directory, MOUNTS)
    if not os.path.isdir(root):
        return
    for name in os.listdir(root):
        path = os.path.join(root, name)
        if os.path.isdir(path):
            unmount(path)
            try:
                os.rmdir(path)
            except OSError:
                pass
        elif name.endswith((".pid", ".log")):
            os.unlink(path)
    remove_root(directory)


def remove_root(directory):
    try:
        os.rmdir(os.path.join(directory, MOUNTS))
    except OSError:
        pass
