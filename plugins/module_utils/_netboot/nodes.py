# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nodes to network-boot: identity, TFTP directory name and boot options (docs/hardware.md
sections 5, 9). Every refusal names ``nodes[i].<field>`` and the value."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError, InvalidValue
from ansible_collections.picluster.carrier.plugins.module_utils._firstboot import check_customize
from ansible_collections.picluster.carrier.plugins.module_utils._firstboot_check import check_hostname
from ansible_collections.picluster.carrier.plugins.module_utils._models import (
    DEFAULT_MODEL,
    MODELS,
    ROM_NETBOOT_MODELS,
    eeprom_models,
    mac_dirname,
    normalize_mac,
    normalize_serial,
    serial_dirname,
)
from ansible_collections.picluster.carrier.plugins.module_utils._values import check_name

# The EEPROM bootloaders (sections 5, 6) and the Pi 3 boot ROMs with Ethernet (section 11).
NETBOOT_MODELS = eeprom_models() + ROM_NETBOOT_MODELS
# TFTP_PREFIX=0: the serial directory (last 8 hex digits); TFTP_PREFIX=2: the MAC directory.
TFTP_PREFIXES = ("serial", "mac")

# A list item is one line of config.txt or one kernel argument: a line break (or another control
# character) in it would add a line to config.txt or end cmdline.txt early. Tabs are allowed.
_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")


@dataclass
class NodeSpec:
    name: str
    serial: str | None
    serial8: str | None
    mac: str | None
    model: str
    tftp_prefix: str
    dirname: str
    nfs_root: str | None = None
    root: str | None = None
    rootfstype: str = "ext4"
    extra_kernel_args: list = field(default_factory=list)
    config: list = field(default_factory=list)
    vars: dict = field(default_factory=dict)
    customize: object = None  # a _firstboot.Customization, or None: the tree is not customised

    @property
    def dtb(self):
        return MODELS[self.model].dtb

    @property
    def soc(self):
        return MODELS[self.model].soc

    @property
    def rom(self):
        """The boot ROM fetches bootcode.bin from the TFTP root first (docs/hardware.md section 11)."""
        return MODELS[self.model].bootloader == "rom"

    def as_template_var(self):
        return {"name": self.name, "serial": self.serial, "serial8": self.serial8, "mac": self.mac,
                "model": self.model, "soc": self.soc, "dtb": self.dtb, "dirname": self.dirname,
                "tftp_prefix": self.tftp_prefix}


_NODE_KEYS = {"name", "serial", "mac", "model", "tftp_prefix", "nfs_root", "root", "rootfstype",
              "extra_kernel_args", "config", "vars", "customize"}


def _items(value, field_name, what):
    """A list of scalars as strings, each one line without control characters."""
    if not (isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float)) for v in value)):
        return None
    items = [str(v) for v in value]
    for j, item in enumerate(items):
        if _CONTROL_RE.search(item):
            raise CarrierError("%s[%d]: %r holds a line break or control character: each item is one %s"
                               % (field_name, j, item, what))
    return items


def _str_list(value, field_name):
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    items = _items(value, field_name, "kernel argument")
    if items is None:
        raise CarrierError("%s: %r must be a string or a list of strings" % (field_name, value))
    return items


def _lines(value, field_name):
    if value is None:
        return []
    if isinstance(value, str):
        lines = value.splitlines()
        for j, line in enumerate(lines):
            if _CONTROL_RE.search(line):
                raise CarrierError("%s: line %d (%r) holds a control character" % (field_name, j + 1, line))
        return lines
    items = _items(value, field_name, "config.txt line")
    if items is None:
        raise CarrierError("%s: %r must be text or a list of config.txt lines" % (field_name, value))
    return items


def _identity(raw, where, name, prefix):
    """``(serial, serial8, mac, dirname)`` of a node."""
    serial = serial8 = mac = None
    if raw.get("serial") not in (None, ""):
        serial = normalize_serial(raw["serial"], "%s.serial" % where, allow_0x=True)
        serial8 = serial_dirname(serial)
    if raw.get("mac") not in (None, ""):
        mac = normalize_mac(raw["mac"], "%s.mac" % where)
    if prefix == "serial":
        if serial is None:
            raise CarrierError("%s.serial: missing; node %s needs a serial for a serial-named TFTP directory "
                               "(or tftp_prefix: mac and a mac)" % (where, name))
        return serial, serial8, mac, serial8
    if mac is None:
        raise CarrierError("%s.mac: missing; node %s needs a MAC for tftp_prefix mac" % (where, name))
    return serial, serial8, mac, mac_dirname(mac)


def _roots(raw, where, name):
    """``(nfs_root, root, rootfstype)`` of a node."""
    nfs_root = raw.get("nfs_root") or None
    if nfs_root is not None and (not isinstance(nfs_root, str) or not re.match(r"^[^\s:]+:/\S*$", nfs_root)):
        raise CarrierError("%s.nfs_root: %r must be SERVER:/PATH (e.g. 10.0.0.1:/srv/nfs/node01)"
                           % (where, nfs_root))
    root = raw.get("root") or None
    if root is not None and (not isinstance(root, str) or re.search(r"\s", root)):
        raise CarrierError("%s.root: %r must be a root device without spaces (e.g. PARTUUID=4e639091-02)"
                           % (where, root))
    if nfs_root and root:
        raise CarrierError("%s: nfs_root and root are mutually exclusive (node %s)" % (where, name))
    rootfstype = str(raw.get("rootfstype") or "ext4")
    if not re.match(r"^[a-z0-9]+$", rootfstype):
        raise CarrierError("%s.rootfstype: %r is not a file system type" % (where, rootfstype))
    return nfs_root, root, rootfstype


