# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The "already flashed" record: what the controller last wrote to a node's storage and verified.

One JSON file per node host, ``<state_dir>/<host>.json`` (default
``/var/lib/picluster-carrier/flash``). It is removed (and the removal made durable) BEFORE the first
byte is written, and written again only once the device has been read back and verified, so a write
that is interrupted (task killed, controller power lost, image corrupt half-way) leaves no record
and the next run writes again. A re-run whose image (by SHA-256), bmap, customisation (by
fingerprint), board, slot, USB port and storage match the record is unchanged: the node is neither
power-cycled nor read. The record cannot see what happened to the storage since (a node that booted
changes its own file systems; another tool may have rewritten it): ``force`` rewrites.

The record also keeps the image file's identity (size, mtime, inode), so that a re-run on the same,
untouched file trusts the SHA-256 it computed before instead of reading the file again.
"""

from __future__ import annotations

import contextlib
import json
import os

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._fileio import atomic_write
from ansible_collections.picluster.carrier.plugins.module_utils._values import check_name

DEFAULT_STATE_DIR = "/var/lib/picluster-carrier/flash"
FORMAT = 1
#: The fields of a record that must all match for a re-run to be unchanged.
KEY_FIELDS = ("image_sha256", "bmap_sha256", "customize_fingerprint", "board", "slot", "usb_port", "storage")


def record_path(state_dir, host):
    check_name(host, "host", what="host name")
    return os.path.join(state_dir or DEFAULT_STATE_DIR, host + ".json")


def file_identity(path):
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino, "device": st.st_dev}


def load(path):
    """The record, or None when there is none (or it is unreadable: then it proves nothing)."""
    try:
        with open(path) as handle:
            record = json.load(handle)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        return None
    return record


def matches(record, wanted):
    """Whether ``record`` proves that what ``wanted`` describes is on the node already."""
    return record is not None and all(record.get(k) == wanted.get(k) for k in KEY_FIELDS)


def known_sha256(record, image_path):
    """The image's SHA-256 from the record when the file is the very one hashed then, else None."""
    if not record or not record.get("image_identity") or not record.get("image_sha256"):
        return None
    try:
        same = record["image_identity"] == file_identity(image_path) and record.get("image") == image_path
    except OSError:
        return None
    return record["image_sha256"] if same else None


def invalidate(path):
    """Remove the record and make the removal durable (before anything is written to the device)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise CarrierError("state_dir: cannot remove %s: %s" % (path, exc.strerror or exc)) from None
    directory = os.path.dirname(os.path.abspath(path))
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def save(path, record):
    data = dict(record, format=FORMAT)
    atomic_write(path, json.dumps(data, indent=2, sort_keys=True) + "\n", mode=0o644)
