# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Files written whole or not at all: the one atomic write of the library.

A reader (a bootloader, a dnsmasq, another fork) sees either the old file or the new one, never
half of one: the data goes to a temporary file in the same directory (so the rename stays on one
file system), is flushed to storage, and is renamed over the target. A secret is born with its
final mode (the temporary file is created 0600 and only widened, never narrowed, afterwards).
"""

from __future__ import annotations

import os
import tempfile

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError

KEEP = "keep"


def read_optional(path):
    """The bytes of ``path``, or None when it does not exist."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise CarrierError("%s: cannot read: %s" % (path, e.strerror or e)) from e


def _target_mode(path, mode):
    """``mode``, or with ``mode=KEEP`` the existing file's mode and owner (0644 for a new file)."""
    if mode != KEEP:
        return mode, None
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return 0o644, None
    return st.st_mode & 0o7777, (st.st_uid, st.st_gid)


def atomic_write(path, data, mode=0o644, makedirs=True, error=CarrierError):
    """Replace ``path`` by ``data`` (bytes, or str written as UTF-8) atomically and durably.

    ``mode``: the new file's permission bits, or ``KEEP`` to keep those (and the owner) of the file
    being replaced. Boot partitions are FAT, whose modes are fixed by the mount: a refused chmod
    there is not an error. ``error``: the exception class raised (a module's own CarrierError
    subclass); its message names the path and the reason. Nothing is left behind on failure.
    """
    atomic_write_many([(path, data)], mode=mode, makedirs=makedirs, error=error)


def atomic_write_many(items, mode=0o644, makedirs=True, error=CarrierError):
    """Replace several files that belong together (cmdline.txt and config.txt, boot.img and boot.sig).

    ``items``: ``(path, data)`` pairs. Every file is staged (written and flushed to storage beside
    its target) before the first rename, so a full disk, a read-only directory or a refused
    permission changes none of them. The renames then follow one another; should one of them fail,
    the files already renamed get their old contents back, so the set is never left half old, half
    new by an error (a power cut between two renames still can: no file system renames two files as
    one step).
    """
    staged = []
    try:
        for path, data in items:
            staged.append((path, _stage(path, data, mode, makedirs, error), read_optional(path)))
        done = []
        for path, tmp, old in staged:
            try:
                os.replace(tmp, path)
            except OSError as e:
                _restore(done, mode, error)
                raise error("%s: cannot write: %s" % (path, e.strerror or e)) from e
            done.append((path, old))
            _fsync_dir(os.path.dirname(os.path.abspath(path)))
    finally:
        for _path, tmp, _old in staged:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _restore(done, mode, error):
    """Put back the files of a multi-file write that were already renamed (new files are removed)."""
    for path, old in reversed(done):
        if old is None:
            try:
                os.unlink(path)
            except OSError:
                pass
        else:
            atomic_write(path, old, mode=mode, makedirs=False, error=error)


def _stage(path, data, mode, makedirs, error):
    """Write ``data`` to a flushed temporary file beside ``path`` with the final mode; its name."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    final_mode, owner = _target_mode(path, mode)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        if makedirs:
            os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=directory)
    except OSError as e:
        raise error("%s: cannot write: %s" % (path, e.strerror or e)) from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.chmod(tmp, final_mode)
            if owner is not None:
                os.chown(tmp, *owner)
        except PermissionError:
            pass
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise error("%s: cannot write: %s" % (path, e.strerror or e)) from e
        raise
    return tmp


def _fsync_dir(directory):
    """Make the rename itself durable; file systems that cannot fsync a directory are left as they are."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
