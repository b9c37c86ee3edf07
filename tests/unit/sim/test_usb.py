# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""rpiboot and the mass-storage gadget (usb.py): the usb.sock replies, the sysfs-shaped tree and /dev link
of the disk that appears, its removal at power-off and reset, the backing store's size per model."""

from __future__ import annotations

import json
import os
import socket
import threading
import time

import pytest

from carrier_sim import usb

ADDR = 0x20  # itx4: PCA9555; slot N: power bit 3(N-1) (active high), run +1 (active high), rpiboot +2 (low)


class Lines:
    """Drives the itx4's lines (latch first, then direction), as the library does."""

    def __init__(self, bus):
        self.bus = bus
        self.latch = 0xFFFF & ~0x0249  # every power line released, run high, rpiboot released
        bus.write_word_data(ADDR, 0x02, self.latch)
        bus.write_word_data(ADDR, 0x06, 0xF000)

    def set(self, slot, power=None, run=None, rpiboot=None):
        base = 3 * (slot - 1)
        for bit, value, active_high in ((0, power, True), (1, run, True), (2, rpiboot, False)):
            if value is None:
                continue
            level = value if active_high else not value
            mask = 1 << (base + bit)
            self.latch = (self.latch | mask) if level else (self.latch & ~mask)
        self.bus.write_word_data(ADDR, 0x02, self.latch)


def topology(slots=None):
    slots = slots or {
        1: {"host": "n1", "model": "cm4", "usb_port": "1-1.1", "sim": {"emmc_gb": 8}},
        2: {"host": "n2", "model": "cm5", "usb_port": "1-1.2", "sim": {"emmc_gb": 16, "nvme_gb": 1}},
        3: {"host": "n3", "model": "pi4", "usb_port": "1-1.3"},
        4: {"host": "n4", "model": "cm4", "usb_port": "1-1.4"},
    }
    return {"controllers": {"ctrl0": {}},
            "boards": {"b1": {"profile": "itx4", "controller": "ctrl0", "bus": "sim:{dir}/bus.sock",
                              "sim": {"gadget_time": 0.2, "usb_rate": 0}, "slots": slots}}}


def call(directory, request, timeout=10.0):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(os.path.join(directory, "usb.sock"))
        sock.sendall(json.dumps(request).encode() + b"\n")
        return json.loads(sock.makefile("rb").readline())


@pytest.fixture
def rig(run_sim, short_dir):
    sim = run_sim(topology())
    bus = sim.bus("b1")
    yield sim, Lines(bus), short_dir
    bus.close()


