# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-node ``config.txt`` and ``cmdline.txt``, rendered from Jinja2 templates in a sandbox, and the
node's first-boot customisation files (``_firstboot``) over them."""

from __future__ import annotations

from ansible_collections.picluster.carrier.plugins.module_utils import _firstboot
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._fileio import read_optional

SECRET_MODE = 0o600


DEFAULT_CONFIG_TEMPLATE = """\
{% if source_config %}{{ source_config }}
{% endif %}# picluster.carrier: network boot of {{ node.name }} ({{ node.model }}, serial {{ node.serial }})
[all]
{% for line in config %}{{ line }}
{% endfor %}"""

DEFAULT_CMDLINE_TEMPLATE = (
    "{% set args = [] %}"
    "{% if nfs_root %}{% set args = ['console=serial0,115200', 'console=tty1', 'root=/dev/nfs',"
    " 'nfsroot=' ~ nfs_root ~ ',vers=4.1,proto=tcp', 'rw', 'ip=dhcp', 'rootwait'] %}"
    "{% elif root %}{% set args = ['console=serial0,115200', 'console=tty1', 'root=' ~ root,"
    " 'rootfstype=' ~ rootfstype, 'fsck.repair=yes', 'rootwait'] %}"
    "{% else %}{% set args = source_cmdline.split() %}{% endif %}"
    "{{ (args + extra_kernel_args) | join(' ') }}\n"
)


def _jinja_env():
    try:
        from jinja2 import StrictUndefined
        from jinja2.sandbox import SandboxedEnvironment
    except ImportError as e:  # pragma: no cover - ansible-core always brings jinja2
        raise CarrierError("templates: the Python package jinja2 is needed") from e
    return SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)


class Renderer:
    def __init__(self, config_template=None, cmdline_template=None):
        self.env = _jinja_env()
        self.templates = {}
        for name, text, default in (("config_template", config_template, DEFAULT_CONFIG_TEMPLATE),
                                    ("cmdline_template", cmdline_template, DEFAULT_CMDLINE_TEMPLATE)):
            try:
                self.templates[name] = self.env.from_string(default if text is None else text)
            except Exception as e:  # jinja2.TemplateSyntaxError and friends
                raise CarrierError("%s: not a valid Jinja2 template: %s" % (name, e)) from None

    def render(self, node, source):
        ctx = {
            "node": node.as_template_var(),
            "nfs_root": node.nfs_root,
            "root": node.root,
            "rootfstype": node.rootfstype,
            "extra_kernel_args": list(node.extra_kernel_args),
            "config": list(node.config),
            "source_config": source.text("config.txt").rstrip("\n"),
            "source_cmdline": source.text("cmdline.txt").strip(),
            "vars": dict(node.vars),
        }
        out = {}
        for fname, tname in (("config.txt", "config_template"), ("cmdline.txt", "cmdline_template")):
            try:
                text = self.templates[tname].render(**ctx)
            except Exception as e:
                raise CarrierError("%s: rendering it for node %s failed: %s" % (tname, node.name, e)) from None
            out[fname] = text.encode("utf-8")
        cmdline = out["cmdline.txt"].decode()
        if "\n" in cmdline.rstrip("\n"):
            raise CarrierError("cmdline_template: the cmdline.txt of node %s is more than one line" % node.name)
        if "root=" not in cmdline:
            raise CarrierError("nodes: node %s has no root file system in its cmdline.txt (%r): set nfs_root or "
                               "root, or put a cmdline.txt with root= in the source" % (node.name, cmdline.strip()))
        return out


def load_template(path, field_name):
    if path is None:
        return None
    data = read_optional(path)
    if data is None:
        raise CarrierError("%s: %s does not exist" % (field_name, path))
    return data.decode("utf-8")


def first_boot_files(node, source, cmdline):
    """``(style, {name: bytes}, dropped)`` of ``node.customize`` for its tree: the seed files (or
    firstrun.sh) and the rendered ``cmdline`` (bytes) edited for them; ``dropped`` names source files
    the tree must not keep (a firstrun.sh beside cloud-init seed files would run again). Style auto
    is decided from the source: its seed files mean cloud-init, else firstrun."""
    present = {name: (read_optional(source.files[name]) if name in source.files else None)
               for name in _firstboot.SEED_NAMES + (_firstboot.FIRSTRUN,)}
    present[_firstboot.CMDLINE] = cmdline
    where = "the source %s with the cmdline.txt of node %s" % (source.path, node.name)
    style, files, _changes, dropped = _firstboot.plan_files(node.customize, present, where)
    return style, files, tuple(dropped)


def file_mode(data, cust, default):
    """0600 for a file holding one of the customisation's password hashes, else ``default``."""
    if cust is not None and any(u.password_hash and u.password_hash.encode() in data for u in cust.users):
        return SECRET_MODE
    return default
