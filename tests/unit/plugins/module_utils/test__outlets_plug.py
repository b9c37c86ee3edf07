# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The smart_plug driver (_outlets/plug.py) against the simulator's plugs (plugs.py): Tasmota, Shelly
Gen1 and Shelly Gen2, each with its login, over loopback HTTP only.

The simulator runs in a thread of the test process (one for the module)."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import threading
import time

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils._board import Board
from ansible_collections.picluster.carrier.plugins.module_utils._errors import BusError, CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._outlets import plug
from ansible_collections.picluster.carrier.plugins.module_utils._power import PowerRequest as Request, execute

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "sim"))
from simkit import SimThread  # noqa: E402

PASSWORDS = {"strip": "tasmota-pw-1", "gen1": "gen1-pw-2", "gen2": "gen2-pw-3"}
WRONG = "not-the-pw-9"
GEN1_PROFILE = {"name": "two_shelly1", "kind": "smart_plug", "api": "shelly_gen1",
                "slots": {1: {"outlet": 1, "url": "{gen1a}"}, 2: {"outlet": 1, "url": "{gen1b}"}}}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def plugs(tmp_path_factory):
    """A Tasmota strip (4 relays), two Shelly Gen1 plugs (one board, a URL per slot) and a Shelly Pro 4PM."""
    directory = tempfile.mkdtemp(prefix="pcs-", dir="/tmp")
    urls = {name: "http://127.0.0.1:%d" % free_port() for name in ("strip", "gen1", "gen1a", "gen1b", "gen2")}
    gen1 = dict(GEN1_PROFILE, slots={1: {"outlet": 1, "url": urls["gen1a"]}, 2: {"outlet": 1, "url": urls["gen1b"]}})
    topology = {"controllers": {"c": {}}, "profiles": {"two_shelly1": gen1}, "boards": {
        "strip": {"profile": "tasmota_strip4", "bus": urls["strip"], "sim": {"password": PASSWORDS["strip"]},
                  "slots": {n: {"host": "tas%02d" % n} for n in (1, 2, 3, 4)}},
        "gen1": {"profile": "two_shelly1", "bus": urls["gen1"], "sim": {"user": "pi", "password": PASSWORDS["gen1"]},
                 "slots": {1: {"host": "sha01"}, 2: {"host": "sha02"}}},
        "gen2": {"profile": "shelly_pro4", "bus": urls["gen2"], "sim": {"password": PASSWORDS["gen2"]},
                 "slots": {1: {"host": "shb01"}, 2: {"host": "shb02"}}},
    }}
    sim = SimThread(topology, os.path.join(directory, "state"), boot_time=0.3, baud=1152000)
    sim.urls, sim.gen1 = urls, gen1
    sim.locks = str(tmp_path_factory.mktemp("locks"))
    yield sim
    sim.stop()
    shutil.rmtree(directory, ignore_errors=True)


def board(sim, name, password="right", user=None, **login):
    profile = {"strip": "tasmota_strip4", "gen1": sim.gen1, "gen2": "shelly_pro4"}[name]
    password = PASSWORDS[name] if password == "right" else password
    user = user if user is not None else ("pi" if name == "gen1" else None)
    return Board(name, profile, sim.urls[name], lock_dir=sim.locks, bmc=dict(login, user=user, password=password))


def clean(sim, name):
    sim.control({"op": "fault", "board": name, "timeout": False})
    for slot in (1, 2):
        sim.control({"op": "fault", "board": name, "slot": slot, "stuck": None})
    slots = (1, 2, 3, 4) if name == "strip" else (1, 2)
    board(sim, name).set_lines({s: {"power": False} for s in slots})


def powered(sim, host):
    return sim.node(host)["lines"]["power"]


@pytest.mark.parametrize("name,hosts", [("strip", ("tas01", "tas03")), ("gen1", ("sha01", "sha02")),
                                        ("gen2", ("shb01", "shb02"))])
def test_on_reads_back_then_off(plugs, name, hosts):
    clean(plugs, name)
    slots = [1, 3] if name == "strip" else [1, 2]
    target = board(plugs, name)
    assert {s: v["power"] for s, v in target.read_state(slots).items()} == {s: False for s in slots}
    result = execute(Request(target, slots, "on", stagger=0), sleep=lambda s: None)
    assert result["changed"] and all(powered(plugs, h) for h in hosts)
    assert {s: v["power"] for s, v in target.read_state(slots).items()} == {s: True for s in slots}
    again = execute(Request(target, slots, "on", stagger=0), sleep=lambda s: None)
    assert not again["changed"]
    plugs.wait_state(hosts[0], "login")
    execute(Request(target, slots[:1], "off", stagger=0), sleep=lambda s: None)
    assert not powered(plugs, hosts[0]) and powered(plugs, hosts[1])
    if name == "strip":
        assert not powered(plugs, "tas02"), "a relay not asked for switched"


