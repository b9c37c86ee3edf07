# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Many processes toggling different slots of one chip at once, through the simulator's bus socket.

docs/hardware.md section 2: a read-modify-write of an output latch is not atomic on the bus, and the
simulator (like a real bus) does not make it so. With the per-bus lock every process's writes
survive; the same test with the lock disabled must show lost updates, which proves the test can
see the race it guards against.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils import _board
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError

SLOTS = (1, 2, 3, 4, 5)  # every slot of chip u1 of a backplane10 (power bits 0, 3, 6, 9, 12)
ROUNDS = 30


def topology():
    return {
        "plugin": "picluster.carrier.boards",
        "controllers": {"ctrl0": {"vars": {"ansible_connection": "local"}}},
        "boards": {
            "rack1": {
                "profile": "backplane10",
                "controller": "ctrl0",
                "bus": "sim:{dir}/bus.sock",
                "console": "{dir}/state/console/{host}",
                # a slow bus (0.5 ms a transaction) widens every read-modify-write window
                "sim": {"transaction_time": 0.0005},
                "slots": {slot: {"host": "n%02d" % slot} for slot in range(1, 11)},
            }
        },
    }


def hammer(bus, lock_dir, slot, rounds, locked, results):
    """Toggle one slot's power ``rounds`` times; count the writes another process undid."""
    if not locked:
        _board.bus_lock = lambda *args, **kwargs: contextlib.nullcontext()
    board = _board.Board("rack1", "backplane10", bus, lock_dir=lock_dir, retries=1)
    undone = 0
    for i in range(rounds):
        try:
            board.set_lines({slot: {"power": i % 2 == 0}})
        except CarrierError:
            undone += 1  # the read-back found our line changed under us
    results.put((slot, undone))


def run_round(cluster, locked):
    board = cluster.board("rack1")
    board.set_lines({slot: {"power": False} for slot in SLOTS})
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    # odd round counts end on, even ones end off
    rounds = {slot: ROUNDS + (slot % 2) for slot in SLOTS}
    procs = [ctx.Process(target=hammer, args=(board.bus_spec, board.lock_dir, slot, rounds[slot], locked, results))
             for slot in SLOTS]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    undone = dict(results.get(timeout=10) for _slot in SLOTS)
    final = board.read_state(list(SLOTS))
    wrong = [slot for slot in SLOTS if final[slot]["power"] is not (rounds[slot] % 2 == 1)]
    return undone, wrong


def test_parallel_toggles_with_the_bus_lock_end_exactly_as_intended(sim_cluster_factory):
    cluster = sim_cluster_factory(topology())
    undone, wrong = run_round(cluster, locked=True)
    assert wrong == [], "slots whose final state another process undid: %s" % wrong
    assert sum(undone.values()) == 0, "writes undone under the lock: %s" % undone


def test_the_same_toggles_without_the_lock_lose_updates(sim_cluster_factory):
    """The control experiment: with the lock disabled, the test above fails (lost updates)."""
    cluster = sim_cluster_factory(topology())
    observed = []
    for _round in range(3):  # a race is a race: give it three chances to show
        undone, wrong = run_round(cluster, locked=False)
        observed.append((sum(undone.values()), wrong))
        if wrong or sum(undone.values()):
            print("without the lock: %d of %d writes undone by another process, final state wrong on slots %s"
                  % (sum(undone.values()), sum(ROUNDS + (s % 2) for s in SLOTS), wrong))
            break
    else:
        pytest.fail("no lost update in 3 rounds without the lock: the test cannot see the race (%s)" % observed)
    assert os.path.exists(os.path.join(cluster.dir, "bus.sock"))
