# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The simulator's netbooted OS takes its host name from the first-boot files of its TFTP directory."""

from __future__ import annotations

import asyncio

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils import _firstboot


def _cust(**kw):
    return _firstboot.check_customize(kw)


@pytest.mark.parametrize("style", ["cloud-init", "firstrun"])
def test_the_collections_seed_files_name_the_host(style):
    from carrier_sim.netboot import netboot_hostname

    cust = _cust(hostname="edge06", timezone="UTC", style=style)
    files = _firstboot.seed_files(cust)
    cmdline = _firstboot.edit_cmdline("console=serial0,115200 root=/dev/nfs rw", cust)
    assert netboot_hostname(files, cmdline) == "edge06"
    if style == "firstrun":  # a firstrun.sh that cmdline.txt does not run changes nothing
        assert netboot_hostname(files, "console=serial0,115200 root=/dev/nfs rw") is None


@pytest.mark.parametrize("files,expected", [
    ({}, None),
    ({"meta-data": b"instance-id: a\n"}, None),  # a seed without a name: the node keeps the inventory's
    ({"meta-data": b"instance-id: a\nlocal-hostname: raspberrypi\n"}, "raspberrypi"),
])
def test_without_a_name_the_node_keeps_its_own(files, expected):
    from carrier_sim.netboot import netboot_hostname

    assert netboot_hostname(files, "root=/dev/nfs") == expected


class _Client:
    def __init__(self, files):
        self.files = files
        self.asked = []

    async def get(self, path, probe=False):
        from carrier_sim.tftp import TftpError

        self.asked.append(path)
        if path not in self.files:
            raise TftpError(1, "File not found")
        return len(self.files[path]), self.files[path]


class _Session:
    def __init__(self, files, prefix):
        self.client = _Client(files)
        self.prefix = prefix


def test_first_boot_files_are_fetched_from_the_node_directory():
    from carrier_sim.netboot import first_boot_files

    session = _Session({"1e7ea419/meta-data": b"local-hostname: a\n", "1e7ea419/firstrun.sh": b"#!/bin/sh\n"},
                       "1e7ea419/")
    files = asyncio.run(first_boot_files(session, "root=/dev/nfs"))
    assert files == {"meta-data": b"local-hostname: a\n"}
    assert session.client.asked == ["1e7ea419/user-data", "1e7ea419/meta-data"]
    files = asyncio.run(first_boot_files(session, "root=/dev/nfs systemd.run=/boot/firstrun.sh"))
    assert sorted(files) == ["firstrun.sh", "meta-data"]
