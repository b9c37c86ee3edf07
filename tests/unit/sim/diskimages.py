# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Disk images shaped like Raspberry Pi OS, made with Debian's real tools (sfdisk, mkfs.vfat, mtools):
a partition table (MBR or GPT), a FAT boot partition holding the named files, a Linux partition after it.
Never mounted (the kernel here has no VFAT)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

MIB = 1024 * 1024
TOOLS = ("sfdisk", "mkfs.vfat", "mcopy")


def have_tools():
    return all(shutil.which(t) for t in TOOLS)


needs_tools = pytest.mark.skipif(not have_tools(), reason="needs sfdisk, mkfs.vfat and mtools (Debian)")


def rpi_files(soc="BCM2711", hostname=None, firstrun=None, drop=()):
    """The boot partition's files of a Raspberry Pi OS image (small stand-ins of the real ones)."""
    files = {
        "config.txt": b"arm_64bit=1\nenable_uart=1\n",
        "cmdline.txt": b"console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 rootwait\n",
        "kernel8.img": b"\x00" * 4096,
        "bcm2711-rpi-cm4.dtb": b"\xd0\x0d\xfe\xed" + b"\x00" * 60,
        "bcm2712-rpi-cm5-cm5io.dtb": b"\xd0\x0d\xfe\xed" + b"\x00" * 60,
    }
    if soc == "BCM2711":
        files.update({"start4.elf": b"\x7fELF" + b"\x00" * 8000, "fixup4.dat": b"\x00" * 512})
    else:
        files["kernel_2712.img"] = b"\x00" * 4096
    if hostname:
        files["meta-data"] = ("instance-id: sim\nlocal-hostname: %s\n" % hostname).encode()
        files["user-data"] = b"#cloud-config\nssh_pwauth: false\n"
    if firstrun:
        files["firstrun.sh"] = firstrun.encode()
    for name in drop:
        files.pop(name, None)
    return files


def make_image(path, files, label="dos", size_mib=80, boot_mib=64, fat=32):
    """Write a partitioned image at ``path``: ``label`` dos (MBR) or gpt; the boot partition from 4 MiB."""
    with open(path, "wb") as f:
        f.truncate(size_mib * MIB)
    start = 8192  # sectors: 4 MiB, as Raspberry Pi OS
    boot_sectors = boot_mib * MIB // 512
    if label == "gpt":
        table = "label: gpt\nstart=%d, size=%d, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\n" \
                "start=%d, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n" % (start, boot_sectors, start + boot_sectors)
    else:
        table = "label: dos\nstart=%d, size=%d, type=c\nstart=%d, type=83\n" % (
            start, boot_sectors, start + boot_sectors)
    subprocess.run(["sfdisk", "--no-reread", "--no-tell-kernel", "-q", path], input=table.encode(), check=True,
                   capture_output=True)
    subprocess.run(["mkfs.vfat", "-F", str(fat), "-n", "bootfs", "--offset=%d" % start, path,
                    str(boot_sectors // 2)], check=True, capture_output=True)
    staging = path + ".files"
    os.makedirs(staging, exist_ok=True)
    names = []
    for name, data in files.items():
        with open(os.path.join(staging, name), "wb") as f:
            f.write(data)
        names.append(os.path.join(staging, name))
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    if names:
        subprocess.run(["mcopy", "-i", "%s@@%d" % (path, start * 512)] + names + ["::/"], check=True,
                       capture_output=True, env=env)
    shutil.rmtree(staging)
    return path
