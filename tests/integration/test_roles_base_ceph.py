# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ceph_node's data disk checks and opt-in wipe, run for real on this machine's block devices.

The role's ``device`` entry point runs through ansible-playbook (connection local) against loop
devices made here (an empty one, a small one, a mounted ext4 one, one with an ext4 file system,
one with a GPT partition table), the real root disk, a fake SD card node (``mmcblk0``, made with mknod), a
regular file and a missing path, each named by a link in /dev/disk/by-id. Every device that must be
refused is refused with a message naming it; the wipe happens only with the opt-in naming the same
path, really erases, and a second run has nothing to do. Needs root (loop devices, mount, mknod);
everything made is removed at teardown.

Not covered here: partitions. This test kernel reads no partition table (CONFIG_EFI_PARTITION and
CONFIG_MSDOS_PARTITION are off; `losetup -P` and `partx -a` add nothing), so a mounted partition of
the data disk, a partition as the data device and the per-partition wipe cannot be made.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.needs_root]

REPO = Path(__file__).resolve().parent.parent.parent
BY_ID = Path("/dev/disk/by-id")
MiB = 1024 * 1024


def run(*argv, check=True):
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=120)


def blkid_type(device):
    out = run("blkid", "-p", "-o", "value", "-s", "TYPE", device, check=False)
    return out.stdout.strip()


def pttype(device):
    out = run("blkid", "-p", "-o", "value", "-s", "PTTYPE", device, check=False)
    return out.stdout.strip()


class Disks:
    """Loop devices and /dev/disk/by-id links made for the tests, all removed by ``cleanup``."""

    def __init__(self, directory):
        self.dir = Path(directory)
        self.tag = "picluster-test-%d" % os.getpid()
        self.loops = []
        self.mounts = []
        self.links = []
        self.made_dirs = []

    def loop(self, name, size, partitioned=False):
        backing = self.dir / ("%s.img" % name)
        with open(backing, "wb") as f:
            f.truncate(size)
        if partitioned:
            run("sgdisk", "--new=1:0:0", "--typecode=1:8300", str(backing))
        device = run("losetup", "--find", "--show", str(backing)).stdout.strip()
        self.loops.append(device)
        return device

    def mount(self, device, name):
        point = self.dir / ("mnt-" + name)
        point.mkdir()
        run("mount", device, str(point))
        self.mounts.append(point)
        return point

    def link(self, name, target):
        for d in (BY_ID.parent, BY_ID):
            if not d.exists():
                d.mkdir()
                self.made_dirs.append(d)
        path = BY_ID / ("%s-%s" % (self.tag, name))
        path.symlink_to(target)
        self.links.append(path)
        return str(path)

    def cleanup(self):
        for point in reversed(self.mounts):
            run("umount", str(point), check=False)
        for device in self.loops:
            run("losetup", "--detach", device, check=False)
        for path in self.links:
            if path.is_symlink():
                path.unlink()
        for d in reversed(self.made_dirs):
            try:
                d.rmdir()
            except OSError:
                pass


def root_disk():
    """The whole disk holding /, or None when / is not on a block device here."""
    source = run("findmnt", "--noheadings", "--output", "SOURCE", "--mountpoint", "/").stdout.strip()
    if not source.startswith("/dev/") or not stat.S_ISBLK(os.stat(source).st_mode):
        return None
    parent = run("lsblk", "--noheadings", "--nodeps", "--paths", "--output", "PKNAME", source).stdout.strip()
    return parent or source


def playbook(tmp_path, cases, check=False):
    """Run the role's device entry point once per case (one inventory host each); {case: outcome}.

    outcome: {"failed": False, "changed": bool} or {"failed": True, "msg": str}.
    """
    inventory = {"all": {"hosts": {
        name: dict(case, ansible_connection="local", ansible_python_interpreter=sys.executable)
        for name, case in cases.items()}}}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    results = tmp_path / "results"
    results.mkdir(exist_ok=True)
    (tmp_path / "play.yml").write_text(yaml.safe_dump([{
        "name": "Check data devices",
        "hosts": "all",
        "gather_facts": False,
        "tasks": [{
            "name": "Check one device",
            "block": [
                {"name": "Apply the device entry point", "ansible.builtin.include_role": {
                    "name": "picluster.carrier.ceph_node", "tasks_from": "device"}},
                {"name": "Record the outcome", "ansible.builtin.set_fact": {"outcome": {
                    "failed": False,
                    "changed": "{{ [ceph_node_wipe_parts | default({}), ceph_node_wipe_disk | default({}),"
                               " ceph_node_zap | default({})] | selectattr('changed', 'defined')"
                               " | selectattr('changed') | list | length > 0 }}"}}},
            ],
            "rescue": [{"name": "Record the refusal", "ansible.builtin.set_fact": {"outcome": {
                "failed": True, "msg": "{{ ansible_failed_result.msg }}"}}}],
        }, {
            "name": "Write the outcome",
            "ansible.builtin.copy": {"dest": str(results) + "/{{ inventory_hostname }}.json",
                                     "content": "{{ outcome | to_json }}", "mode": "0644"},
            "check_mode": False,
        }],
    }]))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"), ANSIBLE_FORCE_COLOR="false",
               ANSIBLE_NOCOLOR="1", ANSIBLE_HOST_KEY_CHECKING="false", ANSIBLE_RETRY_FILES_ENABLED="false",
               ANSIBLE_FORKS="8", PATH=os.path.dirname(sys.executable) + ":" + os.environ.get("PATH", ""))
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(tmp_path / "inventory.yml"),
            str(tmp_path / "play.yml")]
    if check:
        argv.append("--check")
    proc = subprocess.run(argv, check=False, capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=600)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    return {name: json.loads((results / ("%s.json" % name)).read_text()) for name in cases}


