# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/flash.yml and node_flash on the simulator: an image shaped like Raspberry Pi OS (MBR,
FAT32 boot with the firmware's files, ext4 root; made with sfdisk, mkfs.vfat, mtools, mke2fs),
xz-compressed, flashed onto two nodes of one controller at once through rpiboot's stand-in; both
verify and boot from their eMMC to a login prompt with their customised names; a re-run changes
nothing; refusals leave the node's storage untouched."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest
import yaml

from modrun import run_module
from test_playbooks import playbook, recap

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "unit" / "plugins" / "module_utils"))

from flash_fixtures import compress, make_os_image  # noqa: E402

CACHE = REPO / "tests" / "output" / "flash"


@pytest.fixture(scope="module")
def image():
    """The 64 MB image and its .xz, built once and cached under tests/output/flash."""
    CACHE.mkdir(parents=True, exist_ok=True)
    raw = CACHE / "rpi-64M.img"
    xz = CACHE / "rpi-64M.img.xz"
    if not xz.exists():
        make_os_image(raw, size_mb=64, payload_mb=1)
        compress(str(raw), "xz")
    return {"raw": str(raw), "xz": str(xz)}


def flash_topology():
    data = yaml.safe_load((REPO / "inventory" / "sim" / "cluster.carrier.yml").read_text())
    for name, board in data["boards"].items():
        board["bus"] = "sim:{dir}/%s.sock" % name
        board["console"] = "{dir}/state/console/{host}"
        board["sim"] = {"gadget_time": 0.2, "usb_rate": 0}  # unpaced: the pace is tests/unit/sim/test_usb_pacing.py's
    for slot in data["boards"]["carrier1"]["slots"].values():
        slot["sim"] = {"emmc_gb": 8} if slot["model"] == "cm4" else {"emmc_gb": 16, "nvme_gb": 1}
    return data


@pytest.fixture
def cluster(sim_cluster_factory):
    return sim_cluster_factory(flash_topology(), boot_time=0.2)


def _emmc(cluster, host):
    return os.path.join(cluster.state_dir, "nodes", host, "emmc.img")


def _head_sha(path, length):
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read(length)).hexdigest()


