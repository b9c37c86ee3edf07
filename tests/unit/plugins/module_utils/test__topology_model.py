# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_topology_model: what a loaded topology's objects give their users (the inventory, the simulator)."""

from __future__ import annotations

import dataclasses

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils._topology import load_topology
from ansible_collections.picluster.carrier.plugins.module_utils._topology_model import BoardSpec, Node

TOPOLOGY = {
    "controllers": {"ctrl0": {"vars": {"site": "lab"}}},
    "boards": {
        "rack1": {
            "profile": "backplane10", "bus": 1, "controller_slot": 10, "vars": {"rack": "r1", "role": "worker"},
            "console": "/dev/serial/{board}-{slot:02d}",
            "slots": {
                3: {"host": "n3", "model": "cm4", "serial": "10000000B7F44626", "usb_port": "1-1.3",
                    "specializations": ["pihole"], "vars": {"role": "dns"}},
                10: "ctrl-slot",
            },
        },
    },
}


def test_node_vars_are_the_boards_updated_by_the_slots():
    node = load_topology(TOPOLOGY).node("n3")
    assert node.vars == {"rack": "r1", "role": "dns"}
    assert node.tftp_dir == "b7f44626"
    assert load_topology(TOPOLOGY).node("ctrl-slot").tftp_dir is None


def test_hostvars_are_the_carrier_facts_then_the_vars():
    hv = load_topology(TOPOLOGY).node("n3").hostvars()
    assert hv["carrier_board"] == "rack1" and hv["carrier_slot"] == 3 and hv["carrier_controller"] == "ctrl0"
    assert hv["carrier_protected_slots"] == [10] and hv["carrier_usb_port"] == "1-1.3"
    assert hv["carrier_console"] == "/dev/serial/rack1-03"
    assert hv["carrier_specializations"] == ["pihole"] and hv["role"] == "dns"
    assert "carrier_profile_data" not in hv  # a built-in profile is named, not copied


def test_the_objects_are_read_only():
    topology = load_topology(TOPOLOGY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        topology.node("n3").host = "other"
    board = topology.boards["rack1"]
    assert isinstance(board, BoardSpec) and isinstance(topology.node("n3"), Node)
    assert board.protected_slots == (10,)
    assert [n.host for n in topology.nodes_of_controller("ctrl0")] == ["n3", "ctrl-slot"]
