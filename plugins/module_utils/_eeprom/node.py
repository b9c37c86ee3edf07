# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The node side of ``eeprom_config`` (docs/hardware.md section 4): which SoC and firmware images a node has,
its live bootloader config, a pending update, and the files that stage a new one, as a :class:`Plan`.
"""

from __future__ import annotations

import datetime
import glob
import os
from dataclasses import dataclass

from ansible_collections.picluster.carrier.plugins.module_utils._eeprom.config import (
    decode_config,
    effective_boot_order,
)
from ansible_collections.picluster.carrier.plugins.module_utils._eeprom.files import Plan, desired_config, image_sig
from ansible_collections.picluster.carrier.plugins.module_utils._eeprom.image import EepromImage
from ansible_collections.picluster.carrier.plugins.module_utils._eeprom.sig import sig_timestamp
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._fileio import read_optional
from ansible_collections.picluster.carrier.plugins.module_utils._models import (
    no_eeprom_reason, rom_model_from_compatible)

BACKUP_DIR = "/var/lib/raspberrypi/bootloader/backup"
FIRMWARE_DIR = "/lib/firmware/raspberrypi"
DT_COMPATIBLE = "/proc/device-tree/compatible"
DT_BASE = "/sys/firmware/devicetree/base"
NVMEM_DEVICES = "/sys/bus/nvmem/devices"


def rooted(root, path):
    """``path`` inside ``root`` (``root='/'`` gives ``path``)."""
    return os.path.join(root or "/", path.lstrip("/"))


def detect_soc(compatible_path):
    """``bcm2711`` or ``bcm2712`` from the device tree's compatible strings, else CarrierError."""
    raw = read_optional(compatible_path)
    if raw is None:
        raise CarrierError(
            "this machine is not a Raspberry Pi with a bootloader EEPROM: %s does not exist" % compatible_path
        )
    names = [c for c in raw.decode("ascii", "replace").split("\0") if c]
    for soc in ("bcm2712", "bcm2711"):
        if any(c.endswith("," + soc) or c == soc for c in names):
            return soc
    rom = rom_model_from_compatible(names)
    if rom is not None:
        raise CarrierError("this machine is not a Raspberry Pi 4/5 or CM4/CM5: %s (%s: %s)"
                           % (no_eeprom_reason(rom), compatible_path, ", ".join(names)))
    raise CarrierError(
        "this machine is not a Raspberry Pi 4/5 or CM4/CM5 (no bcm2711/bcm2712 in %s: %s): it has no bootloader EEPROM"
        % (compatible_path, ", ".join(names) or "empty")
    )


def find_firmware_image(firmware_dir, soc, release="default"):
    """The newest ``pieeprom-*.bin`` of a release for a SoC, as rpi-eeprom lays them out."""
    patterns = [
        os.path.join(firmware_dir, "bootloader-%s" % soc[3:], release, "pieeprom-*.bin"),
        os.path.join(firmware_dir, "bootloader-%s" % soc, release, "pieeprom-*.bin"),
    ]
    if soc == "bcm2711":
        patterns.append(os.path.join(firmware_dir, "bootloader", release, "pieeprom-*.bin"))
    found = []
    for p in patterns:
        found.extend(glob.glob(p))
    if not found:
        raise CarrierError("image: no bootloader image for %s found (searched %s); give the image option"
                           % (soc, ", ".join(patterns)))
    return sorted(found, key=os.path.basename)[-1]


def read_blconfig(dt_base, nvmem_devices):
    """The live config from the blconfig nvmem device, or None when there is none."""
    alias = read_optional(os.path.join(dt_base, "aliases", "blconfig"))
    if alias is None:
        return None
    node = alias.split(b"\0", 1)[0].decode("ascii", "replace").strip()
    target = os.path.realpath(os.path.join(dt_base, node.lstrip("/")))
    try:
        devices = sorted(os.listdir(nvmem_devices))
    except OSError:
        return None
    for d in devices:
        of_node = os.path.join(nvmem_devices, d, "of_node")
        if os.path.exists(of_node) and os.path.realpath(of_node) == target:
            raw = read_optional(os.path.join(nvmem_devices, d, "nvmem"))
            if raw is None:
                return None
            raw = raw.split(b"\0", 1)[0].rstrip(b"\xff")
            return decode_config(raw, "blconfig nvmem device %s" % d)
    return None


