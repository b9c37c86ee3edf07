# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""eeprom_config, run for real against a node's file tree built in tmp_path (option ``root``)."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils._eeprom import image as I
from ansible_collections.picluster.carrier.plugins.module_utils._eeprom import sig as S

from modrun import run_module

REPO = Path(__file__).resolve().parents[4]
_COLL = REPO / ".collections"


FIXTURES = REPO.parent / "shared" / "fixtures" / "eeprom"
run_eeprom_config = functools.partial(run_module, "eeprom_config", env={"PATH": "/usr/bin:/bin"})


LIVE = "[all]\nBOOT_UART=0\nWAKE_ON_GPIO=1\nPOWER_OFF_ON_HALT=0\n"


def make_node(root, soc="bcm2711", live=LIVE, blconfig=True, image_bytes=None, boot="boot/firmware"):
    """A node's files: device tree, blconfig nvmem device, rpi-eeprom images, boot partition."""
    dt = root / "sys/firmware/devicetree/base"
    (root / "proc").mkdir(parents=True)
    (root / "proc/device-tree").symlink_to("../sys/firmware/devicetree/base")
    model = b"raspberrypi,4-compute-module\0brcm,bcm2711\0" if soc == "bcm2711" else \
        b"raspberrypi,5-compute-module\0brcm,bcm2712\0"
    nvram = dt / "reserved-memory/nvram@0"
    nvram.mkdir(parents=True)
    (dt / "compatible").write_bytes(model)
    if blconfig:
        (dt / "aliases").mkdir()
        (dt / "aliases/blconfig").write_bytes(b"/reserved-memory/nvram@0\0")
        dev = root / "sys/bus/nvmem/devices/rmem0"
        dev.mkdir(parents=True)
        (dev / "of_node").symlink_to(nvram)
        (dev / "nvmem").write_bytes(live.encode() + b"\0" * 64)
    fw = root / ("lib/firmware/raspberrypi/bootloader-%s/default" % soc[3:])
    fw.mkdir(parents=True)
    (fw / "pieeprom-2025-01-01.bin").write_bytes(I.make_synthetic_image(soc, "[all]\nOLD=1\n", seed=2))
    (fw / "pieeprom-2026-05-17.bin").write_bytes(image_bytes or I.make_synthetic_image(soc, live))
    (fw / "recovery.bin").write_bytes(b"recovery for %s" % soc.encode())
    (root / boot).mkdir(parents=True)
    return fw


def test_stage_boot_order_then_idempotent(tmp_path):
    root = tmp_path / "node"
    fw = make_node(root)
    args = dict(root=str(root), boot_order=["network", "sd", "restart"])
    r = run_eeprom_config(args, tmp_path)
    assert r["changed"] is True, r
    boot = root / "boot/firmware"
    assert r["reboot_required"] is True
    assert r["config_source"] == "blconfig nvmem device"
    assert r["previous_config"] == LIVE
    assert r["config"] == LIVE + "BOOT_ORDER=0xf12\n"
    assert r["boot_order"] == ["network", "sd", "restart"]
    assert r["soc"] == "bcm2711"
    assert r["image"] == str(fw / "pieeprom-2026-05-17.bin")
    assert r["staged"] == sorted(str(boot / n) for n in ("pieeprom.upd", "pieeprom.sig", "recovery.bin"))
    assert r["diff"] == dict(before=LIVE, after=r["config"], before_header="bootloader config (blconfig nvmem device)",
                             after_header="bootloader config (staged)")
    upd = I.EepromImage.from_file(str(boot / "pieeprom.upd"))
    assert upd.config == r["config"]
    S.verify_sig((boot / "pieeprom.upd").read_bytes(), (boot / "pieeprom.sig").read_text())
    assert (boot / "recovery.bin").read_bytes() == b"recovery for bcm2711"
    backup = Path(r["backup_file"])
    assert backup.parent == root / "var/lib/raspberrypi/bootloader/backup"
    assert backup.read_text() == LIVE
    # Everything but bootconf.txt is the firmware image's.
    base = I.EepromImage.from_file(str(fw / "pieeprom-2026-05-17.bin"))
    assert upd.with_config(base.config).to_bytes() == base.to_bytes()
    # Second run: the pending update is read and already holds the order.
    r2 = run_eeprom_config(args, tmp_path)
    assert r2["changed"] is False and r2["reboot_required"] is True
    assert r2["config_source"] == "pending update %s" % (boot / "pieeprom.upd")
    assert r2["staged"] == []
    # A further change builds on the pending update (incremental), not on the live config.
    r3 = run_eeprom_config(dict(root=str(root), settings={"BOOT_UART": 1}), tmp_path)
    assert r3["changed"] is True
    assert r3["config"] == "[all]\nBOOT_UART=1\nWAKE_ON_GPIO=1\nPOWER_OFF_ON_HALT=0\nBOOT_ORDER=0xf12\n"
    assert r3["image"] == str(boot / "pieeprom.upd")
    assert r3["staged"] == sorted(str(boot / n) for n in ("pieeprom.upd", "pieeprom.sig"))


