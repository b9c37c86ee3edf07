# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: boards
author:
  - picluster.carrier contributors (@picluster)
short_description: Hosts and groups from a cluster topology file (controllers, carrier boards, slots)
description:
  - Reads a cluster topology file whose name ends in C(.carrier.yml) or C(.carrier.yaml)
    (format in C(docs/internals.md)) and adds every controller and every node to the inventory.
  - The file is validated as a whole; any fault (unknown profile or controller, slot out of the
    profile's range, duplicate host name, slot, serial or MAC, malformed MAC or serial, unknown
    specialization, unknown key) stops the run with an error naming the file, the field path
    (for example C(boards.rack1.slots.3.mac)) and the value.
  - "Node host variables: C(carrier_board), C(carrier_slot), C(carrier_controller),
    C(carrier_profile) (the profile name), C(carrier_profile_data) (the profile mapping, only for
    user-defined profiles), C(carrier_bus), C(carrier_addresses) (only when the board overrides chip
    addresses), C(carrier_protected_slots), C(carrier_console) (only when a console is set),
    C(carrier_serial), C(carrier_mac), C(carrier_model), C(carrier_usb_port) (the controller USB port
    of the node's USB-boot port, for node_flash), C(carrier_specializations), then the
    board's and the slot's C(vars). Controllers get their C(vars) and C(carrier_boards), the boards
    they drive."
  - "Groups: C(carrier_nodes), C(carrier_controllers), C(board_<board>) and C(controller_<controller>)
    (the nodes of a board, of a controller), and one group per specialization named after it
    (C(ceph_storage), C(k3s_server), C(k3s_agent), C(pihole), C(mpi), and any listed under the file's
    top-level C(specializations)). Names are sanitized as Ansible group names."
  - With the default inventory plugin list, C(ansible.builtin.auto) hands the file to this plugin
    (by its C(plugin) key). When C(enable_plugins) in the C([inventory]) section of C(ansible.cfg) or
    E(ANSIBLE_INVENTORY_ENABLED) is set, list V(picluster.carrier.boards) there; listing it
    explicitly also spares C(auto) its extra read of a large file.
  - O(compose), O(groups) and O(keyed_groups) apply to the controllers and the nodes.
  - With O(cache) enabled the validated result is cached per file path and modification time;
    live power state (O(probe)) is never cached.
extends_documentation_fragment:
  - ansible.builtin.constructed
  - ansible.builtin.inventory_cache
options:
  plugin:
    description: Marks the file as a topology for this plugin.
    type: string
    required: true
    choices: ['picluster.carrier.boards']
  probe:
    description:
      - Read each node's live power state from its board and set C(carrier_power) to V(on), V(off)
        or V(unknown).
      - Only boards whose bus is reachable from the control node are read, a C(sim:) socket that
        exists or, when the board's controller is local (C(ansible_connection=local) or host
        C(localhost)), a C(/dev/i2c-N) device that exists.
      - Reading changes no line. GPIO expander boards are read from their input registers (the
        real pin levels), under the same per-bus lock the modules take.
      - A board that cannot be read does not fail the inventory; its nodes get C(carrier_power=unknown)
        and C(carrier_power_error) saying why.
    type: bool
    default: false
  bmc_password:
    description:
      - The password of the Turing Pi 2 BMCs (their C(bmc.user) in the topology), used only by O(probe).
      - Playbooks take it from the host variable C(carrier_bmc_password) (keep it in a vaulted group_vars file);
        the topology file does not hold it.
    type: string
    env:
      - name: PICLUSTER_CARRIER_BMC_PASSWORD
"""

EXAMPLES = r"""
# cluster.carrier.yml: a controller and a 4-slot carrier board.
plugin: picluster.carrier.boards
controllers:
  ctrl0:
    vars: {ansible_connection: local}
boards:
  carrier1:
    profile: itx4
    controller: ctrl0
    bus: 1
    console: /dev/serial/by-id/carrier1-slot{slot}
    slots:
      1: {host: node01, specializations: [k3s_server], serial: "10000000b7f44626", mac: "dc:a6:32:01:36:c2"}
      2: {host: node02, specializations: [k3s_agent, ceph_storage]}

---
# Another cluster.carrier.yml: the live power state and extra groups.
plugin: picluster.carrier.boards
probe: true
keyed_groups:
  - key: carrier_model
    prefix: model
groups:
  powered: carrier_power | default('unknown') == 'on'
