# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_netboot.trees: TFTP trees (store, hard links, atomic swap, idempotence, prune, preserve)."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest
from netboot_fixtures import CMDLINE_TXT, CONFIG_TXT, NODES, build, make_boot_dir, tree

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._models import is_node_dirname
from ansible_collections.picluster.carrier.plugins.module_utils._netboot import trees as N
from ansible_collections.picluster.carrier.plugins.module_utils._netboot.store import STORE_DIR


@pytest.fixture
def boot(tmp_path):
    return make_boot_dir(tmp_path / "boot")


def test_build_hard_links_renders_and_is_idempotent(tmp_path, boot):
    tftp = tmp_path / "tftp"
    changed, result, diff = build(boot, tftp)
    assert changed is True
    assert result["changed_nodes"] == ["node01", "node02", "node03"]
    assert sorted(os.listdir(tftp)) == [N.LOCK_FILE, STORE_DIR, "1a466884", "8306d03b", "b7f44626"]
    files = set(os.listdir(tftp / "b7f44626"))
    assert {"start4.elf", "fixup4.dat", "kernel8.img", "config.txt", "cmdline.txt", "overlays"} <= files
    # One copy of each shared file: the same inode in every node directory and in the store.
    inodes = {os.stat(tftp / d / "start4.elf").st_ino for d in ("b7f44626", "8306d03b", "1a466884")}
    assert len(inodes) == 1
    assert os.stat(tftp / "b7f44626" / "start4.elf").st_nlink == 4
    digest = hashlib.sha256((tftp / "b7f44626" / "start4.elf").read_bytes()).hexdigest()
    assert os.stat(tftp / ".store" / "sha256" / digest[:2] / digest).st_ino in inodes
    overlay = (tmp_path / "boot/overlays/dwc2.dtbo").read_bytes()
    assert (tftp / "b7f44626" / "overlays" / "dwc2.dtbo").read_bytes() == overlay
    # Rendered per node.
    assert (tftp / "b7f44626" / "cmdline.txt").read_text() == (
        "console=serial0,115200 console=tty1 root=/dev/nfs nfsroot=10.0.0.1:/srv/nfs/node01,vers=4.1,proto=tcp "
        "rw ip=dhcp rootwait\n")
    assert (tftp / "8306d03b" / "cmdline.txt").read_text() == (
        "console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 fsck.repair=yes rootwait "
        "quiet\n")
    assert (tftp / "1a466884" / "cmdline.txt").read_text() == CMDLINE_TXT  # the source's, unchanged
    config = (tftp / "b7f44626" / "config.txt").read_text()
    assert config.startswith(CONFIG_TXT) and "node01 (cm4, serial 10000000b7f44626)" in config
    assert "b7f44626/start4.elf" in diff["after"] and diff["before"] == ""
    assert result["store"]["bytes_written"] == result["store"]["bytes"]
    # Second run: nothing changes, nothing is rewritten.
    before = {p: os.stat(tftp / p).st_mtime_ns for p in tree(tftp)}
    changed, result, diff = build(boot, tftp)
    assert changed is False and result["changed_nodes"] == []
    assert all(n["unchanged"] == 9 and not n["changed"] for n in result["nodes"].values())
    assert diff["before"] == diff["after"] == ""
    assert {p: os.stat(tftp / p).st_mtime_ns for p in tree(tftp)} == before
    assert result["store"]["bytes_written"] == 0


def test_one_node_change_touches_only_that_node_and_file(tmp_path, boot):
    tftp = tmp_path / "tftp"
    build(boot, tftp)
    ino_other = os.stat(tftp / "8306d03b").st_ino
    nodes = [dict(NODES[0], extra_kernel_args="ip=dhcp quiet")] + NODES[1:]
    changed, result, diff = build(boot, tftp, nodes)
    assert changed is True and result["changed_nodes"] == ["node01"]
    assert result["nodes"]["node01"]["modified"] == ["cmdline.txt"]
    assert result["nodes"]["node01"]["added"] == result["nodes"]["node01"]["removed"] == []
    assert os.stat(tftp / "8306d03b").st_ino == ino_other  # not rebuilt
    assert (tftp / "b7f44626" / "cmdline.txt").read_text().endswith("rootwait ip=dhcp quiet\n")
    assert "8306d03b" not in diff["after"] and "b7f44626/cmdline.txt" in diff["after"]
    # The old cmdline.txt of node01 is no longer used by anything: gone from the store.
    assert result["store"]["objects_removed"] == 1