def test_check_mode_changes_nothing(tmp_path):
    root = tmp_path / "node"
    make_node(root)
    before = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    r = run_eeprom_config(dict(root=str(root), boot_order=["nvme", "restart"], settings={"POWER_OFF_ON_HALT": 1}),
                          tmp_path, check=True)
    assert r["changed"] is True and r["reboot_required"] is True
    assert "BOOT_ORDER=0xf6" in r["diff"]["after"] and "POWER_OFF_ON_HALT=1" in r["diff"]["after"]
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == before


def test_read_only_and_unchanged(tmp_path):
    root = tmp_path / "node"
    make_node(root, live=LIVE + "BOOT_ORDER=0xf12\n")
    r = run_eeprom_config(dict(root=str(root)), tmp_path)
    assert r["changed"] is False and r["reboot_required"] is False
    assert r["boot_order"] == ["network", "sd", "restart"]
    r = run_eeprom_config(dict(root=str(root), boot_order=["network", "sd", "restart"]), tmp_path)
    assert r["changed"] is False and r["staged"] == []
    assert not (root / "boot/firmware/pieeprom.upd").exists()


def test_absent_and_section(tmp_path):
    root = tmp_path / "node"
    make_node(root)
    r = run_eeprom_config(dict(root=str(root), settings={"WAKE_ON_GPIO": None}, state="absent"), tmp_path)
    assert r["changed"] is True
    assert r["config"] == "[all]\nBOOT_UART=0\nPOWER_OFF_ON_HALT=0\n"
    r = run_eeprom_config(dict(root=str(root), section="gpio8=0", boot_order=["network", "restart"]), tmp_path)
    assert r["config"] == "[all]\nBOOT_UART=0\nPOWER_OFF_ON_HALT=0\n[gpio8=0]\nBOOT_ORDER=0xf2\n"
    assert r["boot_order"] == ["network", "restart"]


def test_vcgencmd_fallback_and_boot_dir(tmp_path):
    root = tmp_path / "node"
    make_node(root, soc="bcm2712", blconfig=False, boot="boot")
    tool = tmp_path / "vcgencmd"
    tool.write_text("#!/bin/sh\n[ \"$1\" = bootloader_config ] || exit 2\nprintf '[all]\\nBOOT_UART=1\\n'\n")
    tool.chmod(0o755)
    r = run_eeprom_config(dict(root=str(root), vcgencmd=str(tool), boot_order=["nvme", "network", "restart"]), tmp_path)
    assert r["changed"] is True, r
    assert r["config_source"] == "vcgencmd bootloader_config" and r["soc"] == "bcm2712"
    assert r["config"] == "[all]\nBOOT_UART=1\nBOOT_ORDER=0xf26\n"
    assert (root / "boot/pieeprom.upd").exists() and I.EepromImage.from_file(str(root / "boot/pieeprom.upd")).ab


def test_not_a_pi(tmp_path):
    root = tmp_path / "pc"
    (root / "boot").mkdir(parents=True)
    r = run_eeprom_config(dict(root=str(root), boot_order=["sd"]), tmp_path)
    assert r["failed"] is True
    assert "not a Raspberry Pi" in r["msg"] and "compatible" in r["msg"]
    assert list((root / "boot").iterdir()) == []


