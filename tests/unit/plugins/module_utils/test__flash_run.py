# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_flash.flash and _flash.usb: the whole flash of a node on emulated board chips, with a stand-in of
the simulator's USB host (``usb.sock``) that makes the node's disk appear in a sysfs-shaped tree."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading

import pytest

from flash_fixtures import make_usb_disk

from ansible_collections.picluster.carrier.plugins.module_utils import _command
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError, InvalidValue
from ansible_collections.picluster.carrier.plugins.module_utils._flash import flash, source, state, usb

MIB = 1024 * 1024


class UsbHost(threading.Thread):
    """Answers ``rpiboot`` on ``<root>/usb.sock``: ENODEV unless ``ready(port)``, else a disk appears."""

    def __init__(self, root, ready, size=32 * MIB):
        super().__init__(daemon=True)
        self.root, self.ready, self.size = str(root), ready, size
        self.requests = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(os.path.join(self.root, "usb.sock"))
        self.server.listen(4)

    def run(self):
        while True:
            try:
                conn = self.server.accept()[0]
            except OSError:
                return
            with conn:
                request = json.loads(conn.makefile("rb").readline())
                self.requests.append(request)
                port = request["port"]
                if not self.ready(port):
                    reply = {"errno": 19, "error": "no device in USB boot mode on port %s" % port}
                else:
                    name = "sd" + chr(ord("a") + len(self.requests) - 1)
                    backing = os.path.join(self.root, "nodes", "n1", "emmc.img")
                    os.makedirs(os.path.dirname(backing), exist_ok=True)
                    if not os.path.exists(backing):
                        with open(backing, "wb") as handle:
                            handle.truncate(self.size)
                    if not os.path.exists(os.path.join(self.root, "sys", "block", "sda")):
                        make_usb_disk(self.root, port, "sda", backing=backing)
                    reply = {"value": {"device": name, "size": self.size}}
                conn.sendall(json.dumps(reply).encode() + b"\n")

    def close(self):
        self.server.close()


@pytest.fixture
def node(rig, tmp_path):
    """A board (itx4 on emulated chips), its simulator-shaped state dir, and its USB host."""
    root = tmp_path / "simstate"
    root.mkdir()
    r = rig("itx4")

    def in_usb_boot(port):
        return port == "1-1.3" and r.levels(3)["power"] and r.levels(3)["rpiboot"]

    host = UsbHost(root, in_usb_boot)
    host.start()
    access = usb.Access("sim:%s/bus1.sock" % root)
    yield dict(rig=r, board=r.board, access=access, root=root, host=host, state_dir=str(tmp_path / "state"))
    host.close()


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "os.img"
    data = bytearray(8 * MIB)
    data[:512] = os.urandom(512)
    data[5 * MIB:5 * MIB + 4096] = os.urandom(4096)
    path.write_bytes(bytes(data))
    return path


def _request(node, image, **kw):
    kw.setdefault("usb_port", "1-1.3")
    kw.setdefault("state_dir", node["state_dir"])
    return flash.FlashRequest("n1", str(image), 3, **kw)


def _emmc(node):
    return (node["root"] / "nodes" / "n1" / "emmc.img").read_bytes()


def test_flash_then_unchanged_then_force(node, image):
    req = _request(node, image)
    result = flash.run(req, node["board"], node["access"], sleep=lambda s: None)
    assert result["changed"] is True and result["written"] == 8 * MIB and result["node"] == "off"
    assert result["device"] == str(node["root"] / "dev" / "sda") and result["verified"].startswith("sha256 ")
    assert _emmc(node)[:8 * MIB] == image.read_bytes()
    levels = node["rig"].levels(3)
    assert not levels["power"] and not levels["rpiboot"]  # left off, nRPIBOOT released
    record = state.load(req.record_path)
    assert record["image_sha256"] == result["image_sha256"] and record["usb_port"] == "1-1.3"
    assert os.path.exists(req.progress_path)
    # Re-run: unchanged, the node not touched, the file not hashed again.
    writes = len(node["rig"].writes())
    again = flash.run(_request(node, image), node["board"], node["access"], sleep=lambda s: None)
    assert again["changed"] is False and again["written"] == 0 and len(node["rig"].writes()) == writes
    assert len(node["host"].requests) == 1
    forced = flash.run(_request(node, image, force=True), node["board"], node["access"], sleep=lambda s: None)
    assert forced["changed"] is True and forced["written"] == 8 * MIB and len(node["host"].requests) == 2


