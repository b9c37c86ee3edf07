# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_fileio: the one atomic write."""

from __future__ import annotations

import os

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._fileio import (
    KEEP, atomic_write, atomic_write_many, read_optional,
)


class OwnError(CarrierError):
    pass


def test_keep_keeps_mode_and_leaves_no_temp(tmp_path):
    path = tmp_path / "cmdline.txt"
    path.write_text("old\n")
    os.chmod(path, 0o600)
    inode = path.stat().st_ino
    atomic_write(str(path), "new\n", mode=KEEP)
    assert path.read_text() == "new\n"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.stat().st_ino != inode  # replaced, not rewritten in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cmdline.txt"]


def test_new_file_gets_the_mode_and_directories_are_made(tmp_path):
    path = tmp_path / "a" / "b" / "key.pem"
    atomic_write(str(path), b"secret", mode=0o600)
    assert path.read_bytes() == b"secret"
    assert path.stat().st_mode & 0o777 == 0o600
    assert atomic_write(str(tmp_path / "n.txt"), "x", mode=KEEP) is None
    assert (tmp_path / "n.txt").stat().st_mode & 0o777 == 0o644


def test_error_names_path_and_uses_the_callers_class(tmp_path):
    with pytest.raises(CarrierError, match="nodir/config.txt: cannot write"):
        atomic_write(str(tmp_path / "nodir" / "config.txt"), "x", makedirs=False)
    with pytest.raises(OwnError):
        atomic_write(str(tmp_path / "nodir" / "config.txt"), "x", makedirs=False, error=OwnError)


def test_failed_rename_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "f"
    path.write_text("old")

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(CarrierError, match="No space left on device"):
        atomic_write(str(path), "new")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_read_optional(tmp_path):
    assert read_optional(str(tmp_path / "none")) is None
    (tmp_path / "f").write_bytes(b"\x00\x01")
    assert read_optional(str(tmp_path / "f")) == b"\x00\x01"


def test_many_stages_every_file_before_renaming_any(tmp_path):
    first = tmp_path / "cmdline.txt"
    first.write_text("old cmdline\n")
    with pytest.raises(CarrierError, match="nodir/config.txt: cannot write"):
        atomic_write_many([(str(first), "new cmdline\n"), (str(tmp_path / "nodir" / "config.txt"), "x")],
                          makedirs=False)
    assert first.read_text() == "old cmdline\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cmdline.txt"]


def test_many_puts_back_what_was_renamed_when_a_later_rename_fails(tmp_path, monkeypatch):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    a.write_text("old a")
    c.write_text("old c")
    real_replace = os.replace

    def replace(src, dst):
        if os.path.basename(dst) == "c":
            raise OSError(30, "Read-only file system")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(CarrierError, match="c: cannot write: Read-only file system"):
        atomic_write_many([(str(a), "new a"), (str(b), "new b"), (str(c), "new c")])
    monkeypatch.setattr(os, "replace", real_replace)
    assert a.read_text() == "old a"
    assert not b.exists()  # it did not exist before: removed again
    assert c.read_text() == "old c"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "c"]


def test_many_writes_all(tmp_path):
    atomic_write_many([(str(tmp_path / "x"), b"1"), (str(tmp_path / "y"), "2")], mode=0o600)
    assert (tmp_path / "x").read_bytes() == b"1" and (tmp_path / "y").read_text() == "2"
    assert (tmp_path / "y").stat().st_mode & 0o777 == 0o600
