# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The simulator's Pi 3 bootcode.bin and start.elf (docs/hardware.md section 11) against a TFTP server
stand-in: where it reads from, in which order, and how it stops. The wire is tested by
tests/integration/test_netboot_pi3.py."""

from __future__ import annotations

import asyncio

import pytest


class _Client:
    server = "192.0.2.1"
    bytes = 0

    def __init__(self, files):
        self.files = files
        self.asked = []

    async def get(self, path, probe=False):
        from carrier_sim.tftp import TftpError

        self.asked.append(("probe " if probe else "") + path)
        if path not in self.files:
            raise TftpError(1, "File not found")
        return len(self.files[path]), (None if probe else self.files[path])


class _Node:
    serial = "00000000a1b2c3d4"
    info = {"dtb": "bcm2710-rpi-3-b-plus.dtb", "rom_netboot": "rom"}

    def __init__(self, sim=None):
        self.out = []
        self.os_hostname = None
        self.spec = type("Spec", (), {"sim": sim or {}})()

    def line(self, text):
        self.out.append(text)

    async def uart_drain(self):
        return None


class _Ctx:
    def __init__(self):
        self.files = {}
        self.cmdline = ""


BOOT = {"start.elf": b"s" * 600, "fixup.dat": b"f", "bcm2710-rpi-3-b-plus.dtb": b"d", "cmdline.txt": b"root=/dev/nfs",
        "kernel8.img": b"k", "kernel7.img": b"7", "config.txt": b"arm_64bit=1\nuart_2ndstage=1\n"}


def _run(files, code=b"BOOT_UART=1"):
    from carrier_sim import bootcode

    node, ctx, client = _Node(), _Ctx(), _Client(files)
    ok = asyncio.run(bootcode._bootcode(node, ctx, client, code, "192.0.2.123"))
    return ok, node, ctx, client


def test_serial_directory_first_then_every_read_from_it():
    ok, node, ctx, client = _run({"a1b2c3d4/" + k: v for k, v in BOOT.items()})
    assert ok is True
    assert client.asked[:7] == ["probe a1b2c3d4/start.elf", "a1b2c3d4/config.txt", "a1b2c3d4/start.elf",
                                "a1b2c3d4/fixup.dat", "a1b2c3d4/bcm2710-rpi-3-b-plus.dtb", "a1b2c3d4/cmdline.txt",
                                "a1b2c3d4/kernel8.img"]
    assert ctx.netboot["dir"] == "a1b2c3d4/" and ctx.cmdline == "root=/dev/nfs"
    assert "Read File: a1b2c3d4/kernel8.img, 1 (bytes)" in node.out


def test_root_fallback_and_the_32_bit_kernel_without_arm_64bit():
    files = dict(BOOT, **{"config.txt": b"# nothing\n"})
    ok, node, ctx, client = _run(files)
    assert ok is True and client.asked[:2] == ["probe a1b2c3d4/start.elf", "probe start.elf"]
    assert ctx.netboot["kernel"] == "kernel7.img" and ctx.netboot["dir"] == ""
    # Without uart_2ndstage=1 start.elf's reads are not printed; bootcode.bin's are.
    assert "Read File: start.elf, 600 (bytes)" in node.out
    assert not [line for line in node.out if "kernel7" in line]


@pytest.mark.parametrize("files,last", [
    ({}, "start.elf not found in a1b2c3d4/ or the TFTP root: stopped"),
    ({"a1b2c3d4/start.elf": b"s"}, "a1b2c3d4/fixup.dat: error 1 File not found: stopped"),
])
def test_a_missing_file_stops_bootcode(files, last):
    ok, node, _ctx, _client = _run(files)
    assert ok is False and node.out[-1] == last


def test_bootcode_uart_is_off_unless_patched():
    ok, node, _ctx, _client = _run({"a1b2c3d4/" + k: v for k, v in BOOT.items()}, code=b"BOOT_UART=0")
    assert ok is True
    assert not [line for line in node.out if "Bootcode" in line or "config.txt" in line]


def test_usb_host_boot_as_made_or_by_otp():
    from carrier_sim import bootcode

    pi3 = _Node()
    pi3.info = {"rom_netboot": "otp"}
    assert bootcode.usb_host_boot(_Node()) is True
    assert bootcode.usb_host_boot(pi3) is False
    pi3.spec.sim = {"otp_usb_boot": True}
    assert bootcode.usb_host_boot(pi3) is True
