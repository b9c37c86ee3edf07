# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The poe_switch driver (_outlets/poe.py, pysnmp) against the simulator's SNMP agent (snmpswitch.py).

The simulator runs in a thread of the test process; the driver talks to it over loopback UDP only."""

from __future__ import annotations

import json
import os
import socket
import sys
import time

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils._board import Board
from ansible_collections.picluster.carrier.plugins.module_utils._errors import BusError, CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._power import PowerRequest as Request, execute

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "sim"))
from simkit import SimThread  # noqa: E402

COMMUNITY, AUTH, PRIV = "s3cret-community", "auth-pass-1", "priv-pass-1"
SECRETS = (COMMUNITY, AUTH, PRIV, "wrong-community", "wrong-pass-1")


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def switch(tmp_path_factory):
    """One simulated 8-port switch (3 nodes) with a v2c community and an SNMPv3 user, for the module."""
    import tempfile

    directory = tempfile.mkdtemp(prefix="pcs-", dir="/tmp")
    port = free_udp_port()
    snmp = {"version": "3", "auth_protocol": "sha256", "priv_protocol": "aes"}
    profile = {"name": "poe8v3", "kind": "poe_switch", "snmp": snmp,
               "slots": {n: {"port": n} for n in range(1, 9)}}
    topology = {"controllers": {"c": {}}, "profiles": {"poe8v3": profile}, "boards": {"sw1": {
        "profile": "poe8v3", "bus": "snmp://127.0.0.1:%d" % port,
        "sim": {"community": COMMUNITY, "v3_user": "carrier", "v3_auth": AUTH, "v3_priv": PRIV},
        "slots": {1: {"host": "poe01"}, 2: {"host": "poe02"}, 3: {"host": "poe03"}}}}}
    sim = SimThread(topology, os.path.join(directory, "state"), boot_time=0.3, baud=1152000)
    sim.address = "snmp://127.0.0.1:%d" % port
    sim.profile = profile
    sim.locks = str(tmp_path_factory.mktemp("locks"))
    yield sim
    sim.stop()


def v2c(sim, community=COMMUNITY):
    return Board("sw1", "poe_switch8", sim.address, lock_dir=sim.locks, bmc={"password": community})


def v3(sim, auth=AUTH, priv=PRIV, user="carrier"):
    return Board("sw1", sim.profile, sim.address, lock_dir=sim.locks,
                 bmc={"user": user, "password": auth, "priv_password": priv})


def clean(sim):
    for port in (1, 2, 3):
        sim.control({"op": "fault", "board": "sw1", "port": port, "stuck": None})
    sim.control({"op": "fault", "board": "sw1", "timeout": False})
    v2c(sim).set_lines({1: {"power": False}, 2: {"power": False}, 3: {"power": False}})


def test_v2c_power_on_reads_back_after_detection_and_off(switch):
    clean(switch)
    board = v2c(switch)
    assert {s: v["power"] for s, v in board.read_state([1, 2, 3]).items()} == {1: False, 2: False, 3: False}
    started = time.monotonic()
    result = execute(Request(board, [1, 2], "on", stagger=0), sleep=lambda s: None)
    elapsed = time.monotonic() - started
    assert result["changed"] and elapsed >= 0.15  # the session waited for detection (0.2 s in the simulator)
    assert {s: v["power"] for s, v in board.read_state([1, 2, 3]).items()} == {1: True, 2: True, 3: False}
    switch.wait_state("poe01", ("bootloader", "kernel", "login"))
    again = execute(Request(board, [1, 2], "on", stagger=0), sleep=lambda s: None)
    assert not again["changed"]
    execute(Request(board, [1], "off", stagger=0), sleep=lambda s: None)
    assert switch.node("poe01")["state"] == "off" and board.read_state([1])[1]["power"] is False


def test_v3_authpriv_power_and_facts(switch):
    clean(switch)
    board = v3(switch)
    assert execute(Request(board, [3], "on", stagger=0), sleep=lambda s: None)["changed"]
    with board.session() as session:
        facts = session.chip_facts()["device"]
    assert facts["type"] == "poe_switch" and facts["snmp_version"] == "3" and facts["name"] == "sw1"
    assert facts["model"].startswith("carrier-sim PoE switch sw1")
    assert facts["ports"]["3"] == {"port": "1.3", "admin_enable": True, "detection": "deliveringPower"}
    assert facts["ports"]["4"] == {"port": "1.4", "admin_enable": False, "detection": "disabled"}
    assert facts["pse"]["1"] == {"power_w": 120, "status": "on", "consumption_w": 5}
    no_priv = v3(switch, priv=None)  # authNoPriv to a user that has a privacy key: the switch refuses it
    with pytest.raises(BusError, match=r"poe_switch board sw1 slot 3 \(snmp://127\.0\.0\.1:\d+\): "):
        no_priv.read_state([3])


def test_wrong_community_is_a_timeout_naming_board_and_slot(switch):
    clean(switch)
    board = v2c(switch, community="wrong-community")
    started = time.monotonic()
    with pytest.raises(BusError) as caught:
        execute(Request(board, [2], "on", stagger=0), sleep=lambda s: None)
    assert time.monotonic() - started < 8
    message = str(caught.value)
    assert message == ("poe_switch board sw1 slot 2 (%s): no answer from %s in 5 s (wrong community or "
                       "credentials?)" % (switch.address, switch.address))
    assert not any(secret in message for secret in SECRETS)
    assert switch.node("poe02")["state"] == "off"


def test_wrong_keys_and_unknown_user_say_which(switch):
    clean(switch)
    with pytest.raises(BusError, match=r"slot 1 .*SNMPv3 authentication of user 'carrier' failed: wrong digest") as c1:
        v3(switch, auth="wrong-pass-1").read_state([1])
    with pytest.raises(BusError, match=r"slot 1 .*SNMPv3 privacy of user 'carrier' failed") as c2:
        v3(switch, priv="wrong-pass-1").read_state([1])
    with pytest.raises(BusError, match=r"slot 1 .*does not know SNMPv3 user 'nobody'") as c3:
        v3(switch, user="nobody").read_state([1])
    for caught in (c1, c2, c3):
        assert not any(secret in str(caught.value) for secret in SECRETS)


def test_stuck_port_and_timeout_faults(switch):
    clean(switch)
    board = v2c(switch)
    switch.control({"op": "fault", "board": "sw1", "port": 2, "stuck": "off"})
    refused = r"poe_switch board sw1: slot\(s\) 2 did not follow: slot 2 reads off, wanted on"
    with pytest.raises(BusError, match=refused):
        board.set_lines({2: {"power": True}})
    switch.control({"op": "fault", "board": "sw1", "port": 2, "stuck": None})
    switch.control({"op": "fault", "board": "sw1", "timeout": True})
    with pytest.raises(BusError, match=r"slot 1, 2 .*no answer from snmp://127\.0\.0\.1:\d+ in 5 s"):
        board.read_state([1, 2])
    switch.control({"op": "fault", "board": "sw1", "timeout": False})


def test_a_port_the_switch_does_not_have(switch):
    board = Board("sw1", {"name": "big", "kind": "poe_switch", "slots": {1: {"port": 1}, 2: {"port": 12, "group": 2}}},
                  switch.address, lock_dir=switch.locks, bmc={"password": COMMUNITY})
    with pytest.raises(BusError, match=r"slot 2 .*the switch has no PoE port 2\.12 \(pethPsePortAdminEnable\.2\.12: "
                                       r"NoSuchInstance\)"):
        board.read_state([1, 2])
    with pytest.raises(BusError, match=r"slot 2 .*refused the request: noCreation at pethPsePortAdminEnable\.2\.12"):
        board.set_lines({2: {"power": True}})


@pytest.mark.parametrize("bmc,profile,message", [
    ({}, "poe_switch8", r"bmc_password \(the SNMP v2c community\) is required"),
    ({"user": "carrier", "password": "short"}, "poe_switch8", r"bmc_password \(the SNMPv3 authentication passphrase "
                                                              r"of user 'carrier'\) must have at least 8"),
    ({"password": AUTH}, {"name": "p3", "kind": "poe_switch", "snmp": {"version": 3}, "slots": {1: 1}},
     r"snmp\.version 3 needs bmc_user"),
    ({"user": "carrier", "password": AUTH, "priv_password": PRIV},
     {"name": "p3", "kind": "poe_switch", "snmp": {"priv_protocol": "none"}, "slots": {1: 1}},
     r"bmc_priv_password is given but the profile's snmp\.priv_protocol is none"),
])
def test_bad_credentials_are_refused_before_any_request(tmp_path, bmc, profile, message):
    board = Board("sw9", profile, "snmp://127.0.0.1:9", lock_dir=str(tmp_path), bmc=bmc)
    with pytest.raises(CarrierError, match=message) as caught:
        board.read_state([1])
    assert "short" not in str(caught.value) and AUTH not in json.dumps(str(caught.value))
