# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A Turing Pi 2 node's eMMC, written by its BMC's OS install service, as ``tpi flash`` drives it (BMC
firmware bmcd, API 1.1; facts from turing-machines/bmcd and turing-machines/tpi):

- ``GET /api/bmc?opt=set&type=flash&node=N&file=NAME&length=BYTES[&sha256=HEX]`` (N from 0) starts a
  transfer and answers ``{"handle": H}`` (the body itself, not wrapped);
- ``POST /api/bmc/upload/H``, multipart/form-data, the image as the first field: the BMC holds the
  node in USB boot, writes what it receives to the eMMC (a ``NAME`` ending in ``.xz`` is decompressed),
  checks the upload's sha256 when given, reads the eMMC back and compares (CRC64), powers the node off;
- ``GET /api/bmc?opt=get&type=flash``: ``"Ready"``, ``{"Transferring": {..., "bytes_written": N}}``,
  ``{"Done": [duration, size]}`` or ``{"Error": "message"}``.

The controller cannot read the eMMC back itself here; the BMC's own read-back is the verification.
A raw or xz image is uploaded as it is (with its sha256); gzip and zstd images are decompressed on the
way; with ``customize`` the image is first decompressed into a sparse file beside the records, the
first-boot files written into its boot partition, and that file uploaded.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import time
import urllib.error
import urllib.request
import uuid

from ansible_collections.picluster.carrier.plugins.module_utils import _firstboot
from ansible_collections.picluster.carrier.plugins.module_utils._flash import source as _source
from ansible_collections.picluster.carrier.plugins.module_utils._flash import state as _state
from ansible_collections.picluster.carrier.plugins.module_utils._flash import write as _write
from ansible_collections.picluster.carrier.plugins.module_utils._power import PowerRequest, execute
from ansible_collections.picluster.carrier.plugins.module_utils._turingpi import BmcError, _node_param, _snippet


class _Body(object):
    """preamble + the image + epilogue, read in chunks: the upload is streamed, never held in memory."""

    def __init__(self, preamble, reader, length, epilogue, progress):
        self.parts = [preamble]
        self.reader, self.remaining, self.epilogue, self.progress = reader, length, epilogue, progress
        self.sent = 0
        self.length = length

    def read(self, size=65536):
        if self.parts:
            return self.parts.pop()
        if self.remaining > 0:
            data = self.reader.read(min(size, self.remaining))
            if not data:
                raise BmcError("image: the image ended %d bytes early during the upload" % self.remaining)
            self.remaining -= len(data)
            self.sent += len(data)
            self.progress("upload", self.sent, self.length)
            return data
        data, self.epilogue = self.epilogue, b""
        return data


def _headers(client):
    if client.user is not None and client._token is None and not client._basic:
        client.authenticate()
    if client._token:
        return {"Authorization": "Bearer %s" % client._token}
    if client._basic:
        raw = ("%s:%s" % (client.user or "", client.password or "")).encode("utf-8")
        return {"Authorization": "Basic %s" % base64.b64encode(raw).decode("ascii")}
    return {}


