# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A usb_hub board through playbooks/power.yml (10 forks): seven nodes on the ports of the
simulator's emulated 7-port hub, switched through the ports' sysfs ``disable`` files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from carrier_sim.client import control
from modrun import run_module
from test_playbooks import playbook, recap

HOSTS = ["pi%d" % n for n in range(1, 8)]
REPO = Path(__file__).resolve().parents[2]


def topology():
    return {
        "plugin": "picluster.carrier.boards",
        "controllers": {"ctrl0": {"vars": {"ansible_connection": "local"}}},
        "boards": {"hub1": {
            "profile": "usb_hub7", "controller": "ctrl0", "bus": "{dir}/state/sys/bus/usb/devices/1-1",
            "sim": {"disabled": list(range(1, 8))},
            "slots": {n: {"host": host} for n, host in enumerate(HOSTS, 1)},
        }},
    }


def disable_files(cluster):
    base = os.path.join(cluster.state_dir, "sys/bus/usb/devices/1-1/1-1:1.0")
    values = []
    for port in range(1, 8):
        with open(os.path.join(base, "1-1-port%d" % port, "disable")) as handle:
            values.append(handle.read().strip())
    return values


def power(cluster, state, *args):
    return playbook(cluster, "power.yml", "-e", "power_state=%s" % state, "-e", "power_stagger=0", *args, forks=10)


def powered(cluster):
    return [cluster.node(h)["lines"]["power"] for h in HOSTS]


def test_on_again_check_off_cycle(sim_cluster_factory):
    cluster = sim_cluster_factory(topology())
    assert disable_files(cluster) == ["1"] * 7

    on = power(cluster, "on")
    assert on.returncode == 0, on.stdout + on.stderr
    assert all(recap(on.stdout)[h]["changed"] == 1 for h in HOSTS)
    assert disable_files(cluster) == ["0"] * 7 and all(powered(cluster))
    cluster.wait_state("pi7", ("bootloader", "kernel", "login"))

    again = power(cluster, "on")
    assert again.returncode == 0, again.stdout + again.stderr
    assert all(recap(again.stdout)[h]["changed"] == 0 for h in HOSTS)

    check = power(cluster, "off", "--check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert all(recap(check.stdout)[h]["changed"] == 1 for h in HOSTS)
    assert disable_files(cluster) == ["0"] * 7 and all(powered(cluster)), "check mode switched a port"

    off = power(cluster, "off", "-l", "pi1,pi2,pi3")
    assert off.returncode == 0, off.stdout + off.stderr
    assert disable_files(cluster) == ["1", "1", "1", "0", "0", "0", "0"]
    assert powered(cluster) == [False] * 3 + [True] * 4

    boots = cluster.node("pi5")["boots"]
    cycle = power(cluster, "cycle", "-l", "pi5")
    assert cycle.returncode == 0, cycle.stdout + cycle.stderr
    assert recap(cycle.stdout)["pi5"]["changed"] == 1
    cluster.wait_state("pi5", ("bootloader", "kernel", "login"))
    assert cluster.node("pi5")["boots"] == boots + 1 and disable_files(cluster)[4] == "0"


def test_node_info_shows_the_hub(sim_cluster_factory, tmp_path):
    cluster = sim_cluster_factory(topology())
    info = run_module("node_info", {"board": "hub1", "profile": "usb_hub7", "slot": "all",
                                    "bus": cluster.data["boards"]["hub1"]["bus"],
                                    "lock_dir": os.path.join(cluster.dir, "locks")}, tmp_path)
    assert not info.get("failed"), info
    assert [s["state"] for s in info["slots"]] == ["off"] * 7
    device = info["chips"]["device"]
    assert device["type"] == "usb_hub" and device["mechanism"] == "sysfs"
    ids = (device["vendor_id"], device["product_id"], device["model"], device["ports"])
    assert ids == ("2109", "2817", "USB2.0 Hub", 7)


def test_a_port_that_does_not_follow_and_a_hub_that_is_gone(sim_cluster_factory):
    cluster = sim_cluster_factory(topology())
    control(cluster.state_dir, {"op": "fault", "board": "hub1", "slot": 3, "stuck": "off"})
    stuck = power(cluster, "on")
    assert stuck.returncode != 0
    nodes = recap(stuck.stdout)
    assert nodes["pi3"]["failed"] == 1 and all(nodes[h]["failed"] == 0 for h in HOSTS if h != "pi3"), nodes
    assert "usb_hub board hub1: slot(s) 3 did not follow: slot 3 reads off, wanted on" in stuck.stdout
    assert powered(cluster) == [True, True, False, True, True, True, True]

    control(cluster.state_dir, {"op": "fault", "board": "hub1", "gone": True})
    gone = power(cluster, "off", "-l", "pi2")
    assert gone.returncode != 0 and recap(gone.stdout)["pi2"]["failed"] == 1
    assert "usb_hub board hub1 slot 2 (%s/sys/bus/usb/devices/1-1): the hub is gone" % cluster.state_dir in gone.stdout


def test_inventory_probe_reads_the_ports(sim_cluster_factory):
    cluster = sim_cluster_factory(topology())
    on = power(cluster, "on", "-l", "pi4")
    assert on.returncode == 0, on.stdout + on.stderr
    source = os.path.join(cluster.dir, "probe.carrier.yml")
    with open(cluster.inventory) as handle, open(source, "w") as out:
        out.write("probe: true\n" + handle.read())
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_INVENTORY_UNPARSED_FAILED="true")
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-inventory"), "-i", source, "--list"],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    hostvars = json.loads(proc.stdout)["_meta"]["hostvars"]
    assert [hostvars[h]["carrier_power"] for h in HOSTS] == ["off"] * 3 + ["on"] + ["off"] * 3
