# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""FAT file systems inside disk images, and the partition tables (MBR, GPT) that locate them.

The one home for both: finding the FAT boot partition of an OS image (or a bare FAT image such
as a ``boot.img``), making a FAT file system (``mkfs.vfat``), and copying files out of it, into
it and reading one file, all with mtools at a byte offset of the image file (``image@@offset``).
Nothing is ever mounted: the controller may have no VFAT driver, and mtools needs no privileges.

The external tools run through a *runner* that the caller sets: a module passes
``module_runner(module)`` (commands run the way Ansible modules run them), tests and benchmarks a
subprocess one. ``runner(argv, env, cwd) -> (rc, stdout, stderr)``; ``env`` is the whole
environment of the command.
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._values import check_name, check_number

# FAT directory entries hold local dates from 1980 to 2107 (two-second steps); UTC here.
FAT_TIME_MIN = 315532800  # 1980-01-01T00:00:00Z
FAT_TIME_MAX = 4354819199  # 2107-12-31T23:59:59Z

# MBR partition types of FAT file systems (FAT12, FAT16 <32M, FAT16, FAT32 CHS/LBA, FAT16 LBA, EFI).
_MBR_FAT_TYPES = {0x01, 0x04, 0x06, 0x0B, 0x0C, 0x0E, 0xEF}
# MBR entries that never hold a file system: empty, extended (CHS, LBA, Linux).
_MBR_SKIP_TYPES = {0x00, 0x05, 0x0F, 0x85}
_GPT_FAT_GUIDS = {
    "c12a7328-f81f-11d2-ba4b-00a0c93ec93b",  # EFI system partition
    "ebd0a0a2-b9e5-4433-87c0-68b6b72699c7",  # Microsoft basic data
}


class FatFullError(CarrierError):
    """mtools ran out of room in the file system (its "Disk full"); callers say which option sets the size."""


# --- Partition tables ---------------------------------------------------------------------------


def guid(raw):
    """The text form of a GPT GUID (mixed-endian on disk)."""
    a, b, c = struct.unpack_from("<IHH", raw, 0)
    return "%08x-%04x-%04x-%s-%s" % (a, b, c, raw[8:10].hex(), raw[10:16].hex())


def is_fat_boot_sector(sector):
    """Whether 512 bytes are the boot sector of a FAT12/16/32 file system."""
    if len(sector) < 512 or sector[510:512] != b"\x55\xaa":
        return False
    bytes_per_sector = struct.unpack_from("<H", sector, 11)[0]
    if bytes_per_sector not in (512, 1024, 2048, 4096) or sector[13] == 0:
        return False
    return sector[54:57] == b"FAT" or sector[82:87] == b"FAT32"


def _mbr_candidates(head):
    out = []
    for i in range(4):
        entry = head[446 + 16 * i: 462 + 16 * i]
        ptype = entry[4]
        lba, count = struct.unpack_from("<II", entry, 8)
        if ptype in _MBR_SKIP_TYPES or lba == 0 or count == 0:
            continue
        out.append((lba * 512, "MBR partition %d (type 0x%02x)" % (i + 1, ptype), ptype in _MBR_FAT_TYPES))
    return out


def _gpt_candidates(f, path, field):
    f.seek(512)
    header = f.read(92)
    if header[:8] != b"EFI PART":
        raise CarrierError("%s: %s has a protective MBR but no GPT header at LBA 1" % (field, path))
    entries_lba, count, entry_size = struct.unpack_from("<QII", header, 72)
    if entry_size < 128 or count > 1024:
        raise CarrierError("%s: %s has a malformed GPT (entry size %d, %d entries)" % (field, path, entry_size, count))
    f.seek(entries_lba * 512)
    table = f.read(count * entry_size)
    out = []
    for i in range(count):
        entry = table[i * entry_size:(i + 1) * entry_size]
        if len(entry) < 128 or entry[:16] == b"\0" * 16:
            continue
        type_guid = guid(entry[:16])
        first = struct.unpack_from("<Q", entry, 32)[0]
        out.append((first * 512, "GPT partition %d (%s)" % (i + 1, type_guid), type_guid in _GPT_FAT_GUIDS))
    return out


