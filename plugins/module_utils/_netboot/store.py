# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The content-addressed store of a TFTP root: ``<tftp_root>/.store/sha256/ab/<digest>``, one file per
content, hard-linked into every node directory that holds it."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._fileio import atomic_write
from ansible_collections.picluster.carrier.plugins.module_utils._netboot.sources import file_sha256


STORE_DIR = ".store"
FILE_MODE = 0o644
DIR_MODE = 0o755


class Store:
    """``<tftp_root>/.store/sha256/ab/<digest>``: one file per content, hard-linked into node dirs."""

    def __init__(self, tftp_root):
        self.root = os.path.join(tftp_root, STORE_DIR, "sha256")
        self.bytes_written = 0
        # Objects this Store has seen in place (with their mode): the 2nd to 100th node directory
        # linking an object need not stat it again.
        self._present = set()

    def path(self, digest):
        return "%s/%s/%s" % (self.root, digest[:2], digest)

    def has(self, digest):
        return os.path.isfile(self.path(digest))

    def put_file(self, src, digest):
        dest = self.path(digest)
        if digest in self._present:
            return dest
        if os.path.isfile(dest):
            self._present.add(digest)
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
        self._present.add(digest)
        return dest

    def put_bytes(self, data, digest, mode=FILE_MODE):
        """The object of ``data`` with ``mode``. A mode follows from the content (0600 for one holding
        a password hash), so fixing an object's mode is right for every directory linking it."""
        dest = self.path(digest)
        if (digest, mode) in self._present:
            return dest
        if not os.path.isfile(dest):
            atomic_write(dest, data, mode)
            self.bytes_written += len(data)
        elif stat.S_IMODE(os.lstat(dest).st_mode) != mode:
            os.chmod(dest, mode)
        self._present.add((digest, mode))
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
