# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The carrier-redfish configuration file (JSON, written 0600 by the redfish_service role), checked.

Every refusal names the key and the value; nothing is served from a file that does not pass.
The board entries are the carrier_exporter's (``name``, ``profile``, ``bus``, ``addresses``,
``protected_slots``, ``lock_dir``, ``nodes``) with a node's ``console_port`` added.
"""

from __future__ import annotations

import ipaddress
import json

from ansible_collections.picluster.carrier.plugins.module_utils._board import board_from_dict
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._models import DEFAULT_MODEL, get_model
from ansible_collections.picluster.carrier.plugins.module_utils._values import check_name, check_number

DEFAULT_PORT = 8443
DEFAULT_SESSION_TIMEOUT = 1800
CONFIG_KEYS = {"listen", "port", "tls_cert", "tls_key", "accounts_file", "lock_dir", "state_dir", "session_timeout",
               "console_host", "manager", "boards"}
BOARD_KEYS = {"name", "profile", "bus", "addresses", "protected_slots", "lock_dir", "nodes"}
NODE_KEYS = {"host", "model", "console_port"}


def _optional_path(data, key):
    value = data.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise CarrierError("%s: %r is not a path" % (key, value))
    return value


def _check_host(value, field):
    """A host name or an IP address (IPv6 too: it is bracketed where it goes into a URL)."""
    if not isinstance(value, str):
        raise CarrierError("%s: %r is not a host name or IP address" % (field, value))
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        return check_name(value, field, what="host name or IP address")


def _check_nodes(nodes, field, board, hosts):
    """slot -> {host, model, console_port}; host names unique over the whole service."""
    if not isinstance(nodes, dict):
        raise CarrierError("%s: %r is not a mapping of slot to node" % (field, nodes))
    result = {}
    for key, value in nodes.items():
        slot = int(check_number(key, field, minimum=1, maximum=999, integer=True, what="a slot number"))
        spec = {"host": value} if isinstance(value, str) else value
        where = "%s.%s" % (field, key)
        if not isinstance(spec, dict) or set(spec) - NODE_KEYS or not spec.get("host"):
            raise CarrierError("%s: %r is not a host name or a mapping of host, model and console_port"
                               % (where, value))
        host = check_name(spec["host"], where + ".host")
        if host in hosts:
            raise CarrierError("%s.host: %r is given twice (Systems/<host> must be unique)" % (where, host))
        hosts.add(host)
        model = spec.get("model") or DEFAULT_MODEL
        get_model(model, field=where + ".model")
        try:
            board.profile.lines(slot)
        except CarrierError as exc:
            raise CarrierError("%s: %s" % (where, exc)) from None
        port = spec.get("console_port")
        if port is not None:
            port = int(check_number(port, where + ".console_port", minimum=1, maximum=65535, integer=True))
        result[slot] = {"host": host, "model": model, "console_port": port}
    return result


def load_config(data, bus_opener=None):
    """The service's settings from a mapping, checked; ``boards`` entries gain ``board`` (a library Board).

    ``bus_opener``: passed to every Board (the tests' emulated buses); None for the real ones.
    """
    if not isinstance(data, dict):
        raise CarrierError("config: %r is not a mapping" % (data,))
    unknown = sorted(set(data) - CONFIG_KEYS)
    if unknown:
        raise CarrierError("config: unknown key(s) %s (known: %s)"
                           % (", ".join(unknown), ", ".join(sorted(CONFIG_KEYS))))
    for key in ("accounts_file", "state_dir"):
        if not data.get(key):
            raise CarrierError("%s: a path is required" % key)
    listen = _check_host(data.get("listen") or "127.0.0.1", "listen")
    config = {
        "listen": listen,
        "port": int(check_number(data.get("port", DEFAULT_PORT), "port", minimum=0, maximum=65535, integer=True)),
        "tls_cert": _optional_path(data, "tls_cert"),
        "tls_key": _optional_path(data, "tls_key"),
        "accounts_file": _optional_path(data, "accounts_file"),
        "lock_dir": _optional_path(data, "lock_dir"),
        "state_dir": _optional_path(data, "state_dir"),
        "session_timeout": int(check_number(data.get("session_timeout", DEFAULT_SESSION_TIMEOUT), "session_timeout",
                                            minimum=30, maximum=86400, integer=True)),
        "console_host": data.get("console_host"),
        "manager": check_name(data.get("manager") or "carrier", "manager"),
    }
    if bool(config["tls_cert"]) != bool(config["tls_key"]):
        raise CarrierError("tls_cert, tls_key: give both (TLS) or neither (plain HTTP, for tests only)")
    if config["console_host"] is not None:
        _check_host(config["console_host"], "console_host")
    boards = data.get("boards")
    if not isinstance(boards, list) or not boards:
        raise CarrierError("boards: %r is not a non-empty list of boards ({name, profile, bus, nodes})" % (boards,))
    config["boards"] = []
    names, hosts = set(), set()
    options = {} if bus_opener is None else {"bus_opener": bus_opener}
    for index, spec in enumerate(boards):
        field = "boards.%d" % index
        if not isinstance(spec, dict) or not {"name", "profile", "bus"} <= set(spec) or set(spec) - BOARD_KEYS:
            raise CarrierError("%s: %r is not a mapping of name, profile, bus and optionally addresses, "
                               "protected_slots, lock_dir, nodes" % (field, spec))
        check_name(spec["name"], field + ".name")
        if spec["name"] in names:
            raise CarrierError("%s.name: board %r is given twice" % (field, spec["name"]))
        names.add(spec["name"])
        entry = dict(spec, lock_dir=spec.get("lock_dir") or config["lock_dir"])
        try:
            board = board_from_dict(entry, **options)
        except CarrierError as exc:
            raise CarrierError("%s: %s" % (field, exc)) from None
        entry["nodes"] = _check_nodes(spec.get("nodes") or {}, field + ".nodes", board, hosts)
        entry["board"] = board
        config["boards"].append(entry)
    return config


def read_config_file(path, bus_opener=None):
    """:func:`load_config` of the JSON file at ``path``."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise CarrierError("config: cannot read %s: %s" % (path, exc.strerror or exc)) from None
    except ValueError as exc:
        raise CarrierError("config: %s is not JSON: %s" % (path, exc)) from None
    return load_config(data, bus_opener=bus_opener)
