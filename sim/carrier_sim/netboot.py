# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The NETWORK (0x2) boot mode of a simulated node: real DHCP and TFTP (docs/hardware.md section 6).

A node whose BOOT_ORDER reaches NETWORK does what a Pi 4/CM4 bootloader does: DHCP (dhcp.py), then
reads over TFTP (tftp.py) ``<serial8>/start4.elf`` (an existence test), falling back to the TFTP root
when that directory does not have it; then config.txt, the EEPROM self-update files, start4.elf,
fixup4.dat, the device tree, the overlays named in config.txt, cmdline.txt and the kernel (and an
initramfs when config.txt names one). Once the kernel is loaded, the OS takes its host name from
the first-boot customisation in that directory (cloud-init's ``user-data``/``meta-data``, or the
``firstrun.sh`` its cmdline.txt runs: :func:`netboot_hostname`, read as diskboot.py reads a boot
partition), fetched over TFTP without console lines (the bootloader does not read them).

Pi 5/CM5: no start4.elf; a directory counts when it holds config.txt and the device tree. A file that
is missing fails the boot mode the way a Pi does: the bootloader goes on to the next mode of
BOOT_ORDER (after NET_BOOT_MAX_RETRIES more tries). Where the node's cable goes: netlink.py.

Self-update (docs/hardware.md section 4): when the TFTP directory holds ``pieeprom.sig`` for an image that
differs from the node's EEPROM, the bootloader reads ``pieeprom.upd``, checks it against the ``.sig``
(pieeprom.py, the simulator's own reading), flashes it and resets.

The node's EEPROM for the pubkey and self-update: ``node.eeprom_image`` (bytes) when the node has
one (eeprom.py), else the file named by ``sim: {eeprom_image: PATH}``; flashing is
``node.flash_eeprom(data)`` (the one flash of the simulator).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import re

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError

from .dhcp import DhcpLease, dhcp
from .firstboot import DEFAULT_HOSTNAME, first_boot_hostname
from .netlink import NetbootFailed, configure_address, neighbour_mac, node_network
from .pieeprom import Pieeprom, check_sig, parse_sig
from .tftp import TftpClient, TftpError

TFTP_BLKSIZE = {"BCM2711": 1024, "BCM2712": 1468}
SEED_FILES = ("user-data", "meta-data")
FIRSTRUN = "firstrun.sh"
_DEFAULT_NAME_RE = re.compile(rb"(?<![\w/.-])raspberrypi(?![\w/.-])")


# --- the node's EEPROM ------------------------------------------------------------------------------------


def node_eeprom(node):
    """The bytes of the node's EEPROM image, or None when the simulator gives it none."""
    data = node.eeprom_image
    if data is None:
        path = (node.spec.sim or {}).get("eeprom_image")
        if path:
            with open(path, "rb") as f:
                data = f.read()
            node.eeprom_image = data
    return bytes(data) if data is not None else None


def node_pubkey(node):
    """The customer public key embedded in the node's EEPROM (pubkey.bin), or None."""
    data = node_eeprom(node)
    if data is None:
        return None
    try:
        return Pieeprom(data, "eeprom of %s" % node.host).public_key()
    except CarrierError:  # a corrupt image: no customer key
        return None


# --- the boot modes ----------------------------------------------------------------------------------------


def read_line(name, size, handle):
    return "Read %s bytes %8d hnd 0x%x" % (name, size, handle)


def _config_values(text, key):
    """Values of ``key=`` lines of config.txt (sections ignored: the simulator has one board)."""
    out = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        m = re.match(r"^%s\s*[=\s]\s*(.+)$" % re.escape(key), line)
        if m:
            out.append(m.group(1).strip())
    return out


class _Session:
    """One network boot attempt: a TFTP client, the directory prefix and the output lines."""

    def __init__(self, node, ctx, net, tftp_ip, say, t):
        self.node = node
        self.ctx = ctx
        self.net = net
        self.say = say
        self.t = t
        self.tftp_ip = tftp_ip
        blksize = TFTP_BLKSIZE.get(node.info.get("soc"), 1024)
        self.client = TftpClient(net, tftp_ip, net.get("tftp_port", 69), blksize,
                                 net["timeouts"]["TFTP_FILE_TIMEOUT"])
        self.server_mac = "00:00:00:00:00:00"
        self.prefix = ""
        self.handle = 0

    def now(self):
        self.t = max(self.t + 0.01, self.node.clock())
        return self.t

    async def get(self, name, probe=False, required=True):
        path = self.prefix + name
        try:
            size, data = await self.client.get(path, probe=probe)
        except TftpError as e:
            await self._learn_server_mac()
            self.say(self.now(), "TFTP_GET: %s %s %s" % (self.server_mac, self.tftp_ip, path))
            reason = "File not found" if e.code == 1 else (e.message or "error")
            self.say(self.now(), "TFTP %d: %s %s" % (e.code, reason, path))
            if required:
                raise NetbootFailed("%s: %s" % (path, e)) from None
            return None, None
        await self._learn_server_mac()
        self.say(self.now(), "TFTP_GET: %s %s %s" % (self.server_mac, self.tftp_ip, path))
        if probe:
            self.say(self.now(), "RX: %s tsize %s" % (path, size if size is not None else "?"))
            return size, None
        self.say(self.now(), read_line(path, size, self.handle))
        self.handle += 0x2b00
        self.ctx.files[path] = size
        return size, data

    async def _learn_server_mac(self):
        """The server's MAC from the node's neighbour table, once the first exchange made it known."""
        if self.server_mac == "00:00:00:00:00:00" and self.net.get("netns"):
            self.server_mac = await neighbour_mac(self.net, self.tftp_ip)


def _static_config(config):
    """The EEPROM's static network settings when all four are set, else None."""
    keys = ("TFTP_IP", "CLIENT_IP", "SUBNET", "GATEWAY")
    values = {k: str(config.get(k) or "").strip() for k in keys}
    if not all(values.values()):
        return None
    for key, value in values.items():
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            raise NetbootFailed("%s=%s is not an IPv4 address" % (key, value)) from None
    return values


async def _network_boot(node, ctx, say, t, net):
    """One attempt of the NETWORK mode; returns the new time, raises NetbootFailed."""
    tftp_ip = net.get("tftp_server")
    fixed = _static_config(ctx.config)
    if net["static"]:
        say(t, "NET %s 255.0.0.0 gw 0.0.0.0 tftp %s" % (tftp_ip, tftp_ip))
    else:
        say(t, "NET_BOOT: %s wait for link TFTP: 0.0.0.0" % net["mac"])
        await node.at(t + 0.3)
        say(t + 0.3, "LINK STATUS: speed: 1000 full duplex")
        say(t + 0.3, "Link ready")
        if fixed is not None:
            # TFTP_IP, CLIENT_IP, SUBNET and GATEWAY all set: no DHCP (docs/hardware.md section 5).
            lease = DhcpLease(fixed["CLIENT_IP"], fixed["SUBNET"], fixed["GATEWAY"], fixed["TFTP_IP"], None)
        else:
            lease = await dhcp(node, net, True, say, t)
        await configure_address(net, lease)
        tftp_ip = ctx.config.get("TFTP_IP") or lease.tftp
        t = max(t + 0.5, node.clock())
        if fixed is None:
            say(t, "YI_ADDR %s" % lease.ip)
            say(t, "SI_ADDR %s" % tftp_ip)
        say(t, "NET %s %s gw %s tftp %s" % (lease.ip, lease.mask, lease.gateway, tftp_ip))
    session = _Session(node, ctx, net, tftp_ip, say, t)
    soc = node.info.get("soc")
    # The directory: <serial8>/ when it has the boot files, else the TFTP root (docs/hardware.md section 6).
    serial8 = node.serial[-8:]
    if str(ctx.config.get("TFTP_PREFIX", "0")) == "2":
        serial8 = net["mac"].replace(":", "-")
    elif str(ctx.config.get("TFTP_PREFIX", "0")) == "1":
        serial8 = str(ctx.config.get("TFTP_PREFIX_STR", "")).strip("/")
    probe_name = "start4.elf" if soc == "BCM2711" else "config.txt"
    session.prefix = serial8 + "/" if serial8 else ""
    size, _data = await session.get(probe_name, probe=True, required=False)
    if size is None:
        session.prefix = ""
        size, _data = await session.get(probe_name, probe=True, required=False)
        if size is None:
            raise NetbootFailed("no %s in %s/ or the TFTP root" % (probe_name, serial8))
    _size, config = await session.get("config.txt", required=soc != "BCM2711")
    config_text = (config or b"").decode("utf-8", "replace")
    # Self-update: pieeprom.sig names the image the node should have (docs/hardware.md section 4).
    if str(ctx.config.get("ENABLE_SELF_UPDATE", "1")) != "0" and str(ctx.config.get("FREEZE_VERSION", "0")) != "1":
        flashed = await _self_update(node, session)
        if flashed:
            return "reboot"
    if soc == "BCM2711":
        await session.get("start4.elf")
        await session.get("fixup4.dat")
    dtb = node.info.get("dtb")
    for name in _config_values(config_text, "device_tree") or [dtb]:
        size, _data = await session.get(name, required=False)
        if size is None:
            raise NetbootFailed("Failed to load Device Tree file '%s'" % name)
    for value in _config_values(config_text, "dtoverlay"):
        overlay = value.split(",", 1)[0].strip()
        if overlay:
            size, _data = await session.get("overlays/%s.dtbo" % overlay, required=False)
            if size is None:
                session.say(session.now(), "Failed to load overlay '%s'" % overlay)
    _size, cmdline = await session.get(_config_values(config_text, "cmdline")[-1:][0]
                                       if _config_values(config_text, "cmdline") else "cmdline.txt",
                                       required=False)
    ctx.cmdline = (cmdline or b"").decode("utf-8", "replace").strip()
    kernels = _config_values(config_text, "kernel")[-1:] or (
        ["kernel_2712.img", "kernel8.img"] if soc == "BCM2712" else ["kernel8.img"])
    loaded = None
    for name in kernels:
        size, _data = await session.get(name, required=False)
        if size is not None:
            loaded = name
            break
    if loaded is None:
        raise NetbootFailed("Failed to open kernel %s" % kernels[0])
    for value in _config_values(config_text, "initramfs"):
        await session.get(value.split()[0])
    ctx.seed = await first_boot_files(session, ctx.cmdline)
    node.os_hostname = netboot_hostname(ctx.seed, ctx.cmdline)
    ctx.netboot = {"tftp": tftp_ip, "dir": session.prefix, "kernel": loaded, "bytes": session.client.bytes}
    return session.t


class _Fetched:
    """Files read from a TFTP directory, with the ``read`` of diskboot's boot partition."""

    def __init__(self, files):
        self.files = files

    def read(self, name):
        return self.files.get(name)


def netboot_hostname(files, cmdline):
    """The host name the OS sets from the first-boot files of its TFTP directory (``files``: name ->
    bytes), or None when they name none (the node keeps the inventory's name)."""
    if not files:
        return None
    name = first_boot_hostname(_Fetched(files), cmdline)
    # first_boot_hostname falls back to the image's default name: only a file giving that very name
    # as a word (not /usr/lib/raspberrypi-sys-mods) sets it.
    if name == DEFAULT_HOSTNAME and not any(_DEFAULT_NAME_RE.search(data) for data in files.values()):
        return None
    return name


async def first_boot_files(session, cmdline):
    """The seed files (and the firstrun.sh that ``cmdline`` runs) of the node's TFTP directory."""
    files = {}
    for name in SEED_FILES + ((FIRSTRUN,) if FIRSTRUN in cmdline else ()):
        try:
            _size, data = await session.client.get(session.prefix + name)
        except (TftpError, NetbootFailed, OSError):
            continue
        if data is not None:
            files[name] = data
    return files


async def _self_update(node, session):
    """Flash pieeprom.upd when pieeprom.sig names an image other than the node's EEPROM."""
    current = node_eeprom(node)
    if current is None:
        return False
    size, sig = await session.get("pieeprom.sig", required=False)
    if size is None or sig is None:
        return False
    try:
        parsed = parse_sig(sig, "pieeprom.sig")
    except CarrierError as e:
        session.say(session.now(), "self-update: bad pieeprom.sig: %s" % e)
        return False
    if parsed.sha256 == hashlib.sha256(current).hexdigest():
        session.say(session.now(), "self-update: EEPROM up to date %s" % parsed.sha256[:16])
        return False
    _size, image = await session.get("pieeprom.upd", required=False)
    if image is None:
        return False
    try:
        check_sig(image, sig, "pieeprom.sig", node_pubkey(node) if parsed.rsa2048 else None)
        # Checks the image is one of this node's SoC before writing a byte (CarrierError if not).
        node.flash_eeprom(image)
    except (CarrierError, ValueError) as e:
        session.say(session.now(), "self-update: refused: %s" % e)
        return False
    session.say(session.now(), "Self-update: EEPROM %s -> %s (%d bytes)"
                % (hashlib.sha256(current).hexdigest()[:16], parsed.sha256[:16], len(image)))
    session.say(session.now(), "Self-update: flashed, resetting")
    return True


async def mode_network(node, ctx, t, say):
    """BOOT_ORDER 0x2: TFTP boot. Returns (loaded, t) as boot.BOOT_MODES handlers do."""
    try:
        retries = int(str(ctx.config.get("NET_BOOT_MAX_RETRIES", "0")), 0)
    except ValueError:
        retries = 0
    attempts = 1 + (3 if retries < 0 else max(0, retries))  # "forever" is bounded in the simulator
    try:
        net = await node_network(node, ctx)
    except NetbootFailed as e:
        say(t, "NET_BOOT: %s" % e)
        return False, t + 0.1
    if net is None:
        say(t, "NET_BOOT: %s wait for link TFTP: 0.0.0.0" % (node.spec.mac or "dc:a6:32:00:00:00"))
        await node.at(t + 1.0)
        say(t + 1.0, "NET_BOOT: no link")
        return False, t + 1.0
    for attempt in range(attempts):
        try:
            result = await _network_boot(node, ctx, say, t, net)
        except (NetbootFailed, OSError) as e:
            t = max(t, node.clock()) + 0.01
            say(t, "Net boot failed: %s" % e)
            if attempt + 1 < attempts:
                say(t, "NET_BOOT: retry %d" % (attempt + 1))
            continue
        if result == "reboot":
            await _reset(node)
            return False, max(t, node.clock())
        return True, max(result, node.clock())
    return False, max(t, node.clock())


async def _reset(node):
    """After a self-update the bootloader resets: a fresh boot with the new EEPROM."""
    await node.uart_drain()
    node.power_on_or_reset()  # cancels this boot's task; the new one starts from reset
    await asyncio.sleep(0)
