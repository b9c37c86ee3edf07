# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures of the simulator's unit tests.

``run_sim(topology_dict, **options)`` starts a simulator in a thread on short socket paths (a
``/tmp/pcs-*`` dir: Unix socket paths must stay under 108 bytes) and stops it at teardown,
checking that its sockets are gone. ``plain_modes``: the network boot modes skipped at once.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from simkit import SimThread, fill  # noqa: E402


@pytest.fixture
def short_dir():
    path = tempfile.mkdtemp(prefix="pcs-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def plain_modes(monkeypatch):
    """NETWORK and HTTP tried and skipped at once, as USB and NVMe are: for the tests of BOOT_ORDER and
    recovery.bin, which have no netboot lab (a cable-less NETWORK mode waits for link first)."""
    from carrier_sim import boot

    for code in (0x2, 0x7):
        monkeypatch.setitem(boot.BOOT_MODES, code, boot.mode_absent)


@pytest.fixture
def run_sim(short_dir):
    """``run_sim(topology, **options)`` -> a running :class:`SimThread`; ``{dir}`` in bus paths
    is replaced by a short temporary directory. Defaults: boot_time 0.3 s, baud 1152000."""
    started = []

    def start(topology, **options):
        options.setdefault("boot_time", 0.3)
        options.setdefault("baud", 1152000)
        topology = fill(topology, short_dir)
        sim = SimThread(topology, os.path.join(short_dir, "state"), **options)
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()
        assert not sim.thread.is_alive(), "the simulator thread did not stop"
        leftovers = list(sim.sim.buses) + [sim.sim.control_path]
        assert not [p for p in leftovers if os.path.exists(p)], "sockets left behind"
