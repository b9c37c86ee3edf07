# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The TFTP client of a simulated node's bootloader (docs/hardware.md section 6; RFC 1350, 2347 options,
2348 blksize, 2349 tsize): every request asks for ``tsize`` and ``blksize``; an existence test stops
after the option acknowledgement with an "Early terminate" error.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time

from .netlink import NetbootFailed, in_netns, recv_within

TFTP_RETRY = 0.5  # seconds before a TFTP packet is sent again
KEEP_BYTES = 1 << 20  # files up to this size are kept in memory (configs, signatures, EEPROM images)
TFTP_RRQ, TFTP_DATA, TFTP_ACK, TFTP_ERROR, TFTP_OACK = 1, 3, 4, 5, 6


class TftpError(Exception):
    def __init__(self, code, message):
        super().__init__("error %d %s" % (code, message))
        self.code = code
        self.message = message


def _rrq(path, options):
    body = struct.pack("!H", TFTP_RRQ) + path.encode() + b"\0octet\0"
    for k, v in options.items():
        body += k.encode() + b"\0" + str(v).encode() + b"\0"
    return body


def _error(code, message):
    return struct.pack("!HH", TFTP_ERROR, code) + message.encode() + b"\0"


def _parse_oack(data):
    parts = data[2:].split(b"\0")
    return {parts[i].decode().lower(): parts[i + 1].decode() for i in range(0, len(parts) - 1, 2)}


class TftpClient:
    """``options=False``: plain RFC 1350 requests (512-byte blocks, no tsize), as a Pi 3's boot ROM and
    bootcode.bin send them (docs/hardware.md section 11); an existence test then stops after the first
    block and returns that block's size."""

    def __init__(self, net, server, port=69, blksize=1024, file_timeout=30.0, options=True):
        self.net = net
        self.server = server
        self.port = port
        self.blksize = blksize if options else 512
        self.file_timeout = file_timeout
        self.options = options
        self.bytes = 0

    async def _socket(self):
        def make():
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            if self.net.get("iface") and self.net.get("netns"):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.net["iface"].encode())
            s.bind(("0.0.0.0", 0))
            s.setblocking(False)
            return s

        return await in_netns(self.net.get("netns"), make)

    async def get(self, path, probe=False):
        """Read ``path``. ``probe``: stop after the option acknowledgement (an existence test, as the
        bootloader does for start4.elf) and return its ``tsize``. Returns ``(size, data or None)``;
        raises TftpError (``code`` 1 for a missing file) or NetbootFailed on a timeout."""
        loop = asyncio.get_running_loop()
        sock = await self._socket()
        try:
            deadline = time.monotonic() + self.file_timeout
            packet = _rrq(path, {"tsize": 0, "blksize": self.blksize} if self.options else {})
            dest = (self.server, self.port)
            tid = None
            blksize = 512
            expected = 1
            size = 0
            chunks = [] if not probe else None
            keep = True
            retries = 0
            await loop.sock_sendto(sock, packet, dest)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise NetbootFailed("TFTP: %s timed out (%d packets sent again, no answer from %s)"
                                        % (path, retries, self.server))
                try:
                    data, src = await recv_within(loop, sock, min(TFTP_RETRY, remaining))
                except asyncio.TimeoutError:
                    # RFC 1350: send the last packet again, until TFTP_FILE_TIMEOUT runs out
                    retries += 1
                    await loop.sock_sendto(sock, packet, dest)
                    continue
                if src[0] != self.server or (tid is not None and src != tid) or len(data) < 4:
                    continue
                opcode = struct.unpack_from("!H", data)[0]
                if opcode == TFTP_ERROR:
                    code = struct.unpack_from("!H", data, 2)[0]
                    raise TftpError(code, data[4:].split(b"\0")[0].decode("latin-1"))
                if tid is None:
                    tid = src
                    dest = src
                if opcode == TFTP_OACK:
                    options = _parse_oack(data)
                    blksize = int(options.get("blksize", 512))
                    tsize = int(options["tsize"]) if "tsize" in options else None
                    if probe:
                        await loop.sock_sendto(sock, _error(0, "Early terminate"), dest)
                        return tsize, None
                    keep = tsize is None or tsize <= KEEP_BYTES
                    packet = struct.pack("!HH", TFTP_ACK, 0)
                    await loop.sock_sendto(sock, packet, dest)
                    continue
                if opcode != TFTP_DATA:
                    continue
                block = struct.unpack_from("!H", data, 2)[0]
                if block != expected & 0xFFFF:
                    await loop.sock_sendto(sock, packet, dest)  # a duplicate: the last ACK again
                    continue
                payload = data[4:]
                if probe:
                    await loop.sock_sendto(sock, _error(0, "Early terminate"), dest)
                    return (None if self.options else len(payload)), None
                size += len(payload)
                self.bytes += len(payload)
                if keep and chunks is not None:
                    chunks.append(payload)
                    if size > KEEP_BYTES:
                        keep, chunks = False, None
                packet = struct.pack("!HH", TFTP_ACK, block)
                await loop.sock_sendto(sock, packet, dest)
                expected += 1
                if len(payload) < blksize:
                    return size, (b"".join(chunks) if chunks is not None else None)
        finally:
            sock.close()
