# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The emulated Turing Pi 2 BMC's flash API (bmcflash.py) as `tpi flash` drives it: start a transfer, upload
the image as multipart, watch the progress, then the node boots what was written to its eMMC."""

from __future__ import annotations

import hashlib
import http.client
import json
import lzma
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils import _topology_model
from ansible_collections.picluster.carrier.plugins.module_utils._board import get_profile
from diskimages import make_image, needs_tools, rpi_files
from test_turingpi2 import _free_port, _make

BOUNDARY = "simflashboundary1234"


@pytest.fixture
def topology():
    """A Turing Pi 2 with nodes in slots 1 and 2 (cm4), its emulated BMC on a free loopback port."""
    url = "http://127.0.0.1:%d" % _free_port()
    spec = _make(_topology_model.BoardSpec, name="tp2", controller="c", bus=url, profile=get_profile("turingpi2"),
                 profile_name="turingpi2", sim={"auth": False})
    for slot in (1, 2):
        spec.nodes[slot] = _make(_topology_model.Node, host="t%d" % slot, board="tp2", slot=slot, controller="c",
                                 profile="turingpi2", bus=url, model="cm4")
    controllers = {"c": _make(_topology_model.Controller, name="c")}
    return _make(_topology_model.Topology, source="<test>", controllers=controllers,
                 profiles={}, boards={"tp2": spec}, nodes={n.host: n for n in spec.nodes.values()},
                 specializations=())


@pytest.fixture
def bmc(run_sim, topology):
    topology.boards["tp2"].sim.update({"gadget_time": 0.05, "usb_write_mbps": 0})
    sim = run_sim(topology)
    return sim, topology.boards["tp2"].bus


def get(url, query):
    try:
        with urllib.request.urlopen("%s/api/bmc?%s" % (url, query), timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        text = exc.read()
        try:
            return exc.code, json.loads(text)
        except ValueError:  # the emulator's older refusals are plain text
            return exc.code, text.decode()


def start(url, node, name, length, **extra):
    query = dict({"opt": "set", "type": "flash", "node": node, "file": name, "length": length}, **extra)
    return get(url, urllib.parse.urlencode(query))


def upload(url, handle, data, chunked=False):
    """POST the image as tpi does: multipart/form-data, one field ``file``."""
    head = ('--%s\r\nContent-Disposition: form-data; name="file"; filename="image"\r\n'
            'Content-Type: application/octet-stream\r\n\r\n' % BOUNDARY).encode()
    body = head + data + ("\r\n--%s--\r\n" % BOUNDARY).encode()
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=20)
    headers = {"Content-Type": "multipart/form-data; boundary=%s" % BOUNDARY}
    if chunked:
        pieces = (body[i:i + 70000] for i in range(0, len(body), 70000))
        conn.request("POST", "/api/bmc/upload/%d" % handle, body=pieces, headers=headers, encode_chunked=True)
    else:
        conn.request("POST", "/api/bmc/upload/%d" % handle, body=body, headers=headers)
    response = conn.getresponse()
    text = response.read()
    conn.close()
    return response.status, text


def wait_done(url, timeout=20):
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _status, state = get(url, "opt=get&type=flash")
        seen.append(state)
        if state != "Ready" and ("Done" in state or "Error" in state):
            return state, seen
        time.sleep(0.02)
    raise AssertionError("flash did not finish: %r" % seen[-1:])


def test_flash_raw_image_with_progress_and_sha256(bmc, short_dir):
    sim, url = bmc
    data = os.urandom(3 * 1024 * 1024)
    status, reply = start(url, 0, "raw.img", len(data), sha256=hashlib.sha256(data).hexdigest())
    assert status == 200 and isinstance(reply["handle"], int)
    assert sim.node("t1")["state"] in ("off", "rpiboot")
    _s, state = get(url, "opt=get&type=flash")
    assert state["Transferring"]["id"] == reply["handle"] and state["Transferring"]["size"] == len(data)
    assert state["Transferring"]["process_name"] == "Node1 os install service"
    assert upload(url, reply["handle"], data, chunked=True)[0] == 200
    final, _seen = wait_done(url)
    assert final["Done"][1] == len(data) and set(final["Done"][0]) == {"secs", "nanos"}
    emmc = os.path.join(sim.state_dir, "nodes", "t1", "emmc.img")
    with open(emmc, "rb") as f:
        assert f.read(len(data)) == data
    node = sim.node("t1")
    assert node["state"] == "off"  # the BMC powers the node off and releases USB boot afterwards
    bmc_state = sim.status()["boards"]["tp2"]["bmc"]
    assert bmc_state["usb_boot"]["1"] is False and bmc_state["power"]["1"] is False and bmc_state["flashes"] == 1


def test_paced_upload_reports_progress(run_sim, topology):
    topology.boards["tp2"].sim.update({"gadget_time": 0.05, "usb_write_mbps": 8})
    sim = run_sim(topology)
    url = topology.boards["tp2"].bus
    data = b"\x5a" * (2 * 1024 * 1024)  # 2 MB at 8 MB/s: about 0.26 s
    _status, reply = start(url, 1, "paced.img", len(data))
    began = time.monotonic()
    assert upload(url, reply["handle"], data)[0] == 200
    final, seen = wait_done(url)
    assert "Done" in final and time.monotonic() - began >= 0.2
    progress = [s["Transferring"]["bytes_written"] for s in seen if isinstance(s, dict) and "Transferring" in s]
    assert any(0 < p < len(data) for p in progress), progress
    assert sim.node("t2")["state"] == "off"


@needs_tools
def test_flashed_xz_image_boots_with_its_cloud_init_name(bmc, tmp_path):
    sim, url = bmc
    image = make_image(str(tmp_path / "os.img"), rpi_files(hostname="tpnode"))
    packed = lzma.compress(open(image, "rb").read(), preset=1)
    _status, reply = start(url, 0, "os.img.xz", len(packed))
    assert upload(url, reply["handle"], packed)[0] == 200
    final, _seen = wait_done(url)
    assert "Done" in final, final
    assert get(url, "opt=set&type=power&node1=1")[0] == 200
    deadline = time.monotonic() + 15
    text = ""
    while "tpnode login: " not in text and time.monotonic() < deadline:
        text += get(url, "opt=get&type=uart&node=0")[1]["response"][0]["uart"]
        time.sleep(0.05)
    assert "tpnode login: " in text and "Trying partition: 0" in text


def test_short_upload_and_bad_checksum_fail(bmc):
    sim, url = bmc
    data = os.urandom(200000)
    _status, reply = start(url, 0, "short.img", len(data) + 100)
    status, text = upload(url, reply["handle"], data)
    assert status == 400 and json.loads(text) == {"response": [{"result": "missing 100 bytes"}]}
    final, _seen = wait_done(url)
    assert "Error" in final
    assert sim.node("t1")["state"] == "off"
    _status, reply = start(url, 0, "bad.img", len(data), sha256="00" * 32)
    assert upload(url, reply["handle"], data)[0] == 200
    final, _seen = wait_done(url)
    assert final["Error"].startswith("sha256 mismatch: expected 0000")
    # a stale handle
    status, text = upload(url, reply["handle"], data)
    assert status == 400 and "current=Error, expected=Transferring" in json.loads(text)["response"][0]["result"]


def test_refusals_of_the_start_request(bmc):
    _sim, url = bmc
    assert get(url, "opt=set&type=flash&node=0&length=10") == (
        400, {"response": [{"result": "Invalid `file` query parameter"}]})
    assert get(url, "opt=set&type=flash&node=0&file=a.img")[0] == 411
    assert get(url, "opt=set&type=flash&node=0&file=a.img&length=ten")[0] == 400
    assert get(url, "opt=set&type=flash&node=0&file=a.img&length=1&sha256=zz")[0] == 400
    assert get(url, "opt=set&type=flash&file=a.img&length=1")[0] == 400
    assert get(url, "opt=set&type=flash&node=7&file=a.img&length=1")[0] == 400
    _status, reply = start(url, 0, "a.img", 10)
    status, text = upload(url, reply["handle"] ^ 1, b"0123456789")
    assert status == 400 and "unauthorized request for handle" in text.decode()


def test_broken_xz_and_a_node_without_emmc_end_in_error(run_sim, topology):
    import dataclasses

    spec = topology.boards["tp2"]
    spec.sim.update({"gadget_time": 0.05, "usb_write_mbps": 0})
    spec.nodes[2] = dataclasses.replace(spec.nodes[2], model="pi4")
    sim = run_sim(topology)
    url = spec.bus
    packed = lzma.compress(b"\x11" * 300000)
    broken = packed[:len(packed) // 2] + bytes(len(packed) - len(packed) // 2)  # corrupt half-way
    _status, reply = start(url, 0, "os.img.xz", len(broken))
    status, text = upload(url, reply["handle"], broken)
    final, _seen = wait_done(url)
    assert final["Error"].startswith("xz stream"), final
    assert status in (200, 500) and sim.node("t1")["state"] == "off"
    _status, reply = start(url, 1, "os.img", 10)
    upload(url, reply["handle"], b"0123456789")
    final, _seen = wait_done(url)
    assert final == {"Error": "Node2 (t2, pi4) has no eMMC to flash"}


def test_an_image_larger_than_the_emmc_is_refused(tmp_path):
    import asyncio

    from carrier_sim import bmcflash

    target = tmp_path / "emmc.img"
    target.write_bytes(bytes(4096))

    async def run():
        transfer = bmcflash.Transfer(1, "big.img", 8192, None, True)
        for piece in (b"a" * 4096, b"b" * 4096, None):
            transfer.queue.put_nowait(piece)
        service = bmcflash.FlashService(None, {"usb_write_mbps": 0})
        with pytest.raises(bmcflash.FlashFailed, match="larger than the eMMC of Node1 .4096 bytes"):
            await service._write(transfer, str(target), 4096)

    asyncio.run(run())
    assert target.read_bytes() == b"a" * 4096


@pytest.mark.skipif(not shutil.which("curl"), reason="needs curl")
def test_curl_upload_with_expect_100_continue(bmc, tmp_path):
    """curl -F, as a user would upload by hand: multipart with its own boundary, Expect: 100-continue."""
    sim, url = bmc
    image = tmp_path / "curl.img"
    data = os.urandom(1536 * 1024)
    image.write_bytes(data)
    _status, reply = start(url, 0, "curl.img", len(data))
    began = time.monotonic()
    proc = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Expect: 100-continue",
                           "--expect100-timeout", "15", "-F", "file=@%s" % image,
                           "%s/api/bmc/upload/%d" % (url, reply["handle"])],
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.stdout == "200", proc.stderr
    assert time.monotonic() - began < 10  # answered 100 Continue: curl did not wait out its timeout
    final, _seen = wait_done(url)
    assert "Done" in final
    with open(os.path.join(sim.state_dir, "nodes", "t1", "emmc.img"), "rb") as f:
        assert f.read(len(data)) == data