def _customization(raw, where, name, default):
    """The node's ``customize`` over the top-level one (key by key), the host name defaulting to the
    node's name; None when neither is given."""
    own = raw.get("customize")
    if own is None and default is None:
        return None
    if own is not None and not isinstance(own, dict):
        raise CarrierError("%s.customize: must be a mapping, got %s" % (where, type(own).__name__))
    merged = dict(default or {})
    merged.update(own or {})
    field_name = "%s.customize" % where
    if merged.get("hostname") is None and merged.get("fqdn") is None:
        merged["hostname"] = name
        try:
            check_hostname(name, field_name + ".hostname")
        except InvalidValue as e:
            raise InvalidValue(e.field, "%s; it defaults to the node's name: set %s.hostname" % (e.reason, field_name),
                               name) from None
    return check_customize(merged, field=field_name)


def _parse_node(raw, where, tftp_prefix, customize=None):
    if not isinstance(raw, dict):
        raise CarrierError("%s: must be a mapping with at least name and serial (or mac), got %r" % (where, raw))
    unknown = sorted(set(raw) - _NODE_KEYS)
    if unknown:
        raise CarrierError("%s: unknown key(s) %s (known: %s)"
                           % (where, ", ".join(unknown), ", ".join(sorted(_NODE_KEYS))))
    name = raw.get("name")
    if not name or not isinstance(name, str):
        raise CarrierError("%s.name: %r must be a non-empty string (the node's inventory name)" % (where, name))
    check_name(name, "%s.name" % where, "node name")  # it is written into the node's config.txt
    model = str(raw.get("model") or DEFAULT_MODEL).lower()
    if model not in NETBOOT_MODELS:
        why = ("a %s has no Ethernet to network-boot from (USB boot only)" % MODELS[model].description
               if model in MODELS else "unknown model")
        raise CarrierError("%s.model: %r: %s (network-boot models: %s)"
                           % (where, raw.get("model"), why, ", ".join(NETBOOT_MODELS)))
    prefix = raw.get("tftp_prefix") or tftp_prefix
    if prefix not in TFTP_PREFIXES:
        raise CarrierError("%s.tftp_prefix: %r must be one of %s" % (where, prefix, ", ".join(TFTP_PREFIXES)))
    if prefix != "serial" and MODELS[model].bootloader == "rom":
        raise CarrierError("%s.tftp_prefix: %r: node %s is a %s, whose bootcode.bin looks only for a serial "
                           "directory (docs/hardware.md section 11): use tftp_prefix serial and give its serial"
                           % (where, prefix, name, MODELS[model].description))
    serial, serial8, mac, dirname = _identity(raw, where, name, prefix)
    nfs_root, root, rootfstype = _roots(raw, where, name)
    variables = raw.get("vars") or {}
    if not isinstance(variables, dict):
        raise CarrierError("%s.vars: must be a mapping, got %r" % (where, variables))
    return NodeSpec(name=name, serial=serial, serial8=serial8, mac=mac, model=model, tftp_prefix=prefix,
                    dirname=dirname, nfs_root=nfs_root, root=root, rootfstype=rootfstype,
                    extra_kernel_args=_str_list(raw.get("extra_kernel_args"), "%s.extra_kernel_args" % where),
                    config=_lines(raw.get("config"), "%s.config" % where), vars=dict(variables),
                    customize=_customization(raw, where, name, customize))


def _check_unique(spec, raw, where, seen):
    for key, value, fname in (("name", spec.name, "name"), ("serial8", spec.serial8, "serial"),
                              ("mac", spec.mac, "mac"), ("dirname", spec.dirname, "tftp_prefix")):
        if value is None:
            continue
        if value in seen[key]:
            what = {"name": "name", "serial8": "serial (TFTP directory %s)" % value, "mac": "MAC",
                    "dirname": "TFTP directory"}[key]
            raise CarrierError("%s.%s: nodes %s and %s have the same %s %r: each node needs its own"
                               % (where, fname, seen[key][value], spec.name, what,
                                  raw.get("serial") if key == "serial8" else value))
        seen[key][value] = spec.name


def parse_nodes(nodes, tftp_prefix="serial", label="nodes", customize=None):
    """Validate the node list; returns ``NodeSpec`` objects. Errors name ``nodes[i].field``.
    ``customize``: the first-boot customisation every node gets under its own (checked alone first,
    so a bad value of it is named ``customize.<key>``, not after the first node)."""
    if not isinstance(nodes, (list, tuple)):
        raise CarrierError("%s: must be a list of nodes, got %r" % (label, type(nodes).__name__))
    if tftp_prefix not in TFTP_PREFIXES:
        raise CarrierError("tftp_prefix: %r must be one of %s" % (tftp_prefix, ", ".join(TFTP_PREFIXES)))
    if customize is not None:
        if not isinstance(customize, dict):
            raise CarrierError("customize: must be a mapping, got %s" % type(customize).__name__)
        check_customize(customize, field="customize")
    specs = []
    seen = {"name": {}, "serial8": {}, "mac": {}, "dirname": {}}
    for i, raw in enumerate(nodes):
        where = "%s[%d]" % (label, i)
        spec = _parse_node(raw, where, tftp_prefix, customize)
        _check_unique(spec, raw, where, seen)
        specs.append(spec)
    return specs