@pytest.fixture(scope="module")
def disks(tmp_path_factory):
    if shutil.which("losetup") is None or shutil.which("sgdisk") is None:
        pytest.skip("needs losetup (util-linux) and sgdisk (gdisk)")
    d = Disks(tmp_path_factory.mktemp("disks"))
    try:
        d.empty = d.loop("empty", 1024 * MiB)
        d.small = d.loop("small", 64 * MiB)
        d.mounted = d.loop("mounted", 1024 * MiB)
        run("mkfs.ext4", "-q", d.mounted)
        d.mount(d.mounted, "mounted")
        d.data = d.loop("data", 1024 * MiB)
        run("mkfs.ext4", "-q", "-L", "olddata", d.data)
        d.parted_data = d.loop("partdata", 1024 * MiB, partitioned=True)
        # A block node named like an SD card, for the same loop device (the name is what is refused).
        d.mmcblk = d.dir / "mmcblk0"
        rdev = os.stat(d.empty).st_rdev
        os.mknod(d.mmcblk, stat.S_IFBLK | 0o600, os.makedev(os.major(rdev), os.minor(rdev)))
        d.regular = d.dir / "not-a-disk.img"
        d.regular.write_bytes(b"\0" * 4096)
        yield d
    finally:
        d.cleanup()


def test_device_checks(disks, tmp_path):
    d = disks
    base = {"ceph_node_min_size_gb": 1}
    cases = {
        "missing": dict(base, ceph_node_data_device=d.link("missing", str(d.dir / "no-such-disk"))),
        "not_by_id": dict(base, ceph_node_data_device=d.empty),
        "regular_file": dict(base, ceph_node_data_device=d.link("file", str(d.regular))),
        "mmcblk": dict(base, ceph_node_data_device=d.link("mmc", str(d.mmcblk))),
        "mounted": dict(base, ceph_node_data_device=d.link("mounted", d.mounted)),
        "too_small": dict(base, ceph_node_data_device=d.link("small", d.small)),
        "holds_data": dict(base, ceph_node_data_device=d.link("data", d.data)),
        "wipe_names_other": dict(base, ceph_node_data_device=d.link("data2", d.data),
                                 ceph_node_wipe_device=d.link("empty", d.empty)),
        "partitions_no_optin": dict(base, ceph_node_data_device=d.link("partdata", d.parted_data)),
        "accepted": dict(base, ceph_node_data_device=d.link("empty2", d.empty)),
        "accepted_kernel_name": dict(base, ceph_node_data_device=d.empty, ceph_node_require_by_id=False),
    }
    disk = root_disk()
    if disk is not None:
        cases["root_disk"] = dict(base, ceph_node_data_device=d.link("root", disk))
    out = playbook(tmp_path, cases)

    def refused(case, *words):
        result = out[case]
        assert result["failed"], "%s was accepted: %s" % (case, result)
        assert result["msg"].startswith("ceph_node_"), result["msg"]
        for word in words:
            assert word in result["msg"], "%s: %r not in %r" % (case, word, result["msg"])

    refused("missing", "ceph_node_data_device:", "does not exist")
    refused("not_by_id", "ceph_node_data_device: '%s' must name the data disk by a /dev/disk/by-id/ path" % d.empty)
    refused("regular_file", str(d.regular), "is not a block device")
    refused("mmcblk", "mmcblk0", "is an SD card or eMMC (mmcblk)")
    refused("mounted", d.mounted, "is mounted (%s)" % (d.dir / "mnt-mounted"))
    refused("too_small", d.small, "0.06 GiB, less than ceph_node_min_size_gb (1 GiB)")
    refused("holds_data", d.data, "holds data (ext4)", "set ceph_node_wipe_device")
    refused("wipe_names_other", "ceph_node_wipe_device:", "must be exactly ceph_node_data_device")
    refused("partitions_no_optin", d.parted_data, "holds data (gpt, PMBR)")
    if disk is not None:
        refused("root_disk", disk, "is on the root disk")
    assert out["accepted"] == {"failed": False, "changed": False}
    assert out["accepted_kernel_name"] == {"failed": False, "changed": False}
    # nothing refused was touched
    assert blkid_type(d.data) == "ext4"
    assert blkid_type(d.mounted) == "ext4"
    assert pttype(d.parted_data) == "gpt"


