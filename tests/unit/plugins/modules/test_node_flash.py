# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""node_flash run as Ansible runs it: its documentation against its results, check mode, refusals
before the board is touched, secrets kept out of the output. (Flashes through the simulator are in
tests/integration/test_flash.py.)"""

from __future__ import annotations

import os

import yaml

from modrun import run_module

from ansible_collections.picluster.carrier.plugins.modules import node_flash

MIB = 1024 * 1024
HASH = "$6$saltsalt$" + "a" * 86


def _args(tmp_path, **extra):
    image = tmp_path / "os.img"
    if not image.exists():
        image.write_bytes(os.urandom(4096) + b"\0" * (2 * MIB))
    args = {"board": "carrier1", "profile": "itx4", "bus": "sim:%s/bus1.sock" % tmp_path, "slot": 3,
            "host": "node03", "usb_port": "1-1.3", "image": str(image), "state_dir": str(tmp_path / "state"),
            "lock_dir": str(tmp_path / "locks")}
    args.update(extra)
    return args


def test_check_mode_says_what_would_be_written(tmp_path):
    r = run_module("node_flash", _args(tmp_path), tmp_path, check=True)
    assert r["changed"] is True and r["written"] == 0 and r["image_size"] == 2 * MIB + 4096, r
    assert r["compression"] == "raw" and r["bmap"] is False and r["storage"] == "emmc"
    assert r["diff"]["before"] == "no verified flash recorded\n"
    assert not (tmp_path / "state").exists()


def test_return_keys_are_documented(tmp_path):
    documented = set(yaml.safe_load(node_flash.RETURN))
    r = run_module("node_flash", _args(tmp_path), tmp_path, check=True, diff=False)
    returned = set(r) - {"changed", "invocation", "msg", "failed", "diff"}
    assert returned <= documented, returned - documented
    assert "diff" not in r


def test_wrong_sha256_fails_before_anything(tmp_path):
    r = run_module("node_flash", _args(tmp_path, sha256="1" * 64), tmp_path)
    assert r.get("failed") and r["msg"].startswith("sha256: ") and "nothing was written" in r["msg"]


def test_bad_values_are_named(tmp_path):
    r = run_module("node_flash", _args(tmp_path, usb_port="usb1"), tmp_path, check=True)
    assert r.get("failed") and r["msg"].startswith("usb_port: 'usb1' is not a USB port path")
    r = run_module("node_flash", _args(tmp_path, image=str(tmp_path / "absent.img")), tmp_path, check=True)
    assert r.get("failed") and r["msg"].startswith("image: ")
    r = run_module("node_flash", _args(tmp_path, customize={"users": [{"name": "Bad Name"}]}), tmp_path, check=True)
    assert r.get("failed") and r["msg"].startswith("customize.users"), r


def test_customize_secrets_stay_out_of_the_output(tmp_path):
    cust = {"hostname": "node03", "users": [{"name": "admin", "password_hash": HASH}]}
    r = run_module("node_flash", _args(tmp_path, customize=cust), tmp_path, check=True)
    assert r["changed"] is True, r
    assert HASH not in r.stdout and "saltsalt" not in r.stdout
