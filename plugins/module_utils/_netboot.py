# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Network-boot assets: per-node TFTP trees and signed HTTP boot images.

TFTP trees (HARDWARE.md section 6): ``tftp_root/<serial8>/`` per node (or a MAC-named directory
``dc-a6-32-01-36-c2`` for ``TFTP_PREFIX=2``, section 5). The boot files come from a *source*:
a directory, or an OS image file whose FAT boot partition is read with mtools (never mounted).
Each distinct file content is stored once in a content-addressed store
(``tftp_root/.store/sha256/ab/abcdef...``) and hard-linked into every node directory that uses
it; ``config.txt`` and ``cmdline.txt`` are rendered per node from Jinja2 templates and node vars.
A node directory that has to change is built beside it and swapped in with one
``renameat2(RENAME_EXCHANGE)``: a booting node sees the old tree or the new one, never half of one.

HTTP boot (section 7): ``boot.img`` is a raw FAT file system (no partition table, label BOOT,
at most 96 MB) made with ``mkfs.vfat`` and ``mcopy``, byte-for-byte reproducible (fixed volume id,
fixed timestamps); ``boot.sig`` is the ``.sig`` format of section 4, made by _eeprom.py's codec.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import fnmatch
import hashlib
import os
import re
import shutil
import stat
import struct
import tempfile
from dataclasses import dataclass, field

from ansible_collections.picluster.carrier.plugins.module_utils._eeprom.sig import make_sig, sig_matches, verify_sig
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._fat import (  # noqa: F401 (callers until the split)
    FAT_TIME_MAX,
    FAT_TIME_MIN,
    extract as extract_fat,
    find_fat_partition,
    mkfs,
    module_runner,
    run as _run,
    mtools_env as _mtools_env,
    set_runner,
)
from ansible_collections.picluster.carrier.plugins.module_utils._fileio import atomic_write, read_optional
from ansible_collections.picluster.carrier.plugins.module_utils._models import (
    DEFAULT_MODEL,
    MODELS,
    eeprom_models,
    is_node_dirname,
    mac_dirname,
    normalize_mac,
    normalize_serial,
    serial_dirname,
)
from ansible_collections.picluster.carrier.plugins.module_utils._values import check_name, check_number


# --- Node identity (HARDWARE.md sections 5, 9) ----------------------------------------------------

# Only models whose bootloader is in SPI EEPROM network-boot this way (docs in _models).
NETBOOT_MODELS = eeprom_models()
# TFTP_PREFIX=0: the serial directory (last 8 hex digits); TFTP_PREFIX=2: the MAC directory.
TFTP_PREFIXES = ("serial", "mac")

STORE_DIR = ".store"
LOCK_FILE = ".netboot.lock"
# Files a node directory keeps across rebuilds although the source does not have them: the EEPROM
# self-update that eeprom_image (target tftp_self_update) stages there (HARDWARE.md section 4).
DEFAULT_PRESERVE = ("pieeprom.upd", "pieeprom.sig")
RENDERED = ("config.txt", "cmdline.txt")
FILE_MODE = 0o644
DIR_MODE = 0o755


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

    @property
    def dtb(self):
        return MODELS[self.model].dtb

    @property
    def soc(self):
        return MODELS[self.model].soc

    def as_template_var(self):
        return {"name": self.name, "serial": self.serial, "serial8": self.serial8, "mac": self.mac,
                "model": self.model, "soc": self.soc, "dtb": self.dtb, "dirname": self.dirname,
                "tftp_prefix": self.tftp_prefix}


_NODE_KEYS = {"name", "serial", "mac", "model", "tftp_prefix", "nfs_root", "root", "rootfstype",
              "extra_kernel_args", "config", "vars"}


def _str_list(value, field_name):
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float)) for v in value):
        return [str(v) for v in value]
    raise CarrierError("%s: %r must be a string or a list of strings" % (field_name, value))


