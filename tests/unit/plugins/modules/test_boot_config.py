# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""boot_config run as a module process against a boot directory in tmp_path."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from modrun import run_module


run_boot_config = functools.partial(run_module, "boot_config", tmpdir=True, env={"PATH": "/usr/bin:/bin"})


CMDLINE = "console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 rootwait quiet\n"
CONFIG = "dtparam=audio=on\narm_64bit=1\n\n[cm4]\notg_mode=1\n\n[all]\n"
K3S = dict(cmdline_set={"cgroup_memory": 1}, cmdline_add=["cgroup_enable=memory"],
           cmdline_absent=["console=serial0,115200"])


@pytest.fixture
def boot(tmp_path):
    d = tmp_path / "firmware"
    d.mkdir()
    (d / "cmdline.txt").write_text(CMDLINE)
    (d / "config.txt").write_text(CONFIG)
    return d


def test_change_then_idempotent(boot, tmp_path):
    args = dict(K3S, boot_dir=str(boot), config_set={"cm4": {"otg_mode": 1}, "all": {"dtparam": ["pciex1_gen=3"]}})
    first = run_boot_config(args, tmp_path)
    assert first["changed"] is True and first["reboot_required"] is True
    assert sorted(first["changed_files"]) == [str(boot / "cmdline.txt"), str(boot / "config.txt")]
    want = "console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 rootwait quiet cgroup_memory=1 cgroup_enable=memory"
    assert (boot / "cmdline.txt").read_text() == want + "\n"
    assert first["cmdline"] == want
    assert first["cmdline_expected"] == ["cgroup_memory=1", "cgroup_enable=memory"]
    assert first["cmdline_unexpected"] == ["console=serial0,115200"]
    assert (boot / "config.txt").read_text() == CONFIG + "dtparam=pciex1_gen=3\n" == first["config"]
    assert [d["after_header"] for d in first["diff"]] == [str(boot / "cmdline.txt"), str(boot / "config.txt")]
    assert first["diff"][0]["before"] == CMDLINE
    second = run_boot_config(args, tmp_path)
    assert second["changed"] is False and second["reboot_required"] is False and second["changed_files"] == []
    assert second["diff"] == []
    assert sorted(p.name for p in boot.iterdir()) == ["cmdline.txt", "config.txt"]


def test_check_mode_writes_nothing(boot, tmp_path):
    result = run_boot_config(dict(K3S, boot_dir=str(boot)), tmp_path, check=True)
    assert result["changed"] is True and result["changed_files"] == [str(boot / "cmdline.txt")]
    assert "cgroup_enable=memory" in result["diff"][0]["after"]
    assert (boot / "cmdline.txt").read_text() == CMDLINE
    assert "config" not in result  # no config option: config.txt not read


def test_backup(boot, tmp_path):
    result = run_boot_config(dict(K3S, boot_dir=str(boot), backup=True), tmp_path)
    backup = Path(result["backup_files"][str(boot / "cmdline.txt")])
    assert backup.parent == boot and backup.read_text() == CMDLINE


def test_errors_change_nothing(boot, tmp_path):
    args = dict(boot_dir=str(boot), cmdline_add=["quiet"], config_set={"all": {"arm_64bit": "a b"}})
    result = run_boot_config(args, tmp_path)
    assert result["failed"] is True
    assert result["msg"] == "config_set.all.arm_64bit: value 'a b' contains whitespace"
    assert (boot / "cmdline.txt").read_text() == CMDLINE
    missing = run_boot_config(dict(boot_dir=str(tmp_path), cmdline_add=["quiet"]), tmp_path)
    assert missing["failed"] is True and "cmdline.txt does not exist" in missing["msg"]
    bad = run_boot_config(dict(boot_dir=str(boot), cmdline_set={"x": 1}, cmdline_absent=["x"]), tmp_path)
    assert bad["msg"] == "cmdline_absent: 'x' names key 'x' that cmdline_set sets"


def test_nothing_asked_reads_nothing(tmp_path):
    result = run_boot_config(dict(boot_dir=str(tmp_path)), tmp_path)
    assert result["changed"] is False and result["boot_dir"] == str(tmp_path)


def test_section_that_injects_one_is_refused_and_nothing_changes(boot, tmp_path):
    r = run_boot_config(dict(boot_dir=str(boot), cmdline_add=["quiet"],
                             config_set={"all]\ndtoverlay=evil\n[pi4": {"otg_mode": 1}}), tmp_path)
    assert r["failed"] is True and r["msg"].startswith("config_set: invalid section filter 'all]\\ndtoverlay=evil")
    assert (boot / "config.txt").read_text() == CONFIG and (boot / "cmdline.txt").read_text() == CMDLINE
    r = run_boot_config(dict(boot_dir=str(boot), config_set={"all": {"arm_freq": float("nan")}}), tmp_path)
    assert r["failed"] is True and r["msg"] == "config_set.all.arm_freq: nan is not a finite number"
    assert (boot / "config.txt").read_text() == CONFIG
