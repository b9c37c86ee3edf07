# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The network boot of a Pi 3B+ / 3B: the BCM2837 boot ROM, then bootcode.bin, then start.elf
(docs/hardware.md section 11). No EEPROM, no BOOT_ORDER.

- The ROM tries the SD card first (``sim: {media: {sd: false}}``: none, five seconds to fail), then USB
  host boot when it is enabled (a 3B+ as made; a 3B only with OTP bit 17, ``sim: {otp_usb_boot: true}``):
  mass storage (the simulator's hub has none), then the Ethernet chip: DHCP with the PXE vendor class
  (dhcp.py, the same exchange as the Pi 4's), then plain TFTP (512-byte blocks, no options) of
  ``bootcode.bin`` and ``bootsig.bin`` from the TFTP root. The ROM prints nothing: a missing
  bootcode.bin leaves the node silent.
- bootcode.bin tests ``<serial8>/start.elf`` (the first block, then an abort) and then reads every
  file from that directory, else from the root; config.txt, start.elf, fixup.dat. It prints on the
  UART only when its own bytes say ``BOOT_UART=1`` (the documented ``sed`` on bootcode.bin); a missing
  start.elf stops the node there.
- start.elf reads the device tree, the overlays, cmdline.txt and the kernel (``kernel8.img`` with
  ``arm_64bit=1``, else ``kernel7.img``, or config.txt's ``kernel=``); it prints its reads when config.txt
  has ``uart_2ndstage=1``.

The wording of the UART lines is the simulator's own (the documentation shows none); the reads and
their order are what the documentation describes. bootcode.bin keeps the ROM's DHCP lease.
"""

from __future__ import annotations

from .dhcp import dhcp
from .netboot import _config_values, first_boot_files, netboot_hostname
from .netlink import NetbootFailed, configure_address, node_network
from .tftp import TftpClient, TftpError

SD_TIMEOUT = 5.0  # seconds the ROM waits for an SD card that is not there
USB_ENUMERATION = 2.0  # seconds it waits for USB devices on the hub


def usb_host_boot(node):
    """Whether the ROM tries USB host boot (mass storage, then Ethernet) after the SD card."""
    how = node.info.get("rom_netboot")
    if how == "rom":
        return True
    return how == "otp" and bool((node.spec.sim or {}).get("otp_usb_boot", False))


class _Reader:
    """TFTP reads of one stage of the boot, printed when that stage's UART output is on."""

    def __init__(self, node, client, ctx):
        self.node = node
        self.client = client
        self.ctx = ctx
        self.prefix = ""
        self.uart = False

    def say(self, text):
        if self.uart:
            self.node.line(text)

    async def exists(self, name):
        try:
            await self.client.get(name, probe=True)
        except TftpError:
            self.say("TFTP: %s not found" % name)
            return False
        return True

    async def read(self, name, required=True):
        path = self.prefix + name
        try:
            size, data = await self.client.get(path)
        except TftpError as e:
            self.say("TFTP: %s not found" % path)
            if required:
                raise NetbootFailed("%s: %s" % (path, e)) from None
            return None
        self.say("Read File: %s, %d (bytes)" % (path, size))
        self.ctx.files[path] = size
        return data if data is not None else b""


async def _rom(node, ctx, net):
    """The ROM's part: DHCP, bootcode.bin. Returns (client, own address, bootcode.bin bytes) or None."""
    address = "127.0.0.1"
    if net["static"]:
        tftp_ip = net["tftp_server"]
    else:
        lease = await dhcp(node, net, True, lambda t, text: None, node.clock())
        await configure_address(net, lease)
        tftp_ip, address = lease.tftp, lease.ip
    client = TftpClient(net, tftp_ip, net.get("tftp_port", 69), 512, net["timeouts"]["TFTP_FILE_TIMEOUT"],
                        options=False)
    try:
        _size, code = await client.get("bootcode.bin")
    except TftpError:
        return None
    try:
        await client.get("bootsig.bin")  # normally "file not found"
    except TftpError:
        pass
    return client, address, code or b""


async def _start_elf(node, ctx, reader, config_text):
    """start.elf's reads: device tree, overlays, cmdline.txt, kernel. False when one it needs is missing."""
    reader.uart = any(v.replace(" ", "") == "1" for v in _config_values(config_text, "uart_2ndstage"))
    for name in _config_values(config_text, "device_tree") or [node.info["dtb"]]:
        if await reader.read(name, required=False) is None:
            reader.say("Failed to load Device Tree file '%s'" % name)
            return False
    for value in _config_values(config_text, "dtoverlay"):
        overlay = value.split(",", 1)[0].strip()
        if overlay and await reader.read("overlays/%s.dtbo" % overlay, required=False) is None:
            reader.say("Failed to load overlay '%s'" % overlay)
    names = _config_values(config_text, "cmdline")
    cmdline = await reader.read(names[-1] if names else "cmdline.txt", required=False)
    ctx.cmdline = (cmdline or b"").decode("utf-8", "replace").strip()
    arm64 = any(v.strip() == "1" for v in _config_values(config_text, "arm_64bit"))
    kernel = (_config_values(config_text, "kernel") or ["kernel8.img" if arm64 else "kernel7.img"])[-1]
    if await reader.read(kernel, required=False) is None:
        reader.say("Failed to open kernel %s" % kernel)
        return False
    for value in _config_values(config_text, "initramfs"):
        await reader.read(value.split()[0], required=False)
    ctx.netboot = {"tftp": reader.client.server, "dir": reader.prefix, "kernel": kernel,
                   "bytes": reader.client.bytes}
    return True


async def _bootcode(node, ctx, client, code, address):
    """bootcode.bin: the serial directory or the root, config.txt, start.elf, fixup.dat; then start.elf."""
    reader = _Reader(node, client, ctx)
    reader.uart = b"BOOT_UART=1" in code
    serial8 = node.serial[-8:]
    reader.say("Raspberry Pi Bootcode")
    reader.say("Booting from Ethernet: serial %s, IP %s, TFTP server %s" % (serial8, address, client.server))
    if await reader.exists(serial8 + "/start.elf"):
        reader.prefix = serial8 + "/"
    elif not await reader.exists("start.elf"):
        reader.say("start.elf not found in %s/ or the TFTP root: stopped" % serial8)
        await node.uart_drain()
        return False
    config = await reader.read("config.txt", required=False)
    config_text = (config or b"").decode("utf-8", "replace")
    try:
        await reader.read("start.elf")
        await reader.read("fixup.dat")
    except NetbootFailed as e:
        reader.say("%s: stopped" % e)
        await node.uart_drain()
        return False
    if not await _start_elf(node, ctx, reader, config_text):
        await node.uart_drain()
        return False
    ctx.seed = await first_boot_files(reader, ctx.cmdline)
    node.os_hostname = netboot_hostname(ctx.seed, ctx.cmdline)
    return True


async def rom_boot(node, ctx):
    """The boot of a BCM2837 board. True when a kernel is loaded (``ctx.mode`` says from where); False
    when the node stops silent (no boot source: the ROM's low-power state, or bootcode.bin's stop)."""
    if node.media.get("sd", True):
        await node.at(1.5)
        ctx.mode = "SD"
        return True
    await node.at(SD_TIMEOUT)
    if not usb_host_boot(node):
        return False
    await node.at(SD_TIMEOUT + USB_ENUMERATION)  # no mass storage device: on to the Ethernet chip
    try:
        net = await node_network(node, ctx)
        if net is None:
            return False
        rom = await _rom(node, ctx, net)
        if rom is None:
            return False
        client, address, code = rom
        if not await _bootcode(node, ctx, client, code, address):
            return False
    except (NetbootFailed, OSError):
        return False
    ctx.mode = "NETWORK"
    return True
