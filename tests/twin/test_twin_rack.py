# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The twin rack, end to end: a bare rack of five twin nodes to a running cluster, with a check at
every stage and a storage node's power pulled mid-write (scripts/twin_rack.py does the work; this
file asserts what each stage left behind).

One rack for the module; the tests run in the order of the chain, and once a stage fails the later
ones fail at once rather than wait on a rack that is not there. Needs root and podman (the twins
are containers in network namespaces); skipped with the reason otherwise. The stage table is
printed at the end, as `make demo-cluster` prints it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
NODES = 5

if os.geteuid() != 0:
    pytest.skip("the twin rack needs root (network namespaces, loop devices, podman)", allow_module_level=True)
if shutil.which("podman") is None:
    pytest.skip("the twin rack needs podman (.ci/apt-packages.txt)", allow_module_level=True)


sys.path.insert(0, str(REPO / "scripts"))
import twin_rack  # noqa: E402


class Chain:
    def __init__(self, rack):
        self.rack = rack
        self.failed = None

    def run(self, stage):
        if self.failed:
            pytest.fail("not run: the %s stage failed before it" % self.failed)
        try:
            return self.rack.go([stage])[stage]
        except BaseException:
            self.failed = stage
            raise


@pytest.fixture(scope="module")
def chain():
    work = tempfile.mkdtemp(prefix="twin-rack-", dir="/tmp")
    rack = twin_rack.Rack(work, NODES)
    try:
        yield Chain(rack)
    finally:
        memory = rack.memory()
        rack.stop()
        print("\n" + rack.table())
        print("memory per twin node (MiB): %s" % ", ".join("%s %.0f" % kv for kv in sorted(memory.items())))
        left = subprocess.run(["podman", "ps", "-a", "-q", "--filter", "label=picluster.carrier.twin=" + rack.tag],
                              capture_output=True, text=True, check=False).stdout.split()
        shutil.rmtree(work, ignore_errors=True)
        assert not left, "twin containers left after the simulator stopped: %s" % left


def test_images(chain):
    result = chain.run("images")
    assert Path(result["image"]).is_file()


def test_a_bare_rack_is_all_off(chain):
    result = chain.run("rack")
    assert result["nodes"] == NODES
    assert result["states"] == ["off"]
    assert result["twins"]["network"] == chain.rack.network


def test_flash_every_node(chain):
    assert chain.run("flash") == {"flashed": NODES}


def test_power_on_staggered(chain):
    assert chain.run("power") == {"on": NODES}


def test_first_boot_applied_by_cloud_init(chain):
    # The stage logs in with the key of the flash customisation, as the user it made.
    result = chain.run("ssh")
    assert result["hostnames"] == {h: h for h in chain.rack.hosts}


def test_prepare(chain):
    chain.run("prepare")


@pytest.mark.timeout(1800)
def test_site_yml(chain):
    # site.yml, then its mpi play again: a second run changes nothing on any node.
    assert chain.run("site") == {"mpi_rerun_changed": {}}


def test_the_cluster_serves(chain):
    result = chain.run("verify")
    rack = chain.rack
    storage = sorted(h for h in rack.hosts if "ceph_storage" in rack.roles[h])
    assert result["ceph"] == {"health": "HEALTH_OK", "osds_up": len(storage), "osd_hosts_up": storage}
    assert result["dns"]["answers"] == rack.address
    assert result["k3s"]["ready"] == sorted(h for h in rack.hosts if {"k3s_server", "k3s_agent"} & set(rack.roles[h]))
    assert result["mpi"]["output"][-1] == "MPI sample: OK"
    # The C example's reduction over every rank: "pi = 3.141592653589... (error ...) from ... on N ranks".
    assert result["mpi"]["pi"].startswith("pi = 3.14159265"), result["mpi"]["pi"]
    slots = sum(int(line.split()[-2]) for line in result["mpi"]["output"] if line.endswith(" ranks"))
    assert " on %d ranks " % slots in result["mpi"]["pi"], (slots, result["mpi"]["pi"])
    for host in rack.hosts:
        assert any(line.split()[:1] == [host] and line.endswith("ranks") for line in result["mpi"]["output"]), host


@pytest.mark.timeout(1200)
def test_ceph_survives_a_storage_node_power_loss(chain):
    result = chain.run("power_loss")
    # The power went while objects were being written, and the monitors saw the node go and come back.
    assert 0 < result["acknowledged_before_pull"] < result["objects"]
    assert result["seconds_until_osd_down"] >= 0 and result["seconds_until_osd_up_again"] >= 0
    assert result["wait_clean"] == ["clean"]
    assert result["verify"] == ["verified %d objects, 0 lost, 0 corrupt" % result["objects"]]