@dataclass
class NodePaths:
    boot_partition: str
    backup_dir: str
    compatible: str
    dt_base: str
    nvmem_devices: str
    firmware_dir: str

    @classmethod
    def defaults(cls, root="/", boot_partition=None, backup_dir=None, firmware_dir=None):
        if boot_partition is None:
            fw = rooted(root, "/boot/firmware")
            boot_partition = fw if os.path.isdir(fw) else rooted(root, "/boot")
        return cls(
            boot_partition=boot_partition,
            backup_dir=backup_dir or rooted(root, BACKUP_DIR),
            compatible=rooted(root, DT_COMPATIBLE),
            dt_base=rooted(root, DT_BASE),
            nvmem_devices=rooted(root, NVMEM_DEVICES),
            firmware_dir=firmware_dir or rooted(root, FIRMWARE_DIR),
        )


def pending_update(paths):
    """The staged ``pieeprom.upd`` that the next boot will flash, or None.

    docs/hardware.md section 4: recovery.bin flashes the update and renames itself recovery.000, and
    pieeprom.upd stays behind. So an update is pending only while recovery.bin is there too.
    """
    pending = os.path.join(paths.boot_partition, "pieeprom.upd")
    if os.path.exists(pending) and os.path.exists(os.path.join(paths.boot_partition, "recovery.bin")):
        return pending
    return None


def read_node_config(paths, vcgencmd=None):
    """``(text, source)`` of the current config: pending update, blconfig, else ``vcgencmd``.

    ``vcgencmd`` is a callable returning the output of ``vcgencmd bootloader_config`` (or None).
    """
    pending = pending_update(paths)
    if pending:
        return EepromImage.from_file(pending).config, "pending update %s" % pending
    text = read_blconfig(paths.dt_base, paths.nvmem_devices)
    if text is not None:
        return text, "blconfig nvmem device"
    if vcgencmd is not None:
        out = vcgencmd()
        if out is not None:
            return out, "vcgencmd bootloader_config"
    raise CarrierError("cannot read the current bootloader config: no pending update in %s, no blconfig nvmem "
                       "device and no vcgencmd" % paths.boot_partition)


def plan_node_update(paths, boot_order=None, settings=None, section="all", state="present", image=None,
                     recovery_bin=None, release="default", vcgencmd=None, now=None):
    """Everything ``eeprom_config`` stages on a node, as a :class:`Plan` (nothing written here)."""
    ts = sig_timestamp()
    soc = detect_soc(paths.compatible)
    current, source = read_node_config(paths, vcgencmd)
    text, warnings = desired_config(current, None, boot_order, settings, section, state, soc=soc)
    plan = Plan(warnings=warnings, before_config=current, after_config=text)
    staged = pending_update(paths)
    pending = os.path.join(paths.boot_partition, "pieeprom.upd")
    plan.info.update(config_source=source, soc=soc, boot_order=effective_boot_order(text, section),
                     pending=staged is not None)
    if text == current:
        plan.info["reboot_required"] = plan.info["pending"]
        return plan
    if staged:
        base_path = staged
    else:
        base_path = image or find_firmware_image(paths.firmware_dir, soc, release)
    base = EepromImage.from_file(base_path)
    if base.soc != soc:
        raise CarrierError("image: %s is a %s image but this node is a %s" % (base_path, base.soc, soc))
    new = base.with_config(text)
    # Written in this order: the backup first, recovery.bin (which makes the ROM flash) last.
    stamp = (now or datetime.datetime.now()).strftime("%Y%m%d-%H%M%S")
    backup = os.path.join(paths.backup_dir, "pieeprom-backup-%s.conf" % stamp)
    plan.add(backup, current.encode("utf-8"))
    plan.add(pending, new.to_bytes())
    sig_path = os.path.join(paths.boot_partition, "pieeprom.sig")
    plan.add(sig_path, image_sig(new, sig_path, None, ts))
    rec_dest = os.path.join(paths.boot_partition, "recovery.bin")
    rec_src = recovery_bin or os.path.join(os.path.dirname(base_path), "recovery.bin")
    rec = read_optional(rec_src) if rec_src != rec_dest else None
    if rec is not None:
        plan.add(rec_dest, rec)
    elif not os.path.exists(rec_dest):
        raise CarrierError("recovery_bin: %s does not exist and %s has no recovery.bin: the firmware would not "
                           "flash the update" % (rec_src, paths.boot_partition))
    plan.info.update(image=base_path, backup_file=backup, sha256=new.sha256, reboot_required=True)
    return plan
