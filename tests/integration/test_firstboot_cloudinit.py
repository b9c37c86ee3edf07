# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The first boot itself: the seed files and firstrun.sh written into an image's FAT boot partition
are run by the real programs, in a throw-away root, and the system they leave is checked.

The root is a chroot in private namespaces (mount, UTS, network, PID, IPC): the controller's
``/usr`` under an overlay whose writes land in ``tmp_path`` (locale-gen writes there), a copy of its
``/etc`` (users, groups, shadow, sshd_config are the copy's), empty ``/var``, ``/home``, ``/boot``,
and only ``/dev/null``, ``zero``, ``random``, ``urandom``. Nothing reaches the host: no host name
(own UTS namespace), no network (own, empty), no mount (private propagation).

- cloud-init 22.4 (Debian 12) runs its ``init --local``, ``init`` and ``modules --mode config``
  stages on the NoCloud seed copied out of the FAT partition with mtools into
  ``/var/lib/cloud/seed/nocloud`` (the seed directory NoCloud reads; the FAT partition itself cannot
  be mounted: this kernel has no VFAT, and NoCloud's ``seedfrom`` does not read network-config in
  22.4). Left out: ``keyboard`` (localectl needs systemd-localed on D-Bus, which a chroot has not),
  ``growpart``/``resizefs`` (they would look for the disk under ``/``: the host's), the final stage
  (``runcmd``'s systemctl and rfkill act on a running system).
- firstrun.sh runs as systemd.run would run it, on a root with a uid-1000 ``pi`` user, and is
  checked to remove itself and its cmdline.txt hook.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from ansible_collections.picluster.carrier.plugins.module_utils import _fat
from ansible_collections.picluster.carrier.plugins.module_utils import _firstboot as F

pytestmark = [pytest.mark.integration, pytest.mark.needs_root, pytest.mark.slow]

SHA512 = "$6$rounds=5000$saltsaltsalt$" + "a" * 86
CMDLINE = "console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 rootwait\n"
HOSTILE = "o'brien \"$(touch /tmp/pwned)\" `touch /tmp/pwned2` ; rm -rf /opt # PICLUSTER_CARRIER_KEYS"
BOOT_START = 2048
MTOOLS_ENV = dict(os.environ, MTOOLS_SKIP_CHECK="1")

CLOUD_CFG = """\
datasource_list: [NoCloud, None]
disable_root: true
preserve_hostname: false
cloud_init_modules: [seed_random, bootcmd, write_files, set_hostname, update_hostname, update_etc_hosts,
                     users_groups, ssh]
cloud_config_modules: [set_passwords, locale, timezone, runcmd]
cloud_final_modules: []
system_info:
  distro: debian
  paths: {cloud_dir: /var/lib/cloud/, templates_dir: /etc/cloud/templates/}
  ssh_svcname: ssh
  network: {renderers: [networkd]}
"""


def _subprocess_runner(argv, env, cwd):
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, check=False)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(autouse=True)
def _tools():
    for tool in ("unshare", "chroot", "sfdisk", "mkfs.vfat", "mcopy", "useradd"):
        if shutil.which(tool) is None:
            pytest.skip("%s is not installed" % tool)
    _fat.set_runner(_subprocess_runner)


def ssh_key(comment):
    key_dir = "/tmp/picluster-firstboot-keys"
    os.makedirs(key_dir, exist_ok=True)
    path = os.path.join(key_dir, "ed25519")
    if not os.path.exists(path + ".pub"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "x", "-f", path], check=True)
    with open(path + ".pub") as f:
        return " ".join(f.read().split()[:2] + [comment])


def make_image(path, files):
    """An MBR disk image (sfdisk) with a FAT boot partition (mkfs.vfat) holding ``files``."""
    with open(path, "wb") as f:
        f.truncate(40 * 1024 * 1024)
    subprocess.run(["sfdisk", "--quiet", str(path)], check=True, capture_output=True, text=True,
                   input="label: dos\nstart=%d, size=65536, type=c\nstart=67584, type=83\n" % BOOT_START)
    subprocess.run(["mkfs.vfat", "-F", "16", "-n", "bootfs", "--offset", str(BOOT_START), str(path), "32768"],
                   check=True, capture_output=True)
    staged = path.parent / "staged"
    staged.mkdir()
    for name, data in files.items():
        (staged / name).write_bytes(data)
    subprocess.run(["mcopy", "-i", "%s@@%d" % (path, BOOT_START * 512)] + [str(staged / n) for n in files] + ["::/"],
                   check=True, capture_output=True, env=MTOOLS_ENV)
    shutil.rmtree(staged)
    return path


def extract_boot(image, dest):
    os.makedirs(dest, exist_ok=True)
    subprocess.run(["mcopy", "-s", "-n", "-i", "%s@@%d" % (image, BOOT_START * 512), "::/", str(dest)], check=True,
                   capture_output=True, env=MTOOLS_ENV)


def make_root(tmp_path):
    root = tmp_path / "root"
    for d in ("usr", "dev", "proc", "run", "tmp", "var/lib", "home", "boot", "root", "opt"):
        (root / d).mkdir(parents=True)
    for link, to in (("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")):
        if os.path.islink("/" + link):
            os.symlink(to, root / link)
    subprocess.run(["cp", "-a", "/etc", str(root / "etc")], check=True)
    shutil.rmtree(root / "etc" / "cloud", ignore_errors=True)
    (root / "etc" / "cloud").mkdir()
    shutil.copytree("/etc/cloud/templates", root / "etc" / "cloud" / "templates")
    (root / "etc" / "cloud" / "cloud.cfg").write_text(CLOUD_CFG)
    (root / "opt" / "canary").write_text("still here\n")
    for d in ("upper", "work"):
        (tmp_path / "usr-overlay" / d).mkdir(parents=True)
    return root


def run_in_root(tmp_path, root, command, timeout=180):
    """Run ``command`` (sh) chrooted into ``root`` in private namespaces; (rc, output)."""
    upper, work = tmp_path / "usr-overlay" / "upper", tmp_path / "usr-overlay" / "work"
    setup = "\n".join([
        "set -e",
        "mount --make-rprivate /",
        "mount -t overlay overlay -o lowerdir=/usr,upperdir=%s,workdir=%s %s/usr" % (upper, work, root),
        "for d in null zero random urandom; do touch %s/dev/$d; mount --bind /dev/$d %s/dev/$d; done" % (root, root),
        "mount -t tmpfs tmpfs %s/run" % root,
        "hostname raspberrypi",
        'exec chroot %s /bin/sh -c "$0"' % root,
    ])
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}
    proc = subprocess.run(["unshare", "--mount", "--uts", "--net", "--ipc", "--pid", "--fork",
                           "--mount-proc=%s" % (root / "proc"), "sh", "-c", setup, command],
                          capture_output=True, text=True, env=env, timeout=timeout, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def customisation(style):
    return F.check_customize({
        "hostname": "node03", "fqdn": "node03.cluster.lan",
        "users": [{"name": "admin", "ssh_authorized_keys": [ssh_key("admin@laptop")], "password_hash": SHA512,
                   "groups": ["adm", "sudo", "gpio"], "sudo": True},
                  {"name": "ops", "ssh_authorized_keys": [ssh_key(HOSTILE)]}],
        "ssh": {"enabled": True, "password_authentication": True},
        "timezone": "Europe/London", "locale": "en_GB.UTF-8", "keyboard": "gb",
        "network": {"address": "10.0.0.13/24", "gateway": "10.0.0.1", "nameservers": ["10.0.0.1"]},
        "wifi": {"enabled": False, "country": "GB"}, "style": style,
    })


def read(root, rel):
    return (root / rel).read_text()


def passwd_entry(root, name, db="passwd"):
    for line in read(root, "etc/" + db).splitlines():
        if line.split(":")[0] == name:
            return line.split(":")
    return None


def group_members(root, group):
    entry = passwd_entry(root, group, "group")
    return entry[3].split(",") if entry else None


def assert_users(root, sudoers_file):
    assert passwd_entry(root, "admin") is not None and passwd_entry(root, "ops") is not None
    assert passwd_entry(root, "admin", "shadow")[1] == SHA512
    assert passwd_entry(root, "ops", "shadow")[1].startswith("!")
    for group in ("adm", "sudo", "gpio"):
        assert "admin" in group_members(root, group), group
    assert read(root, "home/admin/.ssh/authorized_keys").splitlines() == [ssh_key("admin@laptop")]
    # The hostile comment arrives verbatim and none of it ran.
    assert read(root, "home/ops/.ssh/authorized_keys").splitlines() == [ssh_key(HOSTILE)]
    assert not (root / "tmp" / "pwned").exists() and not (root / "tmp" / "pwned2").exists()
    assert (root / "opt" / "canary").exists()
    sudoers = read(root, sudoers_file)
    assert "admin ALL=(ALL) NOPASSWD:ALL" in sudoers and "ops" not in sudoers


def test_cloud_init_runs_the_seed(tmp_path):
    if shutil.which("cloud-init") is None:
        pytest.skip("cloud-init is not installed")
    cust = customisation("auto")
    shipped = {"cmdline.txt": CMDLINE.encode(), "config.txt": b"arm_64bit=1\n",
               "user-data": b"#cloud-config\n# an image's example\n", "meta-data": b"instance-id: rpios\n"}
    image = make_image(tmp_path / "os.img", shipped)
    applied = F.apply_to_image(str(image), cust)
    assert applied.style == "cloud-init"
    root = make_root(tmp_path)
    extract_boot(image, root / "var" / "lib" / "cloud" / "seed" / "nocloud")
    rc, out = run_in_root(tmp_path, root, "cloud-init init --local && cloud-init init && "
                                          "cloud-init modules --mode config; echo stages-rc=$?")
    assert rc == 0 and "stages-rc=0" in out, out[-4000:]
    iid = yaml.safe_load(F.seed_files(cust, "cloud-init")["meta-data"])["instance-id"]
    assert os.readlink(root / "var/lib/cloud/instance") == "/var/lib/cloud/instances/" + iid, out[-2000:]
    assert read(root, "etc/hostname").strip() == "node03"
    assert "node03.cluster.lan" in read(root, "etc/hosts")
    assert_users(root, "etc/sudoers.d/90-cloud-init-users")
    assert "PasswordAuthentication yes" in read(root, "etc/ssh/sshd_config").splitlines()
    assert read(root, "etc/timezone").strip() == "Europe/London"
    assert 'LANG=en_GB.UTF-8' in read(root, "etc/default/locale").replace('"', "")
    network = "".join(p.read_text() for p in (root / "etc/systemd/network").glob("*cloud-init*"))
    assert "Address=10.0.0.13/24" in network and "Gateway=10.0.0.1" in network and "DNS=10.0.0.1" in network
    # runcmd is written for the final stage (left out here: it acts on a running system).
    runcmd = read(root, "var/lib/cloud/instances/%s/scripts/runcmd" % iid)
    assert "'rfkill' 'block' 'wifi'" in runcmd and "'systemctl' 'enable' '--now' 'ssh'" in runcmd
    # The same seed a second time is the same instance: nothing runs again.
    (root / "etc" / "hostname").write_text("changed-by-hand\n")
    rc, out = run_in_root(tmp_path, root, "cloud-init init --local && cloud-init init; echo stages-rc=$?")
    assert "stages-rc=0" in out, out[-3000:]
    assert read(root, "etc/hostname").strip() == "changed-by-hand"


def test_firstrun_script_runs(tmp_path):
    cust = customisation("firstrun")
    image = make_image(tmp_path / "os.img", {"cmdline.txt": CMDLINE.encode(), "config.txt": b"arm_64bit=1\n"})
    assert F.apply_to_image(str(image), cust).style == "firstrun"
    root = make_root(tmp_path)
    extract_boot(image, root / "boot")
    assert read(root, "boot/cmdline.txt").endswith(" systemd.unit=kernel-command-line.target\n")
    # The copy of the controller's /etc may have its own uid 1000: the image's is "pi".
    rc, out = run_in_root(tmp_path, root, "u=$(getent passwd 1000 | cut -d: -f1); [ -z \"$u\" ] || userdel \"$u\"; "
                                          "g=$(getent group 1000 | cut -d: -f1); [ -z \"$g\" ] || groupdel \"$g\"; "
                                          "useradd -m -u 1000 -U -s /bin/bash pi && "
                                          "printf 'pi ALL=(ALL) NOPASSWD: ALL\\n' >/etc/sudoers.d/010_pi-nopasswd "
                                          "&& rm -f /etc/hostname && echo raspberrypi >/etc/hostname && "
                                          "mkdir -p /etc/NetworkManager/system-connections && "
                                          "sh /boot/firstrun.sh; echo script-rc=$?")
    assert "script-rc=0" in out, out[-4000:]
    assert read(root, "etc/hostname").strip() == "node03"
    assert "127.0.1.1\tnode03.cluster.lan node03" in read(root, "etc/hosts").splitlines()
    # The image's first user became the customised one, home and group included.
    assert passwd_entry(root, "pi") is None and passwd_entry(root, "admin")[2] == "1000"
    assert passwd_entry(root, "admin")[5] == "/home/admin"
    assert_users(root, "etc/sudoers.d/010_admin-nopasswd")
    assert "PasswordAuthentication yes" in read(root, "etc/ssh/sshd_config.d/01-picluster-carrier.conf")
    assert read(root, "etc/timezone").strip() == "Europe/London"
    assert os.readlink(root / "etc/localtime") == "/usr/share/zoneinfo/Europe/London"
    assert 'XKBLAYOUT="gb"' in read(root, "etc/default/keyboard")
    assert "LANG=en_GB.UTF-8" in read(root, "etc/default/locale").replace('"', "")
    nm = read(root, "etc/NetworkManager/system-connections/picluster-eth0.nmconnection")
    assert "address1=10.0.0.13/24,10.0.0.1" in nm
    # It removed itself and its hook, as systemd.run_success_action=reboot expects.
    assert not (root / "boot" / "firstrun.sh").exists()
    assert read(root, "boot/cmdline.txt") == CMDLINE.rstrip("\n") + " cfg80211.ieee80211_regdom=GB\n"


def test_apply_to_a_block_device(tmp_path):
    """node_flash hands apply_to_image the node's disk (/dev/sdX): a loop device stands for it."""
    if shutil.which("losetup") is None:
        pytest.skip("losetup is not installed")
    cust = customisation("auto")
    image = make_image(tmp_path / "os.img", {"cmdline.txt": CMDLINE.encode()})
    proc = subprocess.run(["losetup", "--find", "--show", str(image)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip("no loop device: %s" % proc.stderr.strip())
    device = proc.stdout.strip()
    try:
        applied = F.apply_to_image(device, cust)
        assert applied.style == "firstrun" and applied.changed
        assert not F.apply_to_image(device, cust).changed
    finally:
        subprocess.run(["losetup", "--detach", device], check=True)
    out = subprocess.run(["mtype", "-i", "%s@@%d" % (image, BOOT_START * 512), "::/firstrun.sh"], capture_output=True,
                         env=MTOOLS_ENV, check=True)
    assert out.stdout == F.seed_files(cust, "firstrun")["firstrun.sh"]
