# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""node_power and node_info run as Ansible runs them, against the simulated boards."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from modrun import run_module

REPO = Path(__file__).resolve().parents[2]


def seeded_topology():
    """The embedded cluster with a fixed seed for rack1's injected I2C errors: a test that injects them
    sees the same errors at every run (retries absorb them, deterministically)."""
    data = yaml.safe_load((REPO / "inventory" / "sim" / "cluster.carrier.yml").read_text())
    for name, board in data["boards"].items():
        board["bus"] = "sim:{dir}/%s.sock" % name
        board["console"] = "{dir}/state/console/{host}"
    data["boards"]["rack1"]["sim"] = {"seed": 20261122}
    return data


@pytest.fixture
def rack(sim_cluster_factory, tmp_path):
    sim_cluster = sim_cluster_factory(seeded_topology())
    spec = sim_cluster.data["boards"]["rack1"]
    base = {"board": "rack1", "profile": spec["profile"], "bus": spec["bus"],
            "lock_dir": os.path.join(sim_cluster.dir, "locks")}
    os.makedirs(base["lock_dir"], exist_ok=True)

    def call(name, check=False, diff=True, **args):
        merged = dict(base)
        merged.update(args)
        return run_module(name, merged, tmp_path, check=check, diff=diff)

    call.cluster = sim_cluster
    return call


def lines(cluster, host):
    return cluster.node(host)["lines"]


def test_on_idempotent_with_diff(rack):
    cluster = rack.cluster
    first = rack("node_power", slot=[1, 2], state="on", stagger=0)
    assert first["changed"] is True, first
    assert [s["action"] for s in first["slots"]] == ["on", "on"]
    assert first["diff"] == {"before": "slot 1: off\nslot 2: off\n", "after": "slot 1: on\nslot 2: on\n"}
    assert lines(cluster, "node05")["power"] is True and lines(cluster, "node06")["power"] is True
    assert lines(cluster, "node07")["power"] is False
    cluster.wait_state("node05", ("bootloader", "kernel", "login"))
    again = rack("node_power", slot=[1, 2], state="on", stagger=0)
    assert again["changed"] is False
    assert [s["action"] for s in again["slots"]] == ["none", "none"]


def test_check_mode_changes_nothing(rack):
    cluster = rack.cluster
    before = cluster.status()["buses"]
    result = rack("node_power", check=True, slot="all", state="on")
    assert result["changed"] is True
    assert all(s["after"]["state"] == "on" for s in result["slots"])
    after = cluster.status()["buses"]
    socket = cluster.boards["rack1"]["socket"]
    assert after[socket]["writes"] == before[socket]["writes"], "check mode wrote to the bus"
    assert all(not lines(cluster, host)["power"] for host in ("node05", "node09", "node14"))


def test_cycle_reboots_and_reset_pulses(rack):
    cluster = rack.cluster
    rack("node_power", slot=3, state="on")
    cluster.wait_state("node07", "login")
    boots = cluster.node("node07")["boots"]
    result = rack("node_power", slot=3, state="cycle", off_time=0.2)
    assert result["changed"] is True and result["slots"][0]["action"] == "cycle"
    cluster.wait_state("node07", "login")
    assert cluster.node("node07")["boots"] == boots + 1
    result = rack("node_power", slot=3, state="reset", reset_pulse=0.05)
    assert result["slots"][0]["action"] == "reset"
    cluster.wait_state("node07", "login")
    assert cluster.node("node07")["boots"] == boots + 2
    off = rack("node_power", slot=4, state="reset")
    assert off["changed"] is False and off["slots"][0]["action"] == "none"


def test_usb_boot_leaves_the_node_in_the_boot_rom(rack):
    cluster = rack.cluster
    result = rack("node_power", slot=6, state="on", usb_boot=True)
    assert result["slots"][0]["after"]["state"] == "usb_boot"
    cluster.wait_state("node10", "rpiboot")
    result = rack("node_power", slot=6, state="on", usb_boot=False)
    assert result["slots"][0]["action"] == "reboot"
    cluster.wait_state("node10", ("bootloader", "kernel", "login"))


def test_node_info_reads_the_pins(rack):
    cluster = rack.cluster
    rack("node_power", slot=8, state="on")
    info = rack("node_info", slot="all")
    assert info["changed"] is False
    states = {s["slot"]: s["state"] for s in info["slots"]}
    assert states[8] == "on" and states[7] == "off"
    assert info["chips"]["u2"]["type"] == "pca9555" and info["chips"]["u2"]["address"] == "0x21"
    assert info["profile"]["name"] == "backplane10"
    # a line held by a fault shows the truth, not what was written
    cluster.fault("--board", "rack1", "--chip", "u2", "--bit", "9", "--stuck", "1")  # slot 9 power (u2 bit 9)
    info = rack("node_info", slot=9)
    assert info["slots"][0]["power"] is True


def test_stuck_line_is_reported_and_i2c_errors_are_retried(rack):
    cluster = rack.cluster
    cluster.fault("--board", "rack1", "--chip", "u1", "--bit", "12", "--stuck", "0")  # slot 5 power
    result = rack("node_power", slot=5, state="on")
    assert result["failed"] is True
    assert "slot 5 power (bit 12) should be asserted but the pin reads 0" in result["msg"]
    cluster.fault("--board", "rack1", "--chip", "u1", "--bit", "12", "--stuck", "none")
    cluster.fault("--board", "rack1", "--i2c-error-rate", "0.3")
    result = rack("node_power", slot="all", state="on", stagger=0)
    assert result["changed"] is True and all(s["after"]["power"] for s in result["slots"])
    assert cluster.status()["buses"][cluster.boards["rack1"]["socket"]]["errors"] > 0


@pytest.mark.parametrize("args,message", [
    ({"profile": "rack9000"}, "profile: 'rack9000' is not a built-in profile"),
    ({"slot": 11}, "slot: 11 is not a slot of profile backplane10 (slots: 1-10)"),
    ({"slot": "first"}, "slot: 'first' is not an integer"),
    ({"bus": "i2c1"}, "bus: 'i2c1' is not a bus"),
    ({"bus": "sim:relative.sock"}, "a simulator bus needs an absolute socket path"),
    ({"bus": "sim:/nonexistent/bus.sock"}, "bus: cannot reach simulator bus /nonexistent/bus.sock"),
    ({"protected_slots": [2], "slot": 2}, "slot: 2 of board rack1 hosts the controller itself"),
    ({"stagger": -1}, "stagger: -1.0 is not a number of seconds"),
    ({"addresses": {"u7": 33}}, "addresses: 'u7' is not a chip of profile backplane10"),
    ({"state": "sleep"}, "value of state must be one of: on, off, cycle, reset, got: sleep"),
    ({"profile": {"name": "x", "chips": {"u1": {"type": "pca9555", "address": 32}},
                  "slots": {1: {"power": {"bit": 16}}}}}, "profile x.slots.1.power.bit: 16 is out of range"),
])
def test_bad_input_gets_a_clear_error_and_changes_nothing(rack, args, message):
    cluster = rack.cluster
    writes = cluster.status()["buses"][cluster.boards["rack1"]["socket"]]["writes"]
    call = {"slot": 2, "state": "on"}
    call.update(args)
    result = rack("node_power", **call)
    assert result.get("failed") is True, result
    assert message in result["msg"]
    assert cluster.status()["buses"][cluster.boards["rack1"]["socket"]]["writes"] == writes
    assert lines(cluster, "node06")["power"] is False
