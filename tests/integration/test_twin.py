# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Twin nodes (sim/carrier_sim/twin.py): a booted simulated node runs a podman container whose life
follows the node's lines, driven here through node_power as Ansible drives it.

The container is the base molecule image (localhost/bookworm-systemd, systemd as PID 1): what is
proven is the life cycle (power off kills at once, power on boots the same root again, run held low
freezes it, a data disk that outlives power cycles, the rack network reachable from this host only
through the simulator's namespace); the twin image's userland (SSH, cloud-init) is the twin rack's
test (test_twin_rack.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from modrun import run_module

pytestmark = [pytest.mark.integration, pytest.mark.needs_root]

REPO = Path(__file__).resolve().parents[2]
IMAGE = "localhost/bookworm-systemd"
NETWORK = "10.231.91.0/24"


def _podman(*args, check=True):
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", str(REPO / "tests" / "molecule" / "containers.conf"))
    return subprocess.run(["podman"] + list(args), capture_output=True, text=True, env=env, check=check,
                          timeout=120)


@pytest.fixture(scope="module")
def image():
    if os.geteuid() != 0:
        pytest.skip("twin nodes need root (network namespaces, loop devices)")
    subprocess.run([str(REPO / "scripts" / "build-base-image.sh")], check=True, capture_output=True, timeout=900)
    return IMAGE


@pytest.fixture
def twins(sim_cluster_factory, tmp_path, image, monkeypatch):
    monkeypatch.setenv("CARRIER_TWIN_IMAGE", image)
    monkeypatch.setenv("CONTAINERS_CONF", str(REPO / "tests" / "molecule" / "containers.conf"))
    topology = {
        "plugin": "picluster.carrier.boards",
        "controllers": {"ctrl0": {"vars": {"ansible_connection": "local"}}},
        "boards": {"rack1": {
            "profile": "backplane10", "controller": "ctrl0", "bus": "sim:{dir}/rack1.sock",
            "console": "{dir}/state/console/{host}", "sim": {"twin": {"network": NETWORK}},
            "slots": {1: {"host": "tw01", "model": "cm4"},
                      2: {"host": "tw02", "model": "cm4", "sim": {"nvme_gb": 1}},
                      3: {"host": "tw03", "model": "cm4", "sim": {"twin": False}}}}},
    }
    cluster = sim_cluster_factory(topology, boot_time=0.3)
    base = {"board": "rack1", "profile": "backplane10", "bus": "sim:%s/rack1.sock" % cluster.dir,
            "lock_dir": os.path.join(cluster.dir, "locks")}
    os.makedirs(base["lock_dir"], exist_ok=True)

    def power(slot, state, **args):
        result = run_module("node_power", dict(base, slot=slot, state=state, stagger=0, **args), tmp_path)
        assert not result.get("failed"), result
        return result

    power.cluster = cluster
    yield power
    cluster.cli("stop")
    left = _podman("ps", "-a", "--filter", "label=picluster.carrier.twin", "--format", "{{.Names}}").stdout.split()
    assert not [n for n in left if n.endswith(("-tw01", "-tw02", "-tw03"))], "containers left: %s" % left


def twin(cluster, host):
    return cluster.node(host)["twin"]


def wait_twin(cluster, host, state, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snap = twin(cluster, host)
        if snap["state"] == state and not snap["error"]:
            return snap
        time.sleep(0.1)
    raise AssertionError("%s: twin %s, wanted %s" % (host, twin(cluster, host), state))


def container_state(name):
    return _podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip()


def booted(name, timeout=60.0):
    """Wait until the container's systemd has finished booting (running, or degraded)."""
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        state = _podman("exec", name, "systemctl", "is-system-running", check=False).stdout.strip()
        if state in ("running", "degraded"):
            return state
        time.sleep(0.2)
    raise AssertionError("%s: systemd is %r after %.0f s" % (name, state, timeout))


def exec_in(name, command):
    return _podman("exec", name, "sh", "-c", command).stdout


def test_power_cycle_kills_then_boots_the_same_root(twins):
    cluster = twins.cluster
    assert twin(cluster, "tw03") is None  # twin: false on the slot
    snap = twin(cluster, "tw01")
    assert snap["state"] == "absent" and snap["address"] == "10.231.91.10"
    twins([1, 2], "on")
    one = wait_twin(cluster, "tw01", "running")
    wait_twin(cluster, "tw02", "running")
    name = one["container"]
    booted(name)
    exec_in(name, "echo written-before > /root/persist; sync")
    # the rack network: this host reaches the node's address, and nodes reach each other
    with socket.socket() as s:
        s.settimeout(3)
        assert s.connect_ex(("10.231.91.10", 22)) != 0  # reached, nothing listens (the base image has no sshd)
    assert "10.231.91.10/24" in exec_in(name, "ip -4 -o addr show dev eth0")
    assert "eth0" in exec_in(twin(cluster, "tw02")["container"], "ip -o route get 10.231.91.10")
    # power off: killed, no clean shutdown
    started = time.monotonic()
    twins(1, "off")
    wait_twin(cluster, "tw01", "stopped", timeout=10)
    assert time.monotonic() - started < 5
    assert container_state(name) == "exited"
    assert _podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip() == "137"
    twins(1, "on")
    again = wait_twin(cluster, "tw01", "running")
    assert again["container"] == name and again["starts"] == 2
    assert exec_in(name, "cat /root/persist").strip() == "written-before"


def test_run_held_low_freezes_and_rising_boots_again(twins, tmp_path):
    cluster = twins.cluster
    twins(1, "on")
    name = wait_twin(cluster, "tw01", "running")["container"]
    seen = {}

    def during(_proc):
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "paused" not in seen.values():
            seen[time.monotonic()] = container_state(name)
            time.sleep(0.1)

    base = {"board": "rack1", "profile": "backplane10", "bus": "sim:%s/rack1.sock" % cluster.dir,
            "lock_dir": os.path.join(cluster.dir, "locks")}
    result = run_module("node_power", dict(base, slot=1, state="reset", reset_pulse=3.0), tmp_path,
                        while_running=during)
    assert not result.get("failed"), result
    assert "paused" in seen.values(), seen
    snap = wait_twin(cluster, "tw01", "running")
    assert snap["starts"] == 2  # run rising: a fresh boot of the same container


def test_data_disk_outlives_power_cycles(twins):
    cluster = twins.cluster
    twins(2, "on")
    snap = wait_twin(cluster, "tw02", "running")
    assert snap["data_disk"].startswith("/dev/disk/by-id/nvme-CARRIER_SIM_") and snap["loop"]
    name = snap["container"]
    booted(name)
    link = exec_in(name, "readlink %s" % snap["data_disk"]).strip()
    assert link == snap["loop"]
    exec_in(name, "printf twin-disk-block | dd of=%s bs=512 seek=2048 conv=fsync status=none" % snap["data_disk"])
    twins(2, "off")
    wait_twin(cluster, "tw02", "stopped")
    twins(2, "on")
    wait_twin(cluster, "tw02", "running")
    booted(name)
    data = exec_in(name, "dd if=%s bs=512 skip=2048 count=1 status=none | head -c 15" % snap["data_disk"])
    assert data == "twin-disk-block"
    nvme = cluster.node("tw02")["storage"]["nvme"]["file"]
    with open(nvme, "rb") as f:
        f.seek(2048 * 512)
        assert f.read(15) == b"twin-disk-block"  # on the node's NVMe backing file itself


def test_bad_twin_settings_name_the_field(sim_cluster_factory, image):
    topology = {
        "plugin": "picluster.carrier.boards",
        "controllers": {"ctrl0": {"vars": {"ansible_connection": "local"}}},
        "boards": {"rack1": {"profile": "backplane10", "controller": "ctrl0", "bus": "sim:{dir}/rack1.sock",
                             "slots": {1: {"host": "tw01", "model": "cm4",
                                           "sim": {"twin": {"address": "10.9.9.9"}}}}}},
    }
    cluster = sim_cluster_factory(topology, start=False)
    proc = cluster.cli("start", "--topology", cluster.topology, check=False)
    assert proc.returncode != 0
    assert "boards.rack1.slots.1.sim.twin.address: 10.9.9.9 is not a node address of 10.231.0.0/24" in (
        proc.stdout + proc.stderr)