def test_two_nodes_at_once_boot_with_their_names_then_unchanged(cluster, image, tmp_path):
    state = str(tmp_path / "flash-state")
    args = ["-l", "node01,node02", "-e", "flash_image=%s" % image["xz"], "-e", "flash_state_dir=%s" % state,
            "-e", "flash_boot=true", "-e", "flash_wait_login=true", "-e", "power_wait_timeout=30"]
    proc = playbook(cluster, "flash.yml", *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    nodes = recap(proc.stdout)
    assert nodes["node01"]["changed"] == 1 and nodes["node02"]["changed"] == 1, proc.stdout
    size = os.path.getsize(image["raw"])
    for host in ("node01", "node02"):
        cluster.wait_state(host, "login", timeout=30)
        assert cluster.node(host)["hostname"] == host
        assert os.path.exists(os.path.join(state, host + ".json"))
    # The image is on both (the FAT boot partition carries the seed files, so compare the root partition).
    raw = Path(image["raw"]).read_bytes()
    for host in ("node01", "node02"):
        with open(_emmc(cluster, host), "rb") as handle:
            data = handle.read(size)
        assert data[40 * 1024 * 1024:] == raw[40 * 1024 * 1024:]
    again = playbook(cluster, "flash.yml", *args)
    assert again.returncode == 0, again.stdout + again.stderr
    assert all(recap(again.stdout)[h]["changed"] == 0 for h in ("node01", "node02")), again.stdout
    assert cluster.node("node01")["state"] == "login"  # not power-cycled


@pytest.fixture
def node03(cluster, tmp_path):
    spec = cluster.data["boards"]["carrier1"]
    base = {"board": "carrier1", "profile": spec["profile"], "bus": spec["bus"], "slot": 3, "host": "node03",
            "usb_port": "1-1.3", "lock_dir": os.path.join(cluster.dir, "locks"),
            "state_dir": str(tmp_path / "flash-state")}
    os.makedirs(base["lock_dir"], exist_ok=True)

    def call(check=False, **args):
        return run_module("node_flash", dict(base, **args), tmp_path, check=check)

    call.cluster = cluster
    return call


def test_refusals_leave_the_storage_untouched(node03, image, tmp_path):
    cluster = node03.cluster
    emmc = _emmc(cluster, "node03")
    before = _head_sha(emmc, 1024 * 1024) if os.path.exists(emmc) else None
    wrong = node03(image=image["xz"], sha256="0" * 64)
    assert wrong.get("failed") and wrong["msg"].startswith("sha256: ") and "nothing was written" in wrong["msg"]
    assert cluster.node("node03")["state"] == "off"
    bad = node03(image=image["xz"], customize={"hostname": "not a name"})
    assert bad.get("failed") and bad["msg"].startswith("customize.hostname"), bad
    # A block map saying the image is 9 GiB (node03's eMMC is 8 GB): refused before writing, and without
    # hashing 9 GiB here (bmap format 1.2 carries no checksums).
    blocks = 9 * 1024 ** 3 // 4096
    big = tmp_path / "big.bmap"
    big.write_text('<bmap version="1.2"><ImageSize>%d</ImageSize><BlockSize>4096</BlockSize>'
                   '<BlocksCount>%d</BlocksCount><MappedBlocksCount>1</MappedBlocksCount>'
                   '<BlockMap><Range>0</Range></BlockMap></bmap>' % (blocks * 4096, blocks))
    large = node03(image=image["xz"], bmap=str(big))
    assert large.get("failed") and large["msg"].startswith("image: the image is 9663676416 bytes, larger"), large
    assert cluster.node("node03")["state"] == "off"  # released after the refusal
    other = node03(image=image["xz"], usb_port="1-1.4")
    assert other.get("failed") and "usb_port" in other["msg"], other
    not_usb = node03(image=image["xz"], power_control=False)
    assert not_usb.get("failed") and "not in USB boot mode" in not_usb["msg"], not_usb
    after = _head_sha(emmc, 1024 * 1024) if os.path.exists(emmc) else None
    assert after == before


def test_corrupt_xz_half_way_is_not_recorded(node03, image, tmp_path):
    data = bytearray(Path(image["xz"]).read_bytes())
    data[len(data) // 2:len(data) // 2 + 32] = b"\x00" * 32
    bad = tmp_path / "bad.img.xz"
    bad.write_bytes(bytes(data))
    result = node03(image=str(bad))
    assert result.get("failed") and result["msg"].startswith("image: "), result
    assert not os.path.exists(tmp_path / "flash-state" / "node03.json")
    good = node03(image=image["xz"], customize={"hostname": "node03"})
    assert good["changed"] and good["verified"].startswith("sha256 ") and good["node"] == "off", good
    assert node03(image=image["xz"], customize={"hostname": "node03"})["changed"] is False
    check = node03(check=True, image=image["xz"], customize={"hostname": "renamed"})
    assert check["changed"] is True and check["written"] == 0


def test_turingpi2_through_the_bmc(sim_cluster_factory, image, tmp_path):
    from test_turingpi2_backend import topology
    data = topology()
    data["boards"]["tpi"]["sim"].update(usb_write_mbps=2000, gadget_time=0.1)
    data["boards"]["tpi"]["slots"][2] = {"host": "tp02", "model": "cm4"}
    cluster = sim_cluster_factory(data, boot_time=0.2)
    base = {"board": "tpi", "profile": "turingpi2", "bus": cluster.data["boards"]["tpi"]["bus"], "slot": 2,
            "host": "tp02", "bmc_user": "root", "bmc_password": "turing",
            "lock_dir": os.path.join(cluster.dir, "locks"), "state_dir": str(tmp_path / "flash-state"),
            "progress_interval": 0.1}
    os.makedirs(base["lock_dir"], exist_ok=True)
    first = run_module("node_flash", dict(base, image=image["xz"], boot=True), tmp_path)
    assert first.get("changed") is True, first
    assert first["verified"].startswith("by the BMC") and first["uploaded"] == os.path.getsize(image["xz"])
    emmc = _emmc(cluster, "tp02")
    size = os.path.getsize(image["raw"])
    assert _head_sha(emmc, size) == _head_sha(image["raw"], size)
    cluster.wait_state("tp02", "login", timeout=30)
    again = run_module("node_flash", dict(base, image=image["xz"], boot=True), tmp_path)
    assert again["changed"] is False, again
    # With a customisation: decompressed, customised and uploaded raw; the node takes the name.
    named = run_module("node_flash", dict(base, image=image["xz"], boot=True, customize={"hostname": "tpnode"}),
                       tmp_path)
    assert named.get("changed") is True and named["uploaded"] == size, named
    cluster.wait_state("tp02", "login", timeout=30)
    assert cluster.node("tp02")["hostname"] == "tpnode"
    assert not [n for n in os.listdir(base["state_dir"]) if n.endswith(".customized.img")]  # staging removed
    progress = (Path(base["state_dir"]) / "tp02.progress").read_text()
    assert "upload: " in progress
    wrong = run_module("node_flash", dict(base, image=image["xz"], sha256="0" * 64), tmp_path)
    assert wrong.get("failed") and "nothing was written" in wrong["msg"]


def test_nvme_behind_the_gadget(node03, image, tmp_path):
    """node04 (CM5) has eMMC and NVMe: the gadget shows both on its port; storage=nvme writes the NVMe."""
    node04 = dict(slot=4, host="node04", usb_port="1-1.4")
    result = node03(image=image["xz"], storage="nvme", **node04)
    assert result.get("changed") is True, result
    cluster = node03.cluster
    nvme = os.path.join(cluster.state_dir, "nodes", "node04", "nvme.img")
    size = os.path.getsize(image["raw"])
    assert _head_sha(nvme, size) == _head_sha(image["raw"], size)
    assert _head_sha(_emmc(cluster, "node04"), 4096) != _head_sha(image["raw"], 4096)  # the eMMC untouched
    assert node03(image=image["xz"], storage="nvme", **node04)["changed"] is False
    assert node03(image=image["xz"], storage="emmc", **node04, check=True)["changed"] is True  # another storage
