# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Inputs of the netboot tests: boot directories and OS images with real FAT partitions.

The images are made the way an OS image is laid out: an MBR (or a protective MBR plus GPT) written
here byte by byte, then ``mkfs.vfat --offset`` for the boot partition and ``mcopy`` for its files.
The file contents are small and fake (the simulator only reads names and sizes).
"""

from __future__ import annotations

import os
import struct
import subprocess
import uuid
import zlib

PI4_FILES = {
    "start4.elf": 2252832 // 64,
    "fixup4.dat": 5446,
    "bcm2711-rpi-cm4.dtb": 52593 // 4,
    "bcm2711-rpi-4-b.dtb": 52476 // 4,
    "kernel8.img": 9221160 // 64,
    "overlays/disable-wifi.dtbo": 801,
    "overlays/dwc2.dtbo": 1200,
}
PI5_FILES = {
    "bcm2712-rpi-cm5-cm5io.dtb": 80041 // 4,
    "bcm2712-rpi-5-b.dtb": 79942 // 4,
    "kernel_2712.img": 9532928 // 64,
    "overlays/disable-wifi-pi5.dtbo": 801,
}
# A Pi 3's boot files (bootcode.bin's text holds BOOT_UART=0, as the real one's does: docs/hardware.md section 11).
PI3_FILES = {
    "start.elf": 2975744 // 64,
    "fixup.dat": 7314,
    "bcm2710-rpi-3-b-plus.dtb": 34695 // 4,
    "bcm2710-rpi-3-b.dtb": 32142 // 4,
    "kernel7.img": 8421696 // 64,
    "kernel8.img": 9221160 // 64,
}
BOOTCODE_BIN = b"bootcode.bin of the tests\0BOOT_UART=0\0" + b"\x5a" * 52000
CONFIG_TXT = "# From the OS image\narm_64bit=1\nenable_uart=1\n"
CMDLINE_TXT = "console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 fsck.repair=yes rootwait\n"


def payload(name, size):
    """Deterministic bytes for a file (differs per name)."""
    seed = zlib.crc32(name.encode())
    block = struct.pack("<I", seed) * 256
    return (block * (size // len(block) + 1))[:size]


def make_boot_dir(path, pi4=True, pi5=False, config=True, cmdline=True, extra=None, pi3=False):
    """A boot directory like /boot/firmware of Raspberry Pi OS; returns its path."""
    files = {}
    if pi4:
        files.update({k: payload(k, v) for k, v in PI4_FILES.items()})
    if pi3:
        files.update({k: payload(k, v) for k, v in PI3_FILES.items()})
        files["bootcode.bin"] = BOOTCODE_BIN
    if pi5:
        files.update({k: payload(k, v) for k, v in PI5_FILES.items()})
    if config:
        files["config.txt"] = CONFIG_TXT.encode()
    if cmdline:
        files["cmdline.txt"] = CMDLINE_TXT.encode()
    files.update(extra or {})
    for rel, data in files.items():
        full = os.path.join(path, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(data)
    return str(path)


def _mbr(entries):
    mbr = bytearray(512)
    struct.pack_into("<I", mbr, 440, 0x4E639091)  # disk id (PARTUUID 4e639091-0N)
    for i, (ptype, lba, count) in enumerate(entries):
        mbr[446 + 16 * i + 4] = ptype
        struct.pack_into("<II", mbr, 446 + 16 * i + 8, lba, count)
    mbr[510:512] = b"\x55\xaa"
    return bytes(mbr)


def _gpt(total_sectors, parts):
    """Protective MBR + primary GPT header and table (CRCs filled in). parts: (type guid, first, last)."""
    entries = bytearray(128 * 128)
    for i, (type_guid, first, last) in enumerate(parts):
        e = bytearray(128)
        e[0:16] = uuid.UUID(type_guid).bytes_le
        e[16:32] = uuid.UUID(int=i + 1).bytes_le
        struct.pack_into("<QQ", e, 32, first, last)
        entries[i * 128:(i + 1) * 128] = e
    header = bytearray(92)
    header[0:8] = b"EFI PART"
    struct.pack_into("<IIIIQQQQ", header, 8, 0x00010000, 92, 0, 0, 1, total_sectors - 1, 34, total_sectors - 34)
    header[56:72] = uuid.UUID(int=99).bytes_le
    struct.pack_into("<QIII", header, 72, 2, 128, 128, zlib.crc32(bytes(entries)))
    struct.pack_into("<I", header, 16, zlib.crc32(bytes(header)))
    return _mbr([(0xEE, 1, min(total_sectors - 1, 0xFFFFFFFF))]), bytes(header), bytes(entries)


def make_os_image(path, boot_dir=None, table="mbr", fat=True, size_mb=48, boot_mb=24):
    """An OS image: partition 1 = FAT boot partition holding ``boot_dir`` (unless ``fat`` is false: then
    partition 1 is a Linux partition of zeros), partition 2 = a Linux root partition (zeros)."""
    total = size_mb * 2048
    boot_start, boot_count = 8192, boot_mb * 2048
    root_start = boot_start + boot_count
    with open(path, "wb") as f:
        f.truncate(size_mb * 1024 * 1024)
        if table == "mbr":
            f.write(_mbr([(0x0C if fat else 0x83, boot_start, boot_count), (0x83, root_start, total - root_start)]))
        elif table == "gpt":
            esp = "c12a7328-f81f-11d2-ba4b-00a0c93ec93b" if fat else "0fc63daf-8483-4772-8e79-3d69d8477de4"
            mbr, header, entries = _gpt(total, [(esp, boot_start, boot_start + boot_count - 1),
                                                ("0fc63daf-8483-4772-8e79-3d69d8477de4", root_start, total - 34)])
            f.write(mbr)
            f.seek(512)
            f.write(header)
            f.seek(1024)
            f.write(entries)
        elif table != "none":
            raise ValueError(table)
    if fat:
        offset = boot_start if table != "none" else 0
        subprocess.run(["mkfs.vfat", "-F", "16", "-n", "bootfs", "--offset", str(offset), str(path),
                        str(boot_count // 2)], check=True, capture_output=True)
        if boot_dir is not None:
            names = sorted(os.listdir(boot_dir))
            subprocess.run(["mcopy", "-s", "-i", "%s@@%d" % (path, offset * 512)]
                           + [os.path.join(boot_dir, n) for n in names] + ["::/"],
                           check=True, capture_output=True, env=dict(os.environ, MTOOLS_SKIP_CHECK="1"))
    return str(path)


def rsa_key(path=None):
    """A fresh RSA-2048 key (and its PEM written to ``path`` with mode 0600 when given)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if path is not None:
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
    return key


