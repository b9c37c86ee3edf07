# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""First-boot customisation of a node's OS: host name, users and SSH keys, SSH, time zone, locale,
keyboard, network, Wi-Fi off; written into an image's FAT boot partition or a netboot tree.

- :func:`check_customize` (from ``_firstboot_check``) validates the ``customize`` option before
  anything is touched;
- :func:`seed_files` renders the files of a style (``_firstboot_render`` says what each holds);
- :func:`apply_to_image` writes them into the FAT boot partition of an image file or a block device
  with mtools (never mounted) and edits ``cmdline.txt``, then reads everything back;
- :func:`apply_to_dir` does the same in a directory (a netboot node's boot tree), atomically;
- :func:`fingerprint` is a SHA-256 over everything rendered (secrets included, never returned), the
  key of a caller's "already customised" record.

Styles: ``cloud-init`` (NoCloud seed files: Raspberry Pi OS from Trixie, Ubuntu), ``firstrun``
(rpi-imager's ``firstrun.sh``: Raspberry Pi OS Bullseye and Bookworm) and ``auto``: cloud-init when
the boot partition already holds a ``user-data``, ``meta-data`` or ``network-config`` (the images
that read them ship them), else firstrun when it holds a ``cmdline.txt``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass, field as dc_field

from ansible_collections.picluster.carrier.plugins.module_utils import _fat
from ansible_collections.picluster.carrier.plugins.module_utils import _firstboot_render as R
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError, InvalidValue
from ansible_collections.picluster.carrier.plugins.module_utils._fileio import KEEP, atomic_write_many, read_optional
from ansible_collections.picluster.carrier.plugins.module_utils._firstboot_check import (
    HIDDEN, Customization, Network, User, check_customize)

__all__ = ["HIDDEN", "Applied", "Customization", "Network", "User", "apply_to_dir", "apply_to_image", "check_customize",
           "edit_cmdline", "fingerprint", "is_empty", "plan_files", "resolve_style", "seed_files"]

SEED_NAMES = ("user-data", "meta-data", "network-config")
FIRSTRUN = "firstrun.sh"
CMDLINE = "cmdline.txt"
# Every file this library may read or write in a boot partition.
MANAGED = SEED_NAMES + (FIRSTRUN, CMDLINE)
# Bumped when the rendering changes: a record made by an older rendering then no longer matches.
RENDER_VERSION = "1"


@dataclass
class Applied:
    """What :func:`apply_to_image` / :func:`apply_to_dir` did. ``files`` holds the written bytes,
    secrets included: never return it; :meth:`result` is the part a module may return."""

    style: str
    changed: bool
    files: dict = dc_field(repr=False)
    removed: tuple = ()

    @property
    def digests(self):
        return {name: hashlib.sha256(data).hexdigest() for name, data in sorted(self.files.items())}

    def result(self):
        return {"style": self.style, "changed": self.changed, "files": sorted(self.files),
                "removed": list(self.removed), "sha256": self.digests}


def is_empty(cust):
    """Whether the customisation asks for nothing (then nothing is written)."""
    return cust == Customization(style=cust.style)


def _cloud_init_files(cust):
    ud = R.user_data(cust)
    nc = R.network_config(cust)
    iid = R.instance_id(ud, nc, cust.hostname)
    files = {"user-data": ud, "meta-data": R.meta_data(iid, cust.hostname)}
    if nc is not None:
        files["network-config"] = nc
    return files, iid


def seed_files(cust, style=None):
    """``{file name in the boot partition: bytes}`` for ``style`` (default: the customisation's),
    ``cmdline.txt`` aside (it is the image's own, edited: :func:`edit_cmdline`)."""
    style = _concrete(style or cust.style)
    if is_empty(cust):
        return {}
    if style == "cloud-init":
        return _cloud_init_files(cust)[0]
    return {FIRSTRUN: R.firstrun_sh(cust)}


def edit_cmdline(text, cust, style=None):
    """The kernel command line ``text`` with this customisation's words (one line, ``\\n``-terminated)."""
    style = _concrete(style or cust.style)
    iid = _cloud_init_files(cust)[1] if style == "cloud-init" and not is_empty(cust) else None
    return R.edit_cmdline(text, style if not is_empty(cust) else None, iid, cust.wifi_country)


def _concrete(style):
    if style not in ("cloud-init", "firstrun"):
        raise InvalidValue("customize.style", "%r must be resolved against the boot partition first (cloud-init or "
                           "firstrun; auto is resolved by apply_to_image and apply_to_dir)" % (style,), style)
    return style


def resolve_style(cust, present, where):
    """The style to write, given the names of the files ``present`` in the boot partition."""
    if cust.style != "auto":
        return cust.style
    names = {n.lower() for n in present}
    if names & set(SEED_NAMES):
        return "cloud-init"
    if CMDLINE in names:
        return "firstrun"
    raise InvalidValue("customize.style", "auto: %s has neither cloud-init seed files (user-data, meta-data, "
                       "network-config) nor a cmdline.txt: set cloud-init or firstrun" % where, "auto")


def fingerprint(cust):
    """SHA-256 (hex) over every file the customisation renders, in each style it may take, and the
    kernel command line words; secrets included, so a changed password hash changes it."""
    h = hashlib.sha256(("picluster.carrier firstboot v%s\0" % RENDER_VERSION).encode())
    styles = ("cloud-init", "firstrun") if cust.style == "auto" else (cust.style,)
    for style in styles:
        h.update(style.encode() + b"\0")
        for name, data in sorted(seed_files(cust, style).items()):
            h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
        h.update(edit_cmdline("", cust, style).encode() + b"\0")
    return h.hexdigest()


def plan_files(cust, present, where):
    """From ``present`` ({name: bytes or None} of MANAGED): the style, every file it wants
    ({name: bytes}), those of them that differ from what is there, and the names to remove."""
    style = resolve_style(cust, [n for n, v in present.items() if v is not None], where)
    files = seed_files(cust, style)
    if files or cust.wifi_country:
        cmdline = present.get(CMDLINE)
        if cmdline is None:
            if style == "firstrun":
                raise CarrierError("customize.style: firstrun needs the boot partition's cmdline.txt for its hook, "
                                   "and %s has none" % where)
        else:
            files[CMDLINE] = edit_cmdline(cmdline.decode("utf-8", "replace"), cust, style).encode("utf-8")
    # A firstrun.sh left by an earlier customisation would run again through a stale hook.
    removed = (FIRSTRUN,) if style == "cloud-init" and files and present.get(FIRSTRUN) is not None else ()
    changes = {n: d for n, d in files.items() if present.get(n) != d}
    return style, files, changes, removed


def apply_to_image(path, cust, lock=None, timestamp=None):
    """Write the customisation into the FAT boot partition of ``path`` (an image file or a block
    device) and read it back. ``lock``: a context manager held from the first read to the last
    check (the caller's per-device lock), or None. Returns :class:`Applied`; unchanged files are
    not rewritten, so a second run with the same customisation changes nothing."""
    with lock if lock is not None else contextlib.nullcontext():
        offset, description = _fat.find_fat_partition(path, field="customize")
        where = "%s (%s)" % (path, description)
        present = {name: _fat.read_file(path, offset, name, what=where) for name in MANAGED}
        style, files, changes, removed = plan_files(cust, present, where)
        if changes:
            _fat.copy_in(path, offset, changes, timestamp=timestamp, what=where, field="customize")
        for name in removed:
            _fat.run(["mdel", "-i", _fat.target(path, offset), "::/" + name], where)
        for name, data in files.items():
            if _fat.read_file(path, offset, name, what=where) != data:
                raise CarrierError("customize: %s: %s read back differs from what was written" % (where, name))
        for name in removed:
            if _fat.read_file(path, offset, name, what=where) is not None:
                raise CarrierError("customize: %s: %s is still there after its removal" % (where, name))
    return Applied(style=style, changed=bool(changes or removed), files=files, removed=removed)


def _mode(name, cust):
    """Files holding a password hash are the owner's alone; firstrun.sh must stay executable."""
    if name == FIRSTRUN:
        return 0o700 if cust.has_secrets else 0o755
    if name == "user-data" and cust.has_secrets:
        return 0o600
    if name == CMDLINE:
        return KEEP
    return 0o644


def apply_to_dir(path, cust):
    """Write the customisation into the boot directory ``path`` (a netboot node's tree). Seed
    files are written before ``cmdline.txt``, so its hook never points at a missing script."""
    if not os.path.isdir(path):
        raise CarrierError("customize: %s is not a directory" % path)
    present = {name: read_optional(os.path.join(path, name)) for name in MANAGED}
    style, files, changes, removed = plan_files(cust, present, path)
    by_mode = {}
    for name in sorted(changes, key=lambda n: n == CMDLINE):
        by_mode.setdefault(_mode(name, cust), []).append((os.path.join(path, name), changes[name]))
    for mode in sorted(by_mode, key=lambda m: m == KEEP):
        atomic_write_many(by_mode[mode], mode=mode, makedirs=False)
    for name in removed:
        try:
            os.unlink(os.path.join(path, name))
        except FileNotFoundError:
            pass
        except OSError as e:
            raise CarrierError("customize: cannot remove %s: %s" % (os.path.join(path, name), e.strerror or e)) from e
    return Applied(style=style, changed=bool(changes or removed), files=files, removed=removed)
