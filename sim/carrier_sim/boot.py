# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The boot of a simulated node: a pipeline of stages, and the text each prints.

A stage is ``async def stage(node, ctx)``; :data:`DEFAULT_PIPELINE` lists them as
``(name, function)``. When the name is a node state, the node enters that state as the stage
starts; other stages set the state themselves (the getty: "login" once its prompt is on the line).
A stage may return the name of a stage to jump to (for example a bootloader that decides to stop), or None
to go on with the next one.

- a board without an EEPROM boots from its boot ROM: a Pi 3B+/3B as bootcode.py describes (SD, then
  USB and the network), the others from SD;
- :meth:`Node.eeprom_config` supplies BOOT_ORDER and the other keys from the node's EEPROM image
  (eeprom.py); the "rom" stage before "bootloader" runs recovery.bin from the boot partition, which
  flashes a staged update (docs/hardware.md section 4);
- :data:`BOOT_MODES` is the one table of boot modes: BOOT_ORDER code -> handler
  ``async def mode(node, ctx, t, say) -> (loaded, t)``; SD is here, NETWORK in netboot.py, HTTP in
  httpboot.py, the eMMC (a CM's SD) and NVMe images in diskboot.py; the modes the simulator has no device
  for are tried and skipped.

Times: each line is printed at the time a real node prints it (seconds since reset, the
bootloader's own prefix), scaled so a whole boot takes ``boot_time`` seconds (docs/hardware.md
section 8 for the bootloader lines and the login prompt).
"""

from __future__ import annotations

import asyncio
import os

from . import bootcode, diskboot, eeprom
from .bootconf import parse_boot_order
from .firmware import BOOTLOADER_BUILD_TS, BOOTLOADER_DATE, BOOTLOADER_TIME, BOOTLOADER_VERSION, FIRMWARE_HASH
from .httpboot import mode_http
from .netboot import mode_network
from .shell import getty

# docs/hardware.md section 5: BOOT_ORDER codes, read right (first) to left.
BOOT_MODE_NAMES = {0x1: "SD", 0x2: "NETWORK", 0x3: "USB-DEV", 0x4: "USB-MSD", 0x5: "BCM-USB-MSD", 0x6: "NVME",
                   0x7: "HTTP", 0xE: "STOP", 0xF: "RESTART"}

# The real time (seconds since reset) a CM4 reaches its login prompt; boot_time scales it.
REAL_BOOT_SECONDS = 12.0


class BootHalted(Exception):
    """The boot stops here (no bootable mode, BOOT_ORDER STOP): the node stays silent."""


class BootContext:
    """What the stages of one boot share."""

    def __init__(self, node):
        self.node = node
        self.config = node.eeprom_config()
        self.boot_order = parse_boot_order(self.config.get("BOOT_ORDER"))
        self.mode = None  # the boot mode that loaded the OS ("SD", "NETWORK" ...)
        self.seed = {}  # the first-boot seed files a network boot fetched (a disk's are on its boot partition)
        self.files = {}  # name -> size of what the bootloader read
        self.partition = 0


async def stage_rom(node, ctx):
    """The boot ROM (BCM2711/BCM2712): with a valid recovery.bin in the SD/eMMC boot partition it runs that
    instead of the EEPROM bootloader (docs/hardware.md section 4); recovery.bin flashes a staged pieeprom.upd,
    renames itself recovery.000 and resets. Otherwise it goes on to the EEPROM bootloader at once."""
    if not eeprom.pending_recovery(node):
        return None
    node.set_state("recovery")
    # recovery.bin prints on the UART when the EEPROM has BOOT_UART=1 or config.txt has uart_2ndstage=1.
    config_txt = (node.tree.read_boot_file("config.txt") or b"").decode("utf-8", "replace")
    uart = str(ctx.config.get("BOOT_UART", "0")) == "1" or any(
        line.split("#", 1)[0].replace(" ", "") == "uart_2ndstage=1" for line in config_txt.splitlines())
    await node.at(0.5)

    def say(text):
        if uart:
            node.line(text)

    say("")
    say("Loading recovery.bin (SoC %s)" % node.info["soc"])
    try:
        flashed = eeprom.run_recovery(node, say)
    except eeprom.RecoveryFailed as exc:
        node.error = "recovery.bin: %s" % exc
        await node.uart_drain()
        return "error"  # the activity LED flashes the error code; nothing more on the UART
    await node.pause(2.0 if flashed else 0.2)  # a real 512 KiB write takes a few seconds
    await node.uart_drain()
    return "restart"


def _order_text(codes):
    return "".join("%x" % c for c in reversed(codes)) or "0"


async def stage_bootloader(node, ctx):
    """The SPI EEPROM bootloader (BCM2711/BCM2712) with BOOT_UART=1, then start4.elf."""
    info = node.info
    if not info["eeprom"]:
        if info.get("rom_netboot"):  # Pi 3B+/3B: SD card, then USB and Ethernet (bootcode.py)
            if not await bootcode.rom_boot(node, ctx):
                raise BootHalted()
            return None
        # bootcode.bin boards (CM3, Pi Zero) print nothing on the UART before the kernel.
        await node.at(1.5)
        ctx.mode = "SD"
        return None
    uart = str(ctx.config.get("BOOT_UART", "1")) == "1"
    if node.eeprom is not None:
        node.booted_with(node.eeprom.config_text)

    def say(t, text):
        if uart:
            node.line("%6.2f %s" % (t, text))

    await node.at(0.96)
    say(0.96, "RPi: BOOTLOADER release VERSION:%s DATE: %s TIME: %s"
        % (BOOTLOADER_VERSION, BOOTLOADER_DATE, BOOTLOADER_TIME))
    say(0.96, "BOOTMODE: 0x06 partition 0 build-ts BUILD_TIMESTAMP=%d serial %s boardrev %s stc %d"
        % (BOOTLOADER_BUILD_TS, node.serial[-8:], info["boardrev"], 965138 + node.slot * 1117))
    say(0.99, "AON_RESET: 1 PM_RSTS: 00001000")
    say(1.00, "POWER_OFF_ON_HALT: %s WAIT_FOR_POWER_BUTTON: 0 power-on-reset: 1"
        % ctx.config.get("POWER_OFF_ON_HALT", "1" if node.model == "cm5" else "0"))
    if info["soc"] == "BCM2712":
        say(1.01, "RP1_BOOT chip ID: 0x20001927")
    t = 1.03
    remaining = list(ctx.boot_order)
    index = 0
    while remaining:
        code = remaining.pop(0)
        name = BOOT_MODE_NAMES.get(code, "UNKNOWN")
        await node.at(t)
        say(t, "Boot mode: %s (%02x) order %s" % (name, code, _order_text(remaining)))
        if code == 0xF:  # RESTART: loop to the first mode
            remaining = list(ctx.boot_order)
            t += 0.5
            index += 1
            if index > 1000:
                raise BootHalted()
            continue
        if code == 0xE:  # STOP
            raise BootHalted()
        if code == 0x3:  # RPIBOOT: the boot ROM's USB device boot, waiting for a host
            return "rpiboot"
        handler = BOOT_MODES.get(code)
        if handler is None:
            say(t + 0.01, "Unknown boot mode %x: skipped" % code)
            t += 0.02
            continue
        loaded, t = await handler(node, ctx, t + 0.02, say)
        if loaded:
            ctx.mode = name
            break
    else:
        raise BootHalted()
    await node.at(t)
    say(t, "Firmware: %s Mar 17 2023 10:50:39" % FIRMWARE_HASH)
    say(t + 0.01, "0x00%s 0x00000000 0x00001fff" % info["boardrev"])
    say(t + 0.01, "MEM GPU: 76 ARM: 948 TOTAL: 1024")
    await node.at(t + 0.02)
    say(t + 0.02, "Starting start4.elf @ 0xfec00200 partition %d" % ctx.partition)
    await node.at(2.4)
    return None


async def mode_sd(node, ctx, t, say):
    """SD/eMMC: the CM4's eMMC answers as SD. Loads config.txt, start4.elf, fixup4.dat."""
    if not node.media.get("sd", True):
        say(t, "SD card not detected")
        return False, t + 0.3
    say(t, "SD HOST: 200000000 CTL0: 0x00800000 BUS: 400000 Hz actual: 390625 HZ div: 512 (256) status: "
           "0x1fff0000 delay: 276")
    say(t + 0.02, "OCR c0ff8080 [0]")
    say(t + 0.03, "CID: 0015014242544434520128dc6c3b0f7f")
    say(t + 0.03, "CSD: d02701320f5903fff6dbffef8e40400d")
    say(t + 0.04, "SD: bus-width: 8 spec: 4 SCR: 0x00000000 0x00000000")
    await node.at(t + 0.06)
    flashed = diskboot.written_disk(node, "emmc")  # a CM's eMMC answers as SD; never written: the stock tree
    if flashed:
        return await diskboot.boot_disk(node, ctx, t + 0.06, say, flashed, "sdcard")
    say(t + 0.06, "MBR: 0x00002000, 1048576 type: 0x0c")
    say(t + 0.06, "MBR: 0x00102000,60002304 type: 0x83")
    say(t + 0.07, "Trying partition: 0")
    say(t + 0.08, "type: 32 lba: 8192 oem: 'mkfs.fat' volume: ' bootfs     '")
    say(t + 0.08, "rsc 32 fat-sectors 4096 c-count 261627 c-size 4")
    say(t + 0.09, "root dir cluster 2 sectors 0 entries 0")
    say(t + 0.09, "FAT32 clusters 261627")
    t += 0.12
    for name, size in (("config.txt", 1214), ("start4.elf", 2252832), ("fixup4.dat", 5446)):
        if node.tree is not None and os.path.isfile(os.path.join(node.tree.boot_partition, name)):
            size = os.path.getsize(os.path.join(node.tree.boot_partition, name))  # the node's boot partition
        await node.at(t)
        say(t, "Read %s bytes %8d hnd 0x%x" % (name, size, 0x5 + len(ctx.files) * 0x2b00))
        ctx.files[name] = size
        t += 0.05 if size < 100000 else 0.12
    return True, t


async def mode_absent(node, ctx, t, say):
    """A boot mode whose device the simulator does not have (USB mass storage): tried, then skipped."""
    await node.at(t + 0.2)
    return False, t + 0.2


# RPIBOOT (0x3), STOP (0xe) and RESTART (0xf) are the bootloader stage's own: they load nothing.
BOOT_MODES = {
    0x1: mode_sd,
    0x2: mode_network,
    0x4: mode_absent,
    0x5: mode_absent,
    0x6: diskboot.mode_nvme,
    0x7: mode_http,
}


def dmesg(t, text):
    """A printk line: ``[    2.403311] text``."""
    return "[%5d.%06d] %s" % (int(t), int(round((t - int(t)) * 1e6)), text)


_dmesg = dmesg

# What the kernel prints when it cannot mount its root file system (the panic fault).
PANIC_LINES = (
    "VFS: Cannot open root device \"PARTUUID=4e639091-02\" or unknown-block(179,2): error -6",
    "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(179,2)",
    "CPU: 0 PID: 1 Comm: swapper/0 Not tainted 6.6.51+rpt-rpi-v8 #1 Debian 1:6.6.51-1+rpt3",
    "---[ end Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(179,2) ]---",
)


def _kernel_lines(node, ctx):
    """(seconds since the kernel started, text) of what Linux prints up to starting init."""
    info = node.info
    cmdline = ("coherent_pool=1M 8250.nr_uarts=1 snd_bcm2835.enable_headphones=0 cgroup_disable=memory "
               "numa_policy=interleave console=ttyS0,115200 console=tty1 root=PARTUUID=4e639091-02 "
               "rootfstype=ext4 fsck.repair=yes rootwait")
    if getattr(ctx, "disk", None) and ctx.cmdline:  # booted from its storage: the image's cmdline.txt,
        # after the arguments the firmware puts first (serial0 is the firmware's alias of the UART)
        cmdline = " ".join(cmdline.split()[:5] + [ctx.cmdline.replace("serial0", "ttyS0")])
    return [
        (0.000000, "Booting Linux on physical CPU 0x0000000000 [0x410fd083]"),
        (0.000000, "Linux version %s (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0, GNU ld "
                   "(GNU Binutils for Debian) 2.40) #1 SMP PREEMPT Debian 1:6.6.51-1+rpt3 (2024-10-08)"
         % info["kernel"]),
        (0.000000, "KASLR enabled"),
        (0.000000, "random: crng init done"),
        (0.000000, "Machine model: %s" % info["name"]),
        (0.000000, "efi: UEFI not found."),
        (0.000000, "Reserved memory: created CMA memory pool at 0x000000001ac00000, size 64 MiB"),
        (0.000000, "Kernel command line: %s" % cmdline),
        (0.000000, "Memory: %dK/%dK available" % (info["mem_mb"] * 1024 - 270000, info["mem_mb"] * 1024)),
        (0.001432, "smp: Bringing up secondary CPUs ..."),
        (0.041870, "smp: Brought up 1 node, %d CPUs" % info["cores"]),
        (0.120543, "fe215040.serial: ttyS0 at MMIO 0xfe215040 (irq = 29, base_baud = 62500000) is a 16550"),
        (0.120611, "printk: console [ttyS0] enabled"),
        (1.180212, "mmc0: new DDR MMC card at address 0001"),
        (1.190877, "mmcblk0: mmc0:0001 BJTD4R 29.1 GiB"),
        (1.201446, " mmcblk0: p1 p2"),
        (2.015534, "EXT4-fs (mmcblk0p2): mounted filesystem 4aa56689-dcb4-4759-90e6-179beae559ac ro with ordered "
                   "data mode. Quota mode: none."),
        (2.021876, "VFS: Mounted root (ext4 filesystem) readonly on device 179:2."),
        (2.403311, "Run /sbin/init as init process"),
    ]


_SYSTEMD_UNITS = [
    "Created slice system-getty.slice - Slice /system/getty.",
    "Created slice system-serial\\x2dgetty.slice - Slice /system/serial-getty.",
    "Reached target cryptsetup.target - Local Encrypted Volumes.",
    "Started systemd-journald.service - Journal Service.",
    "Finished systemd-fsck-root.service - File System Check on Root Device.",
    "Finished systemd-remount-fs.service - Remount Root and Kernel File Systems.",
    "Mounted boot-firmware.mount - /boot/firmware.",
    "Reached target local-fs.target - Local File Systems.",
    "Started systemd-udevd.service - Rule-based Manager for Device Events and Files.",
    "Reached target sysinit.target - System Initialization.",
    "Started dbus.service - D-Bus System Message Bus.",
    "Started NetworkManager.service - Network Manager.",
    "Reached target network.target - Network.",
    "Started ssh.service - OpenBSD Secure Shell server.",
    "Started serial-getty@ttyS0.service - Serial Getty on ttyS0.",
    "Reached target getty.target - Login Prompts.",
    "Reached target multi-user.target - Multi-User System.",
]


async def stage_kernel(node, ctx):
    """Linux and systemd up to the getty. A hang fault stops it in the middle."""
    base = 2.5  # seconds since reset when the kernel starts
    lines = _kernel_lines(node, ctx)
    hang_at = len(lines) - 4  # after the MMC lines: the node is silent from then on
    for i, (kt, text) in enumerate(lines):
        if i == hang_at:
            fault = await _kernel_fault(node, kt)
            if fault:
                return fault
        await node.at(base + kt)
        node.line(_dmesg(kt, text))
    if node.twin is not None:  # init starts: the twin's systemd boots from here (twin.py)
        node.twin.boot(ctx)
    if node.undervolt:
        node.line(_dmesg(2.9, "Under-voltage detected! (0x%08x)" % node.throttled()))
    await node.at(base + 3.0)
    await _systemd(node, base)
    await node.at(REAL_BOOT_SECONDS)
    return None


async def _kernel_fault(node, kt):
    """What a faulted node does where the kernel would start init: the stage's end, or None."""
    if node.hang:
        return "hung"
    if node.boot_loop:  # a reset before login: a fresh boot, nothing printed
        await node.uart_drain()
        return "restart"
    if node.panic:  # panic=0: the kernel stops there
        for j, panic_text in enumerate(PANIC_LINES):
            node.line(_dmesg(kt + 0.001 * j, panic_text))
        await node.uart_drain()
        return "panic"
    return None


async def _systemd(node, base):
    """systemd from its banner to the getty, one unit line every 0.3 s."""
    node.line(_dmesg(3.012388, "systemd[1]: systemd 252.30-1~deb12u2 running in system mode (+PAM +AUDIT "
                               "+SELINUX +APPARMOR +IMA +SMACK +SECCOMP +GCRYPT -GNUTLS +OPENSSL +ACL +BLKID "
                               "+CURL +ELFUTILS +FIDO2 +IDN2 -IDN +IPTC +KMOD +LIBCRYPTSETUP +LIBFDISK +PCRE2 "
                               "-PWQUALITY +P11KIT +QRENCODE +TPM2 +BZIP2 +LZ4 +XZ +ZLIB +ZSTD -BPF_FRAMEWORK "
                               "-XKBCOMMON +UTMP +SYSVINIT default-hierarchy=unified)"))
    node.line(_dmesg(3.020011, "systemd[1]: Detected architecture arm64."))
    node.line(_dmesg(3.031544, "systemd[1]: Hostname set to <%s>." % node.hostname))
    node.line("")
    node.line("Welcome to \x1b[1mDebian GNU/Linux 12 (bookworm)\x1b[0m!")
    node.line("")
    for i, text in enumerate(_SYSTEMD_UNITS):
        await node.at(base + 4.0 + i * 0.3)
        node.line("[\x1b[0;32m  OK  \x1b[0m] %s" % text)


async def stage_login(node, ctx):
    """The serial getty and the shell it starts (see shell.py); runs until power goes."""
    return await getty(node)  # "poweroff" or "reboot" from the shell


async def stage_poweroff(node, ctx):
    """systemd stopping, then the kernel's last line; the node halts (its power line untouched)."""
    start = node.clock()
    for i, text in enumerate(("Stopped target multi-user.target - Multi-User System.",
                              "Stopped serial-getty@ttyS0.service - Serial Getty on ttyS0.",
                              "Stopped ssh.service - OpenBSD Secure Shell server.",
                              "Unmounted boot-firmware.mount - /boot/firmware.",
                              "Reached target shutdown.target - System Shutdown.",
                              "Reached target final.target - Late Shutdown Services.")):
        await node.at(start + 0.2 * i)
        node.line("[\x1b[0;32m  OK  \x1b[0m] %s" % text)
    await node.at(start + 1.5)
    node.line(_dmesg(node.uptime(), "reboot: Power down"))
    await node.uart_drain()
    return "halted"


async def stage_reboot(node, ctx):
    start = node.clock()
    node.line("[\x1b[0;32m  OK  \x1b[0m] Reached target reboot.target - System Reboot.")
    await node.at(start + 1.0)
    node.line(_dmesg(node.uptime(), "reboot: Restarting system"))
    await node.uart_drain()
    return "restart"


async def stage_halted(node, ctx):
    """Halted (after poweroff): silent until power is cycled or run is pulsed."""
    await asyncio.Event().wait()


async def stage_rpiboot(node, ctx):
    """The boot ROM waiting for a USB host (nRPIBOOT low, or BOOT_ORDER reached RPIBOOT): silent."""
    await asyncio.Event().wait()


async def stage_error(node, ctx):
    """recovery.bin stopped with an error code (the activity LED flashes it): silent until a power cycle."""
    await asyncio.Event().wait()


async def stage_hung(node, ctx):
    """A node that stopped in the middle of booting: silent until power or run moves."""
    await asyncio.Event().wait()


async def stage_panic(node, ctx):
    """After a kernel panic (the panic fault): silent until power or run moves."""
    await asyncio.Event().wait()


DEFAULT_PIPELINE = [
    ("rom", stage_rom),  # not a state name: "recovery" only when it runs recovery.bin
    ("bootloader", stage_bootloader),
    ("kernel", stage_kernel),
    ("getty", stage_login),  # not a state name: the getty reports "login" once its prompt is out
]

# Stages reached only by a jump (a stage returning their name).
JUMP_STAGES = {
    "rpiboot": stage_rpiboot,
    "hung": stage_hung,
    "panic": stage_panic,
    "error": stage_error,
    "poweroff": stage_poweroff,
    "reboot": stage_reboot,
    "halted": stage_halted,
}