def find_fat_partition(path, field="source"):
    """``(offset, description)`` of the first FAT partition of an image file or block device (MBR or GPT), or of the
    image itself when it is a bare FAT file system. A partition whose type says FAT is tried
    before the others; each must start with a FAT boot sector. CarrierError naming ``field``
    when there is none."""
    candidates = []
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)  # also the size of a block device (getsize says 0)
            f.seek(0)
            head = f.read(512)
            if len(head) < 512:
                raise CarrierError("%s: %s is %d bytes: not a disk image" % (field, path, size))
            if head[510:512] == b"\x55\xaa":
                if any(head[446 + 16 * i + 4] == 0xEE for i in range(4)):
                    candidates = _gpt_candidates(f, path, field)
                else:
                    candidates = _mbr_candidates(head)
            # A bare FAT file system (a boot.img): its own boot sector is the first sector.
            if not candidates and is_fat_boot_sector(head):
                return 0, "a FAT file system without a partition table"
            for offset, description, _typed in sorted(candidates, key=lambda c: not c[2]):
                if offset + 512 <= size:
                    f.seek(offset)
                    if is_fat_boot_sector(f.read(512)):
                        return offset, description
    except OSError as e:
        raise CarrierError("%s: cannot read %s: %s" % (field, path, e.strerror or e)) from e
    found = ", ".join(c[1] for c in candidates) or "no partition table"
    raise CarrierError("%s: %s has no FAT boot partition (%s)" % (field, path, found))


# --- Running mtools and mkfs.vfat -----------------------------------------------------------------

_RUNNER = None


def set_runner(runner):
    """Set how mtools and mkfs.vfat are run (see the module docstring)."""
    global _RUNNER
    _RUNNER = runner


def module_runner(module):
    """A runner for :func:`set_runner` from an AnsibleModule."""
    return lambda argv, env, cwd: module.run_command(argv, environ_update=env, cwd=cwd)


def mtools_env(timestamp=None):
    """The environment of an mtools command: no geometry check (images are files), long names,
    UTC (FAT times are local times), and ``SOURCE_DATE_EPOCH`` for the times mtools makes up."""
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1", MTOOLS_NO_VFAT="0", TZ="UTC", LC_ALL="C")
    if timestamp is not None:
        env["SOURCE_DATE_EPOCH"] = str(int(timestamp))
    return env


def _call(argv, what, env, cwd):
    if _RUNNER is None:
        raise CarrierError("%s: no command runner (call _fat.set_runner first)" % what)
    if shutil.which(argv[0]) is None:
        raise CarrierError("%s: %s is not installed (Debian packages mtools, dosfstools)" % (what, argv[0]))
    return _RUNNER(argv, env if env is not None else mtools_env(), cwd)


def run(argv, what, env=None, cwd=None):
    """Run a tool; its stdout. ``what`` starts the error message (the option or file concerned).
    A full file system is a :class:`FatFullError`."""
    rc, out, err = _call(argv, what, env, cwd)
    if rc != 0:
        text = (err or out or "").strip()
        if "disk full" in text.lower():
            raise FatFullError("%s: the FAT file system is full (%s)" % (what, " ".join(argv[:1])))
        raise CarrierError("%s: %s failed (rc %d): %s" % (what, " ".join(argv[:2]), rc, text[-400:]))
    return out


def target(image, offset):
    """mtools' name of the file system at byte ``offset`` of ``image``."""
    return "%s@@%d" % (image, offset)


def mkfs(image, label, volume_id, fat_bits=16, sectors_per_cluster=1, timestamp=None, what="boot.img"):
    """Make a FAT file system filling the (already sized) file ``image``, reproducibly:
    ``--invariant`` fixes what mkfs.vfat would otherwise take from the clock or at random."""
    # --invariant first: it also sets a volume id, which the -i after it overrides.
    run(["mkfs.vfat", "--invariant", "-F", str(fat_bits), "-S", "512", "-s", str(sectors_per_cluster),
         "-n", label, "-i", str(volume_id).lower(), image], what, env=mtools_env(timestamp))


# --- Files in and out ------------------------------------------------------------------------------


def extract(image, offset, dest, what=None):
    """Copy every file of the FAT file system at ``offset`` of ``image`` into directory ``dest``."""
    os.makedirs(dest, exist_ok=True)
    run(["mcopy", "-s", "-n", "-i", target(image, offset), "::/", dest], what or "source %s" % image)


def check_fat_path(name, field):
    """A relative path inside a FAT file system: ``/``-separated names, each a valid name
    (:func:`_values.check_name`: no ``..``, no absolute path, no NUL or line break)."""
    if not isinstance(name, str) or not name:
        raise CarrierError("%s: %r is not a file name" % (field, name))
    for part in name.split("/"):
        check_name(part, field, "file name (in %r)" % name)
    return name


