# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_flash.turingpi against a small stand-in of the BMC's flash API (the emulated BMC of the simulator
is exercised end to end in tests/integration/test_flash.py): what is sent, and every failure."""

from __future__ import annotations

import gzip
import http.server
import json
import lzma
import os
import threading
import urllib.parse

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils._board import Board
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._flash import flash, state

MIB = 1024 * 1024


class FakeBmc(http.server.ThreadingHTTPServer):
    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.queries, self.uploads = [], []
        self.set_answer = (200, json.dumps({"handle": 7}))
        self.states = [{"Transferring": {"id": 7, "size": 1, "bytes_written": 1}}, {"Done": [{"secs": 1}, 1]}]


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _answer(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        self.server.queries.append(query)
        if query.get("opt") == "set" and query.get("type") == "flash":
            return self._answer(*self.server.set_answer)
        if query.get("opt") == "get" and query.get("type") == "flash":
            states = self.server.states
            return self._answer(200, json.dumps(states.pop(0) if len(states) > 1 else states[0]))
        return self._answer(404, "{}")

    def do_POST(self):
        length = int(self.headers["Content-Length"])
        body = self.rfile.read(length)
        self.server.uploads.append((self.path, self.headers["Content-Type"], body))
        return self._answer(200, "")


@pytest.fixture
def bmc(tmp_path):
    server = FakeBmc()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    board = Board("tpi", "turingpi2", "http://127.0.0.1:%d" % server.server_address[1], lock_dir=str(tmp_path))
    yield server, board
    server.shutdown()
    server.server_close()


@pytest.fixture
def raw(tmp_path):
    path = tmp_path / "os.img"
    path.write_bytes(os.urandom(4096) + b"\0" * MIB)
    return path


def _run(board, image, tmp_path, **kw):
    req = flash.FlashRequest("tp02", str(image), 2, is_bmc=True, state_dir=str(tmp_path / "state"), **kw)
    return req, flash.run(req, board, sleep=lambda s: None)


def test_xz_is_uploaded_as_it_is_with_its_sha256(bmc, raw, tmp_path):
    server, board = bmc
    xz = tmp_path / "os.img.xz"
    xz.write_bytes(lzma.compress(raw.read_bytes(), preset=0))
    req, result = _run(board, xz, tmp_path)
    start = server.queries[0]
    assert start["node"] == "1" and start["file"] == "os.img.xz" and start["length"] == str(xz.stat().st_size)
    assert start["sha256"] == result["image_sha256"]
    path, content_type, body = server.uploads[0]
    assert path == "/api/bmc/upload/7" and content_type.startswith("multipart/form-data; boundary=")
    assert xz.read_bytes() in body and b'name="file"; filename="os.img.xz"' in body
    assert result["changed"] and result["uploaded"] == xz.stat().st_size and result["node"] == "off"
    assert state.load(req.record_path)["verified"].startswith("by the BMC")


def test_gzip_is_decompressed_on_the_way(bmc, raw, tmp_path):
    server, board = bmc
    gz = tmp_path / "os.img.gz"
    gz.write_bytes(gzip.compress(raw.read_bytes()))
    _req, result = _run(board, gz, tmp_path)
    start = server.queries[0]
    assert start["file"] == "os.img" and start["length"] == str(raw.stat().st_size) and "sha256" not in start
    assert raw.read_bytes() in server.uploads[0][2] and result["uploaded"] == raw.stat().st_size


def test_bmc_error_state_is_a_failure_and_never_recorded(bmc, raw, tmp_path):
    server, board = bmc
    server.states = [{"Error": "crc error. expected 1, calculated 2"}]
    with pytest.raises(CarrierError, match="^bmc: the flash of node 2 failed on the BMC: crc error"):
        _run(board, raw, tmp_path)
    assert not os.path.exists(tmp_path / "state" / "tp02.json")


def test_refused_transfer_names_the_bmc_answer(bmc, raw, tmp_path):
    server, board = bmc
    server.set_answer = (400, json.dumps({"response": [{"result": "`length` parameter is not a number"}]}))
    with pytest.raises(CarrierError, match="refused the flash of node 2 \\(HTTP 400\\): `length` parameter"):
        _run(board, raw, tmp_path)
    assert server.uploads == []


def test_rerun_is_unchanged_without_calling_the_bmc(bmc, raw, tmp_path):
    server, board = bmc
    _run(board, raw, tmp_path)
    calls = len(server.queries)
    _req, again = _run(board, raw, tmp_path)
    assert again["changed"] is False and len(server.queries) == calls
