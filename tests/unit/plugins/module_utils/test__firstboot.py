# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_firstboot and _firstboot_render: the cloud-init seed files (checked by the real cloud-init),
firstrun.sh (bash -n, shellcheck, hostile values), cmdline.txt, and writing them into the FAT boot
partition of an image made with sfdisk and mkfs.vfat (read back with mtype) or into a directory."""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess

import pytest
import yaml
from firstboot_fixtures import SHA512, ssh_key
from netboot_fixtures import subprocess_runner

from ansible_collections.picluster.carrier.plugins.module_utils import _fat
from ansible_collections.picluster.carrier.plugins.module_utils import _firstboot as F
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError, InvalidValue

_fat.set_runner(subprocess_runner)

CMDLINE = "console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 fsck.repair=yes rootwait\n"
HOSTILE_COMMENT = "o'brien \"$(touch /tmp/pwned)\" `id` ; rm -rf / # PICLUSTER_CARRIER_KEYS $HOME \\"


def full(**over):
    value = {
        "hostname": "node03", "fqdn": "node03.cluster.lan",
        "users": [{"name": "admin", "ssh_authorized_keys": [ssh_key(), ssh_key("ecdsa", 256)],
                   "password_hash": SHA512, "groups": ["adm", "sudo"], "sudo": True},
                  {"name": "ops", "ssh_authorized_keys": [ssh_key(comment=HOSTILE_COMMENT)]}],
        "ssh": {"enabled": True, "password_authentication": True},
        "timezone": "Europe/London", "locale": "en_GB.UTF-8", "keyboard": {"layout": "gb", "variant": "extd"},
        "network": {"address": "10.0.0.13/24", "gateway": "10.0.0.1", "nameservers": ["10.0.0.1", "1.1.1.1"]},
        "wifi": {"enabled": False, "country": "GB"},
    }
    value.update(over)
    return F.check_customize(value)


def needs(tool):
    return pytest.mark.skipif(shutil.which(tool) is None, reason="%s is not installed" % tool)


# --- cloud-init ------------------------------------------------------------------------------------


def test_user_data_content():
    files = F.seed_files(full(), "cloud-init")
    assert sorted(files) == ["meta-data", "network-config", "user-data"]
    ud = files["user-data"].decode()
    assert ud.startswith("#cloud-config\n")
    cfg = yaml.safe_load(ud)
    assert cfg["hostname"] == "node03" and cfg["fqdn"] == "node03.cluster.lan" and cfg["manage_etc_hosts"] is True
    admin, ops = cfg["users"]
    assert admin == {"name": "admin", "shell": "/bin/bash", "groups": ["adm", "sudo"], "sudo": "ALL=(ALL) NOPASSWD:ALL",
                     "lock_passwd": False, "passwd": SHA512,
                     "ssh_authorized_keys": [ssh_key(), ssh_key("ecdsa", 256)]}
    assert ops["lock_passwd"] is True and "passwd" not in ops and ops["sudo"] is None
    assert ops["ssh_authorized_keys"] == [ssh_key(comment=HOSTILE_COMMENT)]
    assert cfg["ssh_pwauth"] is True
    assert (cfg["timezone"], cfg["locale"]) == ("Europe/London", "en_GB.UTF-8")
    # Debian's locale-gen builds only what /etc/locale.gen lists: bootcmd lists the locale first,
    # passing it as an argument of a fixed script.
    (bootcmd,) = cfg["bootcmd"]
    assert bootcmd[:2] == ["sh", "-c"] and bootcmd[3:] == ["sh", "en_GB.UTF-8", "UTF-8"]
    assert "en_GB" not in bootcmd[2]
    assert cfg["keyboard"] == {"layout": "gb", "model": "pc105", "variant": "extd"}
    assert ["systemctl", "enable", "--now", "ssh"] in cfg["runcmd"]
    assert ["rfkill", "block", "wifi"] in cfg["runcmd"]


class TaggedStr(str):
    """Stands for the str subclasses Ansible's templating hands over."""


