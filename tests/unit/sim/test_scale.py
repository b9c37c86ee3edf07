# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The simulator at scale: idle nodes cost no timers, nodes with one config share one EEPROM image,
and `start` waits for a large topology as long as it makes progress."""

from __future__ import annotations

import os
import threading
import time

import pytest
from simkit import gpio_topology

from carrier_sim import cli, uart


def test_idle_nodes_arm_no_timers_of_their_own(run_sim):
    nodes = {slot: "n%d" % slot for slot in range(1, 5)}
    sim = run_sim(gpio_topology(nodes=nodes))
    time.sleep(0.3)  # every UART idle
    done = threading.Event()
    found = []

    def count():
        found.append([h for h in sim.loop._scheduled if not h.cancelled()])
        done.set()

    sim.loop.call_soon_threadsafe(count)
    assert done.wait(5)
    # One watcher for all the lines, not a timed wait per node: four idle nodes, at most one timer
    # (the watcher's sleep; the boards schedule nothing while every node is off).
    assert len(found[0]) <= 1, found[0]


def test_a_client_is_noticed_while_the_line_is_idle(run_sim):
    sim = run_sim(gpio_topology())
    time.sleep(0.2)
    line = sim.sim.nodes["n1"].uart
    assert line.connected is False
    fd = os.open(os.path.join(sim.state_dir, "console", "n1"), os.O_RDWR | os.O_NOCTTY)
    try:
        deadline = time.monotonic() + 2
        while not line.connected and time.monotonic() < deadline:
            time.sleep(uart.WATCH)
        assert line.connected is True
    finally:
        os.close(fd)
    deadline = time.monotonic() + 2
    while line.connected and time.monotonic() < deadline:
        time.sleep(uart.WATCH)
    assert line.connected is False


def test_nodes_with_one_config_share_one_eeprom_image(run_sim):
    sim = run_sim(gpio_topology(nodes={1: "n1", 2: "n2", 3: "n3"}))
    images = {id(sim.sim.nodes[h].eeprom.data) for h in ("n1", "n2", "n3")}
    assert len(images) == 1


def _pipe_with(messages, gap):
    read_fd, write_fd = os.pipe()

    def writer():
        for text in messages:
            time.sleep(gap)
            os.write(write_fd, (text + "\n").encode())
        os.close(write_fd)

    threading.Thread(target=writer, daemon=True).start()
    return read_fd


def test_start_waits_while_progress_comes(monkeypatch, capsys):
    monkeypatch.setattr(cli, "STALL_TIMEOUT", 0.5)
    monkeypatch.setattr(cli, "PROGRESS_EVERY", 0.0)
    fd = _pipe_with(["progress node trees %d/10" % i for i in range(1, 11)] + ["ready pid 1: ..."], 0.2)
    start = time.monotonic()
    assert cli._wait_ready(fd) == "ready pid 1: ..."
    assert time.monotonic() - start > 2 * cli.STALL_TIMEOUT  # longer than a fixed timeout would have allowed
    assert "carrier-sim: starting: node trees 10/10" in capsys.readouterr().err


@pytest.mark.parametrize("messages,expected", [
    (["progress consoles 1/9"], "made no progress for"),
    ([], "ended without reporting ready"),
])
def test_start_gives_up_on_a_stall_or_a_silent_end(monkeypatch, messages, expected):
    monkeypatch.setattr(cli, "STALL_TIMEOUT", 0.3)
    read_fd, write_fd = os.pipe()
    for text in messages:
        os.write(write_fd, (text + "\n").encode())
    if not messages:
        os.close(write_fd)
    try:
        assert expected in cli._wait_ready(read_fd)
    finally:
        if messages:
            os.close(write_fd)
