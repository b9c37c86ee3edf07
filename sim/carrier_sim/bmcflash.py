# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Turing Pi 2 BMC's OS install ("flash") service, as its firmware (bmcd, API 1.1) serves it and
``tpi flash`` uses it; facts read from turing-machines/bmcd and turing-machines/tpi, code our own.

- ``GET /api/bmc?opt=set&type=flash&node=N&file=NAME&length=BYTES[&sha256=HEX][&skip_crc]`` (node counted
  from 0) starts a transfer, cancelling one under way, and answers the body ``{"handle": <u32>}``. A
  missing ``file`` is 400 ``Invalid `file` query parameter``, a missing ``length`` 411, a ``length`` that
  is no number or a ``sha256`` that is no hex 400 (errors in the usual ``{"response": [{"result": msg}]}``).
- ``POST /api/bmc/upload/<handle>``: a multipart/form-data body whose first field is the image
  (``file``); ``Content-Length`` or chunked. Fewer bytes than ``length``: 400 ``missing N bytes`` and the
  transfer is cancelled. A handle that is not the current transfer's: 400. Success: 200, empty body.
- ``GET /api/bmc?opt=get&type=flash``: the service's state, serialised as bmcd's serde enum: ``"Ready"``,
  ``{"Transferring": {"id", "process_name", "size", "cancelled", "bytes_written"}}``,
  ``{"Done": [{"secs", "nanos"}, size]}``, ``{"Error": "message"}``.