def test_str_subclasses_are_written_as_plain_strings():
    c = F.check_customize({"hostname": TaggedStr("node03"), "users": [{"name": TaggedStr("admin")}],
                           "timezone": TaggedStr("UTC"), "network": {"address": TaggedStr("10.0.0.13/24")}})
    files = F.seed_files(c, "cloud-init")
    assert yaml.safe_load(files["user-data"])["users"][0]["name"] == "admin"
    assert yaml.safe_load(files["meta-data"])["local-hostname"] == "node03"
    assert "admin" in F.seed_files(c, "firstrun")["firstrun.sh"].decode()


def test_meta_data_and_instance_id():
    files = F.seed_files(full(), "cloud-init")
    md = yaml.safe_load(files["meta-data"])
    assert md["local-hostname"] == "node03" and md["instance-id"].startswith("iid-picluster-")
    assert md["dsmode"] == "local"
    assert F.seed_files(full(), "cloud-init")["meta-data"] == files["meta-data"]
    # A changed customisation is a new instance, so cloud-init runs again.
    for other in (full(timezone="UTC"), full(hostname="node04", fqdn=None), full(network="dhcp")):
        assert yaml.safe_load(F.seed_files(other, "cloud-init")["meta-data"])["instance-id"] != md["instance-id"]


def test_network_config_content():
    nc = yaml.safe_load(F.seed_files(full(), "cloud-init")["network-config"])
    assert nc == {"version": 2, "ethernets": {"eth0": {
        "dhcp4": False, "addresses": ["10.0.0.13/24"], "routes": [{"to": "0.0.0.0/0", "via": "10.0.0.1"}],
        "nameservers": {"addresses": ["10.0.0.1", "1.1.1.1"]}}}}
    assert yaml.safe_load(F.seed_files(full(network="dhcp"), "cloud-init")["network-config"]) == {
        "version": 2, "ethernets": {"eth0": {"dhcp4": True}}}
    assert "network-config" not in F.seed_files(full(network=None), "cloud-init")


def test_ssh_left_alone_without_keys_or_word():
    cfg = yaml.safe_load(F.seed_files(F.check_customize({"hostname": "n1"}), "cloud-init")["user-data"])
    assert "runcmd" not in cfg and "ssh_pwauth" not in cfg
    cfg = yaml.safe_load(F.seed_files(F.check_customize({"ssh": False}), "cloud-init")["user-data"])
    assert cfg["runcmd"] == [["systemctl", "disable", "--now", "ssh"]] and cfg["ssh_pwauth"] is False


