# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cluster topology file (``*.carrier.yml``): load, validate, normalise.

One file describes a cluster: the controllers (hosts wired to the boards' I2C buses), optional
user-defined board profiles, and the boards with one entry per populated slot. The inventory
plugin ``picluster.carrier.boards`` and the simulator (``sim/``) both read it through
:func:`load_topology`; the format is documented in ``docs/internals.md``.

Beyond the example in ``docs/internals.md``, the format accepts:

- a slot given as a bare host name (``3: node03``), and slot numbers as ints or digit strings;
- ``profile:`` as a mapping (the board's own profile, named after the board unless it has a
  ``name``), besides a built-in name or a name from the top-level ``profiles:``;
- ``controller:`` left out when the file defines exactly one controller;
- a top-level ``specializations:`` list adding names to the built-in ones
  (:data:`BUILTIN_SPECIALIZATIONS`); ``model:`` one of :data:`_models.MODELS`; a board ``description``;
- console patterns with format specs (``/dev/serial/{board}-{slot:02d}``);
- the inventory plugin's options (:data:`INVENTORY_OPTION_KEYS`) beside the topology.

Any other key is an error. ``vars`` names must be valid variable names and may not start with
``carrier_`` (the inventory's own). Serials: 16 hex digits or the 8-digit TFTP-directory form,
lowercased; two serials clash when their last 8 digits (the TFTP directory) do. MACs: ``:`` or
``-`` separated, normalised to lowercase with ``:``, unicast only. ``usb_port``: the controller's USB
port the node's USB-boot port is cabled to, as the kernel names it under ``/sys/bus/usb/devices``
(``1-1.3``: bus 1, root port 1, hub port 3), unique per controller; what ``node_flash`` serves with
``rpiboot`` and finds the node's storage on.

Object model (``_topology_model``: dataclasses, read-only after loading): :class:`Topology` with its ``controllers``,
``boards`` and ``nodes`` (by host, board then slot order) in file order, ``profiles`` (the user
profiles by name) and ``specializations`` (every name the file may use); :class:`Controller`,
:class:`BoardSpec` (``profile`` a ``_board.Profile``, ``profile_data`` the user's profile dict or
None for a built-in, ``nodes`` by slot) and :class:`Node`. Values come normalised: a bus is a
string (``N``, ``/dev/i2c-N``, ``sim:/abs/path`` or a BMC URL), a serial 16 or 8 lowercase hex
digits, a MAC lowercase with ``:``, a node's console its pattern expanded (None without one).
``Node.vars`` is the board's ``vars`` updated with the slot's; ``Node.hostvars()`` is what the
inventory sets (the ``carrier_*`` variables, then ``vars``).

Every validation failure raises :class:`TopologyError` (a ``CarrierError``) whose message names
the file, the field path (``boards.rack1.slots.3.mac``) and the value at fault.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any, Mapping

from ansible_collections.picluster.carrier.plugins.module_utils import _models
from ansible_collections.picluster.carrier.plugins.module_utils._board import BUILTIN_PROFILES, get_profile, parse_int
from ansible_collections.picluster.carrier.plugins.module_utils._bus import parse_bus_spec
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError, InvalidValue
from ansible_collections.picluster.carrier.plugins.module_utils._topology_model import (
    BoardSpec, Controller, Node, Topology,
)
from ansible_collections.picluster.carrier.plugins.module_utils import _outlets
from ansible_collections.picluster.carrier.plugins.module_utils._turingpi import console_port, parse_bmc_url
from ansible_collections.picluster.carrier.plugins.module_utils._values import format_ranges


#: Specializations every topology may use (each becomes an inventory group of that name).
BUILTIN_SPECIALIZATIONS = ("ceph_storage", "k3s_server", "k3s_agent", "pihole", "mpi")

#: Top-level keys that belong to the inventory plugin (its options); the topology ignores them.
INVENTORY_OPTION_KEYS = frozenset({
    "plugin", "probe", "bmc_password", "strict", "compose", "groups", "keyed_groups", "use_extra_vars",
    "leading_separator", "cache", "cache_plugin", "cache_timeout", "cache_connection", "cache_prefix",
})

#: Host variables the inventory sets itself; ``vars:`` may not use these names.
RESERVED_VAR_PREFIX = "carrier_"

_TOP_KEYS = frozenset({"controllers", "profiles", "boards", "specializations"})
_CONTROLLER_KEYS = frozenset({"vars"})
_BOARD_KEYS = frozenset({"profile", "controller", "bus", "addresses", "controller_slot", "console", "vars", "sim",
                         "slots", "description", "bmc"})
# A Turing Pi 2's BMC: who to log in as and how to trust its certificate. The password is not taken
# here (it would be a host variable in clear): give carrier_bmc_password from a vaulted group_vars file.
_BMC_KEYS = frozenset({"user", "ca_path", "validate_certs"})
_SLOT_KEYS = frozenset({"host", "specializations", "serial", "mac", "model", "console", "vars", "sim", "usb_port"})
_RESERVED_GROUPS = frozenset({"all", "ungrouped", "carrier_nodes", "carrier_controllers"})

_HOST_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9])?$")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BOARD_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_CONSOLE_FIELDS = ("host", "slot", "board")
# A USB device path as the kernel names it: bus number, then the port on each hub from the root down.
USB_PORT_RE = re.compile(r"[0-9]+-[0-9]+(?:\.[0-9]+)*")


