# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_flash.device: the disk on a USB port (by its sysfs path), and every refusal of vet()."""

from __future__ import annotations

import os

import pytest

from flash_fixtures import make_usb_disk

from ansible_collections.picluster.carrier.plugins.module_utils._flash import device

MIB = 1024 * 1024
SYS = "/sys/devices/platform/xhci/usb1/1-1/1-1.3/1-1.3:1.0/host0/target0:0:0/0:0:0:0/block/sda"


@pytest.mark.parametrize("path,port,expected", [
    (SYS, "1-1.3", True),
    (SYS, "1-1", False),          # the hub above: its interface is not in the path
    (SYS, "1-1.3.2", False),
    (SYS.replace("1-1.3", "1-1.3.2").replace("1-1/1-1.3.2", "1-1/1-1.3/1-1.3.2"), "1-1.3", False),
    (SYS.replace("1-1.3", "1-1.3.2").replace("1-1/1-1.3.2", "1-1/1-1.3/1-1.3.2"), "1-1.3.2", True),
    ("/sys/devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda", "1-1", False),
])
def test_on_port(path, port, expected):
    assert device.on_port(path, port) is expected


def test_disks_on_port(tmp_path):
    make_usb_disk(tmp_path, "1-1.3", "sda", size=64 * MIB)
    make_usb_disk(tmp_path, "1-1.4", "sdb", size=32 * MIB, host=1)
    make_usb_disk(tmp_path, "1-1.3.1", "sdc", size=16 * MIB, host=2)
    sys_root, dev_root = str(tmp_path / "sys"), str(tmp_path / "dev")
    (disk,) = device.disks_on_port(sys_root, dev_root, "1-1.3")
    assert (disk.name, disk.size, disk.read_only, disk.dev_path) == ("sda", 64 * MIB, False, dev_root + "/sda")
    assert [d.name for d in device.disks_on_port(sys_root, dev_root, "1-1.4")] == ["sdb"]
    assert device.disks_on_port(sys_root, dev_root, "2-1") == []
    assert device.disks_on_port(str(tmp_path / "nothing"), dev_root, "1-1.3") == []


@pytest.fixture
def sim(tmp_path):
    dev = make_usb_disk(tmp_path, "1-1.3", "sda", size=64 * MIB)
    disk = device.read_disk(str(tmp_path / "sys"), str(tmp_path / "dev"), "sda")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text("22 1 8:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw\n")
    swaps = tmp_path / "swaps"
    swaps.write_text("Filename Type Size Used Priority\n")
    kw = dict(sim_root=str(tmp_path), mountinfo=str(mountinfo), swaps=str(swaps))
    return dict(root=tmp_path, dev=dev, disk=disk, kw=kw)


def test_vet_accepts_the_node_disk(sim):
    device.vet(sim["disk"], "1-1.3", 64 * MIB, **sim["kw"])
    device.vet(sim["disk"], "1-1.3", None, **sim["kw"])


def test_vet_refuses_another_port(sim):
    with pytest.raises(device.DeviceError, match=r"^usb_port: 1-1.4 .* is not on USB port 1-1.4"):
        device.vet(sim["disk"], "1-1.4", MIB, **sim["kw"])


def test_vet_refuses_an_image_larger_than_the_disk(sim):
    with pytest.raises(device.DeviceError, match=r"^image: the image is 67108865 bytes, larger than the node's"):
        device.vet(sim["disk"], "1-1.3", 64 * MIB + 1, **sim["kw"])


def test_vet_refuses_a_mounted_disk_or_partition(sim):
    mountinfo = sim["root"] / "mountinfo"
    mountinfo.write_text("30 1 7:0 / /mnt rw - vfat %s rw\n" % sim["dev"])
    with pytest.raises(device.DeviceError, match="is mounted on /mnt"):
        device.vet(sim["disk"], "1-1.3", MIB, **sim["kw"])
    part = os.path.join(os.path.dirname(sim["dev"]), "sda1")
    os.symlink(sim["dev"], part)
    disk = device.Disk(**dict(vars(sim["disk"]), partitions=(("sda1", "8:1"),)))
    mountinfo.write_text("30 1 8:1 / /media/boot rw - vfat %s rw\n" % part)
    with pytest.raises(device.DeviceError, match="is mounted on /media/boot"):
        device.vet(disk, "1-1.3", MIB, **sim["kw"])


