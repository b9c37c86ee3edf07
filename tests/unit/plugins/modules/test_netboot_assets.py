# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""netboot_assets, run for real: the module as a process with its arguments file, as Ansible runs it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from modrun import run_module

REPO = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(REPO / "tests" / "unit" / "plugins" / "module_utils"))

from netboot_fixtures import make_boot_dir, make_os_image  # noqa: E402


NODES = [
    {"name": "node01", "serial": "100000001e7ea419", "mac": "dc:a6:32:51:80:f3", "model": "cm4",
     "nfs_root": "10.99.0.1:/srv/nfs/node01"},
    {"name": "node02", "serial": "100000008306d03b", "mac": "dc:a6:32:a5:dc:f3", "model": "cm4",
     "root": "PARTUUID=4e639091-02", "extra_kernel_args": "quiet splash"},
]


def test_build_rerun_check_and_diff(tmp_path):
    boot = make_boot_dir(tmp_path / "boot")
    tftp = tmp_path / "tftp"
    args = dict(source=boot, tftp_root=str(tftp), nodes=NODES)
    r = run_module("netboot_assets", args, tmp_path, check=True)
    assert r["changed"] is True and r["changed_nodes"] == ["node01", "node02"], r
    assert not tftp.exists()
    assert "1e7ea419/start4.elf" in r["diff"]["after"]
    r = run_module("netboot_assets", args, tmp_path)
    assert r["changed"] is True and sorted(r["nodes"]) == ["node01", "node02"]
    assert r["nodes"]["node01"]["dir"] == str(tftp / "1e7ea419")
    assert "start4.elf" in r["nodes"]["node02"]["added"]
    assert (tftp / "8306d03b" / "cmdline.txt").read_text().endswith("rootwait quiet splash\n")
    assert r["store"]["objects"] == 11  # 7 shared files + 2 x (config.txt, cmdline.txt)
    r = run_module("netboot_assets", args, tmp_path)
    assert r["changed"] is False and r["changed_nodes"] == [] and r["diff"]["after"] == ""
    # Change one node's kernel arguments: one file of one node.
    args["nodes"] = [NODES[0], dict(NODES[1], extra_kernel_args=["quiet"])]
    r = run_module("netboot_assets", args, tmp_path, check=True)
    assert r["changed"] is True and r["changed_nodes"] == ["node02"]
    assert r["nodes"]["node02"]["modified"] == ["cmdline.txt"]
    assert (tftp / "8306d03b" / "cmdline.txt").read_text().endswith("quiet splash\n")  # check mode: untouched
    r = run_module("netboot_assets", args, tmp_path)
    assert r["changed"] is True and (tftp / "8306d03b" / "cmdline.txt").read_text().endswith("rootwait quiet\n")


def test_prune_and_mac_dirs_from_an_image(tmp_path):
    boot = make_boot_dir(tmp_path / "boot")
    image = make_os_image(tmp_path / "os.img", boot, table="gpt")
    tftp = tmp_path / "tftp"
    r = run_module("netboot_assets", dict(source=image, tftp_root=str(tftp), nodes=NODES, tftp_prefix="mac"),
                   tmp_path)
    assert r["changed"] and r["source"]["kind"] == "image" and r["source"]["partition"].startswith("GPT partition 1")
    assert sorted(p.name for p in tftp.iterdir() if not p.name.startswith(".")) == ["dc-a6-32-51-80-f3",
                                                                                    "dc-a6-32-a5-dc-f3"]
    r = run_module("netboot_assets", dict(source=image, tftp_root=str(tftp), nodes=NODES[:1], tftp_prefix="mac"),
                   tmp_path)
    assert r["changed"] is False and r["unlisted"] == ["dc-a6-32-a5-dc-f3"]
    r = run_module("netboot_assets", dict(source=image, tftp_root=str(tftp), nodes=NODES[:1], tftp_prefix="mac",
                                          prune=True), tmp_path)
    assert r["changed"] is True and r["pruned"] == ["dc-a6-32-a5-dc-f3"]
    assert not (tftp / "dc-a6-32-a5-dc-f3").exists()


