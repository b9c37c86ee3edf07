# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Images shaped like Raspberry Pi OS and disks on USB ports, for the flash tests and the benchmark.

``make_os_image``: MBR, a FAT32 boot partition with the firmware's file names (start4.elf,
fixup4.dat, kernel8.img, kernel_2712.img, config.txt, cmdline.txt) and an ext4 root filled without
mounting (``mke2fs -d``), made with Debian's real tools: sfdisk, mkfs.vfat, mtools, mke2fs.
``compress`` makes the .xz/.gz/.zst beside it; ``make_bmap`` runs ``bmaptool create``.
``make_usb_disk``: a disk on a USB port in a sysfs-shaped tree, as the kernel (and the simulator)
shows one: ``<root>/sys/devices/.../<port>/<port>:1.0/host0/.../block/sdX`` with ``size``, ``ro``,
``removable``; ``<root>/sys/block/sdX`` a relative link to it; ``<root>/dev/sdX`` a link to the
backing file.
"""

from __future__ import annotations

import os
import shutil
import subprocess

MIB = 1024 * 1024


def _run(argv, **kwargs):
    subprocess.run(argv, check=True, capture_output=True, **kwargs)


def make_os_image(path, size_mb=64, boot_mb=36, payload_mb=4, hostname="raspberrypi", cmdline=None):
    """An OS image at ``path``; returns ``str(path)``."""
    path = str(path)
    work = path + ".parts"
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "boot"))
    os.makedirs(os.path.join(work, "root", "etc"))
    boot = os.path.join(work, "boot")
    for name, size in (("start4.elf", 2048), ("fixup4.dat", 512), ("kernel8.img", 65536), ("kernel_2712.img", 65536),
                       ("bcm2711-rpi-cm4.dtb", 1024), ("bcm2712-rpi-cm5-cm5io.dtb", 1024)):
        with open(os.path.join(boot, name), "wb") as handle:
            handle.write((name.encode() * (size // len(name) + 1))[:size])
    with open(os.path.join(boot, "config.txt"), "w") as handle:
        handle.write("[all]\narm_64bit=1\nenable_uart=1\n")
    with open(os.path.join(boot, "cmdline.txt"), "w") as handle:
        handle.write(cmdline or "console=serial0,115200 console=tty1 root=PARTUUID=12345678-02 rootfstype=ext4 "
                     "fsck.repair=yes rootwait\n")
    with open(os.path.join(work, "root", "etc", "hostname"), "w") as handle:
        handle.write(hostname + "\n")
    with open(os.path.join(work, "root", "payload.bin"), "wb") as handle:
        handle.write(os.urandom(payload_mb * MIB))
    boot_start = 8192  # 4 MiB, as Raspberry Pi OS
    boot_sectors = boot_mb * MIB // 512
    root_start = boot_start + boot_sectors
    with open(path, "wb") as handle:
        handle.truncate(size_mb * MIB)
    table = ("label: dos\nlabel-id: 0x12345678\nstart=%d, size=%d, type=c\nstart=%d, type=83\n"
             % (boot_start, boot_sectors, root_start))
    _run(["sfdisk", "-q", path], input=table.encode())
    _run(["mkfs.vfat", "-F", "32", "-s", "1", "-n", "bootfs", "--offset", str(boot_start), path,
          str(boot_sectors // 2)])
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    files = sorted(os.path.join(boot, n) for n in os.listdir(boot))
    _run(["mcopy", "-i", "%s@@%d" % (path, boot_start * 512)] + files + ["::/"], env=env)
    root_kib = (size_mb * MIB - root_start * 512) // 1024
    _run(["mke2fs", "-q", "-F", "-t", "ext4", "-L", "rootfs", "-d", os.path.join(work, "root"),
          "-E", "offset=%d" % (root_start * 512), path, "%dk" % root_kib])
    shutil.rmtree(work)
    return path


def compress(path, kind):
    """``path`` compressed beside itself (kept): ``xz``, ``gz`` or ``zst``; returns the new path."""
    out = "%s.%s" % (path, kind)
    if os.path.exists(out):
        os.unlink(out)
    argv = {"xz": ["xz", "-k", "-1", "-T1"], "gz": ["gzip", "-k", "-1"], "zst": ["zstd", "-q", "-k", "-1"]}[kind]
    _run(argv + [path])
    return out


def make_bmap(path, out=None):
    out = out or os.path.splitext(path)[0] + ".bmap"
    _run(["bmaptool", "create", "-o", out, path])
    return out


def make_usb_disk(root, port, name="sda", size=None, backing=None, ro=False, host=0):
    """A disk ``name`` on USB ``port`` under ``root`` (its ``sys`` and ``dev``); returns the /dev path."""
    root = str(root)
    if backing is None:
        backing = os.path.join(root, "nodes", name + ".img")
        os.makedirs(os.path.dirname(backing), exist_ok=True)
        with open(backing, "wb") as handle:
            handle.truncate(size)
    size = size if size is not None else os.path.getsize(backing)
    parts = ["sys", "devices", "platform", "sim-xhci", "usb1"]
    hubs = port.split("-", 1)[1].split(".")
    bus = port.split("-", 1)[0]
    for i in range(1, len(hubs) + 1):
        parts.append("%s-%s" % (bus, ".".join(hubs[:i])))
    parts += ["%s:1.0" % port, "host%d" % host, "target%d:0:0" % host, "%d:0:0:0" % host, "block", name]
    disk = os.path.join(root, *parts)
    os.makedirs(disk)
    for fname, value in (("size", size // 512), ("ro", 1 if ro else 0), ("removable", 1)):
        with open(os.path.join(disk, fname), "w") as handle:
            handle.write("%d\n" % value)
    os.makedirs(os.path.join(root, "sys", "block"), exist_ok=True)
    os.symlink(os.path.relpath(disk, os.path.join(root, "sys", "block")), os.path.join(root, "sys", "block", name))
    os.makedirs(os.path.join(root, "dev"), exist_ok=True)
    dev = os.path.join(root, "dev", name)
    os.symlink(backing, dev)
    return dev