def _lines(value, field_name):
    if value is None:
        return []
    if isinstance(value, str):
        return value.splitlines()
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float)) for v in value):
        return [str(v) for v in value]
    raise CarrierError("%s: %r must be text or a list of config.txt lines" % (field_name, value))


def parse_nodes(nodes, tftp_prefix="serial", label="nodes"):
    """Validate the node list; returns ``NodeSpec`` objects. Errors name ``nodes[i].field``."""
    if not isinstance(nodes, (list, tuple)):
        raise CarrierError("%s: must be a list of nodes, got %r" % (label, type(nodes).__name__))
    if tftp_prefix not in TFTP_PREFIXES:
        raise CarrierError("tftp_prefix: %r must be one of %s" % (tftp_prefix, ", ".join(TFTP_PREFIXES)))
    specs = []
    seen = {"name": {}, "serial8": {}, "mac": {}, "dirname": {}}
    for i, raw in enumerate(nodes):
        where = "%s[%d]" % (label, i)
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
            raise CarrierError("%s.model: %r does not network-boot from an EEPROM bootloader (models: %s)"
                               % (where, raw.get("model"), ", ".join(NETBOOT_MODELS)))
        prefix = raw.get("tftp_prefix") or tftp_prefix
        if prefix not in TFTP_PREFIXES:
            raise CarrierError("%s.tftp_prefix: %r must be one of %s" % (where, prefix, ", ".join(TFTP_PREFIXES)))
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
            dirname = serial8
        else:
            if mac is None:
                raise CarrierError("%s.mac: missing; node %s needs a MAC for tftp_prefix mac" % (where, name))
            dirname = mac_dirname(mac)
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
        variables = raw.get("vars") or {}
        if not isinstance(variables, dict):
            raise CarrierError("%s.vars: must be a mapping, got %r" % (where, variables))
        spec = NodeSpec(name=name, serial=serial, serial8=serial8, mac=mac, model=model, tftp_prefix=prefix,
                        dirname=dirname, nfs_root=nfs_root, root=root, rootfstype=rootfstype,
                        extra_kernel_args=_str_list(raw.get("extra_kernel_args"), "%s.extra_kernel_args" % where),
                        config=_lines(raw.get("config"), "%s.config" % where), vars=dict(variables))
        for key, value, fname in (("name", name, "name"), ("serial8", serial8, "serial"), ("mac", mac, "mac"),
                                  ("dirname", dirname, "tftp_prefix")):
            if value is None:
                continue
            if value in seen[key]:
                what = {"name": "name", "serial8": "serial (TFTP directory %s)" % value, "mac": "MAC",
                        "dirname": "TFTP directory"}[key]
                raise CarrierError("%s.%s: nodes %s and %s have the same %s %r: each node needs its own"
                                   % (where, fname, seen[key][value], name, what,
                                      raw.get("serial") if key == "serial8" else value))
            seen[key][value] = name
        specs.append(spec)
    return specs


# --- Sources: a directory or an OS image's FAT partition --------------------------------------------

def walk_files(top):
    """``{relative posix path: absolute path}`` of the regular files under ``top`` (symlinks followed)."""
    files = {}
    for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
        dirnames.sort()
        for name in filenames:
            full = os.path.join(dirpath, name)
            if not os.path.isfile(full):
                continue
            rel = os.path.relpath(full, top).replace(os.sep, "/")
            files[rel] = full
    return files