class TopologyError(CarrierError):
    """A topology file is invalid. ``source``, ``path`` (the field path) and ``value`` say where."""

    def __init__(self, source: str, path: str, message: str, value: Any = None):
        self.source = source
        self.path = path
        self.value = value
        where = "%s: %s" % (source, path) if path else source
        super().__init__("%s: %s" % (where, message))


def read_yaml(path: str, text: bytes | None = None) -> Any:
    """The topology file parsed with libyaml's safe loader where present, duplicate keys refused.

    ``text``: the file's bytes when the caller has read them already (the inventory plugin does,
    to see whether Ansible's own loader is needed for vault values).
    """
    import yaml

    loader_base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class _UniqueKeyLoader(loader_base):  # a safe loader that refuses duplicate keys (two entries for slot 3)
        pass

    def _construct_mapping(loader, node, deep=False):
        loader.flatten_mapping(node)
        out = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in out:
                mark = key_node.start_mark
                raise TopologyError(path, "line %d" % (mark.line + 1), "duplicate key %r" % (key,), key)
            out[key] = loader.construct_object(value_node, deep=deep)
        return out

    _UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    try:
        if text is None:
            with open(path, "rb") as fh:
                text = fh.read()
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except OSError as exc:
        raise TopologyError(path, "", "cannot read the topology file: %s" % exc.strerror) from exc
    except yaml.YAMLError as exc:
        raise TopologyError(path, "", "not valid YAML: %s" % exc) from exc


def load_topology(data_or_path: Any, source: str | None = None) -> Topology:
    """Load and validate a topology from a path or from already-parsed data (a mapping).

    ``source`` names the file in error messages (defaults to the path, or ``<topology>``).
    Keys of the inventory plugin's options (:data:`INVENTORY_OPTION_KEYS`) are ignored.
    """
    if isinstance(data_or_path, (str, os.PathLike)):
        path = os.fspath(data_or_path)
        source = source or path
        data = read_yaml(path)
    else:
        data = data_or_path
        source = source or "<topology>"
    return _TopologyReader(source).load(data)


def normalize_bus(value: Any, source: str = "<value>", path: str = "bus") -> str:
    """An I2C bus as ``_bus`` reads it (``N``, ``/dev/i2c-N``, ``sim:/absolute/path.sock``), as a string, untrimmed."""
    try:
        if not isinstance(value, str) or value == value.strip():
            parse_bus_spec(value)
            return str(value)
    except CarrierError:
        pass
    raise TopologyError(
        source, path, "%r is not a bus (an I2C bus number, /dev/i2c-N, or sim:/absolute/path.sock)" % (value,), value
    )


