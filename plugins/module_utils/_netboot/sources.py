# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Boot sources: a directory of boot files, or an OS image whose FAT boot partition is copied out
with mtools (``_fat``), and the checks that they can boot the nodes' models (docs/hardware.md section 6)."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import shutil
import tempfile

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._fat import extract, find_fat_partition
from ansible_collections.picluster.carrier.plugins.module_utils._models import MODELS


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
            extract(path, offset, top, what="source: %s" % path)
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
        """Raise when the source cannot boot the given models (docs/hardware.md section 6)."""
        socs = {MODELS[m].soc for m in models}
        names = set(self.files)
        lower = {n.lower() for n in names}
        if "bcm2711" in socs and "start4.elf" not in lower:
            raise CarrierError("source: %s has no start4.elf: not a Pi 4/CM4 boot partition (a %s file list: %s)"
                               % (self.path, self.kind, _sample(names)))
        if "bcm2837" in socs and not {"bootcode.bin", "start.elf"} <= lower:
            raise CarrierError("source: %s has no bootcode.bin and start.elf: not a Pi 3 boot partition (files: %s)"
                               % (self.path, _sample(names)))
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