def test_templates_from_files(tmp_path):
    boot = make_boot_dir(tmp_path / "boot")
    (tmp_path / "config.j2").write_text("# {{ node.name }}\n{{ source_config }}\n[all]\ngpu_mem={{ vars.gpu }}\n")
    (tmp_path / "cmdline.j2").write_text("console=serial0,115200 root={{ root }} {{ extra_kernel_args|join(' ') }}\n")
    tftp = tmp_path / "tftp"
    r = run_module("netboot_assets", dict(
        source=boot, tftp_root=str(tftp), config_template=str(tmp_path / "config.j2"),
        cmdline_template=str(tmp_path / "cmdline.j2"),
        nodes=[{"name": "n1", "serial": "b7f44626", "root": "/dev/nvme0n1p2", "vars": {"gpu": 16}}]), tmp_path)
    assert r["changed"], r
    assert (tftp / "b7f44626" / "config.txt").read_text().startswith("# n1\n# From the OS image\n")
    assert (tftp / "b7f44626" / "config.txt").read_text().endswith("[all]\ngpu_mem=16\n")
    assert (tftp / "b7f44626" / "cmdline.txt").read_text() == "console=serial0,115200 root=/dev/nvme0n1p2 \n"
    r = run_module("netboot_assets", dict(source=boot, tftp_root=str(tftp), config_template=str(tmp_path / "no.j2"),
                                          nodes=[{"name": "n1", "serial": "b7f44626"}]), tmp_path)
    assert r["failed"] and r["msg"].startswith("config_template: ") and "no.j2 does not exist" in r["msg"]


@pytest.mark.parametrize("nodes,source,message", [
    ([{"name": "a", "serial": "12345"}], "boot", "nodes[0].serial: '12345' is not a serial number"),
    ([{"name": "a", "serial": "b7f44626", "mac": "zz:a6:32:01:36:c2"}], "boot",
     "nodes[0].mac: 'zz:a6:32:01:36:c2' is not a MAC address"),
    ([{"name": "a", "serial": "10000000b7f44626"}, {"name": "b", "serial": "b7f44626"}], "boot",
     "nodes[1].serial: nodes a and b have the same serial"),
    ([{"name": "a", "serial": "b7f44626"}], "nostart4", "has no start4.elf"),
    ([{"name": "a", "serial": "b7f44626", "model": "cm5"}], "boot", "no config.txt plus bcm2712 device tree"),
    ([{"name": "a", "serial": "b7f44626"}], "nofat", "has no FAT boot partition (MBR partition 1 (type 0x83)"),
    ([{"name": "a", "serial": "b7f44626", "config": ["dtoverlay=x\n[none]"]}], "boot",
     "nodes[0].config[0]: 'dtoverlay=x\\n[none]' holds a line break"),
    ([{"name": "a", "serial": "b7f44626", "extra_kernel_args": ["quiet", "a\nb"]}], "boot",
     "nodes[0].extra_kernel_args[1]: 'a\\nb' holds a line break"),
])
def test_bad_input_fails_and_writes_nothing(tmp_path, nodes, source, message):
    paths = {
        "boot": lambda: make_boot_dir(tmp_path / "boot"),
        "nostart4": lambda: make_boot_dir(tmp_path / "boot", pi4=False, pi5=True),
        "nofat": lambda: make_os_image(tmp_path / "os.img", table="mbr", fat=False, size_mb=8, boot_mb=2),
    }
    tftp = tmp_path / "tftp"
    r = run_module("netboot_assets", dict(source=paths[source](), tftp_root=str(tftp), nodes=nodes), tmp_path)
    assert r.get("failed") is True, r
    assert message in r["msg"]
    assert r["msg"].split(":")[0].split("[")[0] in ("nodes", "source"), r["msg"]  # every refusal names its option
    assert not tftp.exists()