def _request(client, method, path, body=None, headers=None, timeout=None):
    request = urllib.request.Request(client.url + path, data=body, method=method,
                                     headers=dict(_headers(client), **(headers or {})))
    try:
        with client._opener.open(request, timeout=timeout or client.timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        raise BmcError("bmc: cannot reach %s: %s" % (client.url, getattr(exc, "reason", exc))) from None


def _error_text(body):
    try:
        return json.loads(body)["response"][0]["result"]
    except (ValueError, KeyError, IndexError, TypeError):
        return _snippet(body)


def flash_status(client):
    status, body = _request(client, "GET", "/api/bmc?opt=get&type=flash")
    if status != 200:
        raise BmcError("bmc: %s answered HTTP %d to get flash: %s" % (client.url, status, _error_text(body)))
    try:
        return json.loads(body)
    except ValueError:
        raise BmcError("bmc: unexpected answer to get flash from %s: %s" % (client.url, _snippet(body))) from None


def _upload_plan(req, size, digest):
    """(file name, length, sha256 or None, open reader) of what is uploaded."""
    name = os.path.basename(req.image)
    if req.source.compression in ("raw", "xz") and req.customization is None:
        if req.source.compression == "xz" and not name.endswith(".xz"):
            name += ".xz"  # the BMC decompresses by the name
        return name, req.source.file_size, digest, lambda: open(req.image, "rb")
    if req.customization is None:
        return os.path.splitext(name)[0], size, None, req.source.open
    staged = _staged_path(req)
    _stage_sparse(req.source, staged, size)
    _firstboot.apply_to_image(staged, req.customization)
    return os.path.basename(staged).lstrip("."), size, None, lambda: open(staged, "rb")


def _staged_path(req):
    return os.path.join(req.state_dir, ".%s.customized.img" % req.host)


def _stage_sparse(src, path, size, chunk=_source.CHUNK):
    """The uncompressed image in a sparse file (runs of zeros left as holes)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as out, src.open() as reader:
        out.truncate(size)
        offset = 0
        while True:
            data = reader.read(chunk)
            if not data:
                break
            if data.count(0) != len(data):
                out.seek(offset)
                out.write(data)
            offset += len(data)


def flash_bmc(req, board, access, size, wanted, sleep=time.sleep, poll=1.0, clock=time.monotonic):
    """Through the BMC: start the transfer, stream the upload, wait for Done, record, boot if asked."""
    client = board.bmc_client()
    progress = _write.Progress(_write.progress_file(req.progress_path), req.progress_interval)
    name, length, sha, opener = _upload_plan(req, size, wanted["image_sha256"])
    _state.invalidate(req.record_path)
    query = "opt=set&type=flash&node=%s&file=%s&length=%d" % (_node_param(req.slot), urllib.request.quote(name),
                                                              length)
    if sha:
        query += "&sha256=" + sha
    status, body = _request(client, "GET", "/api/bmc?" + query)
    try:
        handle = json.loads(body)["handle"]
    except (ValueError, KeyError, TypeError):
        raise BmcError("bmc: %s refused the flash of node %d (HTTP %d): %s"
                       % (client.url, req.slot, status, _error_text(body))) from None
    boundary = uuid.uuid4().hex
    preamble = ("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n" % (boundary, name)).encode("utf-8")
    epilogue = ("\r\n--%s--\r\n" % boundary).encode("ascii")
    started = clock()
    try:
        with opener() as reader:
            upload = _Body(preamble, reader, length, epilogue, progress)
            headers = {"Content-Type": "multipart/form-data; boundary=%s" % boundary,
                       "Content-Length": str(len(preamble) + length + len(epilogue))}
            status, body = _request(client, "POST", "/api/bmc/upload/%s" % handle, body=upload,
                                    timeout=max(60, req.timeout), headers=headers)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(_staged_path(req))
    if status != 200:
        raise BmcError("bmc: %s refused the upload to node %d (HTTP %d): %s"
                       % (client.url, req.slot, status, _error_text(body)))
    deadline = clock() + max(600.0, size / 1e6 * 2)
    while True:
        state = flash_status(client)
        if isinstance(state, dict) and "Done" in state:
            break
        if isinstance(state, dict) and "Error" in state:
            raise BmcError("bmc: the flash of node %d failed on the BMC: %s" % (req.slot, state["Error"]))
        if isinstance(state, dict) and "Transferring" in state:
            progress("bmc write", int(state["Transferring"].get("bytes_written") or 0), size)
        if clock() >= deadline:
            raise BmcError("bmc: the flash of node %d did not finish within %.0f s (last state %s)"
                           % (req.slot, deadline - started, _snippet(json.dumps(state))))
        sleep(poll)
    record = dict(wanted, image=req.image, image_identity=_state.file_identity(req.image), image_size=size,
                  written=size, device="bmc:%s#%d" % (client.url, req.slot), device_size=None,
                  verified="by the BMC (its read-back of the eMMC)",
                  flashed_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    _state.save(req.record_path, record)
    node = "off"
    if req.boot:
        execute(PowerRequest(board, req.slot, "on"), sleep=sleep)
        node = "on"
    return {"written": size, "seconds": round(clock() - started, 3), "verified": record["verified"], "ranges": 0,
            "customized": None, "progress_file": req.progress_path, "device": record["device"], "node": node,
            "uploaded": length}