def test_check_mode_touches_nothing(node, image):
    result = flash.run(_request(node, image), node["board"], node["access"], check_mode=True)
    assert result["changed"] is True and result["written"] == 0 and result["image_size"] == 8 * MIB
    assert "flashed now" in result["diff"]["after"] and "no verified flash" in result["diff"]["before"]
    assert node["rig"].writes() == [] and node["host"].requests == []
    assert not os.path.exists(os.path.join(node["state_dir"], "n1.json"))


def test_wrong_sha256_writes_nothing(node, image):
    req = _request(node, image, sha256="0" * 64)
    with pytest.raises(CarrierError, match="^sha256: .* has SHA-256 [0-9a-f]{64}, not 0{64}: nothing was written"):
        flash.run(req, node["board"], node["access"])
    assert node["rig"].writes() == [] and node["host"].requests == []


def test_sha256_accepts_a_sha256sum_line(node, image):
    digest = source.file_sha256(str(image))
    req = _request(node, image, sha256="%s  os.img\n" % digest.upper())
    assert req.sha256 == digest


@pytest.mark.parametrize("kw,message", [
    (dict(sha256="xyz"), "^sha256: 'xyz' is not a SHA-256"),
    (dict(usb_port="1-1.3\n"), "^usb_port: '1-1.3\\\\n' is not a USB port path"),
    (dict(usb_port=None), "^usb_port: None is not a USB port path"),
    (dict(storage="sd"), "^storage: 'sd' is not one of emmc, nvme"),
    (dict(timeout=float("nan")), "^timeout: nan is not a finite number"),
    (dict(customize={"hostname": "bad_name!"}), "^customize.hostname: "),
    (dict(customize={"users": [{"name": "admin", "ssh_authorized_keys": ["ssh-rsa AAAAnot-a-key"]}]}),
     "^customize.users"),
])
def test_refused_before_anything(node, image, kw, message):
    with pytest.raises(CarrierError, match=message):
        _request(node, image, **kw)
    assert node["rig"].writes() == []


def test_bad_host_name_is_invalid_value(node, image):
    with pytest.raises(InvalidValue) as info:
        _request(node, image, customize={"hostname": "-x-"})
    assert info.value.field.startswith("customize.hostname")


