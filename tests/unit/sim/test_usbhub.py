# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A usb_hub board in the simulator: the hub's sysfs files under the state directory, its nodes
powered by what is written to the ports' ``disable`` files."""

from __future__ import annotations

import os
import time

import pytest

HUB = "{dir}/state/sys/bus/usb/devices/1-1"


def topology(sim=None, slots=None, profile="usb_hub7"):
    board = {"profile": profile, "controller": "c", "bus": HUB,
             "slots": slots or {n: {"host": "w%d" % n} for n in (1, 2, 3)}}
    if sim:
        board["sim"] = sim
    return {"controllers": {"c": {}}, "boards": {"hub": board}}


def disable(short_dir, port, hub="1-1"):
    port_dir = os.path.join(hub, "%s:1.0" % hub, "%s-port%d" % (hub, port))
    return os.path.join(short_dir, "state/sys/bus/usb/devices", port_dir, "disable")


def read(path):
    with open(path) as handle:
        return handle.read()


def write(path, text):
    with open(path, "w") as handle:
        handle.write(text)


def wait_for(check, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    raise AssertionError("not within %.0f s" % timeout)


def test_the_hub_shows_its_sysfs_files_and_follows_writes(run_sim, short_dir):
    sim = run_sim(topology(sim={"disabled": [2]}))
    hub = os.path.join(short_dir, "state/sys/bus/usb/devices/1-1")
    assert read(os.path.join(hub, "idVendor")) == "2109\n" and read(os.path.join(hub, "maxchild")) == "7\n"
    assert sorted(os.listdir(os.path.join(hub, "1-1:1.0"))) == ["1-1-port%d" % n for n in range(1, 8)]
    assert read(disable(short_dir, 1)) == "0\n" and read(disable(short_dir, 2)) == "1\n"
    sim.wait_state("w1", ("bootloader", "kernel", "login"))
    assert sim.node("w2")["state"] == "off"
    status = sim.status()["boards"]["hub"]
    assert status["kind"] == "usb_hub" and status["device"]["mechanism"] == "inotify"
    write(disable(short_dir, 2), "0\n")
    sim.wait_state("w2", ("bootloader", "kernel", "login"))
    write(disable(short_dir, 1), "1\n")
    sim.wait_state("w1", "off")
    write(disable(short_dir, 3), "maybe\n")  # the kernel refuses anything but a boolean: put back
    wait_for(lambda: read(disable(short_dir, 3)) == "0\n")
    assert sim.node("w3")["state"] != "off"
    sim.stop()
    assert not os.path.exists(os.path.join(short_dir, "state/sys"))


def test_a_stuck_port_takes_the_write_and_reads_back_the_old_value(run_sim, short_dir):
    sim = run_sim(topology(sim={"stuck": {3: "on"}}))
    write(disable(short_dir, 3), "1\n")
    wait_for(lambda: read(disable(short_dir, 3)) == "0\n")
    assert sim.node("w3")["lines"]["power"] is True
    answer = sim.control({"op": "fault", "board": "hub", "slot": 1, "stuck": "off"})["fault"]
    assert answer == {"board": "hub", "slot": 1, "stuck": "off"}
    sim.wait_state("w1", "off")
    assert read(disable(short_dir, 1)) == "1\n"
    write(disable(short_dir, 1), "0\n")
    wait_for(lambda: read(disable(short_dir, 1)) == "1\n")
    assert sim.node("w1")["state"] == "off"
    sim.control({"op": "fault", "board": "hub", "port": 1, "stuck": None})
    write(disable(short_dir, 1), "0\n")
    sim.wait_state("w1", ("bootloader", "kernel", "login"))


def test_a_hub_that_goes_and_comes_back(run_sim, short_dir):
    sim = run_sim(topology(slots={1: {"host": "w1"}, 2: {"host": "w2"}}, profile={
        "name": "chain", "kind": "usb_hub", "slots": {1: {"port": 1}, 2: {"port": 2, "hub": "1-1.4"}}}))
    assert read(disable(short_dir, 2, hub="1-1.4")) == "0\n"
    write(disable(short_dir, 2, hub="1-1.4"), "1\n")
    sim.wait_state("w2", "off")
    sim.wait_state("w1", ("bootloader", "kernel", "login"))
    assert sim.control({"op": "fault", "board": "hub", "gone": True})["fault"] == {"board": "hub", "gone": True}
    assert not os.path.exists(os.path.join(short_dir, "state/sys/bus/usb/devices/1-1"))
    sim.wait_state("w1", "off")
    sim.control({"op": "fault", "board": "hub", "gone": False})
    sim.wait_state("w2", ("bootloader", "kernel", "login"))  # a hub bound again has every port powered
    assert read(disable(short_dir, 2, hub="1-1.4")) == "0\n"
    with pytest.raises(Exception, match="has no slot 9"):
        sim.control({"op": "fault", "board": "hub", "slot": 9, "stuck": "on"})
    write(disable(short_dir, 3), "1\n")  # a port without a node switches too
    time.sleep(0.2)
    assert read(disable(short_dir, 3)) == "1\n"
    write(disable(short_dir, 4), "1\n")  # the port hub 1-1.4 is plugged into: that hub loses power
    sim.wait_state("w2", "off")
    wait_for(lambda: not os.path.exists(os.path.join(short_dir, "state/sys/bus/usb/devices/1-1.4")))
    assert sim.node("w1")["lines"]["power"] is True
    write(disable(short_dir, 4), "0\n")
    sim.wait_state("w2", ("bootloader", "kernel", "login"))
    hubs = sim.status()["boards"]["hub"]["device"]["hubs"]
    assert hubs == {"1-1": {"ports": 4, "present": True}, "1-1.4": {"ports": 4, "present": True}}


def test_idle_cpu_is_near_zero(run_sim, short_dir):
    sim = run_sim(topology(slots={n: {"host": "w%d" % n} for n in range(1, 8)}))
    sim.wait_state("w7", "login")
    time.sleep(0.5)  # the nodes' boots done
    before = os.times()
    time.sleep(2.0)
    after = os.times()
    used = (after.user - before.user) + (after.system - before.system)
    assert used < 0.1, "the simulator used %.3f s of CPU in 2 s idle" % used


def test_without_inotify_the_files_are_polled(run_sim, short_dir, monkeypatch):
    from carrier_sim import usbhub

    def missing():
        raise OSError(38, "inotify_init1: Function not implemented")

    monkeypatch.setattr(usbhub, "_Inotify", missing)
    sim = run_sim(topology(sim={"disabled": [1]}))
    assert sim.status()["boards"]["hub"]["device"]["mechanism"] == "poll"
    write(disable(short_dir, 1), "0\n")
    sim.wait_state("w1", ("bootloader", "kernel", "login"))
    write(disable(short_dir, 2), "1\n")
    sim.wait_state("w2", "off")


def test_a_root_hub_and_bad_faults(run_sim, short_dir):
    sim = run_sim({"controllers": {"c": {}}, "boards": {"hub": {
        "profile": "usb_hub4", "controller": "c", "bus": "{dir}/state/sys/bus/usb/devices/usb3",
        "slots": {2: {"host": "w2"}}}}})
    path = os.path.join(short_dir, "state/sys/bus/usb/devices/usb3/3-0:1.0/usb3-port2/disable")
    assert read(path) == "0\n"
    write(path, "1\n")
    sim.wait_state("w2", "off")
    for request, message in (({"stuck": "on"}, "has no slot None"), ({"slot": 2, "stuck": "half"}, "stuck 'half'"),
                             ({"gone": "yes"}, "gone 'yes'"), ({}, "needs slot")):
        with pytest.raises(Exception, match=message):
            sim.control(dict({"op": "fault", "board": "hub"}, **request))