def test_rpiboot_exposes_the_emmc_as_the_kernel_shows_a_usb_disk(rig):
    sim, lines, base = rig
    state = sim.state_dir
    emmc = os.path.join(state, "nodes", "n1", "emmc.img")
    assert os.path.getsize(emmc) == 8 * 1024 ** 3 and os.stat(emmc).st_blocks == 0  # sparse
    lines.set(1, power=True, rpiboot=True)
    sim.wait_state("n1", "rpiboot")
    reply = call(base, {"op": "rpiboot", "port": "1-1.1"})
    assert reply["value"]["device"] == "sda" and reply["value"]["size"] == 8 * 1024 ** 3
    node = sim.node("n1")
    assert node["state"] == "mass_storage" and [d["device"] for d in node["usb_devices"]] == ["sda"]
    link = os.path.join(base, "sys", "block", "sda")
    assert os.path.islink(link) and not os.path.isabs(os.readlink(link))
    real = os.path.realpath(link)
    assert real == os.path.join(base, "sys/devices/platform/sim-xhci/usb1/1-1.1/1-1.1:1.0/host0/target0:0:0/"
                                      "0:0:0:0/block/sda")
    assert open(os.path.join(real, "size")).read() == "%d\n" % (8 * 1024 ** 3 // 512)
    assert open(os.path.join(real, "ro")).read() == "0\n" and open(os.path.join(real, "removable")).read() == "1\n"
    dev = os.path.join(base, "dev", "sda")
    assert os.path.realpath(dev) == os.path.realpath(emmc)
    with open(dev, "r+b") as f:  # what the controller writes lands in the node's eMMC
        f.write(b"written")
    assert open(emmc, "rb").read(7) == b"written"
    # the USB port and the device in the status table
    from carrier_sim.cli import format_status
    assert "1-1.1 sda" in format_status(sim.status())
    assert call(base, {"op": "list"})["value"][0]["host"] == "n1"
    usb_status = sim.status()["usb"][os.path.join(base, "usb.sock")]
    assert usb_status["ports"]["1-1.1"] == "n1" and [d["device"] for d in usb_status["disks"]] == ["sda"]
    # power-off: the disk goes, the backing file (the eMMC) stays
    lines.set(1, power=False)
    assert sim.node("n1")["state"] == "off"
    assert not os.path.lexists(link) and not os.path.lexists(dev)
    assert not os.path.exists(os.path.join(base, "sys/devices/platform/sim-xhci/usb1/1-1.1"))
    assert open(emmc, "rb").read(7) == b"written"


def test_second_node_gets_the_next_name_and_nvme_is_a_second_lun(rig):
    sim, lines, base = rig
    lines.set(1, power=True, rpiboot=True)
    lines.set(2, power=True, rpiboot=True)
    sim.wait_state("n2", "rpiboot")
    results = {}

    def boot(port):
        results[port] = call(base, {"op": "rpiboot", "port": port})

    threads = [threading.Thread(target=boot, args=(p,)) for p in ("1-1.1", "1-1.2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    devices = {results[p]["value"]["device"] for p in results}
    assert len(devices) == 2 and devices <= {"sda", "sdb", "sdc"}  # three disks: n1's eMMC, n2's eMMC and NVMe
    two = results["1-1.2"]["value"]["devices"]
    assert [(d["media"], d["lun"]) for d in two] == [("emmc", 0), ("nvme", 1)]
    assert two[0]["size"] == 16 * 1024 ** 3 and two[1]["size"] == 1024 ** 3
    nvme = os.path.realpath(os.path.join(base, "sys", "block", two[1]["device"]))
    assert "/usb1/1-1.2/1-1.2:1.0/" in nvme and nvme.endswith(":0:0:1/block/%s" % two[1]["device"])
    assert os.path.realpath(os.path.join(base, "dev", two[1]["device"])).endswith("/nodes/n2/nvme.img")
    # reset (run low) also removes the disks
    lines.set(2, run=False)
    assert not any(os.path.lexists(os.path.join(base, "dev", d["device"])) for d in two)
    assert os.path.lexists(os.path.join(base, "dev", results["1-1.1"]["value"]["device"]))


def test_refusals(rig):
    sim, lines, base = rig
    # nothing in USB-boot mode: ENODEV
    reply = call(base, {"op": "rpiboot", "port": "1-1.1"})
    assert reply["errno"] == 19 and "no device in USB boot mode on port 1-1.1" in reply["error"]
    assert call(base, {"op": "rpiboot", "port": "1-1.7"})["errno"] == 19
    # powered without nRPIBOOT: it boots, not in USB-boot mode
    lines.set(4, power=True)
    assert call(base, {"op": "rpiboot", "port": "1-1.4"})["errno"] == 19
    # a Pi 4 has no eMMC: its SD card is not reachable by rpiboot
    lines.set(3, power=True, rpiboot=True)
    sim.wait_state("n3", "rpiboot")
    reply = call(base, {"op": "rpiboot", "port": "1-1.3"})
    assert reply["errno"] == 19 and "SD card is not reachable" in reply["error"]
    # EBUSY while rpiboot runs for the port; then the disk, then ENODEV (already a mass-storage device)
    lines.set(1, power=True, rpiboot=True)
    sim.wait_state("n1", "rpiboot")
    first = {}
    t = threading.Thread(target=lambda: first.update(call(base, {"op": "rpiboot", "port": "1-1.1"})))
    t.start()
    time.sleep(0.05)
    busy = call(base, {"op": "rpiboot", "port": "1-1.1"})
    t.join()
    assert busy["errno"] == 16 and first["value"]["device"] == "sda"
    again = call(base, {"op": "rpiboot", "port": "1-1.1"})
    assert again["errno"] == 19 and "already runs the mass-storage gadget (sda)" in again["error"]
    # power-off while the gadget boots: ENODEV, no disk
    lines.set(1, power=False)
    lines.set(1, power=True)
    sim.wait_state("n1", "rpiboot")
    late = {}
    t = threading.Thread(target=lambda: late.update(call(base, {"op": "rpiboot", "port": "1-1.1"})))
    t.start()
    time.sleep(0.05)
    lines.set(1, power=False)
    t.join()
    assert late["errno"] == 19 and "went away" in late["error"]
    assert not os.path.lexists(os.path.join(base, "dev", "sda"))
    assert call(base, {"op": "rpiboot", "port": "1-1"})["errno"] == 19
    assert call(base, {"op": "rpiboot", "port": "usb1"})["errno"] == 22
    assert call(base, {"op": "mount"})["errno"] == 22


@pytest.mark.parametrize("model,sim,expected", [
    ("cm4", {}, {"emmc": 32 * 1024 ** 3, "nvme": None}),
    ("cm5", {"emmc_gb": 64, "nvme_gb": 256}, {"emmc": 64 * 1024 ** 3, "nvme": 256 * 1024 ** 3}),
    ("cm4", {"emmc_gb": 0}, {"emmc": None, "nvme": None}),
    ("pi4", {}, {"emmc": None, "nvme": None}),
])
def test_backing_sizes_per_model(model, sim, expected):
    assert usb.node_media(model, sim) == expected


@pytest.mark.parametrize("model,sim,message", [
    ("cm4", {"emmc_gb": 64}, r"sim.emmc_gb: 64 is not an eMMC size of a cm4 \(8, 16, 32"),
    ("cm5", {"emmc_gb": 8}, r"sim.emmc_gb: 8 is not an eMMC size of a cm5 \(16, 32, 64"),
    ("cm4", {"emmc_gb": "32"}, r"sim.emmc_gb: '32'"),
    ("pi4", {"emmc_gb": 16}, r"sim.emmc_gb: 16: a pi4 has no eMMC"),
    ("cm4", {"nvme_gb": -1}, r"sim.nvme_gb: -1 is not a disk size"),
    ("pi4", {"nvme_gb": 64}, r"sim.nvme_gb: a pi4 has no PCIe"),
])
def test_bad_sizes_are_refused_naming_the_field(model, sim, message):
    with pytest.raises(ValueError, match=message):
        usb.node_media(model, sim)


def test_bad_size_in_a_topology_names_the_slot(run_sim):
    from carrier_sim.server import SimError

    with pytest.raises(SimError, match=r"boards.b1.slots.1.sim: sim.emmc_gb: 12 is not an eMMC size of a cm4"):
        run_sim(topology({1: {"host": "n1", "model": "cm4", "sim": {"emmc_gb": 12}}}))


def test_stale_disks_of_a_killed_simulator_are_cleared_and_a_failed_attach_is_undone(run_sim, short_dir):
    stale_dev = os.path.join(short_dir, "dev")
    stale_port = os.path.join(short_dir, "sys/devices/platform/sim-xhci/usb1/1-1.1/1-1.1:1.0/host0")
    os.makedirs(stale_port)
    os.makedirs(stale_dev)
    os.symlink("/nonexistent", os.path.join(stale_dev, "sda"))
    sim = run_sim(topology())
    assert not os.path.lexists(os.path.join(stale_dev, "sda")) and not os.path.exists(stale_port)
    bus = sim.bus("b1")
    try:
        lines = Lines(bus)
        lines.set(1, power=True, rpiboot=True)
        sim.wait_state("n1", "rpiboot")
        os.symlink("/nonexistent", os.path.join(stale_dev, "sda"))  # something else took the name
        reply = call(short_dir, {"op": "rpiboot", "port": "1-1.1"})
        assert reply["errno"] == 17 and "could not be exposed" in reply["error"]
        assert not os.path.exists(os.path.join(short_dir, "sys/devices/platform/sim-xhci/usb1/1-1.1"))
        assert not os.path.lexists(os.path.join(short_dir, "sys", "block", "sda"))
        assert sim.node("n1")["state"] == "rpiboot"
        os.unlink(os.path.join(stale_dev, "sda"))
        assert call(short_dir, {"op": "rpiboot", "port": "1-1.1"})["value"]["device"] == "sda"
    finally:
        bus.close()
