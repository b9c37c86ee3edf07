# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HTTP (0x7) boot mode of a simulated node (docs/hardware.md section 7).

``http://HTTP_HOST:HTTP_PORT/HTTP_PATH/boot.sig`` then ``boot.img``; the image is refused unless its
``.sig`` holds an ``rsa2048:`` signature that verifies with the ``pubkey.bin`` of the node's EEPROM
(the simulator has no Raspberry Pi key, so a node without a customer key refuses every image). The
node's network is netlink.py's, its address from dhcp.py (unless the topology gives a static server).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import tempfile

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError

from .dhcp import dhcp
from .netboot import node_pubkey, read_line
from .netlink import NetbootFailed, configure_address, in_netns, node_network
from .pieeprom import check_sig

MAX_BOOT_IMG = 96 * 1024 * 1024


async def _http_get(net, host, port, path, timeout):
    loop = asyncio.get_running_loop()

    def make():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if net.get("iface") and net.get("netns"):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, net["iface"].encode())
        s.setblocking(False)
        return s

    sock = await in_netns(net.get("netns"), make)
    try:
        await asyncio.wait_for(loop.sock_connect(sock, (host, port)), timeout)
        reader, writer = await asyncio.open_connection(sock=sock)
    except (OSError, asyncio.TimeoutError) as e:
        sock.close()
        raise NetbootFailed("HTTP: cannot connect to %s:%d: %s" % (host, port, e or "timeout")) from None
    try:
        writer.write(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: rpi-bootloader\r\nConnection: close\r\n\r\n"
                      % (path, host, port)).encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status = head.split(b"\r\n", 1)[0].decode("latin-1")
        m = re.match(r"HTTP/1\.[01] (\d{3})", status)
        if not m:
            raise NetbootFailed("HTTP: bad response %r" % status)
        code = int(m.group(1))
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        if length:
            body = await asyncio.wait_for(reader.readexactly(int(length.group(1))), timeout)
        else:
            body = await asyncio.wait_for(reader.read(), timeout)
        return code, body
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
        raise NetbootFailed("HTTP: %s" % e) from None
    finally:
        writer.close()


async def mode_http(node, ctx, t, say):
    """BOOT_ORDER 0x7: HTTP boot of a signed boot.img (docs/hardware.md section 7)."""
    try:
        net = await node_network(node, ctx)
        if net is None:
            say(t, "NET_BOOT: no link")
            return False, t + 1.0
        host = str(ctx.config.get("HTTP_HOST") or "")
        if not net["static"]:
            lease = await dhcp(node, net, False, say, t)
            await configure_address(net, lease)
            say(max(t, node.clock()), "NET %s %s gw %s tftp %s" % (lease.ip, lease.mask, lease.gateway, lease.tftp))
        if not host:
            raise NetbootFailed("HTTP_HOST is not set (the simulator cannot reach Raspberry Pi's server)")
        port = int(str(ctx.config.get("HTTP_PORT") or net.get("http_port") or 80))
        path = "/" + str(ctx.config.get("HTTP_PATH", "net_install")).strip("/")
        base = "http://%s:%d%s" % (host, port, path)
        timeout = net["timeouts"]["TFTP_FILE_TIMEOUT"]
        t = max(t, node.clock())
        say(t, "HTTP: GET request for %s/boot.sig" % base)
        code, sig = await _http_get(net, host, port, path + "/boot.sig", timeout)
        if code != 200:
            raise NetbootFailed("HTTP: %s/boot.sig: status %d" % (base, code))
        t = max(t, node.clock())
        say(t, "HTTP: GET request for %s/boot.img" % base)
        code, image = await _http_get(net, host, port, path + "/boot.img", timeout)
        if code != 200:
            raise NetbootFailed("HTTP: %s/boot.img: status %d" % (base, code))
        t = max(t, node.clock())
        say(t, "HTTP: downloaded boot.img %d bytes" % len(image))
        if len(image) > MAX_BOOT_IMG:
            raise NetbootFailed("boot.img is %d bytes: over 96 MB" % len(image))
        public = node_pubkey(node)
        if public is None:
            raise NetbootFailed("signature check failed: no customer key (pubkey.bin) in the EEPROM, and only "
                                "Raspberry Pi's key is accepted")
        try:
            check_sig(image, sig, "boot.sig", public)
        except CarrierError as e:
            raise NetbootFailed("signature check failed: %s" % e) from None
        say(max(t, node.clock()), "HTTP: boot.sig verified with the customer key")
        files = await asyncio.get_running_loop().run_in_executor(None, _fat_listing, image)
        t = max(t, node.clock())
        for name in ("config.txt", node.info.get("dtb"), "cmdline.txt",
                     "kernel_2712.img" if node.info.get("soc") == "BCM2712" else "kernel8.img"):
            if name not in files:
                raise NetbootFailed("boot.img has no %s" % name)
            say(t, read_line("boot.img:" + name, files[name], 0))
            ctx.files["boot.img:" + name] = files[name]
        ctx.netboot = {"http": base, "bytes": len(image) + len(sig)}
        return True, max(t, node.clock())
    except (NetbootFailed, OSError) as e:
        t = max(t, node.clock()) + 0.01
        say(t, "HTTP boot failed: %s" % e)
        return False, t


def _fat_listing(image):
    """{name: size} of the files at the root of a FAT image (read with mtools, never mounted)."""
    tmp = tempfile.mkdtemp(prefix="carrier-sim-bootimg.")
    try:
        path = os.path.join(tmp, "boot.img")
        with open(path, "wb") as f:
            f.write(image)
        out = os.path.join(tmp, "files")
        os.mkdir(out)
        proc = subprocess.run(["mcopy", "-s", "-n", "-i", path, "::/", out], capture_output=True, text=True,
                              env=dict(os.environ, MTOOLS_SKIP_CHECK="1"), check=False)
        if proc.returncode != 0:
            raise NetbootFailed("boot.img is not a FAT file system: %s" % proc.stderr.strip()[-200:])
        return {name: os.path.getsize(os.path.join(out, name)) for name in os.listdir(out)
                if os.path.isfile(os.path.join(out, name))}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