def file_sha256(path, bufsize=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            chunk = f.read(bufsize)
            if not chunk:
                break
            h.update(chunk)
    return h.hexdigest()


class BootSource:
    """The boot files of a source. Use as a context manager: an image is extracted into a
    temporary directory that goes away on exit."""

    def __init__(self, path, workdir=None, exclude=()):
        self.path = path
        self.workdir = workdir
        self.exclude = list(exclude or ())
        self.kind = None
        self.partition = None
        self.files = {}
        self._tmp = None
        self._digests = {}

    def __enter__(self):
        path = self.path
        if not path or not os.path.exists(path):
            raise CarrierError("source: %s does not exist" % (path,))
        if os.path.isdir(path):
            self.kind = "directory"
            top = path
        elif os.path.isfile(path):
            self.kind = "image"
            offset, self.partition = find_fat_partition(path)
            self._tmp = tempfile.mkdtemp(prefix=".netboot-source.", dir=self.workdir)
            top = os.path.join(self._tmp, "fat")
            extract_fat(path, offset, top)
        else:
            raise CarrierError("source: %s is neither a directory nor an image file" % path)
        files = walk_files(top)
        self.files = {rel: full for rel, full in files.items()
                      if not any(fnmatch.fnmatchcase(rel, pat) for pat in self.exclude)}
        return self

    def __exit__(self, *exc):
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def digest(self, rel):
        if rel not in self._digests:
            self._digests[rel] = file_sha256(self.files[rel])
        return self._digests[rel]

    def text(self, rel):
        """A text file of the source (config.txt, cmdline.txt), or '' when absent."""
        full = self.files.get(rel)
        if full is None:
            return ""
        with open(full, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def check_bootable(self, models, warn=None):
        """Raise when the source cannot boot the given models (HARDWARE.md section 6)."""
        socs = {MODELS[m].soc for m in models}
        names = set(self.files)
        lower = {n.lower() for n in names}
        if "bcm2711" in socs and "start4.elf" not in lower:
            raise CarrierError("source: %s has no start4.elf: not a Pi 4/CM4 boot partition (a %s file list: %s)"
                               % (self.path, self.kind, _sample(names)))
        if "bcm2712" in socs:
            if "config.txt" not in lower or not any(re.match(r"^bcm2712.*\.dtb$", n) for n in lower):
                raise CarrierError("source: %s has no config.txt plus bcm2712 device tree: not a Pi 5/CM5 boot "
                                   "partition (files: %s)" % (self.path, _sample(names)))
        if warn is not None:
            for model in sorted(set(models)):
                if MODELS[model].dtb not in lower:
                    warn("source: %s has no %s (the device tree of a %s)" % (self.path, MODELS[model].dtb, model))


def _sample(names, n=8):
    names = sorted(names)
    text = ", ".join(names[:n])
    return (text + ", ...") if len(names) > n else (text or "empty")


# --- Per-node config.txt and cmdline.txt -------------------------------------------------------------

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


# --- The content-addressed store ------------------------------------------------------------------


class Store:
    """``<tftp_root>/.store/sha256/ab/<digest>``: one file per content, hard-linked into node dirs."""

    def __init__(self, tftp_root):
        self.root = os.path.join(tftp_root, STORE_DIR, "sha256")
        self.bytes_written = 0

    def path(self, digest):
        return os.path.join(self.root, digest[:2], digest)

    def has(self, digest):
        return os.path.isfile(self.path(digest))

    def put_file(self, src, digest):
        dest = self.path(digest)
        if os.path.isfile(dest):
            return dest
        os.makedirs(os.path.dirname(dest), mode=DIR_MODE, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".in.", dir=os.path.dirname(dest))
        try:
            with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
                shutil.copyfileobj(inp, out, 1 << 20)
                self.bytes_written += out.tell()
            os.chmod(tmp, FILE_MODE)
            if file_sha256(tmp) != digest:
                raise CarrierError("source: %s changed while it was being copied" % src)
            os.replace(tmp, dest)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return dest

    def put_bytes(self, data, digest):
        dest = self.path(digest)
        if not os.path.isfile(dest):
            atomic_write(dest, data, FILE_MODE)
            self.bytes_written += len(data)
        return dest

    def gc(self):
        """Remove objects no node directory links to any more; returns (count, bytes)."""
        count = size = 0
        if not os.path.isdir(self.root):
            return 0, 0
        for sub in sorted(os.listdir(self.root)):
            d = os.path.join(self.root, sub)
            for name in os.listdir(d):
                p = os.path.join(d, name)
                st = os.lstat(p)
                if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
                    os.unlink(p)
                    count += 1
                    size += st.st_size
            with contextlib.suppress(OSError):
                os.rmdir(d)
        return count, size

    def usage(self):
        count = size = 0
        if os.path.isdir(self.root):
            for dirpath, _dirs, files in os.walk(self.root):
                for name in files:
                    count += 1
                    size += os.lstat(os.path.join(dirpath, name)).st_size
        return count, size


# --- Atomic directory swap ------------------------------------------------------------------------

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_renameat2 = None


def _exchange(a, b):
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE). False when unsupported."""
    global _renameat2
    if _renameat2 is None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fn = libc.renameat2
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            fn.restype = ctypes.c_int
            _renameat2 = fn
        except (OSError, AttributeError):
            _renameat2 = False
    if not _renameat2:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), a)


def replace_dir(new, final):
    """Put directory ``new`` at ``final`` in one step; the old tree (if any) is removed afterwards."""
    if not os.path.lexists(final):
        os.rename(new, final)
        return
    if _exchange(new, final):
        shutil.rmtree(new)
        return
    old = final + ".old"
    shutil.rmtree(old, ignore_errors=True)
    os.rename(final, old)  # fallback: a moment without the directory
    os.rename(new, final)
    shutil.rmtree(old)


# --- Planning and writing TFTP trees ------------------------------------------------------------------


@dataclass
class Wanted:
    """A file a node directory must hold: its digest and where its bytes come from."""

    digest: str
    src: str | None = None
    data: bytes | None = None


@dataclass
class NodePlan:
    node: NodeSpec
    path: str
    wanted: dict  # rel -> Wanted
    current: dict  # rel -> digest (or None for a special file)
    preserved: list
    added: list = field(default_factory=list)
    modified: list = field(default_factory=list)
    removed: list = field(default_factory=list)
    unchanged: list = field(default_factory=list)

    @property
    def changed(self):
        return bool(self.added or self.modified or self.removed)

    def result(self):
        return {"name": self.node.name, "dir": self.path, "dirname": self.node.dirname,
                "changed": self.changed, "added": sorted(self.added), "modified": sorted(self.modified),
                "removed": sorted(self.removed), "unchanged": len(self.unchanged),
                "preserved": sorted(self.preserved)}


@dataclass
class TreePlan:
    tftp_root: str
    nodes: list
    prune_dirs: list
    unlisted: list
    source: dict
    warnings: list = field(default_factory=list)

    @property
    def changed(self):
        return any(n.changed for n in self.nodes) or bool(self.prune_dirs)

    def diff(self):
        """Listing per node (``dirname/path sha256``) before and after, only of what changes."""
        before, after = [], []
        for n in self.nodes:
            if not n.changed:
                continue
            for rel in sorted(n.current):
                if rel in n.preserved:
                    continue
                before.append("%s/%s %s" % (n.node.dirname, rel, (n.current[rel] or "?")[:16]))
            for rel in sorted(n.wanted):
                after.append("%s/%s %s" % (n.node.dirname, rel, n.wanted[rel].digest[:16]))
        for d in self.prune_dirs:
            before.append("%s/ (pruned)" % os.path.basename(d))
        return {"before": "\n".join(before) + ("\n" if before else ""),
                "after": "\n".join(after) + ("\n" if after else ""),
                "before_header": "%s (changed node directories)" % self.tftp_root,
                "after_header": "%s (changed node directories)" % self.tftp_root}


def _store_inode(store, digest, inodes):
    if digest not in inodes:
        try:
            st = os.lstat(store.path(digest))
            inodes[digest] = (st.st_dev, st.st_ino)
        except OSError:
            inodes[digest] = None
    return inodes[digest]


def _scan_node_dir(path, wanted, store, inodes):
    """``{rel: digest}`` of an existing node directory. A file that is a hard link of the store
    object it should be is known by its inode (from the directory entry, no stat); any other file
    is read and hashed; a special file gets None."""
    dev = os.lstat(path).st_dev
    current = {}
    stack = [("", path)]
    while stack:
        prefix, directory = stack.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                rel = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    stack.append((rel + "/", entry.path))
                    continue
                w = wanted.get(rel)
                if w is not None and entry.is_file(follow_symlinks=False) \
                        and _store_inode(store, w.digest, inodes) == (dev, entry.inode()):
                    current[rel] = w.digest
                elif entry.is_file(follow_symlinks=False):
                    current[rel] = file_sha256(entry.path)
                else:
                    current[rel] = None
    return current


def plan_trees(source, nodes, tftp_root, renderer, prune=False, preserve=DEFAULT_PRESERVE):
    """Compute what every node directory must hold and how it differs from what is there."""
    store = Store(tftp_root)
    shared = {rel: Wanted(source.digest(rel), src=full) for rel, full in source.files.items()
              if rel not in RENDERED}
    inodes = {}  # digest -> (st_dev, st_ino) of its store object, or None
    plans = []
    for node in nodes:
        path = os.path.join(tftp_root, node.dirname)
        wanted = dict(shared)
        for rel, data in renderer.render(node, source).items():
            wanted[rel] = Wanted(hashlib.sha256(data).hexdigest(), data=data)
        plan = NodePlan(node, path, wanted, {}, [])
        current = {}
        if os.path.lexists(path):
            if not os.path.isdir(path) or os.path.islink(path):
                raise CarrierError("tftp_root: %s exists and is not a directory: not replacing it" % path)
            current = _scan_node_dir(path, wanted, store, inodes)
        plan.current = current
        for rel, w in wanted.items():
            if rel not in current:
                plan.added.append(rel)
            elif current[rel] != w.digest:
                plan.modified.append(rel)
            else:
                plan.unchanged.append(rel)
        for rel in current:
            if rel in wanted:
                continue
            if any(fnmatch.fnmatchcase(rel, pat) for pat in preserve):
                plan.preserved.append(rel)
            else:
                plan.removed.append(rel)
        plans.append(plan)
    listed = {n.dirname for n in nodes}
    unlisted = []
    if os.path.isdir(tftp_root):
        for name in sorted(os.listdir(tftp_root)):
            full = os.path.join(tftp_root, name)
            if name not in listed and is_node_dirname(name) and os.path.isdir(full) and not os.path.islink(full):
                unlisted.append(full)
    info = {"path": source.path, "kind": source.kind, "partition": source.partition, "files": len(source.files)}
    return TreePlan(tftp_root, plans, unlisted if prune else [], unlisted, info)


_STALE_RE = re.compile(r"^\.(?:.+\.new|prune)\.[A-Za-z0-9_]+$")


@contextlib.contextmanager
def tree_lock(tftp_root):
    """Exclusive lock of a TFTP root. Holding it, the half-built directories a killed run left
    (``.<dir>.new.*``, ``.prune.*``: only made under this lock) are removed."""
    os.makedirs(tftp_root, mode=DIR_MODE, exist_ok=True)
    fd = os.open(os.path.join(tftp_root, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        for name in os.listdir(tftp_root):
            if _STALE_RE.match(name) and os.path.isdir(os.path.join(tftp_root, name)):
                shutil.rmtree(os.path.join(tftp_root, name), ignore_errors=True)
        yield
    finally:
        os.close(fd)


def _build_node_dir(plan, store, tftp_root):
    tmp = tempfile.mkdtemp(prefix=".%s.new." % plan.node.dirname, dir=tftp_root)
    try:
        os.chmod(tmp, DIR_MODE)
        for rel, w in sorted(plan.wanted.items()):
            obj = store.put_bytes(w.data, w.digest) if w.data is not None else store.put_file(w.src, w.digest)
            dest = os.path.join(tmp, *rel.split("/"))
            parent = os.path.dirname(dest)
            if not os.path.isdir(parent):
                os.makedirs(parent, mode=DIR_MODE)
            os.link(obj, dest)
        for rel in plan.preserved:
            dest = os.path.join(tmp, *rel.split("/"))
            os.makedirs(os.path.dirname(dest), mode=DIR_MODE, exist_ok=True)
            os.link(os.path.join(plan.path, *rel.split("/")), dest)
        replace_dir(tmp, plan.path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def apply_trees(plan):
    """Write the node directories that change (each swapped in atomically), prune, collect garbage."""
    store = Store(plan.tftp_root)
    pruned = []
    try:
        for n in plan.nodes:
            if n.changed:
                _build_node_dir(n, store, plan.tftp_root)
        for d in plan.prune_dirs:
            doomed = tempfile.mkdtemp(prefix=".prune.", dir=plan.tftp_root)
            os.rename(d, os.path.join(doomed, os.path.basename(d)))
            shutil.rmtree(doomed)
            pruned.append(d)
    except OSError as e:
        raise CarrierError("tftp_root: writing %s failed: %s" % (e.filename or plan.tftp_root, e.strerror or e)) from e
    removed, freed = store.gc()
    return {"store_bytes_written": store.bytes_written, "store_objects_removed": removed,
            "store_bytes_freed": freed, "pruned": pruned}


def build_tftp_trees(source_path, nodes, tftp_root, prune=False, preserve=DEFAULT_PRESERVE, tftp_prefix="serial",
                     config_template=None, cmdline_template=None, exclude=(), check_mode=False, warn=None):
    """Everything ``netboot_assets`` does. Returns ``(changed, result, diff)``."""
    specs = parse_nodes(nodes, tftp_prefix)
    if not specs:
        raise CarrierError("nodes: the list is empty: nothing to build")
    tftp_root = os.path.abspath(tftp_root)
    if os.path.exists(tftp_root) and not os.path.isdir(tftp_root):
        raise CarrierError("tftp_root: %s exists and is not a directory" % tftp_root)
    renderer = Renderer(config_template, cmdline_template)
    workdir = tftp_root if (os.path.isdir(tftp_root) and not check_mode) else None
    applied = {"store_bytes_written": 0, "store_objects_removed": 0, "store_bytes_freed": 0, "pruned": []}
    with BootSource(source_path, workdir=workdir, exclude=exclude) as source:
        source.check_bootable([n.model for n in specs], warn=warn)
        if check_mode:
            plan = plan_trees(source, specs, tftp_root, renderer, prune=prune, preserve=preserve)
        elif os.path.isdir(tftp_root):
            with tree_lock(tftp_root):
                plan = plan_trees(source, specs, tftp_root, renderer, prune=prune, preserve=preserve)
                if plan.changed:
                    applied = apply_trees(plan)
        else:
            # Plan first: every error surfaces before tftp_root is even created; then again under the lock.
            plan = plan_trees(source, specs, tftp_root, renderer, prune=prune, preserve=preserve)
            with tree_lock(tftp_root):
                plan = plan_trees(source, specs, tftp_root, renderer, prune=prune, preserve=preserve)
                if plan.changed:
                    applied = apply_trees(plan)
    store = Store(tftp_root)
    objects, size = store.usage()
    result = {
        "tftp_root": tftp_root,
        "nodes": {n.node.name: n.result() for n in plan.nodes},
        "changed_nodes": [n.node.name for n in plan.nodes if n.changed],
        "pruned": [os.path.basename(d) for d in (plan.prune_dirs if check_mode else applied["pruned"])],
        "unlisted": [os.path.basename(d) for d in plan.unlisted if d not in plan.prune_dirs],
        "source": plan.source,
        "store": {"objects": objects, "bytes": size, "bytes_written": applied["store_bytes_written"],
                  "objects_removed": applied["store_objects_removed"]},
    }
    return plan.changed, result, plan.diff()


# --- HTTP boot: boot.img and boot.sig (HARDWARE.md section 7) --------------------------------------

MAX_BOOT_IMG = 96 * 1024 * 1024  # bytes; the bootloader refuses a larger boot.img
BOOT_LABEL = "BOOT"
DEFAULT_TIMESTAMP = 1704067200  # 2024-01-01T00:00:00Z: file times inside boot.img unless told otherwise
_CLUSTER = 4096


def _fat_size(files):
    """A boot.img size (bytes, whole MiB) holding ``files`` ({rel: size}) with FAT16 overhead."""
    data = sum(-(-size // _CLUSTER) * _CLUSTER for size in files.values())
    dirs = {rel.rsplit("/", 1)[0] for rel in files if "/" in rel}
    data += (len(dirs) + 1) * 4 * _CLUSTER + len(files) * 64
    total = int(data * 1.04) + 2 * 1024 * 1024  # FATs, root dir, reserved sectors, slack
    mib = -(-total // (1024 * 1024))
    return max(mib, 8) * 1024 * 1024


def boot_image_bytes(entries, timestamp=DEFAULT_TIMESTAMP, volume_id=None, size=None, workdir=None):
    """Build a reproducible raw FAT image of ``entries`` ({rel: bytes-or-source-path}); returns bytes."""
    sizes = {}
    for rel, v in entries.items():
        sizes[rel] = len(v) if isinstance(v, bytes) else os.path.getsize(v)
    want = size if size is not None else _fat_size(sizes)
    if want > MAX_BOOT_IMG:
        raise CarrierError("boot.img: %d files of %d bytes need a %d MB image, over the bootloader's 96 MB limit"
                           % (len(entries), sum(sizes.values()), -(-want // (1024 * 1024))))
    if volume_id is None:
        h = hashlib.sha256()
        for rel in sorted(entries):
            v = entries[rel]
            h.update(rel.encode() + b"\0")
            h.update((hashlib.sha256(v).hexdigest() if isinstance(v, bytes) else file_sha256(v)).encode())
        volume_id = h.hexdigest()[:8]
    if not re.match(r"^[0-9a-fA-F]{1,8}$", str(volume_id)):
        raise CarrierError("volume_id: %r must be up to 8 hex digits" % (volume_id,))
    tmp = tempfile.mkdtemp(prefix=".boot-img.", dir=workdir)
    try:
        staging = os.path.join(tmp, "files")
        os.makedirs(staging)
        img = os.path.join(tmp, "boot.img")
        with open(img, "wb") as f:
            f.truncate(want)
        # FAT16 with 512-byte sectors: 4085 to 65524 clusters; the smallest cluster that keeps under the top.
        per_cluster = 1
        while want // (512 * per_cluster) > 65000:
            per_cluster *= 2
        mkfs(img, BOOT_LABEL, volume_id, fat_bits=16, sectors_per_cluster=per_cluster, timestamp=timestamp)
        env = _mtools_env(timestamp)
        target = "%s" % img
        # Directories first (sorted), then the files of each directory in sorted order: the same
        # input gives the same directory entries, short names and cluster chain every time.
        dirs = sorted({"/".join(rel.split("/")[:i]) for rel in entries for i in range(1, rel.count("/") + 1)})
        for d in dirs:
            _run(["mmd", "-i", target, "::/" + d], "boot.img", env=env)
        by_dir = {}
        for rel in sorted(entries):
            parent = rel.rsplit("/", 1)[0] if "/" in rel else ""
            by_dir.setdefault(parent, []).append(rel)
        for parent in sorted(by_dir):
            paths = []
            for i, rel in enumerate(by_dir[parent]):
                staged_dir = os.path.join(staging, str(i))
                os.makedirs(staged_dir)
                staged = os.path.join(staged_dir, rel.rsplit("/", 1)[-1])
                v = entries[rel]
                if isinstance(v, bytes):
                    with open(staged, "wb") as f:
                        f.write(v)
                else:
                    shutil.copyfile(v, staged)
                os.utime(staged, (timestamp, timestamp))
                paths.append(staged)
            _run(["mcopy", "-m", "-i", target] + paths + ["::/%s" % (parent + "/" if parent else "")],
                 "boot.img", env=env)
            shutil.rmtree(staging)
            os.makedirs(staging)
        with open(img, "rb") as f:
            return f.read()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class BootImagePlan:
    image_path: str
    sig_path: str
    image: bytes
    sig: bytes
    image_changed: bool
    sig_changed: bool
    files: list
    sha256: str
    volume_id: str
    old_sha256: str | None = None
    old_sig: bytes | None = None

    @property
    def changed(self):
        return self.image_changed or self.sig_changed


def plan_boot_image(source_path, dest, private_key, timestamp=DEFAULT_TIMESTAMP, volume_id=None, size_mb=None,
                    config_txt=None, cmdline_txt=None, exclude=(), check_models=("cm4",)):
    """Build boot.img in memory and the boot.sig to go with it, both checked; nothing written here."""
    size_mb = check_number(size_mb, "size_mb", integer=True)
    if size_mb is not None and not 1 <= int(size_mb) <= 96:
        raise CarrierError("size_mb: %r must be from 1 to 96 (the bootloader's limit for boot.img)" % (size_mb,))
    timestamp = check_number(timestamp, "timestamp", FAT_TIME_MIN, FAT_TIME_MAX, integer=True, allow_none=False,
                             what="a time FAT can store (seconds since 1970 from %d, 1980-01-01, to %d, "
                                  "2107-12-31 23:59:59 UTC)" % (FAT_TIME_MIN, FAT_TIME_MAX))
    if private_key is None:
        raise CarrierError("signing_key: HTTP boot needs a customer key: every boot.img must be signed")
    image_path = os.path.join(dest, "boot.img")
    sig_path = os.path.join(dest, "boot.sig")
    with BootSource(source_path, exclude=exclude) as source:
        if check_models:
            source.check_bootable(list(check_models))
        entries = dict(source.files)
        if config_txt is not None:
            entries["config.txt"] = config_txt.encode("utf-8")
        if cmdline_txt is not None:
            entries["cmdline.txt"] = cmdline_txt.encode("utf-8")
        data = boot_image_bytes(entries, timestamp=timestamp, volume_id=volume_id,
                                size=int(size_mb) * 1024 * 1024 if size_mb else None)
    digest = hashlib.sha256(data).hexdigest()
    old_image = read_optional(image_path)
    old_sig = read_optional(sig_path)
    public = private_key.public_key()
    if old_image == data and sig_matches(data, old_sig, public, want_rsa=True):
        sig = old_sig
    else:
        sig = make_sig(data, ts=timestamp, private_key=private_key).encode("ascii")
    verify_sig(data, sig, public, label=sig_path)  # before anything is written, not after
    vol = "%08x" % struct.unpack_from("<I", data, 39)[0]  # FAT12/16 boot sector: volume id at 39
    return BootImagePlan(image_path, sig_path, data, sig, old_image != data, old_sig != sig, sorted(entries), digest,
                         vol, hashlib.sha256(old_image).hexdigest() if old_image is not None else None, old_sig)


def write_boot_image(plan, private_key):
    """Put boot.img and boot.sig in place together: both are staged beside their targets, read back
    and verified there, then renamed over them; when the second rename fails the first is undone,
    so a failed run leaves the old pair (or none), never a new image with an old signature."""
    staged, backups, done = {}, {}, []
    try:
        for path, data in ((plan.image_path, plan.image), (plan.sig_path, plan.sig)):
            staged[path] = path + ".new"
            atomic_write(staged[path], data, FILE_MODE)
        verify_sig(read_optional(staged[plan.image_path]), read_optional(staged[plan.sig_path]),
                   private_key.public_key(), label=plan.sig_path)
        for path in staged:
            if os.path.exists(path):
                backups[path] = path + ".old"
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(backups[path])
                os.link(path, backups[path])
        for path, tmp in staged.items():
            os.replace(tmp, path)
            done.append(path)
    except OSError as e:
        for path in done:
            if path in backups:
                os.replace(backups[path], path)
            else:
                os.unlink(path)
        raise CarrierError("dest: writing %s failed: %s" % (e.filename or plan.image_path, e.strerror or e)) from e
    finally:
        for tmp in list(staged.values()) + list(backups.values()):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
