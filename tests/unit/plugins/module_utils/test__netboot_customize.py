# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_netboot with ``customize``: first-boot files planned into node trees (styles, merging, modes, refusals)."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest
from firstboot_fixtures import SHA512, ssh_key
from netboot_fixtures import NODES, build, make_boot_dir, tree

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._netboot.nodes import parse_nodes

TWO = NODES[:2]


def _mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def _with(nodes, i, **kw):
    return [dict(n, **kw) if j == i else dict(n) for j, n in enumerate(nodes)]


def test_firstrun_when_the_source_has_no_seed_files_and_idempotent(tmp_path):
    boot = make_boot_dir(tmp_path / "boot")
    tftp = tmp_path / "tftp"
    changed, result, _diff = build(boot, tftp, nodes=_with(TWO, 0, customize={"timezone": "Europe/Berlin"}))
    assert changed
    node01 = result["nodes"]["node01"]
    assert node01["customize"] == {"style": "firstrun", "files": ["cmdline.txt", "firstrun.sh"]}
    assert "customize" not in result["nodes"]["node02"]
    script = (tftp / "b7f44626" / "firstrun.sh").read_text()
    assert "node01" in script and "Europe/Berlin" in script  # the host name defaults to the node's name
    cmdline = (tftp / "b7f44626" / "cmdline.txt").read_text()
    assert "nfsroot=10.0.0.1:/srv/nfs/node01" in cmdline and "systemd.run=/boot/firstrun.sh" in cmdline
    assert cmdline.endswith("\n") and cmdline.count("\n") == 1
    assert not (tftp / "8306d03b" / "firstrun.sh").exists()
    changed, result, diff = build(boot, tftp, nodes=_with(TWO, 0, customize={"timezone": "Europe/Berlin"}))
    assert changed is False and result["changed_nodes"] == [] and diff["after"] == ""
    # The customisation taken away: the tree is the plain one again.
    changed, result, _diff = build(boot, tftp, nodes=TWO)
    assert changed and result["nodes"]["node01"]["removed"] == ["firstrun.sh"]
    assert result["nodes"]["node01"]["modified"] == ["cmdline.txt"]
    assert "systemd.run" not in (tftp / "b7f44626" / "cmdline.txt").read_text()


def test_cloud_init_when_the_source_has_seed_files(tmp_path):
    seed = {"user-data": b"#cloud-config\n", "meta-data": b"", "firstrun.sh": b"#!/bin/sh\n"}
    boot = make_boot_dir(tmp_path / "boot", extra=seed)
    tftp = tmp_path / "tftp"
    _changed, result, _diff = build(boot, tftp, nodes=_with(TWO, 1, customize={"hostname": "worker2"}))
    assert result["nodes"]["node02"]["customize"] == {"style": "cloud-init",
                                                      "files": ["cmdline.txt", "meta-data", "user-data"]}
    d = tftp / "8306d03b"
    assert "local-hostname: worker2" in (d / "meta-data").read_text()
    assert "ds=nocloud;i=" in (d / "cmdline.txt").read_text()
    assert not (d / "firstrun.sh").exists()  # a stale hook's script is not kept beside the seed
    # node01 has no customisation: the source's seed files as they are.
    assert (tftp / "b7f44626" / "user-data").read_bytes() == b"#cloud-config\n"
    assert (tftp / "b7f44626" / "firstrun.sh").exists()


