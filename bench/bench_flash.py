# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""node_flash's writer vs ``dd bs=4M conv=fsync`` (with and without a read-back ``cmp``) vs ``bmaptool
copy``: the same image to the same kind of target, in one run, for each target kind available: a
regular sparse file (the simulator's device) and, when run as root with ``losetup``, a loop device
over a sparse file (a block device, as the node's eMMC is on real hardware), and the paced target:
a disk at the speed of eMMC through rpiboot's mass-storage gadget over USB 2.0 (``BENCH_FLASH_RATE``
MB/s, default 30), served by the simulator's own pacing (sim/carrier_sim/pacing.py: nbdkit's rate
filter behind nbdfuse, no discard), as a loop device over that file when root with ``losetup`` (a block
device: ``bmaptool copy`` truncates a regular-file destination, which the paced file cannot be), else
the paced file itself without the bmaptool row. The paced runs are ``BENCH_FLASH_PACED_RUNS`` (default 1).

The image is mostly free space, as an OS image is before first boot: ``BENCH_FLASH_SMALL_MB``
(default 400) MiB of which ``BENCH_FLASH_DATA_MB`` (default 40) hold data, scattered in 1 MiB
pieces. Prints a table: seconds, bytes written against the image size, time ratios, and the peak
memory (ru_maxrss of a child process) of node_flash's writer on that image and on one of
``BENCH_FLASH_BIG_MB`` (default 4096) MiB with the same data, raw with a bmap and zstd-compressed
without one (every byte decompressed and written). node_flash's times include its read-back
verification (the device's cached pages dropped first); bmaptool's its checksum check of the image
side (it reads nothing back); ``dd && cmp`` drops the target's cached pages before ``cmp``, as
node_flash does, so both read back from the storage, and ``bmaptool ... + read-back`` is its copy
followed by that same read-back of the mapped ranges: node_flash against bmaptool at equal work.
Figures only; no pass/fail.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import collection_link  # noqa: E402

COLLECTIONS = collection_link.activate()
sys.path.insert(0, str(REPO / "sim"))
from carrier_sim import pacing  # noqa: E402

MIB = 1024 * 1024
SMALL_MB = int(os.environ.get("BENCH_FLASH_SMALL_MB", 400))
BIG_MB = int(os.environ.get("BENCH_FLASH_BIG_MB", 4096))
DATA_MB = int(os.environ.get("BENCH_FLASH_DATA_MB", 40))
RATE = float(os.environ.get("BENCH_FLASH_RATE", 30))

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from ansible_collections.picluster.carrier.plugins.module_utils._flash import bmap as B, source as S, write as W
image, target, device_size, bmap = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
start = time.monotonic()
if bmap:
    result = W.write_bmap(S.ImageSource(image), B.parse(bmap), target, device_size)
else:
    result = W.write_stream(S.ImageSource(image), target, device_size)
print(json.dumps({"seconds": time.monotonic() - start, "written": result.written,
                  "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def make_image(path, size_mb, data_mb):
    """A sparse image with ``data_mb`` 1 MiB pieces of random data spread evenly."""
    with open(path, "wb") as handle:
        handle.truncate(size_mb * MIB)
        step = max(size_mb // max(data_mb, 1), 1)
        for i in range(data_mb):
            handle.seek(i * step * MIB)
            handle.write(os.urandom(MIB))
    return path


def fresh_target(path, size):
    if os.path.exists(path):
        os.unlink(path)
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


class LoopTarget(object):
    """A loop device over a fresh sparse file for each run; ``None`` from ``make`` when not possible."""

    def __init__(self, backing):
        self.backing, self.device = backing, None

    @classmethod
    def make(cls, backing):
        if os.geteuid() != 0 or shutil.which("losetup") is None:
            return None
        target = cls(backing)
        try:
            target.fresh(MIB)
        except (OSError, subprocess.CalledProcessError):
            return None
        target.release()
        return target

    def fresh(self, size):
        self.release()
        fresh_target(self.backing, size)
        self.device = subprocess.run(["losetup", "-f", "--show", self.backing], check=True, capture_output=True,
                                     text=True).stdout.strip()
        return self.device

    def release(self):
        if self.device:
            subprocess.run(["losetup", "-d", self.device], check=False, capture_output=True)
            self.device = None


class PacedTarget(object):
    """A fresh sparse backing file behind a paced disk (pacing.PacedDisk) for each run, and a loop device
    over it when ``loop`` is true."""

    def __init__(self, work, loop):
        self.work, self.loop = work, loop
        self.backing = os.path.join(work, "paced-backing.img")
        self.disk = None
        self.device = None

    @classmethod
    def make(cls, work):
        if pacing.unavailable():
            return None
        loop = os.geteuid() == 0 and shutil.which("losetup") is not None
        return cls(work, loop)

    def fresh(self, size):
        self.release()
        fresh_target(self.backing, size)
        self.disk = pacing.PacedDisk(self.work, "sda", self.backing, RATE)
        asyncio.run(self.disk.start())
        if not self.loop:
            return self.disk.path
        # direct I/O: the loop reads the paced file, not the page cache its writes left (a read-back after
        # the loop device's own cache is dropped comes over "USB", as from a real gadget disk)
        self.device = subprocess.run(["losetup", "--direct-io=on", "-f", "--show", self.disk.path], check=True,
                                     capture_output=True, text=True).stdout.strip()
        return self.device

    def release(self):
        if self.device:
            subprocess.run(["losetup", "-d", self.device], check=False, capture_output=True)
            self.device = None
        if self.disk:
            self.disk.stop()
            self.disk = None


def drop_cache(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def node_flash(image, target, size, bmap=""):
    """The writer in a child process; ``seconds`` is the child's wall time (interpreter start included, as
    for dd and bmaptool)."""
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-c", CHILD, str(COLLECTIONS), image, target, str(size), bmap],
                         capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    result["seconds"] = time.monotonic() - start
    return result


def median_of(runs, make):
    """The run with the median time of ``runs`` (this machine is shared: one run is noise)."""
    results = sorted((make() for _run in range(runs)), key=lambda r: r["seconds"])
    return results[len(results) // 2]


def timed(*argvs, between=None):
    """Wall time of the commands run one after the other (``between()`` called, and timed, after the first)."""
    start = time.monotonic()
    for index, argv in enumerate(argvs):
        if index == 1 and between:
            between()
        subprocess.run(argv, check=True, capture_output=True)
    return time.monotonic() - start


def compare(small, image_size, device, fresh, runs, bmaptool=True):
    """The rows of one target kind: (writer, seconds, bytes written, peak KiB or None); seconds None for
    bmaptool when it cannot write this kind of target."""
    from ansible_collections.picluster.carrier.plugins.module_utils._flash import bmap as B
    rows = []
    r = median_of(runs, lambda: node_flash(small, fresh(device), device, small + ".bmap"))
    rows.append(("node_flash (bmap)", r["seconds"], r["written"], r["maxrss_kib"]))
    r = median_of(runs, lambda: node_flash(small, fresh(device), device))
    rows.append(("node_flash (whole image)", r["seconds"], r["written"], r["maxrss_kib"]))

    def dd(target):
        return ["dd", "if=" + small, "of=" + target, "bs=4M", "conv=fsync,notrunc"]

    r = median_of(runs, lambda: {"seconds": timed(dd(fresh(device)))})
    rows.append(("dd bs=4M conv=fsync", r["seconds"], image_size, None))

    def dd_cmp():
        target = fresh(device)
        return {"seconds": timed(dd(target), ["cmp", "-n", str(image_size), small, target],
                                 between=lambda: drop_cache(target))}

    r = median_of(runs, dd_cmp)
    rows.append(("dd ... && cmp (read-back)", r["seconds"], image_size, None))
    if not bmaptool:
        rows.append(("bmaptool copy", None, B.parse(small + ".bmap").mapped_size, None))
        rows.append(("bmaptool ... + read-back", None, B.parse(small + ".bmap").mapped_size, None))
        return rows
    r = median_of(runs, lambda: {"seconds": timed(["bmaptool", "copy", "--bmap", small + ".bmap", small,
                                                   fresh(device)])})
    rows.append(("bmaptool copy", r["seconds"], B.parse(small + ".bmap").mapped_size, None))
    r = median_of(runs, lambda: bmaptool_read_back(small, fresh(device)))
    rows.append(("bmaptool ... + read-back", r["seconds"], B.parse(small + ".bmap").mapped_size, None))
    return rows


def bmaptool_read_back(small, target):
    """``bmaptool copy``, then what node_flash adds: the target's cached pages dropped and each mapped range
    read back and hashed (the same work as node_flash's verification, so the two compare at equal work)."""
    import hashlib
    from ansible_collections.picluster.carrier.plugins.module_utils._flash import bmap as B
    bmap = B.parse(small + ".bmap")
    start = time.monotonic()
    subprocess.run(["bmaptool", "copy", "--bmap", small + ".bmap", small, target], check=True, capture_output=True)
    drop_cache(target)
    with open(target, "rb", buffering=0) as handle:
        for first, last, _checksum in bmap.ranges:
            offset, length = bmap.byte_range(first, last)
            handle.seek(offset)
            digest = hashlib.sha256()
            while length > 0:
                chunk = handle.read(min(length, 4 * MIB))
                if not chunk:
                    break
                digest.update(chunk)
                length -= len(chunk)
    return {"seconds": time.monotonic() - start}


def print_rows(title, rows, image_size):
    dd_time = rows[2][1]
    bmaptool_time = rows[4][1]
    print(title)
    header = ("writer", "seconds", "written/image", "peak MiB", "vs dd", "vs bmaptool")
    print("%-26s %9s %14s %10s %12s %12s" % header)
    for name, secs, written, rss in rows:
        if secs is None:
            print("%-26s %9s %13.1f%% %10s %12s %12s" % (name, "-", 100.0 * written / image_size, "-", "-", "-"))
            continue
        print("%-26s %9.2f %13.1f%% %10s %11.1fx %12s" % (
            name, secs, 100.0 * written / image_size, "%.1f" % (rss / 1024.0) if rss else "-",
            dd_time / secs, "%.2fx" % (bmaptool_time / secs) if bmaptool_time else "-"))
    if rows[5][1]:
        print("node_flash (bmap) vs bmaptool at equal work (its copy, then the same read-back): %.2fx"
              % (rows[5][1] / rows[0][1]))
    print("(vs dd, vs bmaptool: their time / this one's; above 1 is faster)")
    print()


def memory(work, small, target):
    big = make_image(os.path.join(work, "big.img"), BIG_MB, DATA_MB)
    subprocess.run(["bmaptool", "create", "-o", big + ".bmap", big], check=True, capture_output=True)
    subprocess.run(["zstd", "-q", "-1", "-T2", "-f", big, "-o", big + ".zst"], check=True)
    subprocess.run(["zstd", "-q", "-1", "-T2", "-f", small, "-o", small + ".zst"], check=True)
    print("Peak memory of node_flash's writer (ru_maxrss of its process), to a sparse file")
    print("%-34s %10s %10s %9s" % ("image", "size MiB", "peak MiB", "seconds"))
    for label, path, size_mb, bmap in (
            ("raw + bmap", small, SMALL_MB, small + ".bmap"), ("raw + bmap", big, BIG_MB, big + ".bmap"),
            ("zstd, whole image", small + ".zst", SMALL_MB, ""), ("zstd, whole image", big + ".zst", BIG_MB, "")):
        device = (size_mb + 64) * MIB
        r = node_flash(path, fresh_target(target, device), device, bmap)
        print("%-34s %10d %10.1f %9.2f" % (label, size_mb, r["maxrss_kib"] / 1024.0, r["seconds"]))


def paced(work, small, image_size, device):
    """The paced tables: a loop device over the paced file (root with losetup), then the paced file itself
    (the simulator's ``<dir>/dev/sdX``: bmaptool refuses it) unless ``BENCH_FLASH_PACED_FILE=0``."""
    if pacing.unavailable():
        print("Paced target: not measured (%s)\n" % pacing.unavailable())
        return
    runs = int(os.environ.get("BENCH_FLASH_PACED_RUNS", 1))
    what = "a %d MiB image (%d MiB of data), %s" % (SMALL_MB, DATA_MB, "median of %d runs" % runs if runs > 1 else
                                                    "one run")
    kinds = []
    if os.geteuid() == 0 and shutil.which("losetup") is not None:
        kinds.append((True, "a loop device over the paced file (a block device, as /dev/sdX on a controller)"))
    if os.environ.get("BENCH_FLASH_PACED_FILE", "1") != "0" or not kinds:
        kinds.append((False, "the paced file itself (the simulator's <dir>/dev/sdX; bmaptool copy cannot "
                             "truncate it)"))
    for loop, kind in kinds:
        target = PacedTarget(work, loop)
        try:
            rows = compare(small, image_size, device, target.fresh, runs, bmaptool=loop)
        finally:
            target.release()
        print_rows("Flashing %s to a disk paced at %g MB/s (eMMC over USB 2.0: the simulator's nbdkit rate "
                   "filter behind nbdfuse), as %s" % (what, RATE, kind), rows, image_size)


def main():
    for tool in ("bmaptool", "zstd", "dd", "cmp"):
        if shutil.which(tool) is None:
            print("bench_flash: %s is not installed (Debian: bmap-tools, zstd, coreutils, diffutils)" % tool)
            return 0
    work = tempfile.mkdtemp(prefix="bench-flash-", dir=os.environ.get("BENCH_TMP", "/var/tmp"))
    loop = None
    try:
        small = make_image(os.path.join(work, "small.img"), SMALL_MB, DATA_MB)
        subprocess.run(["bmaptool", "create", "-o", small + ".bmap", small], check=True, capture_output=True)
        target = os.path.join(work, "emmc.img")
        device = (SMALL_MB + 64) * MIB
        image_size = SMALL_MB * MIB
        runs = int(os.environ.get("BENCH_FLASH_RUNS", 3))
        what = "a %d MiB image (%d MiB of data), median of %d runs (wall time)" % (SMALL_MB, DATA_MB, runs)
        rows = compare(small, image_size, device, lambda size: fresh_target(target, size), runs)
        print_rows("Flashing %s to a sparse file" % what, rows, image_size)
        loop = LoopTarget.make(os.path.join(work, "loop-backing.img"))
        if loop is None:
            print("Loop device target: not measured (needs root and losetup)\n")
        else:
            rows = compare(small, image_size, device, loop.fresh, runs)
            print_rows("Flashing %s to a loop device over a sparse file (a block device)" % what, rows, image_size)
            loop.release()
        paced(work, small, image_size, device)
        if os.environ.get("BENCH_FLASH_MEMORY", "1") != "0":
            memory(work, small, target)
        if os.path.exists(target):
            os.unlink(target)
    finally:
        if loop is not None:
            loop.release()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
