# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""TFTP trees: what every node directory must hold, how it differs from what is there, and writing
the directories that change (each built beside it and swapped in with one atomic rename)."""

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
import tempfile
from dataclasses import dataclass, field

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._models import is_node_dirname
from ansible_collections.picluster.carrier.plugins.module_utils._netboot.nodes import NodeSpec, parse_nodes
from ansible_collections.picluster.carrier.plugins.module_utils._netboot.render import (
    Renderer, file_mode, first_boot_files)
from ansible_collections.picluster.carrier.plugins.module_utils._netboot.sources import BootSource, file_sha256
from ansible_collections.picluster.carrier.plugins.module_utils._netboot.store import DIR_MODE, FILE_MODE, Store


LOCK_FILE = ".netboot.lock"
# Files a node directory keeps across rebuilds although the source does not have them: the EEPROM
# self-update that eeprom_image (target tftp_self_update) stages there (docs/hardware.md section 4).
DEFAULT_PRESERVE = ("pieeprom.upd", "pieeprom.sig")
RENDERED = ("config.txt", "cmdline.txt")
# What a Pi 3's boot ROM reads from the TFTP root itself, before any serial directory (docs/hardware.md
# section 11): put there from the source when a node of a boot-ROM model is listed.
ROOT_FILES = ("bootcode.bin",)


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


@dataclass
class Wanted:
    """A file a node directory must hold: its digest and where its bytes come from."""

    digest: str
    src: str | None = None
    data: bytes | None = None
    mode: int = FILE_MODE


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
    customized: dict | None = None  # {"style": ..., "files": [...]} of the node's first-boot customisation

    @property
    def changed(self):
        return bool(self.added or self.modified or self.removed)

    def result(self):
        out = {"name": self.node.name, "dir": self.path, "dirname": self.node.dirname,
               "changed": self.changed, "added": sorted(self.added), "modified": sorted(self.modified),
               "removed": sorted(self.removed), "unchanged": len(self.unchanged),
               "preserved": sorted(self.preserved)}
        if self.customized is not None:
            out["customize"] = dict(self.customized)
        return out


@dataclass
class RootFile:
    """A file of the TFTP root itself (:data:`ROOT_FILES`): what it must be and what is there."""

    wanted: Wanted
    current: str | None  # digest, or None when absent
    status: str  # added | modified | unchanged


@dataclass
class TreePlan:
    tftp_root: str
    nodes: list
    prune_dirs: list
    unlisted: list
    source: dict
    warnings: list = field(default_factory=list)
    root_files: dict = field(default_factory=dict)  # rel -> RootFile

    @property
    def changed(self):
        return (any(n.changed for n in self.nodes) or bool(self.prune_dirs)
                or any(r.status != "unchanged" for r in self.root_files.values()))

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
        for rel, r in sorted(self.root_files.items()):
            if r.status != "unchanged":
                if r.current:
                    before.append("%s %s" % (rel, r.current[:16]))
                after.append("%s %s" % (rel, r.wanted.digest[:16]))
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


def _node_wanted(node, source, renderer, shared):
    """``(wanted, customized)`` of one node: the shared files, its rendered config.txt and cmdline.txt
    and, when it has a customisation, its seed files (or firstrun.sh) with cmdline.txt edited for them."""
    wanted = dict(shared)
    files = renderer.render(node, source)
    customized = None
    if node.customize is not None:
        style, custom, dropped = first_boot_files(node, source, files["cmdline.txt"])
        files.update(custom)
        for rel in dropped:
            wanted.pop(rel, None)
        customized = {"style": style, "files": sorted(custom)}
    for rel, data in files.items():
        wanted[rel] = Wanted(hashlib.sha256(data).hexdigest(), data=data,
                             mode=file_mode(data, node.customize, FILE_MODE))
    return wanted, customized


def _mode_of(path, rel):
    try:
        return stat.S_IMODE(os.lstat(os.path.join(path, *rel.split("/"))).st_mode)
    except OSError:
        return None


def _plan_root_files(source, nodes, tftp_root, store, inodes):
    """The :data:`ROOT_FILES` the TFTP root must hold: only when a node boots from a boot ROM."""
    if not any(n.rom for n in nodes):
        return {}
    by_lower = {rel.lower(): rel for rel in source.files}
    out = {}
    for rel in ROOT_FILES:
        src_rel = by_lower[rel]  # check_bootable made sure the source has it
        wanted = Wanted(source.digest(src_rel), src=source.files[src_rel])
        path = os.path.join(tftp_root, rel)
        current = None
        if os.path.lexists(path):
            if os.path.islink(path) or not os.path.isfile(path):
                raise CarrierError("tftp_root: %s exists and is not a regular file: not replacing it" % path)
            st = os.lstat(path)
            same = _store_inode(store, wanted.digest, inodes) == (st.st_dev, st.st_ino)
            current = wanted.digest if same else file_sha256(path)
        status = "added" if current is None else ("unchanged" if current == wanted.digest else "modified")
        out[rel] = RootFile(wanted, current, status)
    return out


def plan_trees(source, nodes, tftp_root, renderer, prune=False, preserve=DEFAULT_PRESERVE):
    """Compute what every node directory must hold and how it differs from what is there."""
    store = Store(tftp_root)
    shared = {rel: Wanted(source.digest(rel), src=full) for rel, full in source.files.items()
              if rel not in RENDERED}
    inodes = {}  # digest -> (st_dev, st_ino) of its store object, or None
    plans = []
    for node in nodes:
        path = os.path.join(tftp_root, node.dirname)
        wanted, customized = _node_wanted(node, source, renderer, shared)
        plan = NodePlan(node, path, wanted, {}, [], customized=customized)
        current = {}
        if os.path.lexists(path):
            if not os.path.isdir(path) or os.path.islink(path):
                raise CarrierError("tftp_root: %s exists and is not a directory: not replacing it" % path)
            current = _scan_node_dir(path, wanted, store, inodes)
        plan.current = current
        for rel, w in wanted.items():
            if rel not in current:
                plan.added.append(rel)
            elif current[rel] != w.digest or (w.data is not None and _mode_of(path, rel) != w.mode):
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
    return TreePlan(tftp_root, plans, unlisted if prune else [], unlisted, info,
                    root_files=_plan_root_files(source, nodes, tftp_root, store, inodes))


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
        made = {""}  # directories of the new tree made so far, relative ("" is tmp itself)
        for rel, w in sorted(plan.wanted.items()):
            obj = store.put_bytes(w.data, w.digest, w.mode) if w.data is not None else store.put_file(w.src, w.digest)
            parent = rel.rpartition("/")[0]
            if parent not in made:
                os.makedirs(os.path.join(tmp, parent), mode=DIR_MODE, exist_ok=True)
                made.add(parent)
            os.link(obj, tmp + "/" + rel)
        for rel in plan.preserved:
            dest = os.path.join(tmp, *rel.split("/"))
            os.makedirs(os.path.dirname(dest), mode=DIR_MODE, exist_ok=True)
            os.link(os.path.join(plan.path, *rel.split("/")), dest)
        replace_dir(tmp, plan.path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _put_root_file(rel, root_file, store, tftp_root):
    """Link the store object in at ``tftp_root/rel`` with one rename (a ROM reads the old file or the new)."""
    obj = store.put_file(root_file.wanted.src, root_file.wanted.digest)
    tmp = tempfile.mkdtemp(prefix=".%s.new." % rel, dir=tftp_root)  # a stale one is a directory tree_lock removes
    try:
        os.link(obj, os.path.join(tmp, rel))
        os.rename(os.path.join(tmp, rel), os.path.join(tftp_root, rel))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def apply_trees(plan):
    """Write the node directories that change (each swapped in atomically), prune, collect garbage."""
    store = Store(plan.tftp_root)
    pruned = []
    try:
        for n in plan.nodes:
            if n.changed:
                _build_node_dir(n, store, plan.tftp_root)
        for rel, root_file in sorted(plan.root_files.items()):
            if root_file.status != "unchanged":
                _put_root_file(rel, root_file, store, plan.tftp_root)
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
                     config_template=None, cmdline_template=None, exclude=(), check_mode=False, warn=None,
                     customize=None):
    """Everything ``netboot_assets`` does. Returns ``(changed, result, diff)``. ``customize``: the
    first-boot customisation every node gets under its own ``customize``."""
    specs = parse_nodes(nodes, tftp_prefix, customize=customize)
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
        "root_files": {rel: r.status for rel, r in sorted(plan.root_files.items())},
        "store": {"objects": objects, "bytes": size, "bytes_written": applied["store_bytes_written"],
                  "objects_removed": applied["store_objects_removed"]},
    }
    return plan.changed, result, plan.diff()
