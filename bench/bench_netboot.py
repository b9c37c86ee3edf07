# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""TFTP trees for 100 nodes from a 60 MB boot directory: netboot_assets' store vs a plain copy.

Prints: bytes written to disk vs unique bytes, the time of the first build, of a plain copy of the
boot directory per node (what users do by hand), of a `cp -al` hard-link farm (the floor for
trees of hard links), of a no-change re-run, and of a re-run where one
node's kernel arguments change. Figures only; no pass/fail.
"""

from __future__ import annotations

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

from ansible_collections.picluster.carrier.plugins.module_utils._netboot import trees as N  # noqa: E402

NODES = 100
# Nodes really copied for the plain-copy figure (all by default: with fewer, the page cache absorbs
# the writes and the per-node time looks several times better than it is).
COPY_NODES = int(os.environ.get("BENCH_NETBOOT_COPY_NODES", NODES))
MB = 1024 * 1024


def make_source(path, total=60 * MB):
    """A boot directory shaped like Raspberry Pi OS's: a few big files, many small overlays."""
    big = {"start4.elf": 2252832, "start4x.elf": 2998432, "start4cd.elf": 810012, "start4db.elf": 4818216,
           "kernel8.img": 9221160, "kernel_2712.img": 9532928, "initramfs8": 11683722,
           "initramfs_2712": 11681274, "fixup4.dat": 5446, "fixup4x.dat": 8433, "bcm2711-rpi-cm4.dtb": 52593,
           "bcm2711-rpi-4-b.dtb": 52476, "bcm2712-rpi-cm5-cm5io.dtb": 80041, "bcm2712-rpi-5-b.dtb": 79942,
           "config.txt": 1214, "cmdline.txt": 110}
    files = dict(big)
    rest = total - sum(big.values())
    n = 0
    while rest > 0:
        size = min(rest, 1500 + (n * 7919) % 12000)
        files["overlays/overlay-%03d.dtbo" % n] = size
        rest -= size
        n += 1
    for rel, size in files.items():
        full = os.path.join(path, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(os.urandom(size) if rel not in ("config.txt", "cmdline.txt") else
                    (b"arm_64bit=1\n" if rel == "config.txt" else b"console=serial0,115200 root=/dev/mmcblk0p2\n"))
    return len(files)


def disk_usage(path):
    """Bytes the tree really takes (each inode once), and the sum of file sizes (what a copy writes)."""
    seen, real, apparent = set(), 0, 0
    for dirpath, _dirs, names in os.walk(path):
        for name in names:
            st = os.lstat(os.path.join(dirpath, name))
            apparent += st.st_size
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                real += st.st_size
    return real, apparent


def nodes(extra=None):
    out = []
    for i in range(NODES):
        node = {"name": "node%03d" % i, "serial": "10000000%08x" % (0xb7f40000 + i),
                "nfs_root": "10.0.0.1:/srv/nfs/node%03d" % i}
        if extra and i == 0:
            node["extra_kernel_args"] = extra
        out.append(node)
    return out


def main():
    work = tempfile.mkdtemp(prefix="bench-netboot-", dir=os.environ.get("BENCH_TMP"))
    try:
        src = os.path.join(work, "boot")
        count = make_source(src)
        src_bytes, _apparent = disk_usage(src)
        print("source: %d files, %.1f MB; %d nodes" % (count, src_bytes / MB, NODES))

        tftp = os.path.join(work, "tftp")
        t = time.perf_counter()
        changed, result, _diff = N.build_tftp_trees(src, nodes(), tftp)
        first = time.perf_counter() - t
        real, apparent = disk_usage(tftp)
        print("netboot_assets first build: %.2f s, changed=%s" % (first, changed))
        print("  bytes written to the store: %.1f MB; unique bytes on disk: %.1f MB; as seen by TFTP: %.1f MB"
              % (result["store"]["bytes_written"] / MB, real / MB, apparent / MB))
        print("  disk saved vs a copy per node: %.1f%%" % (100.0 * (1 - real / apparent)))

        # A plain copy of the boot directory per node, what operators do by hand today.
        plain = os.path.join(work, "plain")
        t = time.perf_counter()
        for node in nodes()[:COPY_NODES]:
            shutil.copytree(src, os.path.join(plain, node["serial"][-8:]))
        per_node = (time.perf_counter() - t) / COPY_NODES
        copy_real, _apparent = disk_usage(plain)
        print("plain copy: %.2f s per node (measured on %d nodes) -> %.1f s and %.1f MB for %d nodes"
              % (per_node, COPY_NODES, per_node * NODES, copy_real / COPY_NODES * NODES / MB, NODES))
        print("  netboot_assets first build vs plain copy: %.1fx faster" % (per_node * NODES / first))
        shutil.rmtree(plain)

        # The floor of a hard-link farm: `cp -al` of the boot directory once per node (no rendering,
        # no per-node files, no verification), with the first copy's data written once.
        farm = os.path.join(work, "farm")
        os.makedirs(farm)
        t = time.perf_counter()
        first_dir = None
        for node in nodes():
            dest = os.path.join(farm, node["serial"][-8:])
            if first_dir is None:
                shutil.copytree(src, dest)
                first_dir = dest
            else:
                subprocess.run(["cp", "-al", first_dir, dest], check=True)
        floor = time.perf_counter() - t
        print("cp -al farm (one copy, then cp -al per node): %.2f s -> netboot_assets first build %.2fx that"
              % (floor, first / floor))
        shutil.rmtree(farm)

        t = time.perf_counter()
        changed, result, _diff = N.build_tftp_trees(src, nodes(), tftp)
        rerun = time.perf_counter() - t
        print("no-change re-run: %.2f s, changed=%s, bytes written %d"
              % (rerun, changed, result["store"]["bytes_written"]))

        t = time.perf_counter()
        changed, result, _diff = N.build_tftp_trees(src, nodes(extra=["quiet"]), tftp)
        one = time.perf_counter() - t
        print("one node's cmdline changed: %.2f s, changed nodes %s, bytes written %d"
              % (one, result["changed_nodes"], result["store"]["bytes_written"]))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