def test_argument_spec_rejects_bad_model(tmp_path):
    boot = make_boot_dir(tmp_path / "boot")
    r = run_module("netboot_assets", dict(source=boot, tftp_root=str(tmp_path / "t"),
                                          nodes=[{"name": "a", "serial": "b7f44626", "model": "cm3"}]), tmp_path)
    assert r["failed"] and "model" in r["msg"] and "cm3" in r["msg"]


def test_customize_per_node_over_the_default_secrets_masked(tmp_path):
    from firstboot_fixtures import SHA512, ssh_key

    boot = make_boot_dir(tmp_path / "boot")
    tftp = tmp_path / "tftp"
    key = ssh_key()
    default = {"users": [{"name": "admin", "ssh_authorized_keys": [key], "password_hash": SHA512}],
               "timezone": "UTC", "style": "firstrun"}
    nodes = [NODES[0], dict(NODES[1], customize={"hostname": "worker2", "locale": "en_GB.UTF-8"})]
    args = dict(source=boot, tftp_root=str(tftp), nodes=nodes, customize=default)
    r = run_module("netboot_assets", args, tmp_path, check=True)
    assert r["changed"] is True and not tftp.exists(), r
    assert "1e7ea419/firstrun.sh " in r["diff"]["after"]
    assert SHA512 not in r.stdout and SHA512 not in r.stderr  # not in the result, the diff or the invocation
    r = run_module("netboot_assets", args, tmp_path)
    assert r["nodes"]["node02"]["customize"] == {"style": "firstrun", "files": ["cmdline.txt", "firstrun.sh"]}
    assert SHA512 not in r.stdout
    script1 = (tftp / "1e7ea419" / "firstrun.sh").read_text()
    script2 = (tftp / "8306d03b" / "firstrun.sh").read_text()
    # The node's keys over the default's (an unset suboption does not take the default's away).
    assert "node01" in script1 and "worker2" in script2 and "en_GB.UTF-8" in script2 and "en_GB" not in script1
    assert key in script1 and key in script2 and "UTC" in script2
    assert (tftp / "8306d03b" / "firstrun.sh").stat().st_mode & 0o777 == 0o600
    r = run_module("netboot_assets", args, tmp_path)
    assert r["changed"] is False and r["changed_nodes"] == []


@pytest.mark.parametrize("customize,node_customize,message", [
    ({"hostname": "x", "colour": "blue"}, None, "colour"),
    (None, {"hostname": "node.example"}, "nodes[1].customize.hostname: 'node.example' is not a host name"),
    ({"users": [{"name": "admin", "password_hash": "hunter2hunter2"}]}, None,
     "customize.users[0].password_hash: <hidden>"),
    ({"style": "kickstart"}, None,
     "value of style must be one of: cloud-init, firstrun, auto, got: kickstart found in customize"),
])
def test_customize_refusals(tmp_path, customize, node_customize, message):
    boot = make_boot_dir(tmp_path / "boot")
    tftp = tmp_path / "tftp"
    nodes = [NODES[0], dict(NODES[1], customize=node_customize)]
    args = dict(source=boot, tftp_root=str(tftp), nodes=nodes)
    if customize is not None:
        args["customize"] = customize
    r = run_module("netboot_assets", args, tmp_path)
    assert r.get("failed") is True and message in r["msg"], r
    assert "hunter2hunter2" not in r.stdout
    assert not tftp.exists()


def test_template_vars_keep_their_null_values(tmp_path):
    """Only customize drops the suboptions the argument spec filled in; a template variable set to null stays."""
    boot = make_boot_dir(tmp_path / "boot")
    (tmp_path / "config.j2").write_text("[all]\n# {{ vars.gpu is none }}\n")
    r = run_module("netboot_assets", dict(source=boot, tftp_root=str(tmp_path / "t"),
                                          config_template=str(tmp_path / "config.j2"),
                                          nodes=[{"name": "n1", "serial": "b7f44626", "vars": {"gpu": None}}]),
                   tmp_path)
    assert r["changed"], r
    assert (tmp_path / "t" / "b7f44626" / "config.txt").read_text() == "[all]\n# True\n"