compose:
  ansible_host: carrier_board ~ '-' ~ carrier_slot ~ '.cluster.lan'
controllers:
  ctrl0: {}
boards:
  carrier1:
    profile: itx4
    bus: sim:/tmp/picluster-sim/bus1.sock
    slots:
      1: node01
"""

import inspect
import os
import re
from collections.abc import Mapping

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

from ansible_collections.picluster.carrier.plugins.module_utils._bus import bus_path
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._topology import (
    RESERVED_VAR_PREFIX, load_topology, read_yaml,
)

try:  # ansible-core 2.19+: only trusted strings are templated
    from ansible.template import trust_as_template
except ImportError:  # older cores template every string
    trust_as_template = None

# Bump when the shape of the cached data changes, so an old cache entry is not misread.
_CACHE_FORMAT = 3
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


# A YAML tag of Ansible's own (an encrypted value, an unsafe string) needs Ansible's loader.
_ANSIBLE_TAGS = re.compile(rb"!(?:vault|unsafe|ansible)\b|\$ANSIBLE_VAULT")
_TEMPLATE_OPTIONS = ("compose", "groups", "keyed_groups")


def _trust_templates(config):
    """``config`` with the strings of the template options marked as trusted (ansible-core 2.19+)."""
    if trust_as_template is None or not any(k in config for k in _TEMPLATE_OPTIONS):
        return config

    def trust(value):
        if isinstance(value, str):
            return trust_as_template(value)
        if isinstance(value, Mapping):
            return {k: trust(v) for k, v in value.items()}
        if isinstance(value, list):
            return [trust(v) for v in value]
        return value

    return dict(config, **{k: trust(config[k]) for k in _TEMPLATE_OPTIONS if k in config})


def _trusted(value, memo):
    """Plain data with its strings marked as trusted, as a YAML inventory's are (ansible-core 2.19+).

    ``memo`` keeps one trusted copy per distinct string: most values (board, controller, model,
    group names) repeat on every node of a board or a cluster.
    """
    if isinstance(value, str):
        trusted = memo.get(value)
        if trusted is None:
            trusted = memo[value] = trust_as_template(value)
        return trusted
    if isinstance(value, list):
        return [_trusted(v, memo) for v in value]
    if isinstance(value, dict):
        return {k: _trusted(v, memo) for k, v in value.items()}
    return value


def plain(value):
    """A JSON-safe copy of YAML data in builtin types.

    Mappings become dicts with string keys (slot ``1`` -> ``"1"``), tuples lists, and str, int and
    float subclasses (the tagged values ansible-core 2.19+ loads) their exact builtin type. Other
    objects (an encrypted vault value) are kept as they are. Used for a user profile exposed as a
    host variable, so it reads the same from the inventory cache, from ``ansible-inventory --list``
    and in a module's arguments, and for what the inventory plugin caches.
    """
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "picluster.carrier.boards"

    # Every value comes from a file the operator wrote on the control node, as with a YAML
    # inventory: templates in its vars are trusted (ansible-core 2.19+; ignored before).
    trusted_by_default = True

    def verify_file(self, path):
        if super().verify_file(path):
            if path.endswith((".carrier.yml", ".carrier.yaml")):
                return True
            self.display.vvv("picluster.carrier.boards: %s does not end in .carrier.yml or .carrier.yaml" % path)
        return False

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        config = self._read_topology(path)

        try:
            mtime_ns = os.stat(path).st_mtime_ns
        except OSError as exc:
            raise AnsibleParserError("%s: cannot stat the topology file: %s" % (path, exc.strerror))

        cache_enabled = bool(self.get_option("cache"))
        cache_key = self.get_cache_key(path)
        data = None
        if cache_enabled and cache:
            try:
                cached = self._cache[cache_key]
            except KeyError:
                cached = None
            if (
                isinstance(cached, dict)
                and cached.get("format") == _CACHE_FORMAT
                and cached.get("path") == path
                and cached.get("mtime_ns") == mtime_ns
            ):
                data = cached
        if data is None:
            try:
                topology = load_topology(config, source=path)
            except CarrierError as exc:
                raise AnsibleParserError(str(exc))
            data = self._inventory_data(topology, path, mtime_ns)
            if cache_enabled:
                # Builtin types only: ansible-core 2.19+ would otherwise serialise every value's
                # tags (its origin in the file), which makes the cache entry several times larger
                # and slower to read back than validating the topology again.
                data = plain(data)
                self._cache[cache_key] = data

        self._populate(data)

    def _read_topology(self, path):
        """What ``_read_config_data`` does, faster.

        Ansible's own YAML loader tags every value with its origin in pure Python, and the base
        method then deep-copies the result: on a 10,000-node topology those two cost more than the
        rest of the inventory. A topology without Ansible's YAML tags (``!vault``, ``!unsafe``) is
        read with libyaml instead (the same safe loader the simulator uses, duplicate keys refused);
        one with them goes through Ansible's loader, uncached and not copied. Either way the
        templates of ``compose``/``groups``/``keyed_groups`` are the operator's own: trusted.
        """
        try:
            with open(path, "rb") as fh:
                text = fh.read()
        except OSError as exc:
            raise AnsibleParserError("%s: cannot read the topology file: %s" % (path, exc.strerror))
        if _ANSIBLE_TAGS.search(text):
            config = self._ansible_load(path)
        else:
            try:
                config = read_yaml(path, text)
            except CarrierError as exc:
                raise AnsibleParserError(str(exc))
            if isinstance(config, Mapping):
                config = _trust_templates(config)
        if not config:
            raise AnsibleParserError("%s is empty" % path)
        if not isinstance(config, Mapping):
            raise AnsibleParserError("%s: a topology is a mapping, got %s" % (path, type(config).__name__))
        valid_names = getattr(self, "_redirected_names", None) or [self.NAME]
        if config.get("plugin") not in valid_names:
            raise AnsibleParserError("%s: plugin: %r is not %s" % (path, config.get("plugin"), self.NAME))
        self.set_options(direct=config, var_options=self._vars)
        if self.get_option("cache"):
            self.load_cache_plugin()
        return config

    def _ansible_load(self, path):
        kwargs = {"cache": "none", "unsafe": True}
        if "trusted_as_template" in inspect.signature(self.loader.load_from_file).parameters:
            kwargs["trusted_as_template"] = True  # ansible-core 2.19+: compose/groups templates are the user's own
        try:
            return self.loader.load_from_file(path, **kwargs)
        except Exception as exc:
            raise AnsibleParserError("%s: %s" % (path, exc))

    # -- building ------------------------------------------------------------------------------
    @staticmethod
    def _inventory_data(topology, path, mtime_ns):
        """The inventory as plain data (what the cache stores): hosts, their vars, their boards."""
        controllers = {}
        for name, controller in topology.controllers.items():
            hostvars = dict(controller.vars)
            hostvars["carrier_boards"] = [b.name for b in topology.boards.values() if b.controller == name]
            controllers[name] = hostvars
        # One JSON-safe copy per user profile, shared by all the nodes of its boards.
        profile_data = {}
        nodes = {}
        for board in topology.boards.values():
            if board.profile_data is not None and id(board.profile_data) not in profile_data:
                profile_data[id(board.profile_data)] = plain(board.profile_data)
            for node in board.nodes.values():
                hostvars = node.hostvars()
                if node.profile_data is not None:
                    hostvars["carrier_profile_data"] = profile_data[id(node.profile_data)]
                nodes[node.host] = hostvars
        boards = [
            {
                "name": b.name,
                "controller": b.controller,
                "bus": b.bus,
                "profile": b.profile_name if b.profile_data is None else profile_data[id(b.profile_data)],
                "addresses": b.addresses,
                "protected_slots": list(b.protected_slots),
                "slots": [[slot, node.host] for slot, node in b.nodes.items()],
                "bmc": dict(b.bmc),
            }
            for b in topology.boards.values()
        ]
        return {
            "format": _CACHE_FORMAT,
            "path": path,
            "mtime_ns": mtime_ns,
            "controllers": controllers,
            "nodes": nodes,
            "boards": boards,
            "specializations": list(topology.specializations),
        }

    def _populate(self, data):
        inventory = self.inventory
        sanitize = self._sanitize_group_name
        add_group = inventory.add_group
        add_host = inventory.add_host
        add_child = inventory.add_child
        set_variable = inventory.set_variable
        # The carrier_* values are data this plugin made (names, numbers, paths, lists): they are
        # marked trusted here, as the proxy of ansible-core 2.19+ would, without its per-value
        # origin tagging, which costs more on 10,000 nodes than the rest of the plugin. The
        # user's own vars go through the proxy.
        set_data = getattr(inventory, "__wrapped__", None)
        set_data = set_variable if set_data is None or trust_as_template is None else set_data.set_variable

        memo = {}

        def set_vars(host, hostvars):
            for key, value in hostvars.items():
                if key.startswith(RESERVED_VAR_PREFIX):
                    set_data(host, key, _trusted(value, memo))
                else:
                    set_variable(host, key, value)

        add_group("carrier_controllers")
        add_group("carrier_nodes")
        for name, hostvars in data["controllers"].items():
            add_host(name, group="carrier_controllers")
            set_vars(name, hostvars)

        # Group names are sanitized once per distinct value, not once per host.
        group_names = {}

        def group_for(prefix, value):
            key = (prefix, value)
            group = group_names.get(key)
            if group is None:
                group = group_names[key] = add_group(sanitize(prefix + value))
            return group

        # Groups in a stable order: boards, controllers, then every known specialization (so a
        # playbook for `pihole` finds its group even in a cluster without one).
        for board in data["boards"]:
            group_for("board_", board["name"])
        for name in data["controllers"]:
            group_for("controller_", name)
        for spec in data["specializations"]:
            group_for("", spec)

        for host, hostvars in data["nodes"].items():
            add_host(host, group="carrier_nodes")
            add_child(group_for("board_", hostvars["carrier_board"]), host)
            add_child(group_for("controller_", hostvars["carrier_controller"]), host)
            for spec in hostvars["carrier_specializations"]:
                add_child(group_for("", spec), host)
            set_vars(host, hostvars)

        probed = self._probe(data) if self.get_option("probe") else {}
        for host, values in probed.items():
            set_vars(host, values)

        compose = self.get_option("compose")
        groups = self.get_option("groups")
        keyed_groups = self.get_option("keyed_groups")
        if compose or groups or keyed_groups:
            strict = self.get_option("strict")
            for host in list(data["controllers"]) + list(data["nodes"]):
                variables = inventory.get_host(host).get_vars()
                self._set_composite_vars(compose, variables, host, strict=strict)
                variables = inventory.get_host(host).get_vars()
                self._add_host_to_composed_groups(groups, variables, host, strict=strict)
                self._add_host_to_keyed_groups(keyed_groups, variables, host, strict=strict)

    # -- probe ---------------------------------------------------------------------------------
    def _probe(self, data):
        """Live power state per node: {host: {"carrier_power": ..., ["carrier_power_error": ...]}}."""
        from ansible_collections.picluster.carrier.plugins.module_utils._board import board_from_dict

        result = {}
        for board in data["boards"]:
            hosts = dict(board["slots"])
            if not hosts:
                continue
            reason = self._unreachable_reason(board, data["controllers"].get(board["controller"], {}))
            if reason is None:
                try:
                    bmc = dict(board.get("bmc") or {})
                    bmc["password"] = self.get_option("bmc_password")
                    state = board_from_dict(dict(board, bmc=bmc)).read_state(sorted(hosts))
                except Exception as exc:  # a probe never fails the inventory: the var says why
                    reason = "reading board %s on bus %s failed: %s" % (board["name"], board["bus"], exc)
            for slot, host in hosts.items():
                if reason is not None:
                    result[host] = {"carrier_power": "unknown", "carrier_power_error": reason}
                    continue
                power = state.get(slot, {}).get("power")
                result[host] = {"carrier_power": "unknown" if power is None else ("on" if power else "off")}
        return result

    @staticmethod
    def _unreachable_reason(board, controller_vars):
        """None when the board's bus can be read from here; otherwise why not."""
        bus = board["bus"]
        if bus.startswith(("http://", "https://", "snmp://")):
            return None  # on the network (a Turing Pi 2's BMC, a plug, a PoE switch): reached as the modules reach it
        # a USB hub's bus is its sysfs directory (the topology loader normalised usb:1-1 to it)
        device = bus if bus.startswith("/") else bus_path(bus)
        if not bus.startswith("sim:"):
            local = (
                controller_vars.get("ansible_connection") == "local"
                or board["controller"] in _LOCAL_HOSTS
                or controller_vars.get("ansible_host") in _LOCAL_HOSTS
            )
            if not local:
                return "bus %s is on controller %s, not on this control node: not probed" % (bus, board["controller"])
        if not os.path.exists(device):
            return "bus %s is not reachable from the control node: %s does not exist" % (bus, device)
        return None
