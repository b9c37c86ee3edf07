# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The gadget's disk at the speed of eMMC over USB 2.0 (pacing.py through nbdkit and nbdfuse): writes and
reads through ``<dir>/dev/sda`` take their time and land in the node's eMMC, a hole cannot be punched
(the gadget has no discard), node_flash's vetting takes the paced file, and power-off or the simulator's
stop leaves no FUSE mount and no nbdfuse behind."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import asyncio
import subprocess
import time

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils._flash import device, source, write
from carrier_sim import pacing

from test_usb import Lines, call, topology

MIB = 1024 * 1024

pytestmark = pytest.mark.skipif(pacing.unavailable() is not None or os.geteuid() != 0 and not os.access(
    "/dev/fuse", os.R_OK | os.W_OK), reason="no paced disk here: %s" % (pacing.unavailable() or "/dev/fuse not usable"))


def paced_topology(rate):
    data = topology()
    data["boards"]["b1"]["sim"]["usb_rate"] = rate
    return data


def mounts_under(base):
    with open("/proc/self/mountinfo") as handle:
        return [line.split()[4] for line in handle if line.split()[4].startswith(base + os.sep)]


def nbdfuse_pids(base):
    out = subprocess.run(["pgrep", "-f", "nbdfuse -P %s" % base], check=False, capture_output=True, text=True).stdout
    return out.split()


def expose(sim, lines, base, slot=1, port="1-1.1"):
    lines.set(slot, power=True, rpiboot=True)
    sim.wait_state("n%d" % slot, "rpiboot")
    reply = call(base, {"op": "rpiboot", "port": port})
    assert reply["value"]["device"] == "sda", reply
    return reply["value"]


def test_writes_and_reads_are_paced_and_land_in_the_emmc(run_sim, short_dir):
    sim = run_sim(paced_topology(30))
    bus = sim.bus("b1")
    try:
        lines = Lines(bus)
        value = expose(sim, lines, short_dir)
        assert value["devices"][0]["rate_mbps"] == 30
        dev = os.path.join(short_dir, "dev", "sda")
        real = os.path.realpath(dev)
        assert real == os.path.join(short_dir, pacing.MOUNTS, "sda", "sda") and mounts_under(short_dir)
        data = os.urandom(16 * MIB)
        fd = os.open(dev, os.O_WRONLY)
        try:
            start = time.monotonic()
            for offset in range(0, len(data), 4 * MIB):
                os.pwrite(fd, data[offset:offset + 4 * MIB], offset)
            os.fsync(fd)
            took = time.monotonic() - start
            libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
            libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
            assert libc.fallocate(fd, 0x03, 0, MIB) == -1 and ctypes.get_errno() == errno.EINVAL  # no discard
        finally:
            os.close(fd)
        # 16 MiB at 30 MB/s is 0.56 s; the bucket lets a tenth of a second through unpaced: a generous bound
        assert took >= 0.3, "16 MiB written in %.2f s: not paced" % took
        with open(dev, "rb") as handle:  # a read-back from the storage, the cached pages dropped as node_flash does
            os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            start = time.monotonic()
            assert handle.read(16 * MIB) == data
        assert time.monotonic() - start >= 0.3
        emmc = os.path.join(sim.state_dir, "nodes", "n1", "emmc.img")
        with open(emmc, "rb") as handle:
            assert handle.read(len(data)) == data
        # node_flash's vetting takes the paced file (under the state directory) as the simulated disk
        disk = device.disks_on_port(os.path.join(short_dir, "sys"), os.path.join(short_dir, "dev"), "1-1.1")[0]
        device.vet(disk, "1-1.1", 16 * MIB, sim_root=short_dir)
        lines.set(1, power=False)
        assert sim.node("n1")["state"] == "off"
        assert not mounts_under(short_dir) and not os.path.lexists(dev)
        assert not os.path.exists(os.path.join(short_dir, pacing.MOUNTS, "sda"))
        assert not nbdfuse_pids(short_dir)
        # a second rpiboot mounts again, and the simulator's stop unmounts
        expose(sim, lines, short_dir)
        assert mounts_under(short_dir)
    finally:
        bus.close()
    sim.stop()
    assert not mounts_under(short_dir) and not nbdfuse_pids(short_dir)
    assert not os.path.exists(os.path.join(short_dir, pacing.MOUNTS))


def test_node_flash_writes_and_verifies_through_the_paced_disk(run_sim, short_dir, tmp_path):
    """The writer's zero chunks cannot punch a hole in the paced disk: they are written, and read back."""
    image = tmp_path / "os.img"
    with open(image, "wb") as handle:
        handle.truncate(24 * MIB)
        handle.write(os.urandom(MIB))
        handle.seek(12 * MIB)
        handle.write(os.urandom(MIB))
    sim = run_sim(paced_topology(200))
    bus = sim.bus("b1")
    try:
        value = expose(sim, Lines(bus), short_dir)
        emmc = os.path.join(sim.state_dir, "nodes", "n1", "emmc.img")
        with open(emmc, "r+b") as handle:  # what was on the eMMC before: the image's zeros must overwrite it
            handle.seek(5 * MIB)
            handle.write(b"\xff" * MIB)
        result = write.write_stream(source.ImageSource(str(image)), os.path.join(short_dir, "dev", "sda"),
                                    value["size"])
        assert result.written == 24 * MIB
        with open(emmc, "rb") as handle, open(image, "rb") as original:
            assert handle.read(24 * MIB) == original.read()
    finally:
        bus.close()


def test_vetting_refuses_a_paced_file_outside_the_state_dir(run_sim, short_dir, tmp_path):
    sim = run_sim(paced_topology(1000))
    bus = sim.bus("b1")
    try:
        expose(sim, Lines(bus), short_dir)
        disk = device.disks_on_port(os.path.join(short_dir, "sys"), os.path.join(short_dir, "dev"), "1-1.1")[0]
        with pytest.raises(device.DeviceError, match="must be a file under the simulator's state directory"):
            device.vet(disk, "1-1.1", MIB, sim_root=str(tmp_path))
    finally:
        bus.close()


def test_stale_mounts_of_a_killed_simulator_are_cleared(short_dir, tmp_path):
    backing = tmp_path / "emmc.img"
    backing.write_bytes(b"")
    os.truncate(backing, 64 * MIB)
    paced = pacing.PacedDisk(short_dir, "sda", str(backing), 100)
    asyncio.run(paced.start())
    assert mounts_under(short_dir)
    proc, paced.proc = paced.proc, None  # as a killed simulator leaves it: mounted, nbdfuse running
    pacing.clear_stale(short_dir)
    assert not mounts_under(short_dir) and not os.path.exists(os.path.join(short_dir, pacing.MOUNTS))
    assert proc.wait(5) == 0  # unmounted, nbdfuse ends of itself


@pytest.mark.parametrize("value", [-1, "fast", True, 1e9])
def test_a_bad_rate_names_the_field(run_sim, value):
    from carrier_sim.server import SimError

    with pytest.raises(SimError, match=r"^b1: boards\.b1\.sim\.usb_rate: .* is not a rate in MB/s"):
        run_sim(paced_topology(value))
    slots = {1: {"host": "n1", "model": "cm4", "usb_port": "1-1.1", "sim": {"usb_rate": value}}}
    with pytest.raises(SimError, match=r"^b1: slots\.1\.sim\.usb_rate: .* is not a rate in MB/s"):
        run_sim(topology(slots))
