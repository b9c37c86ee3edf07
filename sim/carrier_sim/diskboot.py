# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Booting from what was written to a node's own storage: its eMMC (BOOT_ORDER SD, 0x1) or NVMe disk (0x6).

The bootloader reads the real partition table (MBR, or GPT behind a protective MBR) and the first FAT
partition of the node's backing file (storage.py, the simulator's own reader), then config.txt, the
firmware (start4.elf and fixup4.dat on a BCM2711; a BCM2712 has none), the device tree and the kernel
(``kernel=`` of config.txt, else kernel8.img; kernel_2712.img first on a BCM2712). A missing file fails
the boot mode as on a Pi (``Firmware not found``, ``Failed to open kernel ...``) and the bootloader goes
on to the next mode of BOOT_ORDER. Once loaded, the OS takes its host name from the boot partition
(:func:`first_boot_hostname`) and the getty and shell show it.

An eMMC never written (its first sector all zeros) is the simulator's stock install: the SD mode reads the
node's file tree instead (boot.py), as it did before any flash.
"""

from __future__ import annotations

import os
import shutil

from . import storage
from .firstboot import first_boot_hostname
from .netboot import _config_values as config_values

MIRROR_CONTENT_MAX = 4 * 1024 * 1024  # bigger files (a kernel) are mirrored sparse; a 2 MiB pieeprom.upd is not


def written_disk(node, kind):
    """The backing file of the node's ``kind`` ("emmc", "nvme") when something was written to it, else None."""
    path = (getattr(node, "storage_files", None) or {}).get(kind)
    return path if path and storage.written(path) else None


def _table_lines(vol):
    """The bootloader's lines for the partition table (docs/hardware.md section 8 style)."""
    lines = []
    if vol.scheme == "gpt":
        lines.append("MBR: 0x%08x,%8d type: 0x%02x" % (1, 0xFFFFFFFF, 0xEE))
        disk_guid, _first, last, count, size, parts = vol.header
        lines.append("GPT %s %09x %09x num-partitions %d entry-size %d"
                     % (disk_guid.bytes_le.hex(), 1, last, count, size))
        p = vol.partition
        end = p.start + p.sectors - 1
        lines.append("GPT partition: %d %s %09x..%09x" % (p.index, p.type.bytes_le.hex(), p.start, end))
    else:
        for start, sectors, ptype in vol.header:
            lines.append("MBR: 0x%08x,%8d type: 0x%02x" % (start, sectors, ptype))
    return lines


async def boot_disk(node, ctx, t, say, path, device):
    """Load the boot files from the image at ``path``; ``(loaded, t)`` as a boot.BOOT_MODES handler."""
    try:
        vol = storage.BootVolume(path)
    except (storage.StorageError, OSError) as exc:
        say(t, "Failed to open device: '%s' (%s)" % (device, exc))
        return False, t + 0.1
    with vol:
        fat = vol.fat
        for line in _table_lines(vol):
            say(t, line)
        say(t + 0.01, "Trying partition: %d" % vol.partition.index)
        say(t + 0.02, "type: %d lba: %d oem: '%s' volume: '%s'"
            % (fat.bits, vol.partition.start, fat.oem.strip(), fat.label))
        say(t + 0.02, "rsc %d fat-sectors %d c-count %d c-size %d" % (fat.reserved, fat.fat_size, fat.clusters,
                                                                      fat.sectors_per_cluster))
        say(t + 0.03, "root dir cluster %d sectors %d entries %d" % (fat.root_cluster, fat.root_sectors,
                                                                     fat.root_entries))
        say(t + 0.03, "FAT%d clusters %d" % (fat.bits, fat.clusters))
        t += 0.05
        try:
            return await _load(node, ctx, t, say, fat, vol.partition.index)
        except (storage.StorageError, OSError) as exc:
            say(node.clock(), "Failed to read the boot partition: %s" % exc)
            return False, node.clock() + 0.1


async def _load(node, ctx, t, say, fat, partition):
    soc = node.info.get("soc")
    handle = [0]

    async def read(name):
        nonlocal t
        data = fat.read(name)
        if data is None:
            return None
        await node.at(t)
        say(t, "Read %s bytes %8d hnd 0x%x" % (name, len(data), handle[0]))
        handle[0] += 0x2b00
        ctx.files[name] = len(data)
        t += 0.05 if len(data) < 100000 else 0.12
        return data

    config = (await read("config.txt") or b"").decode("utf-8", "replace")
    if soc == "BCM2711":
        if await read("start4.elf") is None or await read("fixup4.dat") is None:
            say(t, "Firmware not found")
            return False, t + 0.1
    for name in config_values(config, "device_tree") or [node.info.get("dtb")]:
        if name and fat.exists(name):
            await read(name)
    cmdline_name = (config_values(config, "cmdline") or ["cmdline.txt"])[-1]
    cmdline = (await read(cmdline_name) or b"").decode("utf-8", "replace").strip()
    kernels = config_values(config, "kernel")[-1:] or (
        ["kernel_2712.img", "kernel8.img"] if soc == "BCM2712" else ["kernel8.img"])
    loaded = None
    for name in kernels:
        if await read(name) is not None:
            loaded = name
            break
    if loaded is None:
        say(t, "Failed to open kernel %s" % kernels[0])
        return False, t + 0.1
    ctx.partition = partition
    ctx.cmdline = cmdline
    ctx.disk = {"kernel": loaded}
    node.os_hostname = first_boot_hostname(fat, cmdline)
    if node.tree is not None:
        mirror_boot_partition(fat, node.tree.boot_partition)
    return True, t


def mirror_boot_partition(fat, directory):
    """Make the node's /boot/firmware (its file tree, what the shell and eeprom_config read) the image's
    boot partition: its root files and one level of directories (overlays/). Files over 4 MiB are sparse
    files of their size. Nothing written there later goes back to the image."""
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)

    def copy(entries, prefix, target, depth):
        for name, (is_dir, _cluster, size) in entries.items():
            if "/" in name or name in (".", ".."):
                continue
            path = os.path.join(target, name)
            if is_dir:
                if depth == 0:
                    os.makedirs(path, exist_ok=True)
                    copy(fat.listdir(_cluster), prefix + name + "/", path, 1)
                continue
            with open(path, "wb") as f:
                if size <= MIRROR_CONTENT_MAX:
                    f.write(fat.read(prefix + name) or b"")
                else:
                    f.truncate(size)

    copy(fat.listdir(), "", directory, 0)


async def mode_nvme(node, ctx, t, say):
    """BOOT_ORDER 0x6: the NVMe disk on the module's PCIe lane, when one was written; else tried and skipped."""
    path = written_disk(node, "nvme")
    if path is None:
        await node.at(t + 0.2)
        return False, t + 0.2
    say(t, "NVME on 0")
    await node.at(t + 0.05)
    return await boot_disk(node, ctx, t + 0.05, say, path, "nvme")
