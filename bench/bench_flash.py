# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""node_flash's writer vs ``dd bs=4M conv=fsync`` vs ``bmaptool copy``: the same image to the same
kind of target (a sparse file standing in for the node's eMMC), in one run.

The image is mostly free space, as an OS image is before first boot: ``BENCH_FLASH_SMALL_MB``
(default 400) MiB of which ``BENCH_FLASH_DATA_MB`` (default 40) hold data, scattered in 1 MiB
pieces. Prints a table: seconds, bytes written against the image size, time ratios, and the peak
memory (ru_maxrss of a child process) of node_flash's writer on that image and on one of
``BENCH_FLASH_BIG_MB`` (default 4096) MiB with the same data, raw with a bmap and zstd-compressed
without one (every byte decompressed and written). node_flash's times include its read-back
verification; bmaptool's its checksum check of the image side. Figures only; no pass/fail.
"""

from __future__ import annotations

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

MIB = 1024 * 1024
SMALL_MB = int(os.environ.get("BENCH_FLASH_SMALL_MB", 400))
BIG_MB = int(os.environ.get("BENCH_FLASH_BIG_MB", 4096))
DATA_MB = int(os.environ.get("BENCH_FLASH_DATA_MB", 40))

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


def timed(argv):
    start = time.monotonic()
    subprocess.run(argv, check=True, capture_output=True)
    return time.monotonic() - start


def main():
    for tool in ("bmaptool", "zstd", "dd"):
        if shutil.which(tool) is None:
            print("bench_flash: %s is not installed (Debian: bmap-tools, zstd, coreutils)" % tool)
            return 0
    work = tempfile.mkdtemp(prefix="bench-flash-", dir=os.environ.get("BENCH_TMP", "/var/tmp"))
    try:
        small = make_image(os.path.join(work, "small.img"), SMALL_MB, DATA_MB)
        subprocess.run(["bmaptool", "create", "-o", small + ".bmap", small], check=True, capture_output=True)
        target = os.path.join(work, "emmc.img")
        device = (SMALL_MB + 64) * MIB
        image_size = SMALL_MB * MIB
        rows = []
        runs = int(os.environ.get("BENCH_FLASH_RUNS", 3))
        r = median_of(runs, lambda: node_flash(small, fresh_target(target, device), device, small + ".bmap"))
        rows.append(("node_flash (bmap)", r["seconds"], r["written"], r["maxrss_kib"]))
        r = median_of(runs, lambda: node_flash(small, fresh_target(target, device), device))
        rows.append(("node_flash (whole image)", r["seconds"], r["written"], r["maxrss_kib"]))
        r = median_of(runs, lambda: {"seconds": timed(["dd", "if=" + small, "of=" + fresh_target(target, device),
                                                       "bs=4M", "conv=fsync,notrunc"])})
        rows.append(("dd bs=4M conv=fsync", r["seconds"], image_size, None))
        r = median_of(runs, lambda: {"seconds": timed(["bmaptool", "copy", "--bmap", small + ".bmap", small,
                                                       fresh_target(target, device)])})
        from ansible_collections.picluster.carrier.plugins.module_utils._flash import bmap as B
        rows.append(("bmaptool copy", r["seconds"], B.parse(small + ".bmap").mapped_size, None))
        dd_time = rows[2][1]
        bmaptool_time = rows[3][1]
        print("Flashing a %d MiB image (%d MiB of data) to a sparse file, median of %d runs (wall time; node_flash "
              "includes its read-back verification)" % (SMALL_MB, DATA_MB, runs))
        header = ("writer", "seconds", "written/image", "peak MiB", "vs dd", "vs bmaptool")
        print("%-26s %9s %14s %10s %12s %12s" % header)
        for name, secs, written, rss in rows:
            print("%-26s %9.2f %13.1f%% %10s %11.1fx %11.2fx" % (
                name, secs, 100.0 * written / image_size, "%.1f" % (rss / 1024.0) if rss else "-",
                dd_time / secs, bmaptool_time / secs))
        print()
        big = make_image(os.path.join(work, "big.img"), BIG_MB, DATA_MB)
        subprocess.run(["bmaptool", "create", "-o", big + ".bmap", big], check=True, capture_output=True)
        subprocess.run(["zstd", "-q", "-1", "-T2", "-f", big, "-o", big + ".zst"], check=True)
        subprocess.run(["zstd", "-q", "-1", "-T2", "-f", small, "-o", small + ".zst"], check=True)
        print("Peak memory of node_flash's writer (ru_maxrss of its process)")
        print("%-34s %10s %10s %9s" % ("image", "size MiB", "peak MiB", "seconds"))
        for label, path, size_mb, bmap in (
                ("raw + bmap", small, SMALL_MB, small + ".bmap"), ("raw + bmap", big, BIG_MB, big + ".bmap"),
                ("zstd, whole image", small + ".zst", SMALL_MB, ""), ("zstd, whole image", big + ".zst", BIG_MB, "")):
            device = (size_mb + 64) * MIB
            r = node_flash(path, fresh_target(target, device), device, bmap)
            print("%-34s %10d %10.1f %9.2f" % (label, size_mb, r["maxrss_kib"] / 1024.0, r["seconds"]))
        os.unlink(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
