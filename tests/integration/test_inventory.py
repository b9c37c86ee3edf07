# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Golden-file tests of the inventory plugin: the real ``ansible-inventory --list`` and ``--graph``.

For each shipped topology the output is compared with a committed file under
``tests/integration/golden/`` (``<name>.list.json``, ``<name>.graph.txt``). Any change in host
variables, groups or their members shows up as a diff.

After an intended change, regenerate the golden files and review the diff before committing:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/integration/test_inventory.py
    git diff tests/integration/golden/
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest
from collection_link import collections_path

REPO = pathlib.Path(__file__).resolve().parents[2]
GOLDEN = pathlib.Path(__file__).resolve().parent / "golden"
COLLECTIONS = collections_path()
BIN = pathlib.Path(sys.executable).parent
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"

TOPOLOGIES = {
    "sim-cluster": REPO / "inventory" / "sim" / "cluster.carrier.yml",
    "example-hardware": REPO / "inventory" / "example-hardware.carrier.yml",
}


def ansible_inventory(*args):
    env = dict(os.environ)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
        ANSIBLE_INVENTORY_ENABLED="picluster.carrier.boards",
        ANSIBLE_INVENTORY_UNPARSED_FAILED="true",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_DEPRECATION_WARNINGS="false",
    )
    proc = subprocess.run([str(BIN / "ansible-inventory"), *args], env=env, capture_output=True, text=True,
                          timeout=120, cwd=str(REPO), check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def golden_text(path, actual):
    """The committed golden text; with UPDATE_GOLDEN=1, (re)write it from `actual` first."""
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(actual)
    if not path.exists():
        pytest.fail("golden file %s is missing: run with UPDATE_GOLDEN=1 to create it, then review it" % path)
    return path.read_text()


@pytest.mark.parametrize("name", sorted(TOPOLOGIES))
def test_list_matches_golden(name):
    actual = json.loads(ansible_inventory("-i", str(TOPOLOGIES[name]), "--list"))
    path = GOLDEN / ("%s.list.json" % name)
    expected = json.loads(golden_text(path, json.dumps(actual, indent=2, sort_keys=True) + "\n"))
    assert actual == expected, "inventory differs from %s (UPDATE_GOLDEN=1 to refresh, then review)" % path


@pytest.mark.parametrize("name", sorted(TOPOLOGIES))
def test_graph_matches_golden(name):
    actual = ansible_inventory("-i", str(TOPOLOGIES[name]), "--graph")
    path = GOLDEN / ("%s.graph.txt" % name)
    assert actual == golden_text(path, actual), "graph differs from %s (UPDATE_GOLDEN=1 to refresh)" % path


def test_sim_directory_source():
    """``-i inventory/sim`` (the directory, as the playbooks use it) gives the same inventory as the file."""
    as_dir = json.loads(ansible_inventory("-i", str(REPO / "inventory" / "sim"), "--list"))
    as_file = json.loads(ansible_inventory("-i", str(TOPOLOGIES["sim-cluster"]), "--list"))
    assert as_dir == as_file


def test_probe_against_the_simulator(request, tmp_path):
    """With ``probe: true`` every node of the running simulator gets its live power state."""
    try:
        sim = request.getfixturevalue("sim_cluster")
    except pytest.FixtureLookupError:
        pytest.skip("tests/integration/conftest.py provides no sim_cluster fixture (the simulator's) yet")
    from ansible_collections.picluster.carrier.plugins.module_utils._board import Board
    from ansible_collections.picluster.carrier.plugins.module_utils._topology import load_topology

    topology_path = pathlib.Path(getattr(sim, "topology", TOPOLOGIES["sim-cluster"]))
    topology = load_topology(topology_path)
    probe = tmp_path / "probe.carrier.yml"
    probe.write_text("probe: true\n" + topology_path.read_text())

    # Switch one node on through the library, so the probe has both states to report.
    spec = topology.boards["rack1"]
    board = Board(spec.name, spec.profile, spec.bus)
    before = board.read_state([2])[2]["power"]
    board.set_lines({2: {"power": True}})
    try:
        hostvars = json.loads(ansible_inventory("-i", str(probe), "--list"))["_meta"]["hostvars"]
    finally:
        board.set_lines({2: {"power": bool(before)}})
    nodes = {h: v for h, v in hostvars.items() if "carrier_board" in v}
    assert len(nodes) == len(topology.nodes)
    for host, hv in nodes.items():
        assert "carrier_power_error" not in hv, (host, hv["carrier_power_error"])
        assert hv["carrier_power"] in ("on", "off"), host
    assert nodes[spec.nodes[2].host]["carrier_power"] == "on"