@needs("cloud-init")
@pytest.mark.parametrize("cust", [
    full(), full(network="dhcp", wifi={"enabled": True}), F.check_customize({"hostname": "n1"}),
    F.check_customize({"users": [{"name": "u", "ssh_authorized_keys": [ssh_key()]}]}),
], ids=["full", "dhcp-wifi-on", "hostname-only", "key-only"])
def test_real_cloud_init_accepts_user_data(tmp_path, cust):
    files = F.seed_files(cust, "cloud-init")
    (tmp_path / "user-data").write_bytes(files["user-data"])
    out = subprocess.run(["cloud-init", "schema", "--config-file", str(tmp_path / "user-data")],
                         check=False, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Valid cloud-config" in out.stdout


@needs("cloud-init")
def test_real_cloud_init_schema_catches_errors(tmp_path):
    # The check above would be worthless if the tool accepted anything.
    (tmp_path / "user-data").write_text("#cloud-config\nssh_pwauth: {a: 1}\n")
    out = subprocess.run(["cloud-init", "schema", "--config-file", str(tmp_path / "user-data")],
                         check=False, capture_output=True, text=True)
    assert out.returncode != 0


@needs("cloud-init")
@pytest.mark.parametrize("network", [
    {"address": "10.0.0.13/24", "gateway": "10.0.0.1", "nameservers": ["10.0.0.1"]},
    {"address": "fd00::13/64", "gateway": "fd00::1", "interface": "end0"}, "dhcp",
], ids=["static4", "static6", "dhcp"])
@pytest.mark.parametrize("renderer, path", [
    ("network-manager", "etc/NetworkManager/system-connections"), ("netplan", "etc/netplan"),
])
def test_real_cloud_init_converts_network_config(tmp_path, network, renderer, path):
    cust = F.check_customize({"network": network})
    (tmp_path / "network-config").write_bytes(F.seed_files(cust, "cloud-init")["network-config"])
    out = subprocess.run(["cloud-init", "devel", "net-convert", "-p", str(tmp_path / "network-config"), "-k", "yaml",
                          "-d", str(tmp_path / "out"), "-D", "debian", "-O", renderer,
                          "-m", "%s,dc:a6:32:01:36:c2" % cust.network.interface],
                         check=False, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    rendered = "".join(p.read_text() for p in (tmp_path / "out" / path).iterdir())
    assert cust.network.interface in rendered
    if not cust.network.dhcp:
        assert cust.network.address in rendered and cust.network.gateway in rendered


# --- firstrun.sh ------------------------------------------------------------------------------------


def firstrun(cust=None):
    return F.seed_files(cust or full(), "firstrun")["firstrun.sh"].decode()


def test_firstrun_script_syntax(tmp_path):
    script = tmp_path / "firstrun.sh"
    script.write_text(firstrun())
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    assert subprocess.run(["sh", "-n", str(script)], check=False).returncode == 0


@needs("shellcheck")
@pytest.mark.parametrize("cust", [full(), full(network={"address": "fd00::13/64"}, ssh=False, users=[]),
                                  F.check_customize({"hostname": "n1"})], ids=["full", "v6-nossh", "hostname"])
def test_firstrun_shellcheck(tmp_path, cust):
    script = tmp_path / "firstrun.sh"
    script.write_text(firstrun(cust))
    out = subprocess.run(["shellcheck", "-s", "sh", str(script)], check=False, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout


def test_firstrun_what_it_does():
    s = firstrun()
    lines = s.splitlines()
    assert lines[0] == "#!/bin/sh"
    assert "   echo node03 >/etc/hostname" in lines
    assert "   /usr/lib/raspberrypi-sys-mods/imager_custom set_hostname node03" in lines
    assert "   /usr/lib/userconf-pi/userconf admin ''" in lines
    assert "id -u ops >/dev/null 2>&1 || useradd -m -s /bin/bash ops" in lines
    assert "printf '%s\\n' 'admin ALL=(ALL) NOPASSWD:ALL' >/etc/sudoers.d/010_admin-nopasswd" in lines
    assert "usermod -L ops" in lines
    assert "printf 'PasswordAuthentication yes\\n' >/etc/ssh/sshd_config.d/01-picluster-carrier.conf" in lines
    assert "systemctl enable ssh" in lines and "rfkill block wifi" in lines
    assert 'XKBLAYOUT="gb"' in lines and 'XKBVARIANT="extd"' in lines
    assert "   ln -s /usr/share/zoneinfo/Europe/London /etc/localtime" in lines
    assert "address1=10.0.0.13/24,10.0.0.1" in lines and "static ip_address=10.0.0.13/24" in lines
    # The cleanup is last, and the first line initramfs' imager_fixup looks for (rm ... firstrun.sh).
    assert lines[-3:] == ["rm -f /boot/firstrun.sh", "sed -i 's| systemd.run.*||g' /boot/cmdline.txt", "exit 0"]
    assert [i for i, line in enumerate(lines) if line.rstrip().endswith("firstrun.sh") and "rm" in line] == [
        len(lines) - 3]


def test_firstrun_hash_is_one_literal_word():
    s = firstrun()
    line = next(line for line in s.splitlines() if "chpasswd" in line)
    assert shlex.split(line.split("|")[0]) == ["printf", "%s\\n", "admin:" + SHA512]


def test_firstrun_hostile_key_comment_stays_literal():
    """A key comment full of shell syntax lands inside a quoted here-document, line for line."""
    lines = firstrun().splitlines()
    key = ssh_key(comment=HOSTILE_COMMENT)
    i = lines.index(key)
    assert lines[i - 1].endswith("<<'PICLUSTER_CARRIER_KEYS'")
    assert lines[i + 1] == "PICLUSTER_CARRIER_KEYS"


def test_firstrun_hostile_key_comment_run(tmp_path):
    """The key here-document run by sh writes the hostile comment verbatim and runs none of it."""
    lines = firstrun().splitlines()
    key = ssh_key(comment=HOSTILE_COMMENT)
    i = lines.index(key)
    snippet = ['HOME_DIR=%s' % shlex.quote(str(tmp_path)), 'mkdir -p "$HOME_DIR/.ssh"'] + lines[i - 1:i + 2]
    marker = tmp_path / "pwned"
    env = dict(os.environ, HOME=str(tmp_path))
    out = subprocess.run(["sh", "-c", "\n".join(snippet).replace("/tmp/pwned", str(marker))], env=env,
                         check=False, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / ".ssh" / "authorized_keys").read_text() == key.replace("/tmp/pwned", str(marker)) + "\n"
    assert not marker.exists()


def test_locale_gen_line_runs(tmp_path):
    """The bootcmd script lists a locale once in a locale.gen (run on a copy, not /etc)."""
    (bootcmd,) = yaml.safe_load(F.seed_files(full(), "cloud-init")["user-data"])["bootcmd"]
    script = bootcmd[2].replace("/etc/locale.gen", str(tmp_path / "locale.gen"))
    (tmp_path / "locale.gen").write_text("# en_GB.UTF-8 UTF-8\n")
    subprocess.run(["sh", "-c", script] + bootcmd[3:], check=True)
    subprocess.run(["sh", "-c", script] + bootcmd[3:], check=True)  # a second boot adds nothing
    assert (tmp_path / "locale.gen").read_text() == "# en_GB.UTF-8 UTF-8\nen_GB.UTF-8 UTF-8\n"


def test_firstrun_without_keyboard_extras():
    s = firstrun(F.check_customize({"keyboard": "us", "locale": "C.UTF-8"}))
    assert 'XKBMODEL="pc105"' in s and 'XKBVARIANT=""' in s
    assert "raspi-config nonint do_change_locale C.UTF-8" in s


# --- cmdline.txt -----------------------------------------------------------------------------------


def test_cmdline_firstrun_hook_last_and_idempotent():
    c = full()
    once = F.edit_cmdline(CMDLINE, c, "firstrun")
    assert once == CMDLINE.rstrip("\n") + (" cfg80211.ieee80211_regdom=GB systemd.run=/boot/firstrun.sh "
                                           "systemd.run_success_action=reboot "
                                           "systemd.unit=kernel-command-line.target\n")
    assert F.edit_cmdline(once, c, "firstrun") == once
    assert once.count("\n") == 1


def test_cmdline_cloud_init_replaces_stale_words():
    c = full()
    stale = CMDLINE.rstrip("\n") + " ds=nocloud;i=old systemd.run=/boot/firstrun.sh " \
        "systemd.run_success_action=reboot systemd.unit=kernel-command-line.target " \
        "cfg80211.ieee80211_regdom=US\nsecond line\n"
    out = F.edit_cmdline(stale, c, "cloud-init")
    iid = yaml.safe_load(F.seed_files(c, "cloud-init")["meta-data"])["instance-id"]
    assert out == CMDLINE.rstrip("\n") + " cfg80211.ieee80211_regdom=GB ds=nocloud;i=%s\n" % iid
    assert F.edit_cmdline(out, c, "cloud-init") == out


def test_auto_must_be_resolved():
    with pytest.raises(InvalidValue) as e:
        F.seed_files(full())
    assert e.value.field == "customize.style"


def test_resolve_style():
    auto = full()
    assert F.resolve_style(auto, ["cmdline.txt", "config.txt"], "x") == "firstrun"
    assert F.resolve_style(auto, ["cmdline.txt", "USER-DATA"], "x") == "cloud-init"
    assert F.resolve_style(full(style="firstrun"), ["user-data"], "x") == "firstrun"
    with pytest.raises(InvalidValue) as e:
        F.resolve_style(auto, ["config.txt"], "img")
    assert e.value.field == "customize.style" and "img" in str(e.value)


def test_fingerprint():
    a = F.fingerprint(full())
    assert a == F.fingerprint(full()) and len(a) == 64
    assert SHA512 not in a
    other_hash = "$6$rounds=5000$saltsaltsalt$" + "b" * 86
    users = [{"name": "admin", "password_hash": other_hash}]
    assert F.fingerprint(full(users=users)) != F.fingerprint(full(users=[{"name": "admin", "password_hash": SHA512}]))
    assert F.fingerprint(full(style="firstrun")) != F.fingerprint(full(style="cloud-init")) != a
    assert F.fingerprint(full(wifi={"enabled": False, "country": "FR"})) != a


# --- Into an image (sfdisk + mkfs.vfat, read back with mtype) -----------------------------------------

BOOT_START = 2048  # sectors


def make_image(path, files):
    """A Raspberry Pi OS-shaped disk image: MBR by sfdisk, a FAT boot partition by mkfs.vfat holding
    ``files``, a Linux root partition (left empty: ext4 does not matter here)."""
    with open(path, "wb") as f:
        f.truncate(48 * 1024 * 1024)
    subprocess.run(["sfdisk", "--quiet", str(path)], check=True, capture_output=True, text=True,
                   input="label: dos\nstart=%d, size=65536, type=c\nstart=67584, type=83\n" % BOOT_START)
    subprocess.run(["mkfs.vfat", "-F", "16", "-n", "bootfs", "--offset", str(BOOT_START), str(path), "32768"],
                   check=True, capture_output=True)
    if files:
        staged = path.parent / "staged"
        staged.mkdir(exist_ok=True)
        for name, data in files.items():
            (staged / name).write_bytes(data)
        subprocess.run(["mcopy", "-i", "%s@@%d" % (path, BOOT_START * 512)] + [str(staged / n) for n in files]
                       + ["::/"], check=True, capture_output=True, env=dict(os.environ, MTOOLS_SKIP_CHECK="1"))
        shutil.rmtree(staged)
    return path


def mtype(path, name):
    out = subprocess.run(["mtype", "-i", "%s@@%d" % (path, BOOT_START * 512), "::/" + name], check=False,
                         capture_output=True, env=dict(os.environ, MTOOLS_SKIP_CHECK="1"))
    return out.stdout if out.returncode == 0 else None


@needs("mtype")
def test_apply_to_image_firstrun(tmp_path):
    img = make_image(tmp_path / "os.img", {"cmdline.txt": CMDLINE.encode(), "config.txt": b"arm_64bit=1\n"})
    c = full()
    applied = F.apply_to_image(str(img), c)
    assert applied.style == "firstrun" and applied.changed
    assert mtype(img, "firstrun.sh") == F.seed_files(c, "firstrun")["firstrun.sh"]
    assert mtype(img, "cmdline.txt").decode() == F.edit_cmdline(CMDLINE, c, "firstrun")
    assert mtype(img, "config.txt") == b"arm_64bit=1\n"
    assert mtype(img, "user-data") is None
    result = applied.result()
    assert result["files"] == ["cmdline.txt", "firstrun.sh"] and SHA512 not in repr(result)
    assert SHA512 not in repr(applied)
    before = img.read_bytes()
    again = F.apply_to_image(str(img), c)
    assert not again.changed and img.read_bytes() == before


@needs("mtype")
def test_apply_to_image_cloud_init_over_shipped_seed(tmp_path):
    """An image that ships seed files (Raspberry Pi OS Trixie, Ubuntu) gets cloud-init; a stale
    firstrun.sh is removed and its hook taken out of cmdline.txt."""
    shipped = {"cmdline.txt": (CMDLINE.rstrip("\n") + " systemd.run=/boot/firstrun.sh\n").encode(),
               "user-data": b"#cloud-config\n# shipped example\n", "meta-data": b"instance-id: rpios\n",
               "firstrun.sh": b"#!/bin/sh\nexit 0\n"}
    img = make_image(tmp_path / "os.img", shipped)
    c = full(network="dhcp")
    applied = F.apply_to_image(str(img), c, lock=_Lock())
    assert applied.style == "cloud-init" and applied.removed == ("firstrun.sh",)
    for name, data in F.seed_files(c, "cloud-init").items():
        assert mtype(img, name) == data
    assert mtype(img, "firstrun.sh") is None
    cmdline = mtype(img, "cmdline.txt").decode()
    assert "systemd.run" not in cmdline and "ds=nocloud;i=iid-picluster-" in cmdline
    assert _Lock.entered == 1
    assert not F.apply_to_image(str(img), c).changed


class _Lock:
    entered = 0

    def __enter__(self):
        _Lock.entered += 1

    def __exit__(self, *exc):
        return False


@needs("mtype")
def test_apply_to_image_refusals(tmp_path):
    img = make_image(tmp_path / "os.img", {"config.txt": b"x\n"})
    with pytest.raises(InvalidValue) as e:
        F.apply_to_image(str(img), full())
    assert e.value.field == "customize.style"
    with pytest.raises(CarrierError) as e:
        F.apply_to_image(str(img), full(style="firstrun"))
    assert "cmdline.txt" in str(e.value)
    assert mtype(img, "firstrun.sh") is None
    blank = tmp_path / "blank.img"
    blank.write_bytes(b"\0" * 1024 * 1024)
    with pytest.raises(CarrierError) as e:
        F.apply_to_image(str(blank), full(style="cloud-init"))
    assert str(e.value).startswith("customize: ") and "no FAT boot partition" in str(e.value)


@needs("mtype")
def test_apply_to_image_nothing_asked(tmp_path):
    img = make_image(tmp_path / "os.img", {"cmdline.txt": CMDLINE.encode()})
    applied = F.apply_to_image(str(img), F.check_customize({}))
    assert not applied.changed and applied.files == {}
    assert mtype(img, "cmdline.txt") == CMDLINE.encode()


# --- Into a directory (netboot tree) -----------------------------------------------------------------


def test_apply_to_dir_modes_and_idempotence(tmp_path):
    (tmp_path / "cmdline.txt").write_text(CMDLINE)
    os.chmod(tmp_path / "cmdline.txt", 0o640)
    (tmp_path / "meta-data").write_text("instance-id: shipped\n")
    c = full()
    applied = F.apply_to_dir(str(tmp_path), c)
    assert applied.style == "cloud-init" and applied.changed
    for name, data in F.seed_files(c, "cloud-init").items():
        assert (tmp_path / name).read_bytes() == data
    assert stat.S_IMODE(os.stat(tmp_path / "user-data").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "meta-data").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(tmp_path / "cmdline.txt").st_mode) == 0o640
    assert "ds=nocloud;i=" in (tmp_path / "cmdline.txt").read_text()
    assert not F.apply_to_dir(str(tmp_path), c).changed


def test_apply_to_dir_firstrun(tmp_path):
    (tmp_path / "cmdline.txt").write_text(CMDLINE)
    c = full(style="firstrun")
    F.apply_to_dir(str(tmp_path), c)
    assert stat.S_IMODE(os.stat(tmp_path / "firstrun.sh").st_mode) == 0o700
    assert (tmp_path / "cmdline.txt").read_text().endswith("systemd.unit=kernel-command-line.target\n")
    plain = F.check_customize({"hostname": "n1", "style": "firstrun"})
    F.apply_to_dir(str(tmp_path), plain)
    assert stat.S_IMODE(os.stat(tmp_path / "firstrun.sh").st_mode) == 0o755
    # Switching to cloud-init takes the old script and its hook away.
    applied = F.apply_to_dir(str(tmp_path), F.check_customize({"hostname": "n1", "style": "cloud-init"}))
    assert applied.removed == ("firstrun.sh",) and not (tmp_path / "firstrun.sh").exists()
    assert "systemd.run" not in (tmp_path / "cmdline.txt").read_text()


def test_apply_to_dir_refusals(tmp_path):
    with pytest.raises(CarrierError) as e:
        F.apply_to_dir(str(tmp_path / "missing"), full())
    assert "not a directory" in str(e.value)
    with pytest.raises(CarrierError) as e:
        F.apply_to_dir(str(tmp_path), full(style="firstrun"))
    assert "cmdline.txt" in str(e.value)
    assert os.listdir(tmp_path) == []