def test_cycle_turns_the_relay_off_and_on(plugs):
    clean(plugs, "gen2")
    target = board(plugs, "gen2")
    execute(Request(target, [2], "on", stagger=0), sleep=lambda s: None)
    before = plugs.status()["boards"]["gen2"]["device"]["requests"]
    result = execute(Request(target, [2], "cycle", stagger=0, off_time=0.2), sleep=time.sleep)
    assert result["changed"] and powered(plugs, "shb02")
    assert plugs.status()["boards"]["gen2"]["device"]["requests"] > before + 2  # off, read back, on, read back


def test_facts_say_model_and_firmware(plugs):
    with board(plugs, "strip").session() as session:
        facts = session.chip_facts()["device"]
    assert facts["api"] == "tasmota" and facts["firmware"].endswith("(tasmota)") and facts["type"] == "smart_plug"
    with board(plugs, "gen2").session() as session:
        facts = session.chip_facts()["device"]
    assert facts["model"] == "SPSW-004PE16EU" and facts["firmware"] and facts["app"] == "Pro4PM"
    with board(plugs, "gen1").session() as session:
        facts = session.chip_facts()["device"]
    assert sorted(facts["plugs"]) == sorted([plugs.urls["gen1a"], plugs.urls["gen1b"]])
    assert all(f["model"] == "SHPLG-S" for f in facts["plugs"].values())


@pytest.mark.parametrize("name,password", [("strip", WRONG), ("strip", None), ("gen1", WRONG), ("gen1", None),
                                           ("gen2", WRONG), ("gen2", None)])
def test_wrong_login_names_board_and_slot_not_the_password(plugs, name, password):
    clean(plugs, name)
    target = board(plugs, name, password=password)
    with pytest.raises(BusError) as caught:
        target.set_lines({1: {"power": True}})
    message = str(caught.value)
    url = plugs.urls["gen1a"] if name == "gen1" else plugs.urls[name]
    assert message.startswith("smart_plug board %s slot 1 (%s): the device refused the login" % (name, url)), message
    assert ("give bmc_password" if password is None else "check bmc_user and bmc_password") in message
    assert not any(secret in message for secret in list(PASSWORDS.values()) + [WRONG])
    assert not powered(plugs, {"strip": "tas01", "gen1": "sha01", "gen2": "shb01"}[name])


def test_a_plug_that_does_not_answer_times_out(plugs, monkeypatch):
    clean(plugs, "strip")
    monkeypatch.setattr(plug, "TIMEOUT", 0.5)
    plugs.control({"op": "fault", "board": "strip", "timeout": True})
    try:
        started = time.monotonic()
        with pytest.raises(BusError, match=r"^smart_plug board strip slot 2 \(%s\): no answer in 0.5 s$"
                           % plugs.urls["strip"]):
            board(plugs, "strip").read_state([2])
        assert time.monotonic() - started < 3
    finally:
        plugs.control({"op": "fault", "board": "strip", "timeout": False})
    assert board(plugs, "strip").read_state([2])[2]["power"] is False


def test_a_relay_that_does_not_follow(plugs):
    clean(plugs, "gen1")
    plugs.control({"op": "fault", "board": "gen1", "slot": 2, "stuck": "off"})
    try:
        with pytest.raises(BusError, match=r"smart_plug board gen1: slot\(s\) 2 did not follow: slot 2 reads off, "
                                           r"wanted on"):
            board(plugs, "gen1").set_lines({1: {"power": True}, 2: {"power": True}})
        assert powered(plugs, "sha01") and not powered(plugs, "sha02")
    finally:
        plugs.control({"op": "fault", "board": "gen1", "slot": 2, "stuck": None})


def test_nothing_listening_is_refused(tmp_path):
    target = Board("gone", "tasmota_strip4", "http://127.0.0.1:%d" % free_port(), lock_dir=str(tmp_path))
    with pytest.raises(BusError, match=r"smart_plug board gone slot 1 \(http://127\.0\.0\.1:\d+\): connection refused"):
        target.read_state([1])


def test_login_options_checked(tmp_path):
    with pytest.raises(CarrierError, match=r"bmc_user: 'root': a Shelly Gen2 device has the one user 'admin'"):
        plug.PlugDriver(Board("p", "shelly_pro4", "http://127.0.0.1:9", bmc={"user": "root"}))
    with pytest.raises(CarrierError, match=r"bmc_ca_path: cannot load '/nonexistent/ca.pem'"):
        plug.PlugDriver(Board("p", "shelly_pro4", "https://127.0.0.1:9", bmc={"ca_path": "/nonexistent/ca.pem"}))


def test_forks_share_one_device(plugs):
    """Many processes' sessions on one strip: the lock keeps each read-back to its own write."""
    clean(plugs, "strip")
    errors = []

    def worker(slot):
        try:
            execute(Request(board(plugs, "strip"), [slot], "on", stagger=0), sleep=lambda s: None)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(slot,)) for slot in (1, 2, 3, 4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors and all(powered(plugs, "tas%02d" % n) for n in (1, 2, 3, 4))