def subprocess_runner(argv, env, cwd):
    """The runner of _fat outside Ansible (tests, benchmarks): (rc, stdout, stderr)."""
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, check=False)
    return proc.returncode, proc.stdout, proc.stderr


NODES = [
    {"name": "node01", "serial": "10000000b7f44626", "nfs_root": "10.0.0.1:/srv/nfs/node01"},
    {"name": "node02", "serial": "8306d03b", "root": "PARTUUID=4e639091-02", "extra_kernel_args": ["quiet"]},
    {"name": "node03", "serial": "100000001a466884", "mac": "e4:5f:01:e2:39:e5"},
]


def build(source, tftp, nodes=None, **kw):
    """``_netboot.trees.build_tftp_trees`` of ``NODES`` (or ``nodes``) with the subprocess runner set."""
    from ansible_collections.picluster.carrier.plugins.module_utils import _fat
    from ansible_collections.picluster.carrier.plugins.module_utils._netboot.trees import build_tftp_trees

    _fat.set_runner(subprocess_runner)
    return build_tftp_trees(str(source), NODES if nodes is None else nodes, str(tftp), **kw)


def tree(root):
    """{relative path: bytes} of every file under ``root`` except the store and lock."""
    from ansible_collections.picluster.carrier.plugins.module_utils._netboot.store import STORE_DIR
    from ansible_collections.picluster.carrier.plugins.module_utils._netboot.trees import LOCK_FILE

    out = {}
    for dirpath, dirnames, files in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != STORE_DIR]
        for name in files:
            if name == LOCK_FILE:
                continue
            full = os.path.join(dirpath, name)
            with open(full, "rb") as f:
                out[os.path.relpath(full, root)] = f.read()
    return out
