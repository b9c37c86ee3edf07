# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A simulated node's bootloader EEPROM, its file tree, and recovery.bin (docs/hardware.md sections 4, 5, 8).

The EEPROM is an image in the real format (``pieeprom.synthetic_image``: BCM2711 512 KiB, BCM2712
2 MiB A/B) whose ``bootconf.txt`` starts as ``[all]`` + ``BOOT_UART=1`` + ``BOOT_ORDER=0xf41`` with the
slot's ``sim: {bootconf: {KEY: value}}`` applied, or the image of ``sim: {eeprom_image: PATH}`` (the
bootconf keys applied to it). Everything the bootloader does with it goes through :class:`NodeEeprom`:
the config it boots with (``[all]`` plus the ``[0x<serial>]`` section of the node), flashing (recovery.bin
here; the network self-update of netboot.py through ``Node.flash_eeprom``).

The node's file tree (``<state-dir>/nodes/<host>/root``) is what ``eeprom_config`` reads on a real Pi:
``proc/device-tree`` (a link to ``sys/firmware/devicetree/base``, as on Linux) with ``compatible``, the
``blconfig`` alias and the nvmem device holding the config the bootloader booted with,
``lib/firmware/raspberrypi/bootloader-2711|2712/default/`` (a ``pieeprom-<date>.bin`` and the simulator's
``recovery.bin``) and ``boot/firmware`` (the boot partition of the SD/eMMC). The EEPROM itself is mirrored
in ``<state-dir>/nodes/<host>/eeprom/pieeprom.bin``.

