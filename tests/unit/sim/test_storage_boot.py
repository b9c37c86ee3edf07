# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Booting from what was written to a node's own storage (diskboot.py): an image made with sfdisk, mkfs.vfat
and mtools is written through the mass-storage gadget's /dev link, then the node boots it: the bootloader
reads its partition table and FAT boot partition, the host name comes from cloud-init or firstrun.sh, and a
missing firmware or kernel fails the boot as on a Pi."""

from __future__ import annotations

import json
import os
import socket

import pytest

from diskimages import make_image, needs_tools, rpi_files
from test_usb import Lines

pytestmark = needs_tools

FIRSTRUN = """#!/bin/bash
set +e
CURRENT_HOSTNAME=`cat /etc/hostname | tr -d " \\t\\n\\r"`
if [ -f /usr/lib/raspberrypi-sys-mods/imager_custom ]; then
   /usr/lib/raspberrypi-sys-mods/imager_custom set_hostname worker5
else
   echo worker5 >/etc/hostname
fi
rm -f /boot/firstrun.sh
exit 0
"""


def topology(order="0xf41"):
    return {"controllers": {"ctrl0": {}},
            "boards": {"b1": {"profile": "itx4", "controller": "ctrl0", "bus": "sim:{dir}/bus.sock",
                              "sim": {"gadget_time": 0.05, "usb_rate": 0}, "slots": {
                                  1: {"host": "n1", "model": "cm4", "usb_port": "1-1.1",
                                      "sim": {"emmc_gb": 8, "bootconf": {"BOOT_ORDER": order}}},
                                  2: {"host": "n2", "model": "cm5", "usb_port": "1-1.2",
                                      "sim": {"nvme_gb": 1, "bootconf": {"BOOT_ORDER": "0xf16"}}}}}}}


def flash(sim, lines, base, slot, port, image, target="emmc"):
    """What the controller does: USB-boot the node, rpiboot its port, write the disk, power it off."""
    lines.set(slot, power=True, rpiboot=True)
    sim.wait_state("n%d" % slot, "rpiboot")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(os.path.join(base, "usb.sock"))
        sock.sendall(json.dumps({"op": "rpiboot", "port": port, "target": target}).encode() + b"\n")
        device = json.loads(sock.makefile("rb").readline())["value"]["device"]
    with open(image, "rb") as src, open(os.path.join(base, "dev", device), "r+b") as dst:
        while True:
            chunk = src.read(1 << 20)
            if not chunk:
                break
            if chunk.count(0) == len(chunk):
                dst.seek(len(chunk), os.SEEK_CUR)  # sparse: zeros are already there
            else:
                dst.write(chunk)
    lines.set(slot, power=False, rpiboot=False)


@pytest.fixture
def rig(run_sim, short_dir, plain_modes):
    def start(order="0xf41"):
        sim = run_sim(topology(order), boot_time=0.3)
        bus = sim.bus("b1")
        started.append(bus)
        return sim, Lines(bus), short_dir
    started = []
    yield start
    for bus in started:
        bus.close()


def test_boots_the_flashed_emmc_to_login_with_the_cloud_init_name(rig, tmp_path):
    sim, lines, base = rig()
    image = make_image(str(tmp_path / "os.img"), rpi_files(hostname="node07"))
    flash(sim, lines, base, 1, "1-1.1", image)
    # the gadget served again: the kernel lists the partitions of what is now on the disk
    lines.set(1, power=True, rpiboot=True)
    sim.wait_state("n1", "rpiboot")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(os.path.join(base, "usb.sock"))
        sock.sendall(b'{"op": "rpiboot", "port": "1-1.1"}\n')
        assert json.loads(sock.makefile("rb").readline())["value"]["device"] == "sda"
    block = os.path.realpath(os.path.join(base, "sys", "block", "sda"))
    assert sorted(n for n in os.listdir(block) if n.startswith("sda")) == ["sda1", "sda2"]
    assert [open(os.path.join(block, "sda1", f)).read() for f in ("dev", "partition", "start", "size")] == [
        "8:1\n", "1\n", "8192\n", "131072\n"]
    lines.set(1, power=False, rpiboot=False)
    console = sim.console("n1")
    lines.set(1, power=True)
    text = console.read_until("node07 login: ")
    assert "Boot mode: SD (01)" in text
    assert "MBR: 0x00002000,  131072 type: 0x0c" in text and "MBR: 0x00022000," in text
    assert "Trying partition: 0" in text and "volume: 'bootfs     '" in text and "FAT32 clusters" in text
    assert "Read start4.elf bytes     8004" in text and "Read kernel8.img bytes     4096" in text
    assert "Hostname set to <node07>" in text and "Debian GNU/Linux 12 node07 ttyS0" in text
    assert ("Kernel command line: coherent_pool=1M 8250.nr_uarts=1 snd_bcm2835.enable_headphones=0 "
            "cgroup_disable=memory numa_policy=interleave console=ttyS0,115200 console=tty1 "
            "root=PARTUUID=4e639091-02 rootfstype=ext4 rootwait\r\n") in text  # the image's cmdline.txt
    console.login("node07")
    assert console.run("hostname") == "node07"
    listing = console.run("ls /boot/firmware").split()  # the image's boot partition, not the stock tree
    assert "meta-data" in listing and "bootcode.bin" not in listing
    assert console.run("cat /boot/firmware/meta-data") == "instance-id: sim\r\nlocal-hostname: node07"
    assert sim.node("n1")["hostname"] == "node07"
    console.close()


def test_missing_firmware_or_kernel_fails_as_a_pi_does(rig, tmp_path):
    sim, lines, base = rig(order="0xf1")
    image = make_image(str(tmp_path / "nofw.img"), rpi_files(hostname="x", drop=("start4.elf",)))
    flash(sim, lines, base, 1, "1-1.1", image)
    console = sim.console("n1")
    lines.set(1, power=True)
    text = console.read_until("Firmware not found")
    text += console.read_until("Boot mode: SD (01)")  # RESTART: the bootloader tries again, forever
    assert "login:" not in text and "Booting Linux" not in text
    assert "Read config.txt" in text
    lines.set(1, power=False)
    image = make_image(str(tmp_path / "nokernel.img"), rpi_files(drop=("kernel8.img",)))
    flash(sim, lines, base, 1, "1-1.1", image)
    lines.set(1, power=True)
    text = console.read_until("Failed to open kernel kernel8.img")
    assert "Read fixup4.dat" in text and "login:" not in text
    console.close()


def test_nvme_gpt_image_with_firstrun_boots_on_a_cm5(rig, tmp_path):
    sim, lines, base = rig()
    files = rpi_files(soc="BCM2712", firstrun=FIRSTRUN)
    files["cmdline.txt"] = (b"console=serial0,115200 root=PARTUUID=4e639091-02 rootwait "
                            b"systemd.run=/boot/firstrun.sh systemd.run_success_action=reboot\n")
    image = make_image(str(tmp_path / "gpt.img"), files, label="gpt")
    flash(sim, lines, base, 2, "1-1.2", image, target="nvme")
    console = sim.console("n2")
    lines.set(2, power=True)
    text = console.read_until("worker5 login: ")
    assert "Boot mode: NVME (06) order f1" in text and "NVME on 0" in text
    assert "Boot mode: SD" not in text  # NVMe first in 0xf16: loaded, the eMMC is never tried
    assert "GPT partition: 0 a2a0d0ebe5b9334487c068b6b72699c7 000002000..000021fff" in text
    assert "Read kernel_2712.img" in text
    console.close()


def test_default_hostname_without_customisation_and_stock_tree_when_never_written(rig, tmp_path):
    sim, lines, base = rig()
    console = sim.console("n1")
    lines.set(1, power=True)
    console.read_until("n1 login: ")  # never written: the stock install names it after the inventory
    lines.set(1, power=False)
    image = make_image(str(tmp_path / "plain.img"), rpi_files())
    flash(sim, lines, base, 1, "1-1.1", image)
    lines.set(1, power=True)
    console.read_until("raspberrypi login: ")
    console.close()


class _Files:
    """A boot partition as diskboot reads it (read(name) -> bytes or None)."""

    def __init__(self, files):
        self.files = {k: v.encode() for k, v in files.items()}

    def read(self, name):
        return self.files.get(name)


@pytest.mark.parametrize("files,cmdline,expected", [
    ({"meta-data": "instance-id: a\nlocal-hostname: meta1\n", "user-data": "#cloud-config\nhostname: user1\n"},
     "", "user1"),  # cloud-config's hostname wins over the meta-data, as cc_set_hostname does
    ({"meta-data": "local-hostname: 'meta2'  # quoted\n"}, "", "meta2"),
    ({"meta-data": "local-hostname: node9.example.com\n"}, "", "node9"),
    ({"meta-data": "instance-id: a\n", "firstrun.sh": "hostnamectl set-hostname fr1\n"},
     "systemd.run=/boot/firstrun.sh", "fr1"),
    ({"firstrun.sh": "CURRENT_HOSTNAME=`cat /etc/hostname`\necho fr2 >/etc/hostname\n"},
     "systemd.run=/boot/firmware/firstrun.sh", "fr2"),
    ({"firstrun.sh": "CURRENT_HOSTNAME=fr3\n"}, "systemd.run=/boot/firstrun.sh", "fr3"),
    ({"firstrun.sh": "hostnamectl set-hostname fr4\n"}, "rootwait", "raspberrypi"),  # not run by cmdline.txt
    ({"meta-data": "local-hostname: bad_name!\n"}, "", "raspberrypi"),
    ({}, "", "raspberrypi"),
])
def test_first_boot_hostname(files, cmdline, expected):
    from carrier_sim.firstboot import first_boot_hostname

    assert first_boot_hostname(_Files(files), cmdline) == expected


def test_the_boot_partition_is_mirrored_into_the_nodes_tree(tmp_path):
    import subprocess

    from carrier_sim import diskboot, storage

    files = rpi_files()
    files["kernel8.img"] = b"\x01" * (5 * 1024 * 1024)  # over 4 MiB: mirrored sparse, at its size
    files["pieeprom.upd"] = b"\x02" * (2 * 1024 * 1024)  # a BCM2712 update: copied whole
    image = make_image(str(tmp_path / "os.img"), files)
    overlay = tmp_path / "vc4-kms-v3d.dtbo"
    overlay.write_bytes(b"\xd0\x0d\xfe\xed overlay")
    target = "%s@@%d" % (image, 8192 * 512)
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    subprocess.run(["mmd", "-i", target, "::/overlays"], check=True, env=env)
    subprocess.run(["mcopy", "-i", target, str(overlay), "::/overlays/"], check=True, env=env)
    boot = tmp_path / "root" / "boot" / "firmware"
    boot.mkdir(parents=True)
    (boot / "stale.txt").write_text("from before")
    with storage.BootVolume(image) as vol:
        diskboot.mirror_boot_partition(vol.fat, str(boot))
    assert sorted(os.listdir(boot)) == sorted(list(files) + ["overlays"])
    assert (boot / "config.txt").read_bytes() == files["config.txt"]
    assert (boot / "overlays" / "vc4-kms-v3d.dtbo").read_bytes() == overlay.read_bytes()
    kernel = boot / "kernel8.img"
    assert kernel.stat().st_size == 5 * 1024 * 1024 and kernel.stat().st_blocks == 0
    assert (boot / "pieeprom.upd").read_bytes() == files["pieeprom.upd"]