def test_no_config_source(tmp_path):
    root = tmp_path / "node"
    make_node(root, blconfig=False)
    r = run_eeprom_config(dict(root=str(root), vcgencmd="no-such-vcgencmd", boot_order=["sd"]), tmp_path)
    assert r["failed"] is True and "cannot read the current bootloader config" in r["msg"]


@pytest.mark.parametrize("args,message", [
    (dict(boot_order=["rpiboot", "sd"]), "rpiboot must be the last boot mode"),
    (dict(boot_order=["tape"]), "value of boot_order must be one or more of"),
    (dict(settings={"TFTP_PREFIX": 7}), "TFTP_PREFIX: '7' is above the maximum 2"),
    (dict(settings={"HTTP_PATH": "x" * 5000}), "too big"),
])
def test_bad_input_stages_nothing(tmp_path, args, message):
    root = tmp_path / "node"
    make_node(root)
    r = run_eeprom_config(dict(args, root=str(root)), tmp_path)
    assert r.get("failed") is True and message in r["msg"], r
    assert list((root / "boot/firmware").iterdir()) == []
    assert not (root / "var").exists()


def test_soc_mismatch_and_missing_recovery(tmp_path):
    root = tmp_path / "node"
    fw = make_node(root)
    other = tmp_path / "pi5.bin"
    other.write_bytes(I.make_synthetic_image("bcm2712"))
    r = run_eeprom_config(dict(root=str(root), image=str(other), boot_order=["sd"]), tmp_path)
    assert r["failed"] is True and "bcm2712 image but this node is a bcm2711" in r["msg"]
    (fw / "recovery.bin").unlink()
    r = run_eeprom_config(dict(root=str(root), boot_order=["sd"]), tmp_path)
    assert r["failed"] is True and "recovery.bin" in r["msg"]
    assert list((root / "boot/firmware").iterdir()) == []


@pytest.mark.skipif(not (FIXTURES / "2711-pieeprom-2026-05-17.bin").exists(),
                    reason="real EEPROM images not available: %s is absent" % FIXTURES)
def test_real_image_on_fake_node(tmp_path):
    root = tmp_path / "node"
    real = (FIXTURES / "2711-pieeprom-2026-05-17.bin").read_bytes()
    live = I.EepromImage(real).config
    make_node(root, live=live, image_bytes=real)
    shutil.copy(FIXTURES / "2711-recovery.bin", root / "lib/firmware/raspberrypi/bootloader-2711/default/recovery.bin")
    r = run_eeprom_config(dict(root=str(root), boot_order=["network", "sd", "restart"]), tmp_path)
    assert r["changed"] is True
    upd = I.EepromImage.from_file(str(root / "boot/firmware/pieeprom.upd"))
    assert upd.config == live + "BOOT_ORDER=0xf12\n"
    assert upd.with_config(live).to_bytes() == real
    assert (root / "boot/firmware/recovery.bin").read_bytes() == (FIXTURES / "2711-recovery.bin").read_bytes()