def test_corrupt_xz_half_way_is_never_recorded(node, image, tmp_path):
    import lzma
    good = flash.run(_request(node, image), node["board"], node["access"], sleep=lambda s: None)
    assert good["changed"]
    data = bytearray(lzma.compress(image.read_bytes() + os.urandom(MIB), preset=0))
    data[len(data) // 2:len(data) // 2 + 16] = b"\x00" * 16
    bad = tmp_path / "bad.img.xz"
    bad.write_bytes(bytes(data))
    req = _request(node, bad)
    with pytest.raises(CarrierError, match="^image: "):
        flash.run(req, node["board"], node["access"], sleep=lambda s: None)
    assert state.load(req.record_path) is None  # the earlier record was removed before writing
    levels = node["rig"].levels(3)
    assert not levels["power"] and not levels["rpiboot"]  # released after the failure
    # And the next run writes again, whatever it is given.
    assert flash.run(_request(node, image), node["board"], node["access"], sleep=lambda s: None)["changed"]


def test_image_larger_than_the_storage(node, tmp_path):
    big = tmp_path / "big.img"
    with open(big, "wb") as handle:
        handle.truncate(33 * MIB)
    req = _request(node, big)
    with pytest.raises(CarrierError, match="^image: the image is 34603008 bytes, larger than the node's storage"):
        flash.run(req, node["board"], node["access"], sleep=lambda s: None)
    assert set(_emmc(node)) == {0}


def test_a_device_that_is_not_the_nodes(node, image, tmp_path):
    req = _request(node, image, device="/dev/sdz")
    with pytest.raises(CarrierError, match="^device: /dev/sdz is not the disk on USB port 1-1.3"):
        flash.run(req, node["board"], node["access"], sleep=lambda s: None)


def test_node_not_in_usb_boot_and_no_way_to_put_it_there(node, image, rig):
    with pytest.raises(CarrierError, match="^usb_port: rpiboot on port 1-1.3: no device in USB boot mode .*not "
                                           "powered with nRPIBOOT held"):
        flash.run(_request(node, image, power_control=False), node["board"], node["access"])
    hat = rig("clusterhat_v3")
    with pytest.raises(CarrierError, match="^slot: slot 3 of board b1 .* has no rpiboot line"):
        flash.run(_request(node, image), hat.board, node["access"])


def test_another_flash_of_the_node_holds_the_lock(node, image, monkeypatch):
    from ansible_collections.picluster.carrier.plugins.module_utils._bus import file_lock, lock_directory
    monkeypatch.setattr(flash, "LOCK_WAIT", 0.1)
    path = os.path.join(lock_directory(node["board"].lock_dir), "flash-n1.lock")
    with file_lock(path):
        with pytest.raises(CarrierError, match="^host: n1 is being flashed by another task"):
            flash.run(_request(node, image), node["board"], node["access"])


def test_customize_is_written_and_recorded(node, tmp_path):
    from flash_fixtures import make_os_image
    from ansible_collections.picluster.carrier.plugins.module_utils import _fat
    from netboot_fixtures import subprocess_runner
    _fat.set_runner(subprocess_runner)
    img = make_os_image(tmp_path / "rpi.img", size_mb=48, payload_mb=1)
    node["host"].size = 64 * MIB
    result = flash.run(_request(node, img, customize={"hostname": "node03", "style": "cloud-init"}), node["board"],
                       node["access"], sleep=lambda s: None)
    assert {"meta-data", "user-data"} <= set(result["customized"]["files"])
    dev = result["device"]
    offset = _fat.find_fat_partition(dev)[0]
    assert b"node03" in _fat.read_file(dev, offset, "meta-data")
    record = state.load(os.path.join(node["state_dir"], "n1.json"))
    assert record["customize_fingerprint"]
    # Another host name is another flash.
    again = flash.run(_request(node, img, customize={"hostname": "node04"}), node["board"], node["access"],
                      sleep=lambda s: None)
    assert again["changed"] is True
    same = flash.run(_request(node, img, customize={"hostname": "node04"}), node["board"], node["access"],
                     sleep=lambda s: None)
    assert same["changed"] is False


def test_boot_true_powers_the_node_from_its_storage(node, image):
    result = flash.run(_request(node, image, boot=True), node["board"], node["access"], sleep=lambda s: None)
    levels = node["rig"].levels(3)
    assert result["node"] == "on" and levels["power"] and not levels["rpiboot"]


def test_parallel_slots_limit_concurrent_flashes(tmp_path):
    lock_dir = str(tmp_path / "locks")
    with flash.parallel_slot(lock_dir, 2, 10) as first, flash.parallel_slot(lock_dir, 2, 10) as second:
        assert {first, second} == {0, 1}
        now = [0.0]
        with pytest.raises(CarrierError, match="^max_parallel: 2 flashes ran on this controller"):
            with flash.parallel_slot(lock_dir, 2, 1.0, sleep=lambda s: now.__setitem__(0, now[0] + s),
                                     clock=lambda: now[0]):
                pass
    with flash.parallel_slot(lock_dir, 2, 10) as again:
        assert again == 0
    with flash.parallel_slot(lock_dir, 0, 10) as unlimited:
        assert unlimited is None


def test_real_rpiboot_command_and_its_failures(tmp_path):
    gadget = tmp_path / "mass-storage-gadget64"
    calls = []

    def runner(argv, timeout):
        calls.append((argv, timeout))
        return 1, "", "Waiting for BCM2835/6/7/2711/2712...\nno device\n"

    access = usb.Access("1", rpiboot_command="/opt/rpiboot", gadget_dir=str(gadget), runner=runner)
    assert (access.sys_root, access.dev_root, access.sim_root) == ("/sys", "/dev", None)
    with pytest.raises(CarrierError, match="^gadget_dir: .* is not a directory: install Raspberry Pi's usbboot"):
        access.rpiboot("1-1.3", 5)
    gadget.mkdir()
    with pytest.raises(CarrierError, match="(?s)^usb_port: /opt/rpiboot -d .* -p 1-1.3 exited 1 .*no device"):
        access.rpiboot("1-1.3", 5)
    assert calls == [(["/opt/rpiboot", "-d", str(gadget), "-p", "1-1.3"], 5)]
    timed = _command.timed_runner(_run_command)
    missing = usb.Access("1", rpiboot_command=str(tmp_path / "no-rpiboot"), gadget_dir=str(gadget), runner=timed)
    with pytest.raises(CarrierError, match="^rpiboot_command: .*no-rpiboot is not installed"):
        missing.rpiboot("1-1.3", 5)
    slow = tmp_path / "slow-rpiboot"
    slow.write_text("#!/bin/sh\nsleep 5\n")
    slow.chmod(0o755)
    with pytest.raises(CarrierError, match="^usb_port: .* found no node in USB boot mode within 0.2 s"):
        usb.Access("1", rpiboot_command=str(slow), gadget_dir=str(gadget), runner=timed).rpiboot("1-1.3", 0.2)
    with pytest.raises(CarrierError, match="^rpiboot_command: no command runner"):
        usb.Access("1", rpiboot_command=str(slow), gadget_dir=str(gadget)).rpiboot("1-1.3", 0.2)


def _run_command(argv):
    """AnsibleModule.run_command's contract: (rc, stdout, stderr) of argv."""
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout, done.stderr


def test_record_is_removed_before_the_first_byte_is_written(node, image, monkeypatch):
    req = _request(node, image)
    flash.run(req, node["board"], node["access"], sleep=lambda s: None)
    assert state.load(req.record_path) is not None
    from ansible_collections.picluster.carrier.plugins.module_utils._flash import write
    seen = []
    real = write.write_stream

    def spy(*args, **kwargs):
        seen.append(os.path.exists(req.record_path))
        raise KeyboardInterrupt  # the task killed half-way
    monkeypatch.setattr(write, "write_stream", spy)
    with pytest.raises(KeyboardInterrupt):
        flash.run(_request(node, image, force=True), node["board"], node["access"], sleep=lambda s: None)
    assert seen == [False] and state.load(req.record_path) is None
    monkeypatch.setattr(write, "write_stream", real)
    assert flash.run(_request(node, image), node["board"], node["access"], sleep=lambda s: None)["changed"]


def test_pick_by_device_served_name_or_lun(node, image):
    from ansible_collections.picluster.carrier.plugins.module_utils._flash.device import Disk, DeviceError
    base = "/s/usb1/1-1.3/1-1.3:1.0/host0/target0:0:0/0:0:0:%d/block/%s"
    emmc = Disk("sda", base % (0, "sda"), "/d/sda", 8 * MIB, False, None, ())
    nvme = Disk("sdb", base % (1, "sdb"), "/d/sdb", 16 * MIB, False, None, ())
    req = _request(node, image)
    assert flash._pick([nvme, emmc], req) is emmc
    assert flash._pick([nvme, emmc], _request(node, image, storage="nvme")) is nvme
    assert flash._pick([emmc, nvme], req, {"device": "sdb"}) is nvme  # the simulator says which it served
    assert flash._pick([emmc, nvme], _request(node, image, device="/d/sdb")) is nvme
    third = Disk("sdc", base % (2, "sdc"), "/d/sdc", MIB, False, None, ())
    with pytest.raises(DeviceError, match="^device: USB port 1-1.3 has 3 disks .*say which with device"):
        flash._pick([emmc, nvme, third], req)
