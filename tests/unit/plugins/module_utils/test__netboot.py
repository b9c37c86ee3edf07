# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_netboot: node validation, TFTP trees (store, hard links, atomic swap, idempotence, prune), sources
(directories, MBR/GPT/bare FAT images read with mtools) and reproducible signed boot.img files."""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading

import pytest
from netboot_fixtures import CMDLINE_TXT, CONFIG_TXT, make_boot_dir, make_os_image, rsa_key, subprocess_runner

from ansible_collections.picluster.carrier.plugins.module_utils._eeprom import sig as E
from ansible_collections.picluster.carrier.plugins.module_utils import _keys as K
from ansible_collections.picluster.carrier.plugins.module_utils import _netboot as N
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._models import is_node_dirname

N.set_runner(subprocess_runner)

NODES = [
    {"name": "node01", "serial": "10000000b7f44626", "nfs_root": "10.0.0.1:/srv/nfs/node01"},
    {"name": "node02", "serial": "8306d03b", "root": "PARTUUID=4e639091-02", "extra_kernel_args": ["quiet"]},
    {"name": "node03", "serial": "100000001a466884", "mac": "e4:5f:01:e2:39:e5"},
]


@pytest.fixture
def boot(tmp_path):
    return make_boot_dir(tmp_path / "boot")


def tree(root):
    """{relative path: bytes} of every file under ``root`` except the store and lock."""
    out = {}
    for dirpath, dirnames, files in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != N.STORE_DIR]
        for name in files:
            if name == N.LOCK_FILE:
                continue
            full = os.path.join(dirpath, name)
            with open(full, "rb") as f:
                out[os.path.relpath(full, root)] = f.read()
    return out


def build(source, tftp, nodes=None, **kw):
    return N.build_tftp_trees(str(source), NODES if nodes is None else nodes, str(tftp), **kw)


# --- validation -------------------------------------------------------------------------------------


@pytest.mark.parametrize("serial,dirname", [("10000000B7F44626", "b7f44626"), ("b7f44626", "b7f44626"),
                                            ("0x10000000b7f44626", "b7f44626")])
def test_serial_forms(serial, dirname):
    assert N.parse_nodes([{"name": "a", "serial": serial}])[0].dirname == dirname


@pytest.mark.parametrize("nodes,match", [
    ([{"name": "a", "serial": "b7f4462"}], r"nodes\[0\]\.serial: 'b7f4462' is not a serial"),
    ([{"name": "a", "serial": "10000000b7f4462z"}], r"nodes\[0\]\.serial: '10000000b7f4462z'"),
    ([{"name": "a", "serial": "1000000b7f44626"}], r"nodes\[0\]\.serial"),
    ([{"name": "a", "serial": "b7f44626", "mac": "dc:a6:32:01:36"}], r"nodes\[0\]\.mac: 'dc:a6:32:01:36' is not a MAC"),
    ([{"name": "a", "serial": "b7f44626", "mac": "dc:a6-32:01:36:c2"}], r"nodes\[0\]\.mac"),
    ([{"name": "a", "serial": "10000000b7f44626"}, {"name": "b", "serial": "20000000b7f44626"}],
     r"nodes\[1\]\.serial: nodes a and b have the same serial \(TFTP directory b7f44626\) '20000000b7f44626'"),
    ([{"name": "a", "serial": "b7f44626"}, {"name": "a", "serial": "b7f44627"}], r"nodes\[1\]\.name: .*same name"),
    ([{"name": "a", "serial": "b7f44626", "mac": "dc:a6:32:01:36:c2"},
      {"name": "b", "serial": "b7f44627", "mac": "DC-A6-32-01-36-C2"}], r"nodes\[1\]\.mac: .*same MAC"),
    ([{"name": "a", "mac": "dc:a6:32:01:36:c2"}], r"nodes\[0\]\.serial: missing"),
    ([{"name": "a\ndtoverlay=x", "serial": "b7f44626"}], r"nodes\[0\]\.name: .* is not a valid node name"),
    ([{"name": "../a", "serial": "b7f44626"}], r"nodes\[0\]\.name: '\.\./a' is not a valid node name"),
    ([{"name": "a", "serial": "b7f44626", "tftp_prefix": "mac"}], r"nodes\[0\]\.mac: missing"),
    ([{"name": "a", "serial": "b7f44626", "model": "cm3"}], r"nodes\[0\]\.model: 'cm3'"),
    ([{"name": "a", "serial": "b7f44626", "nfs_root": "10.0.0.1/srv"}], r"nodes\[0\]\.nfs_root: '10.0.0.1/srv'"),
    ([{"name": "a", "serial": "b7f44626", "nfs_root": "h:/x", "root": "/dev/sda2"}], r"mutually exclusive"),
    ([{"name": "a", "serial": "b7f44626", "kernel": "x"}], r"nodes\[0\]: unknown key\(s\) kernel"),
    ([{"serial": "b7f44626"}], r"nodes\[0\]\.name"),
])
def test_bad_nodes_fail_before_anything_is_written(tmp_path, boot, nodes, match):
    tftp = tmp_path / "tftp"
    with pytest.raises(CarrierError, match=match):
        build(boot, tftp, nodes)
    assert not tftp.exists()


def test_empty_node_list(tmp_path, boot):
    with pytest.raises(CarrierError, match="nodes: the list is empty"):
        build(boot, tmp_path / "tftp", [])


# --- trees ----------------------------------------------------------------------------------------------


def test_build_hard_links_renders_and_is_idempotent(tmp_path, boot):
    tftp = tmp_path / "tftp"
    changed, result, diff = build(boot, tftp)
    assert changed is True
    assert result["changed_nodes"] == ["node01", "node02", "node03"]
    assert sorted(os.listdir(tftp)) == [N.LOCK_FILE, N.STORE_DIR, "1a466884", "8306d03b", "b7f44626"]
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
    assert not [n for n in os.listdir(tftp) if n.startswith(".") and n not in (N.STORE_DIR, N.LOCK_FILE)]


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


def test_custom_templates_and_errors(tmp_path, boot):
    tftp = tmp_path / "tftp"
    nodes = [dict(NODES[0], vars={"gpu_mem": 16})]
    build(boot, tftp, nodes, config_template="gpu_mem={{ vars.gpu_mem }}\n# {{ node.dtb }} {{ node.serial8 }}\n",
          cmdline_template="root=/dev/nfs nfsroot={{ nfs_root }} {{ extra_kernel_args | join(' ') }}\n")
    assert (tftp / "b7f44626" / "config.txt").read_text() == "gpu_mem=16\n# bcm2711-rpi-cm4.dtb b7f44626\n"
    with pytest.raises(CarrierError, match="config_template: not a valid Jinja2 template"):
        build(boot, tftp, nodes, config_template="{% if %}")
    with pytest.raises(CarrierError, match="config_template: rendering it for node node01 failed: .*nope"):
        build(boot, tftp, nodes, config_template="{{ vars.nope }}")
    with pytest.raises(CarrierError, match="cmdline.txt of node node01 is more than one line"):
        build(boot, tftp, nodes, cmdline_template="root=x\nsecond\n")


def test_no_root_anywhere(tmp_path):
    source = make_boot_dir(tmp_path / "boot", cmdline=False)
    with pytest.raises(CarrierError, match="node a has no root file system in its cmdline.txt"):
        build(source, tmp_path / "tftp", [{"name": "a", "serial": "b7f44626"}])
    assert not (tmp_path / "tftp").exists()


# --- sources --------------------------------------------------------------------------------------------


def test_source_without_start4_for_a_cm4(tmp_path):
    source = make_boot_dir(tmp_path / "boot", pi4=False, pi5=True)
    with pytest.raises(CarrierError, match="has no start4.elf: not a Pi 4/CM4 boot partition"):
        build(source, tmp_path / "tftp", NODES[:1])
    assert not (tmp_path / "tftp").exists()
    # The same source boots a CM5 (config.txt + a bcm2712 device tree).
    _c, result, _diff = build(source, tmp_path / "tftp", [dict(NODES[0], model="cm5")])
    assert "bcm2712-rpi-cm5-cm5io.dtb" in result["nodes"]["node01"]["added"]


def test_source_without_pi5_files_for_a_cm5(tmp_path):
    source = make_boot_dir(tmp_path / "boot", pi4=True, pi5=False)
    with pytest.raises(CarrierError, match="no config.txt plus bcm2712 device tree"):
        build(source, tmp_path / "tftp", [dict(NODES[0], model="cm5")])
    source = make_boot_dir(tmp_path / "boot2", pi4=False, pi5=True, config=False)
    with pytest.raises(CarrierError, match="no config.txt plus bcm2712"):
        build(source, tmp_path / "tftp", [dict(NODES[0], model="pi5")])
    assert not (tmp_path / "tftp").exists()


def test_missing_device_tree_warns(tmp_path):
    source = make_boot_dir(tmp_path / "boot", extra=None)
    os.unlink(os.path.join(source, "bcm2711-rpi-4-b.dtb"))
    warnings = []
    build(source, tmp_path / "tftp", [dict(NODES[0], model="pi4")], warn=warnings.append)
    assert warnings == ["source: %s has no bcm2711-rpi-4-b.dtb (the device tree of a pi4)" % source]


@pytest.mark.parametrize("table", ["mbr", "gpt", "none"])
def test_image_sources(tmp_path, boot, table):
    image = make_os_image(tmp_path / "os.img", boot, table=table)
    offset, description = N.find_fat_partition(image)
    assert offset == {"mbr": 8192 * 512, "gpt": 8192 * 512, "none": 0}[table]
    assert description.startswith({"mbr": "MBR partition 1 (type 0x0c)", "gpt": "GPT partition 1",
                                   "none": "a FAT file system"}[table])
    tftp = tmp_path / "tftp"
    _c, result, _diff = build(image, tftp, NODES[:1])
    assert result["source"]["kind"] == "image" and result["source"]["files"] == 9
    assert (tftp / "b7f44626" / "start4.elf").read_bytes() == (tmp_path / "boot" / "start4.elf").read_bytes()
    assert (tftp / "b7f44626" / "overlays" / "disable-wifi.dtbo").exists()
    assert build(image, tftp, NODES[:1])[0] is False
    # The extraction directory went away.
    assert sorted(os.listdir(tftp)) == [N.LOCK_FILE, N.STORE_DIR, "b7f44626"]


@pytest.mark.parametrize("table", ["mbr", "gpt"])
def test_image_without_fat_partition(tmp_path, table):
    image = make_os_image(tmp_path / "os.img", table=table, fat=False, size_mb=8, boot_mb=2)
    with pytest.raises(CarrierError, match=r"os.img has no FAT boot partition \((MBR|GPT) partition 1"):
        build(image, tmp_path / "tftp", NODES[:1])
    assert not (tmp_path / "tftp").exists()


def test_not_an_image(tmp_path):
    junk = tmp_path / "junk.img"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(CarrierError, match="junk.img has no FAT boot partition \\(no partition table\\)"):
        build(junk, tmp_path / "tftp", NODES[:1])
    (tmp_path / "tiny").write_bytes(b"x")
    with pytest.raises(CarrierError, match="is 1 bytes: not a disk image"):
        N.find_fat_partition(str(tmp_path / "tiny"))
    with pytest.raises(CarrierError, match="source: .*/nope does not exist"):
        build(tmp_path / "nope", tmp_path / "tftp", NODES[:1])


def test_leftovers_of_a_killed_run_are_removed(tmp_path, boot):
    tftp = tmp_path / "tftp"
    build(boot, tftp, NODES[:1])
    (tftp / ".b7f44626.new.abc123" / "overlays").mkdir(parents=True)
    (tftp / ".prune.xyz").mkdir()
    (tftp / ".keep-me").mkdir()
    changed, _result, _diff = build(boot, tftp, [dict(NODES[0], extra_kernel_args=["quiet"])])
    assert changed
    assert sorted(os.listdir(tftp)) == [".keep-me", N.LOCK_FILE, N.STORE_DIR, "b7f44626"]


def test_node_dir_that_is_a_file_is_refused(tmp_path, boot):
    tftp = tmp_path / "tftp"
    tftp.mkdir()
    (tftp / "b7f44626").write_text("not a dir")
    with pytest.raises(CarrierError, match="b7f44626 exists and is not a directory"):
        build(boot, tftp, NODES[:1])
    assert (tftp / "b7f44626").read_text() == "not a dir"


# --- atomic swap ----------------------------------------------------------------------------------------


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


# --- boot.img -------------------------------------------------------------------------------------------


def test_boot_image_reproducible_signed_and_valid(tmp_path, boot):
    key = rsa_key()
    a = N.plan_boot_image(boot, str(tmp_path / "out"), key, config_txt="arm_64bit=1\n")
    os.utime(os.path.join(boot, "start4.elf"), (1, 1))  # source times do not matter
    b = N.plan_boot_image(boot, str(tmp_path / "out"), key, config_txt="arm_64bit=1\n")
    assert a.image == b.image and a.sig == b.sig and a.changed
    c = N.plan_boot_image(boot, str(tmp_path / "out"), key, config_txt="arm_64bit=1\n", timestamp=1735689600)
    assert c.image != a.image
    N.write_boot_image(a, key)
    img = tmp_path / "out" / "boot.img"
    data = img.read_bytes()
    assert len(data) <= N.MAX_BOOT_IMG and hashlib.sha256(data).hexdigest() == a.sha256
    assert data[43:54] == b"BOOT       " and data[54:62] == b"FAT16   "
    assert N.find_fat_partition(str(img)) == (0, "a FAT file system without a partition table")
    fsck = subprocess.run(["fsck.vfat", "-n", str(img)], capture_output=True, text=True, check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    sig = E.verify_sig(data, (tmp_path / "out" / "boot.sig").read_text(), key.public_key())
    assert sig.ts == N.DEFAULT_TIMESTAMP and sig.rsa2048
    with pytest.raises(CarrierError, match="does not verify"):
        E.verify_sig(data, (tmp_path / "out" / "boot.sig").read_text(), rsa_key().public_key())
    # The files read back from the image are the source's (config.txt replaced).
    out = tmp_path / "extracted"
    N.extract_fat(str(img), 0, str(out))
    assert (out / "config.txt").read_text() == "arm_64bit=1\n"
    assert (out / "overlays" / "dwc2.dtbo").read_bytes() == (tmp_path / "boot/overlays/dwc2.dtbo").read_bytes()
    assert (out / "kernel8.img").read_bytes() == (tmp_path / "boot/kernel8.img").read_bytes()
    # Nothing to do the second time.
    again = N.plan_boot_image(boot, str(tmp_path / "out"), key, config_txt="arm_64bit=1\n")
    assert not again.changed


def test_boot_image_limits(tmp_path, boot):
    key = rsa_key()
    with pytest.raises(CarrierError, match="size_mb: 97 must be from 1 to 96"):
        N.plan_boot_image(boot, str(tmp_path / "out"), key, size_mb=97)
    with open(os.path.join(boot, "initramfs8"), "wb") as f:
        f.truncate(97 * 1024 * 1024)  # sparse: costs no disk
    with pytest.raises(CarrierError, match="over the bootloader's 96 MB limit"):
        N.plan_boot_image(boot, str(tmp_path / "out"), key)
    with pytest.raises(CarrierError, match="signing_key: HTTP boot needs a customer key"):
        N.plan_boot_image(boot, str(tmp_path / "out"), None)
    with pytest.raises(CarrierError, match="volume_id: 'xyz'"):
        N.boot_image_bytes({"a": b"x"}, volume_id="xyz")
    assert not (tmp_path / "out").exists()


def test_private_key_generation_is_0600(tmp_path):
    path = tmp_path / "keys" / "boot.pem"
    key, generated = K.read_private_key(str(path), generate=True)
    assert generated and os.stat(path).st_mode & 0o777 == 0o600
    again, generated = K.read_private_key(str(path))
    assert not generated and again.private_numbers() == key.private_numbers()
    os.chmod(path, 0o644)
    warnings = []
    K.read_private_key(str(path), warn=warnings.append)
    assert warnings and "should be 0600" in warnings[0]
    with pytest.raises(CarrierError, match="does not exist"):
        K.read_private_key(str(tmp_path / "none.pem"))


def test_boot_image_pair_is_replaced_together_or_not_at_all(tmp_path, boot, monkeypatch):
    key = rsa_key()
    dest = tmp_path / "out"
    N.write_boot_image(N.plan_boot_image(boot, str(dest), key), key)
    old = {n: (dest / n).read_bytes() for n in ("boot.img", "boot.sig")}
    plan = N.plan_boot_image(boot, str(dest), key, timestamp=1735689600)
    real_replace = os.replace

    def failing_replace(src, dst, *args, **kwargs):
        if str(dst).endswith("boot.sig"):
            raise OSError(28, "No space left on device", str(dst))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(CarrierError, match="boot.sig"):
        N.write_boot_image(plan, key)
    monkeypatch.setattr(os, "replace", real_replace)
    assert {n: (dest / n).read_bytes() for n in ("boot.img", "boot.sig")} == old
    assert sorted(os.listdir(dest)) == ["boot.img", "boot.sig"]