def test_wipe_only_with_opt_in(disks, tmp_path):
    d = disks
    data = d.link("wipe-data", d.data)
    parted = d.link("wipe-parted", d.parted_data)
    cases = {
        "data": {"ceph_node_min_size_gb": 1, "ceph_node_data_device": data, "ceph_node_wipe_device": data},
        "parted": {"ceph_node_min_size_gb": 1, "ceph_node_data_device": parted, "ceph_node_wipe_device": parted},
    }
    # check mode: nothing erased
    playbook(tmp_path, cases, check=True)
    assert blkid_type(d.data) == "ext4"
    assert pttype(d.parted_data) == "gpt"

    first = playbook(tmp_path, cases)
    assert first == {"data": {"failed": False, "changed": True}, "parted": {"failed": False, "changed": True}}
    assert blkid_type(d.data) == ""
    assert pttype(d.parted_data) == ""  # no partition table left (primary, backup or protective MBR)
    assert run("sgdisk", "--print", d.parted_data, check=False).returncode != 0 or \
        "Creating new GPT entries" in run("sgdisk", "--print", d.parted_data, check=False).stdout

    second = playbook(tmp_path, cases)
    assert second == {"data": {"failed": False, "changed": False}, "parted": {"failed": False, "changed": False}}


def test_site_playbook_plays_by_specialization(tmp_path):
    """site.yml against the embedded simulated cluster: node_base on every node first, then each role on the
    nodes of its specialization group, as the inventory plugin makes them."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"), ANSIBLE_NOCOLOR="1")
    bindir = os.path.dirname(sys.executable)
    topology = REPO / "inventory" / "sim" / "cluster.carrier.yml"
    inventory = json.loads(subprocess.run(
        [os.path.join(bindir, "ansible-inventory"), "-i", str(topology), "--list"],
        capture_output=True, text=True, env=env, check=True, timeout=120).stdout)

    def members(group):
        return set(inventory.get(group, {}).get("hosts", []))

    listing = subprocess.run(
        [os.path.join(bindir, "ansible-playbook"), "-i", str(topology), str(REPO / "playbooks" / "site.yml"),
         "--list-hosts"], capture_output=True, text=True, env=env, check=True, timeout=120).stdout
    plays = []
    for line in listing.splitlines():
        line = line.strip()
        if line.startswith("play #"):
            plays.append({"title": line, "hosts": set()})
        elif plays and line and not line.startswith(("pattern:", "hosts (")):
            plays[-1]["hosts"].add(line)
    assert [p["title"].split(": ", 1)[1].split("\t")[0] for p in plays] == [
        "Base of every node", "Ceph storage nodes", "K3s servers and agents", "Pi-hole DNS nodes", "MPI compute nodes"]
    assert plays[0]["hosts"] == members("carrier_nodes") and plays[0]["hosts"]
    assert plays[1]["hosts"] == members("ceph_storage") and plays[1]["hosts"]
    assert plays[2]["hosts"] == members("k3s_server") | members("k3s_agent") and plays[2]["hosts"]
    assert plays[3]["hosts"] == members("pihole") and plays[3]["hosts"]
    assert plays[4]["hosts"] == members("mpi")
    # the controllers are never provisioned as nodes
    assert not plays[0]["hosts"] & members("carrier_controllers")


# `ceph-volume raw list --format json` as Ceph 16.2 printed it in the ceph_node molecule scenario,
# and `ceph-volume lvm list --format json` in the layout Ceph documents (one list of volumes per
# OSD id, the cluster in the volume's tags).
RAW_LIST = {"37c07449-e8a4-4d23-a410-c163a3565621": {
    "ceph_fsid": "df393b81-9558-4beb-ae50-cecf2d7b7ebe", "device": "/dev/loop1", "osd_id": 0,
    "osd_uuid": "37c07449-e8a4-4d23-a410-c163a3565621", "type": "bluestore"}}
LVM_LIST = {"3": [
    {"devices": ["/dev/nvme0n1"], "lv_name": "osd-block-6b1d1c2e", "name": "osd-block-6b1d1c2e",
     "path": "/dev/ceph-0f5a/osd-block-6b1d1c2e", "type": "block",
     "tags": {"ceph.cluster_fsid": "aaaaaaaa-1111-2222-3333-444444444444", "ceph.osd_id": "3", "ceph.type": "block"}},
    {"devices": ["/dev/sdb"], "lv_name": "osd-db-77", "name": "osd-db-77", "path": "/dev/ceph-db/osd-db-77",
     "type": "db", "tags": {"ceph.cluster_fsid": "aaaaaaaa-1111-2222-3333-444444444444", "ceph.type": "db"}}]}


@pytest.mark.parametrize("mode, listing, expected", [
    ("raw", RAW_LIST, [{"osd_id": "0", "ceph_fsid": "df393b81-9558-4beb-ae50-cecf2d7b7ebe"}]),
    ("lvm", LVM_LIST, [{"osd_id": "3", "ceph_fsid": "aaaaaaaa-1111-2222-3333-444444444444"}]),
    ("raw", {}, []),
    ("lvm", None, []),  # lvm list prints nothing (rc 1) for a device without OSD volumes
])
def test_volume_list_template(tmp_path, mode, listing, expected):
    """roles/ceph_node/templates/volume_list.j2, rendered by Ansible as the role renders it."""
    out = tmp_path / "osds.json"
    stdout = "" if listing is None else json.dumps(listing)
    (tmp_path / "play.yml").write_text(yaml.safe_dump([{
        "name": "Render", "hosts": "localhost", "gather_facts": False,
        "vars": {"ceph_node_volume_mode": mode, "ceph_node_volume_list": {"stdout": stdout}},
        "tasks": [{"name": "Render the OSD list", "ansible.builtin.copy": {
            "dest": str(out), "mode": "0644",
            "content": "{{ lookup('ansible.builtin.template', '%s') }}" % (
                REPO / "roles" / "ceph_node" / "templates" / "volume_list.j2")}}]}]))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local",
         "-e", "ansible_python_interpreter=" + sys.executable, str(tmp_path / "play.yml")],
        check=False, capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert json.loads(out.read_text()) == expected


def memory_controller_on():
    """The oracle for node_base's memory cgroup check: cgroup v2's controllers file, else /proc/cgroups."""
    v2 = Path("/sys/fs/cgroup/cgroup.controllers")
    if v2.exists():
        return "memory" in v2.read_text().split()
    for line in Path("/proc/cgroups").read_text().splitlines():
        fields = line.split()
        if fields and fields[0] == "memory":
            return fields[3] == "1"
    return False


def test_node_base_live_check_against_this_kernel(tmp_path):
    """node_base's boot_live.yml (what decides a reboot and asserts after it) against the running kernel's
    /proc/cmdline and cgroups: tokens that are there, tokens and keys that are not."""
    tokens = Path("/proc/cmdline").read_text().split()
    keyed = next(t for t in tokens if "=" in t)
    absent = "picluster_never_set=1"
    cases = {
        "live": ([keyed, tokens[0]], [absent, "picluster_never_set"], False, True),
        "token_missing": ([keyed, absent], [], False, False),
        "unwanted_token_there": ([], [keyed], False, False),
        "unwanted_key_there": ([], [keyed.split("=", 1)[0]], False, False),
        "memory_cgroup": ([], [], True, memory_controller_on()),
    }
    inventory = {"all": {"hosts": {
        name: {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
               "node_base_boot": {"cmdline_expected": expected, "cmdline_unexpected": unexpected},
               "node_base_k3s_cgroups": cgroups}
        for name, (expected, unexpected, cgroups, _live) in cases.items()}}}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    results = tmp_path / "results"
    results.mkdir()
    (tmp_path / "play.yml").write_text(yaml.safe_dump([{
        "name": "Live check", "hosts": "all", "gather_facts": False,
        "tasks": [
            {"name": "Run the live check", "ansible.builtin.include_role": {
                "name": "picluster.carrier.node_base", "tasks_from": "boot_live"}},
            {"name": "Write the outcome", "ansible.builtin.copy": {
                "dest": str(results) + "/{{ inventory_hostname }}.json", "mode": "0644",
                "content": "{{ {'live': node_base_boot_live, 'type': node_base_boot_live | type_debug,"
                           " 'report': node_base_boot_live_report} | to_json }}"}},
        ]}]))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORKS="8")
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(tmp_path / "inventory.yml"),
         str(tmp_path / "play.yml")], check=False, capture_output=True, text=True, env=env, cwd=str(tmp_path),
        timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:]
    for name, case in cases.items():
        live = case[3]
        outcome = json.loads((results / ("%s.json" % name)).read_text())
        assert outcome["type"] == "bool" and outcome["live"] is live, (name, outcome)
        assert outcome["report"].startswith("/proc/cmdline is '%s'" % " ".join(tokens)), outcome["report"]
