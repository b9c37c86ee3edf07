# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the Redfish resources read and do on the hardware: power state, resets, the boot override.

Every hardware access goes through the board library exactly as the modules do: a fresh
:class:`_board.Board` per request (a Board keeps its held session on itself, so threads never share
one), :func:`_power.execute` for every reset (the bus lock, the stagger gate, the read-back), so a
Redfish reset and an Ansible ``node_power`` task on one chip are serialised by the same lock files
and never undo each other's lines.

Reset types (ComputerSystem.Reset): On -> ``state=on``, ForceOff -> ``off``, ForceRestart -> ``reset``
(the run line pulsed; a power cycle where the slot has none), PowerCycle -> ``cycle``. GracefulShutdown
types ``poweroff`` at the node's logged-in console shell and then switches the power off
(:mod:`shutdown`); without a logged-in console it is refused with a Redfish error and nothing switched.
Nmi has no line to raise on a Pi and is not offered.

The boot override (Boot.BootSourceOverrideTarget / Enabled) is kept in ``state_dir``. ``Usb`` is the
slot's rpiboot line (the bootloader waits for rpiboot over USB), set at the next power-on through
``node_power``'s ``usb_boot``; ``Once`` is cleared after that power-on. The other targets map to a
bootloader BOOT_ORDER (:data:`BOOT_ORDER`); they are stored and shown but not yet written to the
node's EEPROM (that needs the node up and ``eeprom_config``), see docs/internals.md, "Redfish service".
"""

from __future__ import annotations

import time

from ansible_collections.picluster.carrier.plugins.module_utils._board import board_from_dict, slot_summary
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._power import PowerRequest, execute
from ansible_collections.picluster.carrier.plugins.module_utils._redfish.errors import RedfishError
from ansible_collections.picluster.carrier.plugins.module_utils._redfish.shutdown import (
    console_url,
    poweroff_over_console,
)

RESET_STATES = {"On": "on", "ForceOff": "off", "ForceRestart": "reset", "PowerCycle": "cycle"}
RESET_TYPES = ("On", "ForceOff", "ForceRestart", "PowerCycle", "GracefulShutdown")
POWER_ON_TYPES = ("On", "ForceRestart", "PowerCycle")
BOOT_TARGETS = ("None", "Pxe", "Hdd", "SDCard", "Usb", "UefiHttp")
BOOT_ENABLED = ("Disabled", "Once", "Continuous")
# The Raspberry Pi bootloader's BOOT_ORDER each target stands for (read right to left; f = start again).
BOOT_ORDER = {"Pxe": "0xf21", "Hdd": "0xf61", "SDCard": "0xf1", "UefiHttp": "0xf71", "None": None, "Usb": None}
OVERRIDES = "boot-overrides"


class Node(object):
    """One ComputerSystem: a slot of a board, with its host name, model and console port."""

    def __init__(self, host, board_spec, slot, model, console_port):
        self.host = host
        self.board_spec = board_spec
        self.slot = slot
        self.model = model
        self.console_port = console_port


class Nodes(object):
    """The systems and boards of a configuration, and the operations on them."""

    def __init__(self, config, store, bus_opener=None, sleep=time.sleep, on_power_change=None):
        self.config = config
        self.store = store
        self.sleep = sleep
        self.on_power_change = on_power_change
        self.poweroff = poweroff_over_console
        self._options = {} if bus_opener is None else {"bus_opener": bus_opener}
        self.boards = {spec["name"]: spec for spec in config["boards"]}
        self.systems = {}
        for spec in config["boards"]:
            for slot, node in sorted(spec["nodes"].items()):
                self.systems[node["host"]] = Node(node["host"], spec, slot, node["model"], node["console_port"])

    def new_board(self, spec):
        return board_from_dict({k: v for k, v in spec.items() if k != "board"}, **self._options)

    def lines(self, node):
        """The slot's lines read from the hardware (``power``, ``run``, ``rpiboot``, ``led`` where it has them)."""
        board = self.new_board(node.board_spec)
        with board.holding():
            return board.read_state([node.slot])[node.slot]

    @staticmethod
    def power_state(lines):
        summary = slot_summary(lines)
        return "Off" if summary == "off" else "On"

    def has_usb_boot(self, node):
        return "rpiboot" in self.new_board(node.board_spec).profile.lines(node.slot)

    def boot_targets(self, node):
        return [t for t in BOOT_TARGETS if t != "Usb" or self.has_usb_boot(node)]

    def boot_override(self, node):
        """``{"target", "enabled", "generation"}`` of the node's stored override."""
        entry = self.store.read(OVERRIDES).get(node.host) or {}
        return {"target": entry.get("target", "None"), "enabled": entry.get("enabled", "Disabled"),
                "generation": int(entry.get("generation", 0))}

    def set_boot_override(self, node, target=None, enabled=None, expect_generation=None):
        """Store a new override; ``expect_generation`` (from the If-Match ETag) refuses a stale one (412)."""
        if target is not None and target not in self.boot_targets(node):
            raise RedfishError("PropertyValueNotInList", target, "BootSourceOverrideTarget")
        if enabled is not None and enabled not in BOOT_ENABLED:
            raise RedfishError("PropertyValueNotInList", enabled, "BootSourceOverrideEnabled")
        with self.store.changing(OVERRIDES) as overrides:
            current = overrides.get(node.host) or {}
            generation = int(current.get("generation", 0))
            if expect_generation is not None and expect_generation != generation:
                raise RedfishError("PreconditionFailed")
            new = {"target": target if target is not None else current.get("target", "None"),
                   "enabled": enabled if enabled is not None else current.get("enabled", "Disabled")}
            if target is not None and target != "None" and enabled is None and new["enabled"] == "Disabled":
                new["enabled"] = "Once"  # a target set alone applies once, as BMCs do
            if new != {k: current.get(k, d) for k, d in (("target", "None"), ("enabled", "Disabled"))}:
                new["generation"] = generation + 1
                overrides[node.host] = new
        return self.boot_override(node)

    def _usb_boot(self, node, reset_type):
        """``usb_boot`` for the power request: the override's wish for the rpiboot line, None to leave it."""
        if reset_type not in POWER_ON_TYPES or not self.has_usb_boot(node):
            return None
        override = self.boot_override(node)
        if override["enabled"] == "Disabled":
            return None
        return override["target"] == "Usb"

    def _consume_once(self, node):
        """A ``Once`` override is spent by the power-on that started the node (as a BMC's next boot)."""
        with self.store.changing(OVERRIDES) as overrides:
            entry = overrides.get(node.host) or {}
            if entry.get("enabled") == "Once":
                overrides[node.host] = {"target": "None", "enabled": "Disabled",
                                        "generation": int(entry.get("generation", 0)) + 1}

    def _graceful_shutdown(self, node):
        """``poweroff`` on the node's logged-in console, then its power line off (:mod:`shutdown`)."""
        if self.power_state(self.lines(node)) == "Off":
            return self._execute(node, "ForceOff", None)  # nothing to shut down: a no-op read
        if not node.console_port or not self.config.get("console_host"):
            raise RedfishError("ActionParameterValueConflict", "ResetType", "GracefulShutdown", status=409, detail=(
                "%s has no console configured (console_host and its console_port): nothing was switched; "
                "use ForceOff" % node.host))
        try:
            self.poweroff(console_url(self.config["console_host"], node.console_port), node.host)
        except CarrierError as exc:
            raise RedfishError("ActionParameterValueConflict", "ResetType", "GracefulShutdown", status=409,
                               detail=str(exc)) from None
        return self._execute(node, "ForceOff", None)

    def _execute(self, node, reset_type, usb_boot):
        board = self.new_board(node.board_spec)
        try:
            request = PowerRequest(board, [node.slot], RESET_STATES[reset_type], usb_boot=usb_boot, force=False)
            return execute(request, sleep=self.sleep)
        except CarrierError as exc:
            raise RedfishError("ActionParameterValueConflict", "ResetType", reset_type, status=409,
                               detail="%s: %s" % (node.host, exc)) from None

    def reset(self, node, reset_type):
        """Carry out ``ComputerSystem.Reset``; the :func:`_power.execute` result. Refusals switch nothing."""
        if reset_type not in RESET_TYPES:
            raise RedfishError("ActionParameterValueNotInList", reset_type, "ResetType", "ComputerSystem.Reset")
        if reset_type == "GracefulShutdown":
            result = self._graceful_shutdown(node)
            self._announce(node, reset_type, result)
            return result
        usb_boot = self._usb_boot(node, reset_type)
        if usb_boot is not None and reset_type == "On" and self.power_state(self.lines(node)) == "On":
            usb_boot = None  # On for a running node changes nothing, not even its boot mode
        result = self._execute(node, reset_type, usb_boot)
        if reset_type in POWER_ON_TYPES and result["slots"][0]["action"] != "none":
            self._consume_once(node)
        self._announce(node, reset_type, result)
        return result

    def _announce(self, node, reset_type, result):
        entry = result["slots"][0]
        if entry["before"]["state"] != entry["after"]["state"] and self.on_power_change is not None:
            self.on_power_change(node, reset_type, entry)
