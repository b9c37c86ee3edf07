# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The topology's object model: what :func:`_topology.load_topology` returns.

Read-only dataclasses, values already validated and normalised by the loader (``_topology``):
:class:`Topology` with its ``controllers``, ``boards`` and ``nodes`` (by host, board then slot
order), :class:`Controller`, :class:`BoardSpec` (``profile`` a ``_board.Profile``, ``nodes`` by
slot) and :class:`Node` (``hostvars()`` is what the inventory sets).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ansible_collections.picluster.carrier.plugins.module_utils import _models


@dataclass(frozen=True)
class Controller:
    name: str
    vars: dict


@dataclass(frozen=True)
class Node:
    host: str
    board: str
    slot: int
    controller: str
    profile: str
    profile_data: dict | None
    bus: str
    addresses: dict | None
    protected_slots: tuple
    console: str | None
    serial: str | None
    mac: str | None
    model: str | None
    specializations: tuple
    board_vars: dict
    slot_vars: dict
    sim: dict
    bmc: dict = field(default_factory=dict)
    usb_port: str | None = None

    @property
    def vars(self) -> dict:
        """The node's own variables: the board's ``vars`` updated with the slot's."""
        merged = dict(self.board_vars)
        merged.update(self.slot_vars)
        return merged

    @property
    def tftp_dir(self) -> str | None:
        """The TFTP directory name of the node: the last 8 hex digits of its serial (docs/hardware.md section 9)."""
        return _models.serial_dirname(self.serial) if self.serial else None

    def hostvars(self) -> dict:
        """The inventory host variables: ``carrier_*`` facts then the board's and the slot's ``vars``."""
        hv = {
            "carrier_board": self.board, "carrier_slot": self.slot, "carrier_controller": self.controller,
            "carrier_profile": self.profile, "carrier_bus": self.bus,
            "carrier_protected_slots": list(self.protected_slots), "carrier_serial": self.serial,
            "carrier_mac": self.mac, "carrier_model": self.model, "carrier_usb_port": self.usb_port,
            "carrier_specializations": list(self.specializations),
        }
        if self.profile_data is not None:
            hv["carrier_profile_data"] = self.profile_data
        if self.addresses:
            hv["carrier_addresses"] = dict(self.addresses)
        if self.console is not None:
            hv["carrier_console"] = self.console
        for key, value in self.bmc.items():
            hv["carrier_bmc_" + key] = value
        hv.update(self.board_vars)
        hv.update(self.slot_vars)
        return hv


@dataclass(frozen=True)
class BoardSpec:
    name: str
    controller: str
    bus: str
    profile: Any
    profile_name: str
    profile_data: dict | None
    addresses: dict | None
    controller_slot: int | None
    console: str | None
    vars: dict
    sim: dict
    description: str | None = None
    nodes: dict = field(default_factory=dict)
    bmc: dict = field(default_factory=dict)

    @property
    def protected_slots(self) -> tuple:
        return () if self.controller_slot is None else (self.controller_slot,)


@dataclass(frozen=True)
class Topology:
    source: str
    controllers: dict
    profiles: dict
    boards: dict
    nodes: dict
    specializations: tuple

    def node(self, host: str) -> Node:
        return self.nodes[host]

    def nodes_of_controller(self, name: str) -> list:
        return [n for n in self.nodes.values() if n.controller == name]