def test_vet_sim_ignores_made_up_device_numbers(sim):
    (sim["root"] / "mountinfo").write_text("22 1 8:0 / / rw - ext4 /dev/sda rw\n")  # the host's own sda
    device.vet(device.Disk(**dict(vars(sim["disk"]), numbers="8:0")), "1-1.3", MIB, **sim["kw"])


def test_lun():
    assert device.lun(device.Disk("sdb", SYS.replace("0:0:0:0", "0:0:0:1"), "/dev/sdb", 1, False, None, ())) == 1
    assert device.lun(device.Disk("sda", SYS, "/dev/sda", 1, False, None, ())) == 0


def test_vet_refuses_swap_read_only_and_empty(sim):
    (sim["root"] / "swaps").write_text("Filename Type Size Used Priority\n%s partition 1 0 -2\n" % sim["dev"])
    with pytest.raises(device.DeviceError, match="in use as swap"):
        device.vet(sim["disk"], "1-1.3", MIB, **sim["kw"])
    (sim["root"] / "swaps").write_text("Filename\n")
    with pytest.raises(device.DeviceError, match="is read-only"):
        device.vet(device.Disk(**dict(vars(sim["disk"]), read_only=True)), "1-1.3", MIB, **sim["kw"])
    with pytest.raises(device.DeviceError, match="reports no size"):
        device.vet(device.Disk(**dict(vars(sim["disk"]), size=0)), "1-1.3", MIB, **sim["kw"])


def test_vet_sim_disk_must_be_a_file_under_the_state_dir(sim, tmp_path_factory):
    outside = tmp_path_factory.mktemp("elsewhere") / "disk.img"
    outside.write_bytes(b"\0" * MIB)
    os.unlink(sim["dev"])
    os.symlink(str(outside), sim["dev"])
    with pytest.raises(device.DeviceError, match="must be a file under the simulator's state directory"):
        device.vet(sim["disk"], "1-1.3", MIB, **sim["kw"])


def test_vet_real_mode_wants_a_block_device(sim):
    kw = dict(sim["kw"], sim_root=None)
    with pytest.raises(device.DeviceError, match="is not a block device"):
        device.vet(sim["disk"], "1-1.3", MIB, **kw)


def test_root_disk_numbers(tmp_path):
    sys_root = tmp_path / "sys"
    disk = sys_root / "devices" / "pci" / "nvme" / "nvme0n1"
    (disk / "nvme0n1p2").mkdir(parents=True)
    (disk / "dev").write_text("259:0\n")
    (disk / "nvme0n1p2" / "partition").write_text("2\n")
    (sys_root / "dev" / "block").mkdir(parents=True)
    os.symlink(str(disk / "nvme0n1p2"), str(sys_root / "dev" / "block" / "259:2"))
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text("22 1 259:2 / / rw - ext4 /dev/nvme0n1p2 rw\n30 22 0:5 / /proc rw - proc proc rw\n")
    assert device.root_disk_numbers(str(mountinfo), str(sys_root)) == {"259:2", "259:0"}


def test_vet_real_mode_refuses_the_root_disk_and_a_stale_node(sim, monkeypatch):
    import stat as stat_module
    real_stat = os.stat

    class Blk:
        st_mode = stat_module.S_IFBLK | 0o660
        st_rdev = os.makedev(8, 0)

    monkeypatch.setattr(device.os, "stat", lambda p, *a, **k: Blk() if p == sim["dev"] else real_stat(p, *a, **k))
    disk = device.Disk(**dict(vars(sim["disk"]), numbers="8:0"))
    kw = dict(sim["kw"], sim_root=None)
    monkeypatch.setattr(device, "root_disk_numbers", lambda *a: {"8:0", "8:2"})
    with pytest.raises(device.DeviceError, match="holds the controller's own root file system"):
        device.vet(disk, "1-1.3", MIB, **kw)
    monkeypatch.setattr(device, "root_disk_numbers", lambda *a: {"259:0", "259:2"})
    device.vet(disk, "1-1.3", MIB, **kw)
    with pytest.raises(device.DeviceError, match="the device node is 8:0 but sysfs says 8:16"):
        device.vet(device.Disk(**dict(vars(disk), numbers="8:16")), "1-1.3", MIB, **kw)
    (sim["root"] / "mountinfo").write_text("40 1 8:0 / /srv rw - ext4 /dev/sdx rw\n")
    with pytest.raises(device.DeviceError, match="is mounted on /srv"):
        device.vet(disk, "1-1.3", MIB, **kw)
