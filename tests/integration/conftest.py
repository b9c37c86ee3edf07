# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Integration fixtures: the carrier-board simulator as a real daemon (``sim/carrier-sim``).

``sim_cluster``: the embedded default cluster (inventory/sim/cluster.carrier.yml: one itx4
carrier, one backplane10 rack, 14 nodes) with its bus sockets, control socket and console links
moved to a fresh short directory under /tmp (Unix socket paths must stay under 108 bytes), the
topology written to ``tmp_path/cluster.carrier.yml`` (also a valid inventory source), the
simulator started with ``sim/carrier-sim start`` and stopped at teardown, asserting that nothing
is left behind: no process, socket, pid file or console link.

``sim_cluster_factory(topology=None, boot_time=None)``: the same for another topology (a
mapping; ``{dir}`` in its strings is replaced by the short directory) or boot time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent.parent
SIM = REPO / "sim" / "carrier-sim"
if str(REPO / "sim") not in sys.path:
    sys.path.insert(0, str(REPO / "sim"))  # carrier_sim.client for the tests
EMBEDDED_TOPOLOGY = REPO / "inventory" / "sim" / "cluster.carrier.yml"


class SimCluster:
    """A running simulator and what a test needs to reach it."""

    def __init__(self, directory, topology_path, data, boot_time=None, python=None):
        self.dir = directory
        self.state_dir = os.path.join(directory, "state")
        self.topology = str(topology_path)
        self.inventory = self.topology  # the topology file is the inventory source too
        self.data = data
        self.boot_time = boot_time
        self.python = python or sys.executable
        self.boards = {name: {"bus": board["bus"], "profile": board["profile"],
                              "socket": board["bus"][4:] if str(board["bus"]).startswith("sim:") else None}
                       for name, board in data["boards"].items()}
        self.hosts = [slot["host"] for board in data["boards"].values() for slot in board["slots"].values()]
        self.host_slot = {slot["host"]: (name, int(number)) for name, board in data["boards"].items()
                          for number, slot in board["slots"].items()}
        self.consoles = {host: os.path.join(self.state_dir, "console", host) for host in self.hosts}
        self.pid = None

    def cli(self, *args, check=True, timeout=60):
        """Run ``sim/carrier-sim ARGS --state-dir DIR``; the CompletedProcess (text)."""
        command = [self.python, str(SIM)] + list(args) + ["--state-dir", self.state_dir]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise AssertionError("%s exited %d\nstdout: %s\nstderr: %s"
                                 % (" ".join(command), result.returncode, result.stdout, result.stderr))
        return result

    def start(self):
        args = ["start", "--topology", self.topology]
        if self.boot_time is not None:
            args += ["--boot-time", str(self.boot_time)]
        self.cli(*args)
        with open(os.path.join(self.state_dir, "carrier-sim.pid")) as fh:
            self.pid = int(fh.read())

    def stop(self):
        return self.cli("stop")

    def status(self):
        return json.loads(self.cli("status", "--json").stdout)

    def fault(self, *args, check=True):
        return self.cli("fault", *args, check=check)

    def node(self, host):
        board, slot = self.host_slot[host]
        return self.status()["boards"][board]["slots"][str(slot)]

    def wait_state(self, host, states, timeout=15.0):
        states = (states,) if isinstance(states, str) else tuple(states)
        deadline = time.monotonic() + timeout
        state = None
        while time.monotonic() < deadline:
            state = self.node(host)["state"]
            if state in states:
                return state
            time.sleep(0.05)
        raise AssertionError("%s did not reach %s in %.0f s (state %s)" % (host, states, timeout, state))

    def board(self, name):
        """A library Board on the simulated bus (lock files in the cluster's directory)."""
        from ansible_collections.picluster.carrier.plugins.module_utils._board import Board

        spec = self.data["boards"][name]
        return Board(name, spec["profile"], spec["bus"], lock_dir=os.path.join(self.dir, "locks"))

    def leftovers(self):
        """What a stopped simulator must not leave: its process, sockets, pid file, console links, node trees."""
        found = []
        if self.pid and _alive(self.pid):
            found.append("process %d" % self.pid)
        for path in [os.path.join(self.state_dir, name) for name in ("carrier-sim.pid", "control.sock")]:
            if os.path.lexists(path):
                found.append(path)
        for board in self.boards.values():
            if board["socket"] and os.path.lexists(board["socket"]):
                found.append(board["socket"])
        for path in self.consoles.values():
            if os.path.lexists(path):
                found.append(path)
        console_dir = os.path.join(self.state_dir, "console")
        if os.path.isdir(console_dir) and os.listdir(console_dir):
            found.append(console_dir + " (not empty)")
        nodes_dir = os.path.join(self.state_dir, "nodes")  # <host>/root and <host>/eeprom of every node
        if os.path.lexists(nodes_dir):
            found.append(nodes_dir)
        return found


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def embedded_topology(directory):
    """The embedded default cluster with every simulator path under ``directory``."""
    with open(EMBEDDED_TOPOLOGY) as fh:
        data = yaml.safe_load(fh)
    for name, board in data["boards"].items():
        if str(board.get("bus", "")).startswith("sim:"):
            board["bus"] = "sim:%s/%s" % (directory, os.path.basename(board["bus"][4:]))
        board["console"] = os.path.join(directory, "state", "console", "{host}")
    return data


def _fill(value, directory):
    if isinstance(value, dict):
        return {k: _fill(v, directory) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, directory) for v in value]
    if isinstance(value, str):
        return value.replace("{dir}", directory)
    return value


@pytest.fixture
def sim_cluster_factory(tmp_path):
    started = []
    directories = []

    def make(topology=None, boot_time=None, python=None, start=True):
        directory = tempfile.mkdtemp(prefix="pcs-", dir="/tmp")
        directories.append(directory)
        data = embedded_topology(directory) if topology is None else _fill(topology, directory)
        name = "cluster.carrier.yml" if len(directories) == 1 else "cluster%d.carrier.yml" % len(directories)
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        cluster = SimCluster(directory, path, data, boot_time=boot_time, python=python)
        if start:
            cluster.start()
            started.append(cluster)
        return cluster

    yield make
    problems = []
    for cluster in started:
        cluster.cli("stop", check=False)
        left = cluster.leftovers()
        if cluster.pid and _alive(cluster.pid):
            os.kill(cluster.pid, 9)  # never leave a daemon behind, even when the test fails
        if left:
            problems.append("simulator in %s left: %s" % (cluster.dir, ", ".join(left)))
    for directory in directories:
        shutil.rmtree(directory, ignore_errors=True)
    assert not problems, "; ".join(problems)


@pytest.fixture
def sim_cluster(sim_cluster_factory):
    """The embedded default cluster, simulated (see the module docstring)."""
    return sim_cluster_factory()