def test_ansible_adhoc_check_mode(tmp_path):
    """The module through real ansible (-c local), in check mode with diff."""
    ansible = Path(sys.executable).parent / "ansible"
    if not ansible.exists():
        pytest.skip("ansible CLI not installed beside %s" % sys.executable)
    root = tmp_path / "node"
    make_node(root)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(_COLL), ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
               ANSIBLE_REMOTE_TEMP=str(tmp_path / "rtmp"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.minimal", ANSIBLE_HOME=str(tmp_path / "ahome"))
    proc = subprocess.run(
        [str(ansible), "localhost", "-c", "local", "-i", "localhost,", "--check", "--diff",
         "-e", "ansible_python_interpreter=%s" % sys.executable,
         "-m", "picluster.carrier.eeprom_config",
         "-a", json.dumps(dict(root=str(root), boot_order=["network", "sd", "restart"]))],
        capture_output=True, text=True, check=False, env=env, timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    marker = "localhost | CHANGED => "
    assert marker in proc.stdout, proc.stdout
    result = json.JSONDecoder().raw_decode(proc.stdout[proc.stdout.index(marker) + len(marker):])[0]
    assert result["changed"] is True and result["reboot_required"] is True
    assert "BOOT_ORDER=0xf12" in result["config"]
    assert not (root / "boot/firmware/pieeprom.upd").exists()


def _playbook(tmp_path, extra_vars, inventory_vars):
    """Run playbooks/boot_order.yml with one node (connection local); returns (rc, stdout)."""
    playbook_bin = Path(sys.executable).parent / "ansible-playbook"
    if not playbook_bin.exists():
        pytest.skip("ansible-playbook not installed beside %s" % sys.executable)
    host = dict(ansible_connection="local", ansible_python_interpreter=sys.executable, **inventory_vars)
    inventory = {"all": {"children": {"carrier_nodes": {"hosts": {"nodeA": host}}},
                         "hosts": {"localhost": dict(ansible_connection="local",
                                                     ansible_python_interpreter=sys.executable)}}}
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    (tmp_path / "vars.json").write_text(json.dumps(extra_vars))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(_COLL), ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
               ANSIBLE_HOME=str(tmp_path / "ahome"), ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0")
    proc = subprocess.run(
        [str(playbook_bin), "-i", str(tmp_path / "inventory.json"), str(REPO / "playbooks" / "boot_order.yml"),
         "-e", "@%s" % (tmp_path / "vars.json")],
        capture_output=True, text=True, check=False, env=env, timeout=300,
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_playbook_through_the_os(tmp_path):
    root = tmp_path / "node"
    make_node(root)
    extra = dict(boot_order=["network", "sd", "restart"], boot_order_node_root=str(root), boot_order_become=False)
    rc, out = _playbook(tmp_path, extra, dict(carrier_controller="localhost", carrier_model="cm4"))
    assert rc == 0, out
    assert re.search(r"nodeA\s*:\s*ok=\d+\s+changed=1\s", out), out
    upd = I.EepromImage.from_file(str(root / "boot/firmware/pieeprom.upd"))
    assert upd.config == LIVE + "BOOT_ORDER=0xf12\n"
    rc, out = _playbook(tmp_path, extra, dict(carrier_controller="localhost", carrier_model="cm4"))
    assert rc == 0 and re.search(r"nodeA\s*:\s*ok=\d+\s+changed=0\s", out), out
    rc, out = _playbook(tmp_path, dict(extra, boot_order_method="floppy"), dict(carrier_controller="localhost"))
    assert rc != 0 and "boot_order_method must be os, usb_recovery or tftp_self_update" in out


@pytest.mark.parametrize("section", ["all]\nBOOT_ORDER=0x3\n[pi4", "gpio8=0]\n[all"])
def test_section_that_injects_one_is_refused_and_nothing_staged(tmp_path, section):
    root = tmp_path / "node"
    make_node(root)
    r = run_eeprom_config(dict(root=str(root), boot_order=["network", "restart"], section=section), tmp_path)
    assert r["failed"] is True and r["msg"].startswith("section: invalid section filter %r" % section), r
    assert os.listdir(str(root / "boot/firmware")) == []
    assert not (root / "var").exists()


def test_staged_sig_names_the_soc_and_bcm_usb_refused_on_pi5(tmp_path):
    root = tmp_path / "node"
    make_node(root, soc="bcm2712", live="[all]\nBOOT_UART=1\n")
    r = run_eeprom_config(dict(root=str(root), boot_order=["bcm_usb", "restart"]), tmp_path)
    message = "boot_order: 'bcm_usb' (0x5), a boot mode BCM2712 images do not have"
    assert r["failed"] is True and r["msg"].startswith(message), r
    assert os.listdir(str(root / "boot/firmware")) == []
    r = run_eeprom_config(dict(root=str(root), boot_order=["nvme", "restart"]), tmp_path,
                          env={"PATH": "/usr/bin:/bin", "SOURCE_DATE_EPOCH": "1722344555"})
    assert r["changed"] is True, r
    boot = root / "boot/firmware"
    sig = S.verify_sig((boot / "pieeprom.upd").read_bytes(), (boot / "pieeprom.sig").read_text(), target_soc="bcm2712")
    assert sig.ts == 1722344555 and (boot / "pieeprom.sig").read_text().splitlines()[1:] == [
        "ts: 1722344555", "target-soc: 2712"]
