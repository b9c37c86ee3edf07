# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP boot (docs/hardware.md section 7): ``boot.img``, a raw FAT file system (no partition table, label
BOOT, at most 96 MB) made with ``mkfs.vfat`` and mtools, byte-for-byte reproducible (fixed volume id,
fixed timestamps), and ``boot.sig``, the ``.sig`` format of section 4 made by ``_eeprom.sig``."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import struct
import tempfile
from dataclasses import dataclass

from ansible_collections.picluster.carrier.plugins.module_utils._eeprom.sig import make_sig, sig_matches, verify_sig
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._fat import (
    FAT_TIME_MAX,
    FAT_TIME_MIN,
    FatFullError,
    mkfs,
    write_files,
)
from ansible_collections.picluster.carrier.plugins.module_utils._fileio import atomic_write, read_optional
from ansible_collections.picluster.carrier.plugins.module_utils._netboot.sources import BootSource, file_sha256
from ansible_collections.picluster.carrier.plugins.module_utils._netboot.store import FILE_MODE
from ansible_collections.picluster.carrier.plugins.module_utils._values import check_number


MAX_BOOT_IMG = 96 * 1024 * 1024  # bytes; the bootloader refuses a larger boot.img
# mkfs.vfat cannot make FAT16 (at least 4085 clusters) of 512-byte sectors in less.
MIN_BOOT_MB = 3
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


def _volume_id(entries):
    """The default volume id: derived from the names and contents, so the same files give the same image."""
    h = hashlib.sha256()
    for rel in sorted(entries):
        v = entries[rel]
        h.update(rel.encode() + b"\0")
        h.update((hashlib.sha256(v).hexdigest() if isinstance(v, bytes) else file_sha256(v)).encode())
    return h.hexdigest()[:8]


def _mib(size):
    return -(-size // (1024 * 1024))


def boot_image_bytes(entries, timestamp=DEFAULT_TIMESTAMP, volume_id=None, size=None, workdir=None):
    """Build a reproducible raw FAT image of ``entries`` ({rel: bytes-or-source-path}); returns bytes.
    ``size`` (bytes) is what ``size_mb`` asked for; without it the smallest size that holds the files."""
    sizes = {rel: len(v) if isinstance(v, bytes) else os.path.getsize(v) for rel, v in entries.items()}
    needed = _fat_size(sizes)
    if size is not None and size > MAX_BOOT_IMG:
        raise CarrierError("size_mb: %d MB is over the bootloader's limit of 96 MB for boot.img" % _mib(size))
    if size is None and needed > MAX_BOOT_IMG:
        raise CarrierError("source: its %d files (%d bytes, with config_txt and cmdline_txt) need a %d MB boot.img, "
                           "over the bootloader's limit of 96 MB: leave files out with exclude"
                           % (len(entries), sum(sizes.values()), _mib(needed)))
    if volume_id is None:
        volume_id = _volume_id(entries)
    if not re.match(r"^[0-9a-fA-F]{1,8}$", str(volume_id)):
        raise CarrierError("volume_id: %r must be up to 8 hex digits" % (volume_id,))
    want = size if size is not None else needed
    tmp = tempfile.mkdtemp(prefix=".boot-img.", dir=workdir)
    try:
        img = os.path.join(tmp, "boot.img")
        with open(img, "wb") as f:
            f.truncate(want)
        # FAT16 with 512-byte sectors: 4085 to 65524 clusters; the smallest cluster that keeps under the top.
        per_cluster = 1
        while want // (512 * per_cluster) > 65000:
            per_cluster *= 2
        mkfs(img, BOOT_LABEL, volume_id, fat_bits=16, sectors_per_cluster=per_cluster, timestamp=timestamp)
        try:
            write_files(img, 0, entries, timestamp=timestamp, what="source", workdir=tmp)
        except FatFullError:
            if size is None:
                raise
            raise CarrierError("size_mb: a %d MB boot.img cannot hold the %d files of source (%d bytes, with "
                               "config_txt and cmdline_txt); they need about %d MB (leave size_mb unset for the "
                               "smallest size that holds them)"
                               % (_mib(size), len(entries), sum(sizes.values()), _mib(needed))) from None
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
    if size_mb is not None and not MIN_BOOT_MB <= int(size_mb) <= 96:
        raise CarrierError("size_mb: %r must be from %d (the smallest FAT16 file system) to 96 (the bootloader's "
                           "limit for boot.img)" % (size_mb, MIN_BOOT_MB))
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