def test_top_level_default_under_each_node_and_one_change_changes_only_its_files(tmp_path):
    boot = make_boot_dir(tmp_path / "boot")
    tftp = tmp_path / "tftp"
    key = ssh_key()
    default = {"users": [{"name": "admin", "ssh_authorized_keys": [key]}], "timezone": "UTC", "style": "cloud-init"}
    nodes = _with(TWO, 1, customize={"hostname": "worker2", "timezone": "Europe/Paris"})
    build(boot, tftp, nodes=nodes, customize=default)
    t = tree(tftp)
    assert "local-hostname: node01" in t["b7f44626/meta-data"].decode()
    assert "local-hostname: worker2" in t["8306d03b/meta-data"].decode()
    assert key.encode() in t["b7f44626/user-data"] and key.encode() in t["8306d03b/user-data"]
    assert b"Europe/Paris" in t["8306d03b/user-data"] and b"Europe/Paris" not in t["b7f44626/user-data"]
    nodes = _with(TWO, 1, customize={"hostname": "worker3", "timezone": "Europe/Paris"})
    changed, result, diff = build(boot, tftp, nodes=nodes, customize=default, check_mode=True)
    assert changed and result["changed_nodes"] == ["node02"]
    assert result["nodes"]["node02"]["modified"] == ["cmdline.txt", "meta-data", "user-data"]
    assert tree(tftp) == t  # check mode: nothing written
    assert "8306d03b/meta-data " in diff["after"] and "b7f44626" not in diff["after"]
    build(boot, tftp, nodes=nodes, customize=default)
    after = tree(tftp)
    changed_files = {k for k in after if after[k] != t.get(k)}
    assert changed_files == {"8306d03b/cmdline.txt", "8306d03b/meta-data", "8306d03b/user-data"}


def test_a_password_hash_is_0600_and_never_in_the_result(tmp_path):
    boot = make_boot_dir(tmp_path / "boot")
    tftp = tmp_path / "tftp"
    cust = {"users": [{"name": "admin", "password_hash": SHA512}], "style": "cloud-init"}
    changed, result, diff = build(boot, tftp, nodes=TWO[:1], customize=cust)
    d = tftp / "b7f44626"
    assert SHA512.encode() in (d / "user-data").read_bytes()
    assert _mode(d / "user-data") == 0o600
    digest = hashlib.sha256((d / "user-data").read_bytes()).hexdigest()
    assert _mode(tftp / ".store" / "sha256" / digest[:2] / digest) == 0o600
    assert _mode(d / "meta-data") == 0o644 and _mode(d / "cmdline.txt") == 0o644
    assert SHA512 not in repr(result) + repr(diff)
    # A mode changed behind the module's back is put right (and only that file counts as changed).
    os.chmod(d / "user-data", 0o644)
    changed, result, _diff = build(boot, tftp, nodes=TWO[:1], customize=cust)
    assert changed and result["nodes"]["node01"]["modified"] == ["user-data"]
    assert _mode(d / "user-data") == 0o600
    assert build(boot, tftp, nodes=TWO[:1], customize=cust)[0] is False
    # firstrun.sh holds the hash too.
    build(boot, tftp, nodes=TWO[:1], customize=dict(cust, style="firstrun"))
    assert _mode(d / "firstrun.sh") == 0o600


@pytest.mark.parametrize("nodes,customize,message", [
    (_with(TWO, 1, customize={"hostname": "bad_name"}), None, "nodes[1].customize.hostname: 'bad_name' is not a host"),
    (_with(TWO, 0, name="Node01", customize={}), None,
     "nodes[0].customize.hostname: 'Node01' is not a host name: use lowercase letters; it defaults to the node's"),
    (TWO, {"timezone": "Mars/Olympus"}, "customize.timezone: 'Mars/Olympus'"),
    (TWO, {"users": [{"name": "admin", "ssh_authorized_keys": ["ssh-ed25519 AAAA"]}]},
     "customize.users[0].ssh_authorized_keys[0]"),
    (_with(TWO, 0, customize="node01"), None, "nodes[0].customize: must be a mapping, got str"),
    (TWO, {"style": "ignition"}, "customize.style: 'ignition' is not one of"),
    (_with(TWO, 1, customize={"colour": "blue"}), None, "nodes[1].customize"),
])
def test_refusals_name_the_option_and_write_nothing(tmp_path, nodes, customize, message):
    boot = make_boot_dir(tmp_path / "boot")
    tftp = tmp_path / "tftp"
    with pytest.raises(CarrierError) as e:
        build(boot, tftp, nodes=nodes, customize=customize)
    assert message in str(e.value)
    assert str(e.value).startswith(message.split(":")[0].split(" ")[0])
    assert not tftp.exists()


def test_a_password_hash_is_hidden_in_a_refusal():
    with pytest.raises(CarrierError) as e:
        parse_nodes(TWO, customize={"users": [{"name": "admin", "password_hash": "$6$plain-text-password"}]})
    assert "plain-text-password" not in str(e.value) and "customize.users[0].password_hash" in str(e.value)
