# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A Turing Pi 2 board in the simulator: its nodes driven by the emulated BMC (bmc.py) over HTTP."""

from __future__ import annotations

import dataclasses
import json
import socket
import urllib.request

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils import _topology_model
from ansible_collections.picluster.carrier.plugins.module_utils._board import get_profile


def _make(cls, **values):
    """A topology dataclass with ``values`` and neutral values for every other field."""
    neutral = {}
    for field in dataclasses.fields(cls):
        if field.name in values:
            continue
        if field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING:
            continue
        neutral[field.name] = {} if field.name in ("vars", "sim", "board_vars", "slot_vars") else (
            () if field.name in ("protected_slots", "specializations") else None)
    neutral.update(values)
    return cls(**neutral)


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def topology():
    url = "http://127.0.0.1:%d" % _free_port()
    spec = _make(_topology_model.BoardSpec, name="tp2", controller="c", bus=url, profile=get_profile("turingpi2"),
                 profile_name="turingpi2", sim={"auth": False})
    nodes = {}
    for slot in (1, 2):
        nodes[slot] = _make(_topology_model.Node, host="t%d" % slot, board="tp2", slot=slot, controller="c",
                            profile="turingpi2", bus=url, model="cm4")
        spec.nodes[slot] = nodes[slot]
    controllers = {"c": _make(_topology_model.Controller, name="c")}
    return _make(_topology_model.Topology, source="<test>", controllers=controllers,
                 profiles={}, boards={"tp2": spec}, nodes={n.host: n for n in nodes.values()}, specializations=())


def _get(url, query):
    with urllib.request.urlopen("%s/api/bmc?%s" % (url, query), timeout=10) as response:  # noqa: S310 - loopback
        return json.loads(response.read())


def test_bmc_powers_nodes_and_buffers_their_console(run_sim, topology):
    from carrier_sim.client import ControlError

    sim = run_sim(topology)
    url = topology.boards["tp2"].bus
    assert sim.node("t1")["state"] == "off"
    assert _get(url, "opt=set&type=power&node1=1") == {"response": [{"result": "ok"}]}
    sim.wait_state("t1", "login")
    assert sim.node("t2")["state"] == "off"
    uart = _get(url, "opt=get&type=uart&node=0")["response"][0]["uart"]
    assert "t1 login: " in uart and "RPi: BOOTLOADER" in uart
    status = sim.status()["boards"]["tp2"]
    assert status["kind"] == "turingpi2" and status["bmc"]["power"]["1"] is True
    with pytest.raises(ControlError, match="Turing Pi 2"):
        sim.control({"op": "fault", "board": "tp2", "i2c_error_rate": 0.5})
    _get(url, "opt=set&type=power&node1=0")
    assert sim.node("t1")["state"] == "off"
