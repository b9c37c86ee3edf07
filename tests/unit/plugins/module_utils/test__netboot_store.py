# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_netboot.store: one file per content, hard links counted for garbage collection."""

from __future__ import annotations

import hashlib
import os

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._netboot.store import FILE_MODE, STORE_DIR, Store


def sha(data):
    return hashlib.sha256(data).hexdigest()


def test_put_once_link_and_collect(tmp_path):
    store = Store(str(tmp_path))
    src = tmp_path / "kernel8.img"
    src.write_bytes(b"kernel")
    a = store.put_file(str(src), sha(b"kernel"))
    assert a == str(tmp_path / STORE_DIR / "sha256" / sha(b"kernel")[:2] / sha(b"kernel"))
    assert store.put_file(str(src), sha(b"kernel")) == a and store.bytes_written == 6  # stored once
    b = store.put_bytes(b"config", sha(b"config"))
    assert store.put_bytes(b"config", sha(b"config")) == b and store.bytes_written == 12
    assert os.stat(a).st_mode & 0o777 == FILE_MODE and os.stat(b).st_mode & 0o777 == FILE_MODE
    assert store.has(sha(b"kernel")) and not store.has(sha(b"other"))
    assert store.usage() == (2, 12)
    os.link(a, tmp_path / "node-kernel")  # a node directory uses the kernel, nothing uses the config
    assert store.gc() == (1, 6)
    assert store.usage() == (1, 6) and os.path.exists(a) and not os.path.exists(b)
    assert not os.path.exists(os.path.dirname(b)) or os.path.dirname(b) == os.path.dirname(a)


def test_a_source_that_changes_while_copied_is_refused_and_leaves_nothing(tmp_path):
    store = Store(str(tmp_path))
    src = tmp_path / "start4.elf"
    src.write_bytes(b"new content")
    with pytest.raises(CarrierError, match=r"^source: .*start4.elf changed while it was being copied"):
        store.put_file(str(src), sha(b"old content"))
    directory = os.path.dirname(store.path(sha(b"old content")))
    assert os.listdir(directory) == []


def test_empty_store(tmp_path):
    assert Store(str(tmp_path)).gc() == (0, 0) and Store(str(tmp_path)).usage() == (0, 0)