def test_check_mode_writes_nothing(tmp_path, boot):
    tftp = tmp_path / "tftp"
    changed, result, diff = build(boot, tftp, check_mode=True)
    assert changed is True and result["changed_nodes"] == ["node01", "node02", "node03"]
    assert not tftp.exists()
    build(boot, tftp)
    snapshot = tree(tftp)
    (tmp_path / "boot" / "kernel8.img").write_bytes(b"new kernel")
    changed, result, diff = build(boot, tftp, check_mode=True)
    assert changed is True
    assert all(n["modified"] == ["kernel8.img"] for n in result["nodes"].values())
    assert tree(tftp) == snapshot
    assert not [n for n in os.listdir(tftp) if n.startswith(".") and n not in (STORE_DIR, N.LOCK_FILE)]


def test_source_change_updates_every_node_and_collects_garbage(tmp_path, boot):
    tftp = tmp_path / "tftp"
    build(boot, tftp)
    old = hashlib.sha256((tmp_path / "boot" / "kernel8.img").read_bytes()).hexdigest()
    (tmp_path / "boot" / "kernel8.img").write_bytes(b"kernel v2")
    os.unlink(tmp_path / "boot" / "overlays" / "dwc2.dtbo")
    changed, result, _diff = build(boot, tftp)
    assert changed
    for n in result["nodes"].values():
        assert n["modified"] == ["kernel8.img"] and n["removed"] == ["overlays/dwc2.dtbo"]
    assert (tftp / "1a466884" / "kernel8.img").read_bytes() == b"kernel v2"
    assert not (tftp / ".store" / "sha256" / old[:2] / old).exists()
    assert result["store"]["objects_removed"] == 2


def test_prune_only_when_asked(tmp_path, boot):
    tftp = tmp_path / "tftp"
    build(boot, tftp)
    (tftp / "not-a-node").mkdir()
    (tftp / "README").write_text("keep me")
    changed, result, _diff = build(boot, tftp, NODES[:2])
    assert changed is False and result["unlisted"] == ["1a466884"] and result["pruned"] == []
    assert (tftp / "1a466884" / "start4.elf").exists()
    changed, result, diff = build(boot, tftp, NODES[:2], prune=True, check_mode=True)
    assert changed is True and result["pruned"] == ["1a466884"] and "1a466884/ (pruned)" in diff["before"]
    assert (tftp / "1a466884").exists()
    changed, result, _diff = build(boot, tftp, NODES[:2], prune=True)
    assert changed is True and result["pruned"] == ["1a466884"] and result["unlisted"] == []
    assert not (tftp / "1a466884").exists()
    assert (tftp / "not-a-node").is_dir() and (tftp / "README").read_text() == "keep me"
    # The store kept only what the two remaining nodes use (their config/cmdline + shared files).
    assert result["store"]["objects_removed"] == 2


def test_preserved_self_update_survives_rebuild_and_strays_go(tmp_path, boot):
    tftp = tmp_path / "tftp"
    build(boot, tftp, NODES[:1])
    (tftp / "b7f44626" / "pieeprom.upd").write_bytes(b"\x55" * 64)
    (tftp / "b7f44626" / "pieeprom.sig").write_text("x\n")
    (tftp / "b7f44626" / "stray.txt").write_text("left by hand")
    changed, result, _diff = build(boot, tftp, [dict(NODES[0], config=["dtoverlay=disable-wifi"])])
    node = result["nodes"]["node01"]
    assert changed and node["modified"] == ["config.txt"] and node["removed"] == ["stray.txt"]
    assert node["preserved"] == ["pieeprom.sig", "pieeprom.upd"]
    assert (tftp / "b7f44626" / "pieeprom.upd").read_bytes() == b"\x55" * 64
    assert not (tftp / "b7f44626" / "stray.txt").exists()
    assert (tftp / "b7f44626" / "config.txt").read_text().endswith("[all]\ndtoverlay=disable-wifi\n")
    assert build(boot, tftp, [dict(NODES[0], config=["dtoverlay=disable-wifi"])])[0] is False