Recovery (section 4): at power-on or reset the BCM2711 ROM looks for ``recovery.bin`` in the boot
partition of the SD/eMMC (never over the network or USB) and runs it when it is a valid executable for
the SoC (here: the simulator's, recognised by :data:`RECOVERY_MAGIC`). recovery.bin checks
``pieeprom.upd`` against the sha256 of ``pieeprom.sig``, writes it 4 KiB sector by sector (``.`` a sector
unchanged, ``+`` a sector written), verifies it, renames itself ``recovery.000`` and resets; the
bootloader then boots with the new config. A bad or missing ``.sig`` or an image that is not a bootloader
image of this SoC: it says so on the UART and stops with its error code on the activity LED (node state
``error``), the EEPROM untouched, until power is cycled with other files. With no update files it renames
itself and resets.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError

from .bootconf import DEFAULT_BOOT_ORDER, effective_settings, set_in_all
from .firmware import FIRMWARE_RELEASE
from .pieeprom import SECTOR, Pieeprom, parse_sig, synthetic_image

# The config of a node that the topology says nothing about (the simulator's nodes print their boot).
DEFAULT_CONFIG = "[all]\nBOOT_UART=1\nBOOT_ORDER=0xf41\n"
# The config the rpi-eeprom package's default image carries (docs/hardware.md section 5 defaults).
PACKAGE_CONFIG = {
    "bcm2711": "[all]\nBOOT_UART=0\nWAKE_ON_GPIO=1\nPOWER_OFF_ON_HALT=0\n",
    "bcm2712": "[all]\nBOOT_UART=1\nPOWER_OFF_ON_HALT=0\nBOOT_ORDER=0xf461\n",
}
RECOVERY_MAGIC = b"carrier-sim recovery.bin"
RECOVERY_SIZE = 102400
NVMEM_SIZE = 4096  # the blconfig reserved-memory region
BLCONFIG_NODE = "/reserved-memory/nvram@0"
# Where Raspberry Pi OS keeps what eeprom_config reads (docs/hardware.md section 4).
DT_BASE = "/sys/firmware/devicetree/base"
NVMEM_DEVICES = "/sys/bus/nvmem/devices"
FIRMWARE_DIR = "/lib/firmware/raspberrypi"
BACKUP_DIR = "/var/lib/raspberrypi/bootloader/backup"
COMPATIBLE = {
    "cm4": "raspberrypi,4-compute-module", "pi4": "raspberrypi,4-model-b", "cm4s": "raspberrypi,4-compute-module-s",
    "cm5": "raspberrypi,5-compute-module", "pi5": "raspberrypi,5-model-b", "cm3": "raspberrypi,3-compute-module-plus",
    "pizero2": "raspberrypi,model-zero-2-w", "pizero": "raspberrypi,model-zero",
    "pi3bplus": "raspberrypi,3-model-b-plus", "pi3": "raspberrypi,3-model-b",
}


class RecoveryFailed(Exception):
    """recovery.bin stopped: its message is on the UART, its error code on the activity LED."""


def soc_of(info):
    """``bcm2711``/``bcm2712`` for a model with a bootloader EEPROM, else None."""
    return info["soc"].lower() if info.get("eeprom") else None


def recovery_bin(soc):
    """The simulator's recovery.bin for a SoC: a header the ROM recognises, then code-like bytes."""
    header = RECOVERY_MAGIC + b" " + soc.upper().encode() + b"\n"
    seed = hashlib.sha256(header).digest()
    body = (seed * (RECOVERY_SIZE // len(seed) + 1))[:RECOVERY_SIZE - len(header)]
    return header + body


def is_recovery_bin(data, soc):
    return data is not None and data.startswith(RECOVERY_MAGIC + b" " + soc.upper().encode() + b"\n")


def package_image(soc):
    """The rpi-eeprom package's default image of the simulator (same code bytes as every node's)."""
    return synthetic_image(soc, PACKAGE_CONFIG[soc])


def initial_image(soc, bootconf=None, base=None):
    """A node's first EEPROM: ``base`` (bytes) or the default config, with the ``bootconf`` keys set."""
    if base is not None:
        image = Pieeprom(base, "sim.eeprom_image")
        if image.soc != soc:
            raise CarrierError("sim.eeprom_image: a %s image for a %s node" % (image.soc, soc))
        text = image.config
    else:
        image = Pieeprom(package_image(soc), "package image")
        text = DEFAULT_CONFIG
    for key, value in (bootconf or {}).items():
        text = set_in_all(text, str(key), str(value))
    return image.with_config(text).data


def _atomic_write(path, data):
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class NodeEeprom:
    """The EEPROM of one node (bytes in memory, mirrored to a file when the node has a directory)."""

    def __init__(self, soc, data, serial):
        self.soc = soc
        self.serial = serial
        self.data = bytes(data)
        self.path = None
        self.flashes = 0
        self.image = Pieeprom(self.data, "eeprom")

    @property
    def config_text(self):
        return self.image.config

    def settings(self):
        return effective_settings(self.config_text, self.serial)

    def attach(self, path):
        self.path = path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        _atomic_write(path, self.data)

    def flash(self, data, label="pieeprom.upd"):
        """Write a new image (validated: a bootloader image of this SoC); returns (written, unchanged) sectors."""
        image = Pieeprom(data, label)
        if image.soc != self.soc:
            raise CarrierError("%s: a %s image, this EEPROM is %s" % (label, image.soc, self.soc))
        new = image.data
        written = sum(1 for i in range(0, len(new), SECTOR) if new[i:i + SECTOR] != self.data[i:i + SECTOR])
        self.data = new
        self.image = image
        self.flashes += 1
        if self.path:
            _atomic_write(self.path, new)
        return written, len(new) // SECTOR - written

    def snapshot(self):
        return {"soc": self.soc, "size": len(self.data), "sha256": hashlib.sha256(self.data).hexdigest(),
                "file": self.path, "flashes": self.flashes,
                "boot_order": self.settings().get("BOOT_ORDER", "0x%x" % DEFAULT_BOOT_ORDER)}


# --- the node's file tree ------------------------------------------------------------------------------------


class NodeTree:
    """``<dir>/root``: the files of a node that eeprom_config and the shell read; ``<dir>/eeprom``."""

    def __init__(self, directory, model, info, soc):
        self.dir = directory
        self.root = os.path.join(directory, "root")
        self.model = model
        self.info = info
        self.soc = soc

    def path(self, rel):
        return os.path.join(self.root, rel.lstrip("/"))

    @property
    def boot_partition(self):
        return self.path("boot/firmware")

    @property
    def eeprom_file(self):
        return os.path.join(self.dir, "eeprom", "pieeprom.bin")

    def create(self):
        if os.path.lexists(self.dir):
            shutil.rmtree(self.dir)  # a tree a killed simulator left on this state dir
        base = self.path(DT_BASE)
        os.makedirs(base)
        compatible = "%s\0brcm,%s\0" % (COMPATIBLE.get(self.model, "raspberrypi,unknown"), self.info["soc"].lower())
        self._write(os.path.join(base, "compatible"), compatible.encode())
        self._write(os.path.join(base, "model"), (self.info["name"] + "\0").encode())
        os.makedirs(self.path("proc"))
        os.symlink("../sys/firmware/devicetree/base", self.path("proc/device-tree"))
        boot = self.boot_partition
        os.makedirs(os.path.join(boot, "overlays"))
        self._write(os.path.join(boot, "config.txt"), (
            "# For more options and information see\n# http://rptl.io/configtxt\n\n"
            "dtparam=audio=on\ncamera_auto_detect=1\ndisplay_auto_detect=1\nauto_initramfs=1\n"
            "dtoverlay=vc4-kms-v3d\nmax_framebuffers=2\ndisable_fw_kms_setup=1\narm_64bit=1\n"
            "disable_overscan=1\narm_boost=1\n\n[cm4]\notg_mode=1\n\n[cm5]\ndtoverlay=dwc2,dr_mode=host\n\n"
            "[all]\nenable_uart=1\n").encode())
        self._write(os.path.join(boot, "cmdline.txt"), (
            "console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 fsck.repair=yes "
            "rootwait\n").encode())
        # The big firmware files are sparse: their real size, no disk space.
        sizes = {"kernel8.img": 9400832, self.info["dtb"]: 56093}
        if self.info["soc"] == "BCM2712":
            sizes["kernel_2712.img"] = 9580032
        else:
            sizes.update({"start4.elf": 2252832, "fixup4.dat": 5446, "bootcode.bin": 52476})
        for name, size in sizes.items():
            with open(os.path.join(boot, name), "wb") as f:
                f.truncate(size)
        if self.soc:
            fw = self.path("%s/bootloader-%s/default" % (FIRMWARE_DIR, self.soc[3:]))
            os.makedirs(fw)
            self._write(os.path.join(fw, "pieeprom-%s.bin" % FIRMWARE_RELEASE), package_image(self.soc))
            self._write(os.path.join(fw, "recovery.bin"), recovery_bin(self.soc))
            os.makedirs(os.path.join(base, "aliases"))
            self._write(os.path.join(base, "aliases", "blconfig"), (BLCONFIG_NODE + "\0").encode())
            os.makedirs(os.path.join(base, BLCONFIG_NODE.lstrip("/")))
            dev = self.path(NVMEM_DEVICES + "/rmem0")
            os.makedirs(dev)
            os.symlink(os.path.relpath(os.path.join(base, BLCONFIG_NODE.lstrip("/")), dev),
                       os.path.join(dev, "of_node"))
        os.makedirs(self.path(BACKUP_DIR))

    def write_blconfig(self, text):
        """The config the bootloader booted with, as the OS sees it in the blconfig nvmem device."""
        if not self.soc or not os.path.isdir(self.dir):
            return
        raw = text.encode("utf-8")[:NVMEM_SIZE]
        _atomic_write(self.path(NVMEM_DEVICES + "/rmem0/nvmem"), raw + b"\0" * (NVMEM_SIZE - len(raw)))

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    @staticmethod
    def _write(path, data):
        with open(path, "wb") as f:
            f.write(data)

    def read_boot_file(self, name):
        try:
            with open(os.path.join(self.boot_partition, name), "rb") as f:
                return f.read()
        except OSError:
            return None


# --- recovery.bin -------------------------------------------------------------------------------------------


def pending_recovery(node):
    """True when the ROM will run recovery.bin at this reset: an EEPROM SoC, an SD/eMMC with a boot
    partition holding a recovery.bin that is a valid executable for this SoC."""
    tree = node.tree
    if node.eeprom is None or tree is None or not node.media.get("sd", True):
        return False
    return is_recovery_bin(tree.read_boot_file("recovery.bin"), node.eeprom.soc)


def run_recovery(node, say):
    """What recovery.bin does; ``say(text)`` prints a UART line. Returns True when it flashed the EEPROM
    (the caller resets the node); raises RecoveryFailed when it stops with an error code."""
    tree = node.tree
    boot = tree.boot_partition
    upd = tree.read_boot_file("pieeprom.upd")
    sig_text = tree.read_boot_file("pieeprom.sig")
    flashed = False
    if upd is not None:
        if sig_text is None:
            say("Bad signature pieeprom.upd: no pieeprom.sig")
            raise RecoveryFailed("pieeprom.upd has no pieeprom.sig")
        try:
            sig = parse_sig(sig_text, "pieeprom.sig")
        except CarrierError as e:
            say("Bad signature pieeprom.upd: %s" % e)
            raise RecoveryFailed(str(e)) from None
        say("SIG pieeprom.sig %s %d" % (sig.sha256, sig.ts))
        digest = hashlib.sha256(upd).hexdigest()
        if digest != sig.sha256:
            say("Bad signature pieeprom.upd: sha256 %s" % digest)
            raise RecoveryFailed("pieeprom.upd: sha256 %s, pieeprom.sig says %s" % (digest, sig.sha256))
        try:
            image = Pieeprom(upd, "pieeprom.upd")
            if image.soc != node.eeprom.soc:
                raise CarrierError("pieeprom.upd: a %s image on a %s" % (image.soc, node.eeprom.soc))
        except CarrierError as e:
            say("Bad image pieeprom.upd: %s" % e)
            raise RecoveryFailed(str(e)) from None
        say("Reading EEPROM: %d" % len(node.eeprom.data))
        before = node.eeprom.data
        say("Writing EEPROM")
        marks = "".join("." if upd[i:i + SECTOR] == before[i:i + SECTOR] else "+"
                        for i in range(0, len(upd), SECTOR))
        for i in range(0, len(marks), 64):
            say(marks[i:i + 64])
        node.flash_eeprom(upd)
        say("Verify BOOT EEPROM")
        say("Reading EEPROM: %d" % len(node.eeprom.data))
        say("SUCCESS")
        flashed = True
    # Done (or nothing to flash): rename itself so the ROM boots the EEPROM at the reset.
    os.replace(os.path.join(boot, "recovery.bin"), os.path.join(boot, "recovery.000"))
    return flashed