The worker does what the BMC does: holds the node in USB boot and powers it (state ``rpiboot``), runs
rpiboot on its own USB (the gadget's boot time), writes the image to the node's eMMC (the backing file;
a ``file`` ending in ``.xz`` is decompressed, as bmcd does), paced at ``usb_write_mbps``, checks the sha256
of the upload when one was given, reads back what it wrote and compares, then powers the node off and
releases USB boot, whatever the outcome. ``bytes_written`` counts bytes written to the eMMC.
"""

from __future__ import annotations

import asyncio
import hashlib
import lzma
import os
import random
import time

CHUNK = 64 * 1024
QUEUE_CHUNKS = 16  # bmcd's channel depth between the upload and the worker
DEFAULT_WRITE_MBPS = 30.0  # eMMC behind a USB 2.0 mass-storage gadget: about 30 MB/s
DEFAULT_GADGET_TIME = 2.0


class FlashFailed(Exception):
    """The worker stopped: the message is the state's ``Error``."""


class Transfer:
    def __init__(self, slot, file_name, size, sha256, crc):
        self.id = random.randrange(1, 2 ** 32)
        self.slot = slot
        self.file_name = file_name
        self.size = size
        self.sha256 = sha256
        self.crc = crc
        self.queue = asyncio.Queue(QUEUE_CHUNKS)
        self.sender_taken = False
        self.cancelled = False
        self.bytes_written = 0
        self.started = time.monotonic()
        self.failed = None
        self.task = None

    def state(self):
        return {"Transferring": {"id": self.id, "process_name": "Node%d os install service" % self.slot,
                                 "size": self.size, "cancelled": self.cancelled, "bytes_written": self.bytes_written}}


class FlashService:
    """One BMC's flash service; ``bmc``: the :class:`bmc.BmcEmulator` (power, usb_boot, apply, nodes)."""

    def __init__(self, bmc, sim):
        self.bmc = bmc
        self.write_mbps = float(sim.get("usb_write_mbps", DEFAULT_WRITE_MBPS))
        self.gadget_time = float(sim.get("gadget_time", DEFAULT_GADGET_TIME))
        self.transfer = None
        self.result = "Ready"
        self.flashes = 0

    def status(self):
        return self.transfer.state() if self.transfer is not None else self.result

    # --- GET ?opt=set&type=flash --------------------------------------------------------------------------
    def start(self, node, query):
        """``(status, payload)``: the new transfer's handle, or the refusal."""
        if node is None:
            return 400, "Missing `node` parameter"
        file_name = query.get("file")
        if not file_name:
            return 400, "Invalid `file` query parameter"
        if "local" in query:
            return 400, "the simulated BMC has no local files: upload the image"
        sha256 = query.get("sha256")
        if sha256 is not None:
            try:
                sha256 = bytes.fromhex(sha256)
            except ValueError as exc:
                return 400, "`sha256` parameter contains invalid hex values: %s" % exc
        if query.get("length") is None:
            return 411, "Invalid `length` query parameter"
        try:
            size = int(query["length"])
            if size < 0:
                raise ValueError(size)
        except ValueError:
            return 400, "`length` parameter is not a number"
        self.cancel("cancelled by a new transfer")
        transfer = Transfer(node, file_name, size, sha256, "skip_crc" not in query)
        self.transfer = transfer
        transfer.task = asyncio.get_running_loop().create_task(self._work(transfer), name="bmc-flash-%d" % node)
        return 200, '{"handle":%d}' % transfer.id

    def cancel(self, reason="cancelled by user"):
        transfer = self.transfer
        if transfer is not None:
            transfer.cancelled = True
            transfer.failed = transfer.failed or reason
            if transfer.task is not None:
                transfer.task.cancel()
            self.transfer = None
            self.result = {"Error": reason}

    # --- POST /api/bmc/upload/<handle> --------------------------------------------------------------------
    async def upload(self, handle, headers, body):
        """Stream the multipart body (``body``: an object with ``async read(n)``) into the worker."""
        transfer = self.transfer
        if transfer is None:
            current = "Ready" if self.result == "Ready" else next(iter(self.result))
            return 400, "cannot execute command in current state. current=%s, expected=Transferring" % current
        if str(transfer.id) != handle:
            return 400, "unauthorized request for handle"
        if transfer.sender_taken:
            return 400, "cannot transfer bytes to worker. This is either because the transfer happens locally, " \
                        "or is already ongoing."
        transfer.sender_taken = True
        boundary = _boundary(headers.get("content-type", ""))
        if boundary is None:
            return 400, "Multipart form invalid"
        sent = 0
        try:
            async for chunk in _multipart_first_field(body, boundary):
                if not await _send(transfer, chunk):
                    break
                sent += len(chunk)
        except ValueError:
            self.cancel()
            return 400, "Multipart form invalid"
        if transfer.failed:
            return 500, transfer.failed
        if sent != transfer.size:
            self.cancel()
            if sent < transfer.size:
                return 400, "missing %d bytes" % (transfer.size - sent)
            return 400, "%d bytes more than the length %d" % (sent - transfer.size, transfer.size)
        if not await _send(transfer, None):  # None: the end of the image
            return 500, transfer.failed or "transfer canceled"
        return 200, ""

    # --- the worker ---------------------------------------------------------------------------------------
    async def _work(self, transfer):
        bmc, slot = self.bmc, transfer.slot
        try:
            bmc.usb_boot[slot] = True
            bmc.power[slot] = False
            bmc.apply(slot)
            bmc.power[slot] = True
            bmc.apply(slot)
            node = bmc.nodes.get(slot)
            await asyncio.sleep(self.gadget_time)  # the BMC's rpiboot and the gadget's boot
            if node is None or node.state != "rpiboot":
                raise FlashFailed("no node %d in USB boot mode (empty slot?)" % slot)
            path = (node.storage_files or {}).get("emmc")
            if not path:
                raise FlashFailed("Node%d (%s, %s) has no eMMC to flash" % (slot, node.host, node.model))
            node.set_state("mass_storage")
            written, digest = await self._write(transfer, path, node.storage["emmc"])
            if transfer.crc:
                await self._verify(path, written, digest)
            elapsed = time.monotonic() - transfer.started
            self.result = {"Done": [{"secs": int(elapsed), "nanos": int((elapsed % 1) * 1e9)}, transfer.size]}
            self.flashes += 1
        except FlashFailed as exc:
            transfer.failed = str(exc)
            self.result = {"Error": str(exc)}
        except OSError as exc:
            transfer.failed = "Failed to write: %s" % exc
            self.result = {"Error": transfer.failed}
        finally:
            if self.transfer is transfer:
                self.transfer = None
            bmc.power[slot] = False  # bmcd powers the node off and restores USB, whatever the outcome
            bmc.usb_boot[slot] = False
            bmc.apply(slot)

    async def _write(self, transfer, path, capacity):
        upload_sha = hashlib.sha256()
        written_sha = hashlib.sha256()
        decompressor = lzma.LZMADecompressor() if transfer.file_name.endswith(".xz") else None
        start = time.monotonic()
        with open(path, "r+b") as dev:
            while True:
                chunk = await transfer.queue.get()
                if chunk is None:
                    break
                upload_sha.update(chunk)
                if decompressor is not None:
                    try:
                        chunk = decompressor.decompress(chunk)
                    except lzma.LZMAError as exc:
                        raise FlashFailed("xz stream: %s" % exc) from None
                if transfer.bytes_written + len(chunk) > capacity:
                    raise FlashFailed("the image is larger than the eMMC of Node%d (%d bytes)"
                                      % (transfer.slot, capacity))
                dev.write(chunk)
                written_sha.update(chunk)
                transfer.bytes_written += len(chunk)
                if self.write_mbps > 0:  # paced like the eMMC behind the gadget
                    ahead = start + transfer.bytes_written / (self.write_mbps * 1e6) - time.monotonic()
                    if ahead > 0:
                        await asyncio.sleep(ahead)
            if decompressor is not None and not decompressor.eof:
                raise FlashFailed("xz stream: compressed data ended before the end-of-stream marker")
            dev.flush()
            os.fsync(dev.fileno())
        if transfer.sha256 is not None and upload_sha.digest() != transfer.sha256:
            raise FlashFailed("sha256 mismatch: expected %s, got %s" % (transfer.sha256.hex(), upload_sha.hexdigest()))
        return transfer.bytes_written, written_sha.digest()

    @staticmethod
    async def _verify(path, length, digest):
        check = hashlib.sha256()
        with open(path, "rb") as dev:
            remaining = length
            while remaining:
                data = dev.read(min(remaining, 1 << 20))
                if not data:
                    break
                check.update(data)
                remaining -= len(data)
                await asyncio.sleep(0)
        if check.digest() != digest:
            raise FlashFailed("crc error: what was read back from the eMMC is not what was written")


async def _send(transfer, chunk):
    """Hand a piece to the worker; False when the worker stopped (an error, a cancel) instead of taking it."""
    put = asyncio.ensure_future(transfer.queue.put(chunk))
    done, _pending = await asyncio.wait({put, transfer.task}, return_when=asyncio.FIRST_COMPLETED)
    if put in done:
        return True
    put.cancel()
    return False


def _boundary(content_type):
    for part in content_type.split(";")[1:]:
        key, _sep, value = part.strip().partition("=")
        if key.lower() == "boundary" and value:
            return value.strip('"').encode("latin-1")
    return None


async def _multipart_first_field(body, boundary):
    """The content of the first field of a multipart body, in pieces, without holding it in memory."""
    opening = b"--" + boundary
    buf = b""
    while opening not in buf:
        data = await body.read(CHUNK)
        if not data:
            raise ValueError("no multipart boundary")
        buf += data
        if len(buf) > 1 << 20:
            raise ValueError("no multipart boundary")
    buf = buf[buf.index(opening) + len(opening):]
    while b"\r\n\r\n" not in buf:
        data = await body.read(CHUNK)
        if not data:
            raise ValueError("the part's headers never end")
        buf += data
    buf = buf.split(b"\r\n\r\n", 1)[1]
    closing = b"\r\n" + opening
    keep = len(closing) - 1
    while True:
        index = buf.find(closing)
        if index >= 0:
            if index:
                yield buf[:index]
            return
        if len(buf) > keep:
            yield buf[:-keep]
            buf = buf[-keep:]
        data = await body.read(CHUNK)
        if not data:  # cut short: what came is all there is
            if buf:
                yield buf
            return
        buf += data


class BodyReader:
    """An HTTP request body as ``async read(n)``: Content-Length or chunked transfer coding."""

    def __init__(self, reader, headers):
        self.reader = reader
        self.chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self.remaining = int(headers.get("content-length") or 0) if not self.chunked else 0
        self.done = False

    async def read(self, n):
        if self.done:
            return b""
        if self.chunked and not self.remaining:
            line = await self.reader.readline()
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while (await self.reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                self.done = True
                return b""
            self.remaining = size
        if not self.remaining:
            self.done = True
            return b""
        data = await self.reader.read(min(n, self.remaining))
        if not data:
            self.done = True
            return b""
        self.remaining -= len(data)
        if self.chunked and not self.remaining:
            await self.reader.readline()  # the CRLF after a chunk
        return data