class _TopologyReader:
    """One validation pass; raises TopologyError at the first fault."""

    def __init__(self, source: str):
        self.source = source
        self.hosts: dict[str, str] = {}  # host -> field path that defined it
        self.serials: dict[str, str] = {}  # tftp dir (last 8 digits) -> field path
        self.macs: dict[str, str] = {}
        self.usb_ports: dict[tuple, str] = {}  # (controller, port) -> field path
        self.profile_cache: dict[str, Any] = {}

    def fail(self, path: str, message: str, value: Any = None):
        raise TopologyError(self.source, path, message, value)

    # -- generic checks -------------------------------------------------------------------------
    def mapping(self, value: Any, path: str, allowed: frozenset | None = None, required: tuple = ()) -> Mapping:
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            self.fail(path, "must be a mapping, got %s %r" % (type(value).__name__, value), value)
        if allowed is not None:
            unknown = [k for k in value if k not in allowed]
            if unknown:
                self.fail(
                    path,
                    "unknown key(s) %s; allowed: %s"
                    % (", ".join(repr(k) for k in unknown), ", ".join(sorted(allowed))),
                    unknown,
                )
        for key in required:
            if value.get(key) is None:
                self.fail(_join(path, key), "is required", None)
        return value

    def variables(self, value: Any, path: str) -> dict:
        value = self.mapping(value, path)
        for key in value:
            if not isinstance(key, str) or not _NAME_RE.match(key):
                self.fail(_join(path, key), "%r is not a valid variable name" % (key,), key)
            if key.startswith(RESERVED_VAR_PREFIX):
                self.fail(_join(path, key), "%r: variables named carrier_* are set by the inventory" % (key,), key)
        return dict(value)

    def host(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not _HOST_RE.match(value):
            self.fail(path, "%r is not a valid host name" % (value,), value)
        if value in self.hosts:
            self.fail(path, "duplicate host name %r (also at %s)" % (value, self.hosts[value]), value)
        self.hosts[value] = path
        return value

    # -- sections -------------------------------------------------------------------------------
    def load(self, data: Any) -> Topology:
        if data is None:
            self.fail("", "the topology is empty")
        known = _TOP_KEYS | INVENTORY_OPTION_KEYS
        data = self.mapping(data, "", known)
        specializations = self.specializations(data.get("specializations"))
        controllers = self.controllers(data.get("controllers"))
        profiles = self.profiles(data.get("profiles"))
        boards_data = self.mapping(data.get("boards"), "boards")
        if not boards_data:
            self.fail("boards", "at least one board is required", boards_data)
        boards: dict[str, BoardSpec] = {}
        nodes: dict[str, Node] = {}
        for name, board_data in boards_data.items():
            board = self.board(name, board_data, controllers, set(specializations))
            boards[board.name] = board
            for node in board.nodes.values():
                nodes[node.host] = node
        return Topology(self.source, controllers, profiles, boards, nodes, specializations)

    def specializations(self, value: Any) -> tuple:
        names = list(BUILTIN_SPECIALIZATIONS)
        if value is None:
            return tuple(names)
        if not isinstance(value, list):
            self.fail("specializations", "must be a list of names, got %r" % (value,), value)
        for i, name in enumerate(value):
            path = "specializations.%d" % i
            if not isinstance(name, str) or not _NAME_RE.match(name):
                self.fail(path, "%r is not a valid specialization name (letters, digits, _)" % (name,), name)
            if name in _RESERVED_GROUPS:
                self.fail(path, "%r is a group name the inventory reserves" % (name,), name)
            if name not in names:
                names.append(name)
        return tuple(names)

    def controllers(self, value: Any) -> dict:
        value = self.mapping(value, "controllers")
        out = {}
        for name, cdata in value.items():
            path = _join("controllers", name)
            self.host(name, path)
            cdata = self.mapping(cdata, path, _CONTROLLER_KEYS)
            out[name] = Controller(name, self.variables(cdata.get("vars"), _join(path, "vars")))
        return out

    def profiles(self, value: Any) -> dict:
        value = self.mapping(value, "profiles")
        out = {}
        for name, pdata in value.items():
            path = _join("profiles", name)
            if not isinstance(name, str) or not _BOARD_NAME_RE.match(name):
                self.fail(path, "%r is not a valid profile name" % (name,), name)
            if name in BUILTIN_PROFILES:
                self.fail(path, "%r is the name of a built-in profile; choose another name" % (name,), name)
            profile, pdict = self.user_profile(pdata, path, name)
            out[name] = profile
            self.profile_cache[name] = (profile, pdict)
        return out

    def user_profile(self, pdata: Any, path: str, default_name: str):
        pdata = self.mapping(pdata, path)
        pdict = dict(pdata)
        declared = pdict.setdefault("name", default_name)
        if declared != default_name:
            self.fail(_join(path, "name"), "%r differs from the profile's key %r" % (declared, default_name), declared)
        try:
            profile = get_profile(pdict)
        except CarrierError as exc:
            self.fail(path, "invalid profile: %s" % exc, pdata)
        return profile, pdict

    def board_profile(self, value: Any, path: str, board_name: str):
        """(Profile, name, user dict or None) for a board's ``profile:``; each name is resolved once per file."""
        if isinstance(value, Mapping):
            pname = value.get("name", board_name)
            if pname in BUILTIN_PROFILES or pname in self.profile_cache:
                self.fail(
                    _join(path, "name"),
                    "%r is already the name of a profile; give the board's own profile another name" % (pname,),
                    pname,
                )
            profile, pdict = self.user_profile(value, path, pname)
            return profile, profile.name, pdict
        if not isinstance(value, str):
            self.fail(path, "must be a profile name or a profile mapping, got %r" % (value,), value)
        cached = self.profile_cache.get(value)
        if cached is None:
            if value not in BUILTIN_PROFILES:
                choices = sorted(set(BUILTIN_PROFILES) | set(self.profile_cache))
                self.fail(path, "unknown profile %r; known profiles: %s" % (value, ", ".join(choices)), value)
            try:
                cached = (get_profile(value), None)
            except CarrierError as exc:
                self.fail(path, "invalid profile %r: %s" % (value, exc), value)
            self.profile_cache[value] = cached
        profile, pdict = cached
        return profile, value, pdict

    def board(self, name: Any, bdata: Any, controllers: dict, specializations: set) -> BoardSpec:
        path = _join("boards", name)
        if not isinstance(name, str) or not _BOARD_NAME_RE.match(name):
            self.fail(path, "%r is not a valid board name (letters, digits, '_', '.', '-')" % (name,), name)
        bdata = self.mapping(bdata, path, _BOARD_KEYS, required=("profile", "bus"))
        profile, profile_name, profile_data = self.board_profile(bdata["profile"], _join(path, "profile"), name)
        slot_set = frozenset(profile.slot_numbers)
        controller = self.board_controller(bdata.get("controller"), _join(path, "controller"), controllers)
        bus, bmc = self.board_bus(bdata, path, profile)
        addresses = self.board_addresses(bdata.get("addresses"), _join(path, "addresses"), profile, profile_name)
        controller_slot = bdata.get("controller_slot")
        if controller_slot is not None:
            controller_slot = self.slot_number(controller_slot, _join(path, "controller_slot"), slot_set, profile_name)
        console = bdata.get("console")
        if console is not None:
            self.console_pattern(console, _join(path, "console"))
        board_vars = self.variables(bdata.get("vars"), _join(path, "vars"))
        sim = dict(self.mapping(bdata.get("sim"), _join(path, "sim")))
        description = bdata.get("description")
        if description is not None and not isinstance(description, str):
            self.fail(_join(path, "description"), "must be a string, got %r" % (description,), description)
        spec = BoardSpec(name, controller, bus, profile, profile_name, profile_data, addresses, controller_slot,
                         console, board_vars, sim, description, bmc=bmc)
        slots_path = _join(path, "slots")
        by_slot: dict[int, Node] = {}
        for key, sdata in self.mapping(bdata.get("slots"), slots_path).items():
            spath = _join(slots_path, key)
            slot = self.slot_number(key, spath, slot_set, profile_name)
            if slot in by_slot:
                self.fail(spath, "duplicate slot %d (slot %r and %r name the same slot)" % (slot, key, slot), key)
            by_slot[slot] = self.node(spec, slot, sdata, spath, specializations)
        return dataclasses.replace(spec, nodes=dict(sorted(by_slot.items())))

    def board_controller(self, controller: Any, path: str, controllers: dict) -> str:
        """The board's controller: the one named, or the file's only one when none is."""
        if controller is None:
            if len(controllers) != 1:
                self.fail(path, "is required when the file does not define exactly one controller (it defines %d)"
                          % len(controllers))
            return next(iter(controllers))
        if controller not in controllers:
            self.fail(path, "unknown controller %r; controllers: %s" % (controller, ", ".join(controllers) or "(none)"),
                      controller)
        return controller

    def board_bus(self, bdata: Mapping, path: str, profile: Any) -> tuple:
        """(bus, bmc): an I2C bus spec, or for a Turing Pi 2 its BMC's URL and for an outlet board
        (``_outlets``) its device's address, each with their login settings."""
        if profile.kind in _outlets.OUTLET_KINDS:
            try:
                bus = _outlets.check_address(profile.kind, bdata["bus"])
            except CarrierError as exc:
                self.fail(_join(path, "bus"), str(exc).split(": ", 1)[-1], bdata["bus"])
        elif profile.kind != "turingpi2":
            if bdata.get("bmc") is not None:
                self.fail(_join(path, "bmc"), "only a Turing Pi 2 board (profile turingpi2) or a board of a "
                          "switching device (%s) has login settings" % ", ".join(_outlets.OUTLET_KINDS))
            return normalize_bus(bdata["bus"], self.source, _join(path, "bus")), {}
        else:
            try:
                bus = parse_bmc_url(bdata["bus"])
            except CarrierError:
                self.fail(_join(path, "bus"), "%r is not a BMC URL (a Turing Pi 2 board needs https://HOST or "
                          "http://HOST:PORT)" % (bdata["bus"],), bdata["bus"])
        bmc = {}
        bmc_path = _join(path, "bmc")
        for key, value in self.mapping(bdata.get("bmc"), bmc_path, _BMC_KEYS).items():
            expected = bool if key == "validate_certs" else str
            if not isinstance(value, expected):
                self.fail(_join(bmc_path, key), "must be a %s, got %r" % (expected.__name__, value), value)
            bmc[key] = value
        return bus, bmc

    def board_addresses(self, value: Any, path: str, profile: Any, profile_name: str) -> dict | None:
        """Chip name -> 7-bit I2C address, overriding the profile's."""
        if value is None:
            return None
        chips = profile.chips
        addresses = {}
        for chip, addr in self.mapping(value, path).items():
            if chip not in chips:
                self.fail(_join(path, chip), "profile %r has no chip %r; its chips: %s"
                          % (profile_name, chip, ", ".join(map(str, chips)) or "(none)"), chip)
            number = parse_int(addr)
            if number is None or not 0x03 <= number <= 0x77:
                self.fail(_join(path, chip), "%r is not a 7-bit I2C address (0x03-0x77)" % (addr,), addr)
            addresses[chip] = number
        return addresses

    def node(self, board: BoardSpec, slot: int, sdata: Any, spath: str, specializations: set) -> Node:
        """One slot's node, with the board's settings it inherits."""
        if isinstance(sdata, str):
            sdata = {"host": sdata}
        sdata = self.mapping(sdata, spath, _SLOT_KEYS, required=("host",))
        host = self.host(sdata["host"], _join(spath, "host"))
        return Node(
            host=host,
            board=board.name,
            slot=slot,
            controller=board.controller,
            profile=board.profile_name,
            profile_data=board.profile_data,
            bus=board.bus,
            addresses=board.addresses,
            protected_slots=board.protected_slots,
            console=self.node_console(board, slot, host, sdata, spath),
            serial=self.node_serial(sdata.get("serial"), _join(spath, "serial")),
            mac=self.node_mac(sdata.get("mac"), _join(spath, "mac")),
            model=self.identity(_model_name, sdata.get("model"), _join(spath, "model")),
            specializations=self.node_specializations(sdata.get("specializations"), _join(spath, "specializations"),
                                                      specializations),
            board_vars=board.vars,
            slot_vars=self.variables(sdata.get("vars"), _join(spath, "vars")),
            sim=dict(self.mapping(sdata.get("sim"), _join(spath, "sim"))),
            bmc=board.bmc,
            usb_port=self.node_usb_port(sdata.get("usb_port"), _join(spath, "usb_port"), board.controller),
        )

    def identity(self, normalize: Any, value: Any, path: str) -> Any:
        """``normalize(value, path)`` (a ``_models`` reading), its refusal naming the file and the field path."""
        if value is None:
            return None
        try:
            return normalize(value, path)
        except InvalidValue as exc:
            raise TopologyError(self.source, path, exc.reason, value) from None

    def node_serial(self, value: Any, path: str) -> str | None:
        serial = self.identity(_models.normalize_serial, value, path)
        if serial is not None:
            tftp = _models.serial_dirname(serial)
            if tftp in self.serials:
                self.fail(path, "duplicate serial %r (its TFTP directory %r is also used at %s)"
                          % (serial, tftp, self.serials[tftp]), serial)
            self.serials[tftp] = path
        return serial

    def node_mac(self, value: Any, path: str) -> str | None:
        mac = self.identity(_models.normalize_mac, value, path)
        if mac is not None:
            if mac in self.macs:
                self.fail(path, "duplicate MAC %r (also at %s)" % (mac, self.macs[mac]), mac)
            self.macs[mac] = path
        return mac

    def node_usb_port(self, value: Any, path: str, controller: str) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not USB_PORT_RE.fullmatch(value):
            self.fail(path, "%r is not a USB port path as the kernel names it under /sys/bus/usb/devices "
                      "(bus-port[.port...], for example 1-1.3)" % (value,), value)
        if (controller, value) in self.usb_ports:
            self.fail(path, "duplicate USB port %r on controller %r (also at %s)"
                      % (value, controller, self.usb_ports[(controller, value)]), value)
        self.usb_ports[(controller, value)] = path
        return value

    def node_specializations(self, specs: Any, path: str, known: set) -> tuple:
        """The slot's specializations, in order, each once."""
        if specs is None:
            specs = ()
        elif isinstance(specs, str):
            specs = (specs,)
        elif not isinstance(specs, list):
            self.fail(path, "must be a list of names, got %r" % (specs,), specs)
        seen: list[str] = []
        for i, spec in enumerate(specs):
            if spec not in known:
                self.fail("%s.%d" % (path, i), "unknown specialization %r; known: %s (add others to the top-level "
                          "'specializations:' list)" % (spec, ", ".join(sorted(known))), spec)
            if spec not in seen:
                seen.append(spec)
        return tuple(seen)

    def node_console(self, board: BoardSpec, slot: int, host: str, sdata: Mapping, spath: str) -> str | None:
        """The slot's console pattern (or the board's), expanded; a Turing Pi 2 node's UART through its BMC."""
        pattern = sdata.get("console", board.console)
        if pattern is not None:
            if "console" in sdata:
                self.console_pattern(pattern, _join(spath, "console"))
            return pattern.format(host=host, slot=slot, board=board.name)
        if board.profile.kind == "turingpi2":
            return console_port(board.bus, slot)
        return None

    def slot_number(self, value: Any, path: str, slot_set: frozenset, profile_name: str) -> int:
        if isinstance(value, bool):
            number = None
        elif isinstance(value, int):
            number = value
        elif isinstance(value, str) and value.isdigit():
            number = int(value)
        else:
            number = None
        if number is None:
            self.fail(path, "%r is not a slot number" % (value,), value)
        if number not in slot_set:
            self.fail(
                path,
                "slot %r is out of range for profile %r (slots %s)"
                % (value, profile_name, format_ranges(slot_set, empty="(none)")),
                value,
            )
        return number

    def console_pattern(self, value: Any, path: str) -> None:
        if not isinstance(value, str) or not value:
            self.fail(path, "must be a non-empty string, got %r" % (value,), value)
        try:
            value.format(host="h", slot=1, board="b")
        except (KeyError, IndexError, ValueError, AttributeError) as exc:
            self.fail(
                path,
                "%r is not a valid console pattern (%s: %s); placeholders: %s"
                % (value, type(exc).__name__, exc, ", ".join("{%s}" % f for f in _CONSOLE_FIELDS)),
                value,
            )


def _model_name(value: Any, path: str) -> str:
    return _models.get_model(value, path).name


def _join(path: str, key: Any) -> str:
    return "%s.%s" % (path, key) if path else str(key)