def _existing_dirs(image, offset, what):
    """The directories of the file system (lower case, FAT names are case-insensitive)."""
    rc, out, err = _call(["mdir", "-/", "-b", "-i", target(image, offset), "::/"], what, None, None)
    if rc != 0:
        if "not found" in (err or out or ""):  # an empty file system: mdir finds nothing to list
            return set()
        raise CarrierError("%s: mdir failed (rc %d): %s" % (what, rc, (err or out).strip()[-400:]))
    return {line[3:].rstrip("/").lower() for line in out.splitlines() if line.startswith("::/") and line.endswith("/")}


def _stage(entries, names, staging, timestamp):
    """Put ``names`` (one directory's files) into ``staging``, one subdirectory each (their base
    names may repeat); returns the staged paths in the order of ``names``."""
    paths = []
    for i, rel in enumerate(names):
        staged = os.path.join(staging, str(i), rel.rsplit("/", 1)[-1])
        os.makedirs(os.path.dirname(staged))
        content = entries[rel]
        if isinstance(content, (bytes, bytearray)):
            with open(staged, "wb") as f:
                f.write(content)
        else:
            shutil.copyfile(content, staged)
        if timestamp is not None:
            os.utime(staged, (timestamp, timestamp))
        paths.append(staged)
    return paths


def write_files(image, offset, entries, timestamp=None, what=None, workdir=None):
    """Write ``entries`` ({relative path: bytes, or the path of a file to copy}) into the FAT file
    system at ``offset`` of ``image``, replacing files of the same name. Reproducible: missing
    directories are made in sorted order, then each directory's files are copied in sorted
    order, so the same input gives the same directory entries, short names and clusters every
    time; with ``timestamp`` every file gets that time (``SOURCE_DATE_EPOCH`` the directories).
    The names are not checked here: :func:`copy_in` checks them for callers with user input."""
    what = what or "%s (FAT at byte %d)" % (image, offset)
    fs = target(image, offset)
    env = mtools_env(timestamp)
    existing = _existing_dirs(image, offset, what)
    dirs = sorted({"/".join(rel.split("/")[:i]) for rel in entries for i in range(1, rel.count("/") + 1)})
    for d in dirs:
        if d.lower() not in existing:
            run(["mmd", "-i", fs, "::/" + d], what, env=env)
    by_dir = {}
    for rel in sorted(entries):
        by_dir.setdefault(rel.rsplit("/", 1)[0] if "/" in rel else "", []).append(rel)
    tmp = tempfile.mkdtemp(prefix=".fat-files.", dir=workdir)
    try:
        for parent in sorted(by_dir):
            staging = os.path.join(tmp, "files")
            paths = _stage(entries, by_dir[parent], staging, timestamp)
            # -o replaces a file of the same name without asking; -m keeps the staged file's time.
            run(["mcopy", "-o", "-m", "-i", fs] + paths + ["::/%s" % (parent + "/" if parent else "")], what, env=env)
            shutil.rmtree(staging)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def copy_in(image, offset, files, timestamp=None, what=None, field="files"):
    """Write ``files`` ({relative path: bytes}) into the FAT file system at ``offset`` of
    ``image`` (see :func:`write_files`), after checking every name (``<field>[<name>]`` in the
    error) and the timestamp (seconds since 1970, UTC), before anything is written."""
    for name, data in files.items():
        check_fat_path(name, "%s[%r]" % (field, name))
        if not isinstance(data, (bytes, bytearray)):
            raise CarrierError("%s[%r]: the content must be bytes, got %s" % (field, name, type(data).__name__))
    if timestamp is not None:
        timestamp = check_number(timestamp, "timestamp", FAT_TIME_MIN, FAT_TIME_MAX, integer=True,
                                 what="a time FAT can store (from %d to %d)" % (FAT_TIME_MIN, FAT_TIME_MAX))
    if files:
        write_files(image, offset, files, timestamp, what)


def read_file(image, offset, name, what=None, field="name"):
    """The bytes of file ``name`` of the FAT file system at ``offset`` of ``image``, or None when
    it has no such file. Copied out through a temporary file: binary-safe with any runner."""
    check_fat_path(name, field)
    what = what or "%s (FAT at byte %d)" % (image, offset)
    tmp = tempfile.mkdtemp(prefix=".fat-read.")
    try:
        out = os.path.join(tmp, "file")
        rc, stdout, err = _call(["mcopy", "-n", "-i", target(image, offset), "::/" + name, out], what, None, None)
        if rc != 0:
            if "not found" in (err or stdout or ""):
                return None
            raise CarrierError("%s: mcopy of %s failed (rc %d): %s" % (what, name, rc, (err or stdout).strip()[-400:]))
        with open(out, "rb") as f:
            return f.read()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