def test_mac_directories(tmp_path, boot):
    tftp = tmp_path / "tftp"
    nodes = [{"name": "n1", "mac": "DC:A6:32:01:36:C2", "root": "/dev/mmcblk0p2"},
             {"name": "n2", "serial": "b7f44626", "mac": "dc-a6-32-01-36-c3", "tftp_prefix": "serial"}]
    _changed, result, _diff = build(boot, tftp, nodes, tftp_prefix="mac")
    assert result["nodes"]["n1"]["dirname"] == "dc-a6-32-01-36-c2"
    assert result["nodes"]["n2"]["dirname"] == "b7f44626"
    assert (tftp / "dc-a6-32-01-36-c2" / "start4.elf").exists()
    assert is_node_dirname("dc-a6-32-01-36-c2") and not is_node_dirname("dc-a6-32")


def test_leftovers_of_a_killed_run_are_removed(tmp_path, boot):
    tftp = tmp_path / "tftp"
    build(boot, tftp, NODES[:1])
    (tftp / ".b7f44626.new.abc123" / "overlays").mkdir(parents=True)
    (tftp / ".prune.xyz").mkdir()
    (tftp / ".keep-me").mkdir()
    changed, _result, _diff = build(boot, tftp, [dict(NODES[0], extra_kernel_args=["quiet"])])
    assert changed
    assert sorted(os.listdir(tftp)) == [".keep-me", N.LOCK_FILE, STORE_DIR, "b7f44626"]


def test_node_dir_that_is_a_file_is_refused(tmp_path, boot):
    tftp = tmp_path / "tftp"
    tftp.mkdir()
    (tftp / "b7f44626").write_text("not a dir")
    with pytest.raises(CarrierError, match="b7f44626 exists and is not a directory"):
        build(boot, tftp, NODES[:1])
    assert (tftp / "b7f44626").read_text() == "not a dir"


def _snapshot_dir(path):
    """The file set and cmdline of the directory instance at ``path``, read through one fd; "old" when
    that instance was swapped out meanwhile (a reader arriving now gets the new one)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return None
    try:
        names = frozenset(os.listdir(fd))
        cfd = os.open("cmdline.txt", os.O_RDONLY, dir_fd=fd)
        with os.fdopen(cfd, "rb") as f:
            cmdline = f.read()
        if os.stat(path).st_ino != os.fstat(fd).st_ino:
            return "old"
        return names, cmdline
    except FileNotFoundError:
        return "old"
    finally:
        os.close(fd)


@pytest.mark.parametrize("exchange", [True, False])
def test_readers_never_see_a_half_written_tree(tmp_path, boot, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(N, "_exchange", lambda a, b: False)
    tftp = tmp_path / "tftp"
    build(boot, tftp, NODES[:1])
    full = frozenset(os.listdir(tftp / "b7f44626"))
    seen, stop = [], threading.Event()

    def reader():
        while not stop.is_set():
            seen.append(_snapshot_dir(str(tftp / "b7f44626")))

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(15):
            build(boot, tftp, [dict(NODES[0], extra_kernel_args=["run=%d" % i])])
    finally:
        stop.set()
        t.join()
    trees = [s for s in seen if isinstance(s, tuple)]
    assert len(trees) > 15
    for names, cmdline in trees:
        assert names == full, "a reader saw a partial directory: %s" % sorted(full - names)
        assert cmdline.startswith(b"console=serial0")
    if exchange:  # with RENAME_EXCHANGE the path always resolves to a directory
        assert None not in seen
    assert (tftp / "b7f44626" / "cmdline.txt").read_text().endswith("run=14\n")
