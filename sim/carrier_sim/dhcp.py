# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The DHCP client of a simulated node's bootloader (docs/hardware.md section 6; RFC 2131, 2132, PXE options of
RFC 4578): a DISCOVER with option 60 ``PXEClient:Arch:00000:UNDI:002001`` and option 97, waiting for an
offer whose option 43 holds "Raspberry Pi Boot" (proxy DHCP is enough: an address offer from another
server completes it), then a REQUEST for the address.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import os
import socket
import struct
import time

from .netlink import NetbootFailed, in_netns, recv_within

PXE_VENDOR_CLASS = b"PXEClient:Arch:00000:UNDI:002001"
RPI_BOOT = b"Raspberry Pi Boot"
DHCP_DISCOVER, DHCP_OFFER, DHCP_REQUEST, DHCP_ACK, DHCP_NAK = 1, 2, 3, 5, 6
DHCP_MAGIC = b"\x63\x82\x53\x63"


def _option(code, data):
    return bytes([code, len(data)]) + data


def dhcp_packet(msg_type, xid, mac, uuid, extra=()):
    """A DHCP request from a Pi bootloader (BOOTP header + options)."""
    chaddr = bytes.fromhex(mac.replace(":", "")).ljust(16, b"\0")
    header = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid, 0, 0x8000, b"\0" * 4, b"\0" * 4,
                         b"\0" * 4, b"\0" * 4, chaddr, b"", b"")
    options = _option(53, bytes([msg_type]))
    options += _option(57, struct.pack("!H", 1472))  # maximum message size
    options += _option(93, b"\x00\x00")  # client system architecture 0 (docs/hardware.md section 6: Arch:00000)
    options += _option(94, b"\x01\x02\x01")  # network interface identifier: UNDI 2.1
    options += _option(97, b"\x00" + uuid)  # client machine identifier
    options += _option(60, PXE_VENDOR_CLASS)
    options += _option(55, bytes([1, 3, 43, 60, 66, 67, 128, 129, 130, 131, 132, 133, 134, 135]))
    for code, data in extra:
        options += _option(code, data)
    return header + DHCP_MAGIC + options + b"\xff"


def parse_dhcp(data):
    """A DHCP reply -> dict (``xid``, ``yiaddr``, ``siaddr``, ``chaddr``, ``options``), or None."""
    if len(data) < 240 or data[0] != 2 or data[236:240] != DHCP_MAGIC:
        return None
    xid = struct.unpack_from("!I", data, 4)[0]
    reply = {"xid": xid, "yiaddr": socket.inet_ntoa(data[16:20]), "siaddr": socket.inet_ntoa(data[20:24]),
             "chaddr": data[28:34].hex(":"), "sname": data[44:108].split(b"\0")[0].decode("latin-1"),
             "options": {}}
    i = 240
    while i < len(data):
        code = data[i]
        if code == 255:
            break
        if code == 0:
            i += 1
            continue
        if i + 1 >= len(data):
            break
        length = data[i + 1]
        reply["options"][code] = data[i + 2:i + 2 + length]
        i += 2 + length
    return reply


def is_rpi_offer(reply):
    """An offer for a Pi: option 43 holds "Raspberry Pi Boot" (docs/hardware.md section 6)."""
    return RPI_BOOT in reply["options"].get(43, b"")


def _ip(reply, code):
    value = reply["options"].get(code)
    return socket.inet_ntoa(value[:4]) if value and len(value) >= 4 else None


class DhcpLease:
    def __init__(self, ip, mask, gateway, tftp, server_id):
        self.ip = ip
        self.mask = mask
        self.gateway = gateway
        self.tftp = tftp
        self.server_id = server_id

    @property
    def prefix(self):
        return ipaddress.IPv4Network("0.0.0.0/%s" % self.mask).prefixlen


async def dhcp(node, net, want_pxe, say, t):
    """DISCOVER until an address offer and (``want_pxe``) a Raspberry Pi Boot offer arrive, then
    REQUEST the address. Returns a :class:`DhcpLease`; NetbootFailed on timeout."""
    loop = asyncio.get_running_loop()
    mac = net["mac"]
    uuid = hashlib.sha256(node.serial.encode()).digest()[:16]
    iface = net["iface"]

    def make():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
        s.bind(("0.0.0.0", 68))
        s.setblocking(False)
        return s

    sock = await in_netns(net["netns"], make)
    try:
        overall = net["timeouts"]["DHCP_TIMEOUT"]
        per_request = net["timeouts"]["DHCP_REQ_TIMEOUT"]
        deadline = time.monotonic() + overall
        xid = int.from_bytes(os.urandom(4), "big")
        address = pxe = None
        while time.monotonic() < deadline and (address is None or (want_pxe and pxe is None)):
            await loop.sock_sendto(sock, dhcp_packet(DHCP_DISCOVER, xid, mac, uuid), ("255.255.255.255", 67))
            window = time.monotonic() + min(per_request, max(0.05, deadline - time.monotonic()))
            while time.monotonic() < window and (address is None or (want_pxe and pxe is None)):
                try:
                    data, src = await recv_within(loop, sock, window - time.monotonic())
                except asyncio.TimeoutError:
                    break
                reply = parse_dhcp(data)
                if reply is None or reply["xid"] != xid or reply["options"].get(53) != bytes([DHCP_OFFER]):
                    continue
                t = max(t + 0.01, node.clock())
                say(t, "DHCP src: %s %s" % (reply["chaddr"], src[0]))
                if reply["yiaddr"] != "0.0.0.0" and address is None:
                    address = reply
                if is_rpi_offer(reply) and pxe is None:
                    pxe = reply
        if address is None or (want_pxe and pxe is None):
            what = "no address offer" if address is None else "no offer with \"Raspberry Pi Boot\" (option 43)"
            raise NetbootFailed("DHCP timed out: %s" % what)
        server_id = _ip(address, 54) or address["siaddr"]
        request = dhcp_packet(DHCP_REQUEST, xid, mac, uuid,
                              extra=[(50, socket.inet_aton(address["yiaddr"])), (54, socket.inet_aton(server_id))])
        ack = None
        for _attempt in range(3):
            await loop.sock_sendto(sock, request, ("255.255.255.255", 67))
            end = time.monotonic() + per_request
            while time.monotonic() < end:
                try:
                    data, _src = await recv_within(loop, sock, end - time.monotonic())
                except asyncio.TimeoutError:
                    break
                reply = parse_dhcp(data)
                if reply is None or reply["xid"] != xid:
                    continue
                kind = reply["options"].get(53)
                if kind == bytes([DHCP_NAK]):
                    raise NetbootFailed("DHCP NAK from %s" % server_id)
                if kind == bytes([DHCP_ACK]) and reply["yiaddr"] == address["yiaddr"]:
                    ack = reply
                    break
            if ack is not None:
                break
        if ack is None:
            raise NetbootFailed("DHCP: no ACK for %s from %s" % (address["yiaddr"], server_id))
        source = pxe or ack
        tftp = None
        if source.get("options", {}).get(66):
            tftp = source["options"][66].split(b"\0")[0].decode("latin-1")
        if not tftp or tftp == "0.0.0.0":
            tftp = source["siaddr"] if source["siaddr"] != "0.0.0.0" else (_ip(source, 54) or server_id)
        return DhcpLease(ack["yiaddr"], _ip(ack, 1) or "255.255.255.0", _ip(ack, 3) or "0.0.0.0", tftp, server_id)
    finally:
        sock.close()
