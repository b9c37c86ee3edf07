# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rendering a checked :class:`Customization` as the files an OS reads at its first boot.

Two formats, those of Raspberry Pi Imager's OS customisation:

- cloud-init NoCloud seed files on the FAT boot partition (``user-data``, ``meta-data``,
  ``network-config``), read by Raspberry Pi OS since its Trixie release of late 2025 and by Ubuntu's
  Raspberry Pi images. YAML is written by ``yaml.safe_dump``, never by pasting values into text.
  ``meta-data``'s instance-id is derived from the content, so a changed customisation runs again
  and an unchanged one does not. The kernel command line gets ``ds=nocloud;i=<instance-id>`` as
  Imager writes it (cloud-init then trusts its cache instead of rediscovering the seed each boot).
- ``firstrun.sh`` for older Raspberry Pi OS (Bullseye, Bookworm): a shell script that
  ``systemd.run=/boot/firstrun.sh systemd.run_success_action=reboot
  systemd.unit=kernel-command-line.target`` on the kernel command line runs once; it ends by
  removing itself and that hook (``rm -f /boot/firstrun.sh`` then a ``sed`` of ``cmdline.txt``:
  Bookworm's initramfs hook ``imager_fixup`` cuts the script at that ``rm`` line and appends the
  same cleanup for ``/boot/firmware``, so nothing may follow it). Every value is ``shlex.quote``-d.
"""

from __future__ import annotations

import hashlib
import shlex

FIRSTRUN_HOOK = ("systemd.run=/boot/firstrun.sh", "systemd.run_success_action=reboot",
                 "systemd.unit=kernel-command-line.target")
# Kernel command line words this library owns: replaced, never duplicated.
_OWNED_PREFIXES = ("systemd.run=", "systemd.run_success_action=", "ds=nocloud", "cfg80211.ieee80211_regdom=")
_OWNED_WORDS = ("systemd.unit=kernel-command-line.target",)
SUDO_RULE = "ALL=(ALL) NOPASSWD:ALL"
IMAGER_CUSTOM = "/usr/lib/raspberrypi-sys-mods/imager_custom"
USERCONF = "/usr/lib/userconf-pi/userconf"


def _plain(data):
    """``data`` with plain str, list and dict: safe_dump refuses subclasses (Ansible's tagged strings)."""
    if isinstance(data, dict):
        return {str(k): _plain(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_plain(v) for v in data]
    if isinstance(data, str):
        return str(data)
    return data


def _dump(data):
    # Imported here: module_utils are imported where only the standard library is sure to be (as _topology does).
    import yaml

    return yaml.safe_dump(_plain(data), sort_keys=False, default_flow_style=False, allow_unicode=False, width=1 << 16)


def _ssh_enabled(cust):
    """SSH explicitly on or off; with authorized keys and no word on SSH, on (the keys need it)."""
    if cust.ssh_enabled is not None:
        return cust.ssh_enabled
    return True if any(u.ssh_authorized_keys for u in cust.users) else None


# --- cloud-init -----------------------------------------------------------------------------------


def _cloud_user(user):
    """One ``users`` entry. Raspberry Pi OS's cloud-init renames the image's preseeded uid-1000 account
    into the first user it creates (its raspberry-pi-os distro), so groups and home follow."""
    entry = {"name": user.name, "shell": "/bin/bash"}
    if user.groups:
        entry["groups"] = list(user.groups)
    entry["sudo"] = SUDO_RULE if user.sudo else None
    entry["lock_passwd"] = user.password_hash is None
    if user.password_hash is not None:
        entry["passwd"] = user.password_hash
    if user.ssh_authorized_keys:
        entry["ssh_authorized_keys"] = list(user.ssh_authorized_keys)
    return entry


_LOCALE_GEN_LINE = '[ ! -f /etc/locale.gen ] || grep -qs "^$1 " /etc/locale.gen || echo "$1 $2" >>/etc/locale.gen'


def _locale_charset(locale):
    """The charset locale.gen names beside a locale (``en_GB.UTF-8`` -> ``UTF-8``)."""
    return locale.split(".", 1)[1].split("@")[0] if "." in locale else "ISO-8859-1"


def user_data(cust):
    """``#cloud-config`` user-data (bytes)."""
    cfg = {}
    if cust.hostname:
        cfg["hostname"] = cust.hostname
        if cust.fqdn:
            cfg["fqdn"] = cust.fqdn
        cfg["manage_etc_hosts"] = True
    if cust.users:
        cfg["users"] = [_cloud_user(u) for u in cust.users]
    ssh = _ssh_enabled(cust)
    if ssh is not None:
        cfg["ssh_pwauth"] = bool(ssh and cust.ssh_password_authentication)
    if cust.timezone:
        cfg["timezone"] = cust.timezone
    if cust.locale:
        cfg["locale"] = cust.locale
        # cloud-init's locale module runs Debian's locale-gen, which builds only what /etc/locale.gen
        # lists (its arguments are ignored): list it first. bootcmd runs before that module; the
        # values are arguments of the script, not part of it.
        cfg["bootcmd"] = [["sh", "-c", _LOCALE_GEN_LINE, "sh", cust.locale, _locale_charset(cust.locale)]]
    if cust.keyboard:
        layout, variant, model = cust.keyboard
        cfg["keyboard"] = {"layout": layout, "model": model or "pc105"}
        if variant:
            cfg["keyboard"]["variant"] = variant
    runcmd = []
    # cloud-init writes keys and sshd settings but never enables the unit; Raspberry Pi OS ships it off.
    if ssh is True:
        runcmd.append(["systemctl", "enable", "--now", "ssh"])
    elif ssh is False:
        runcmd.append(["systemctl", "disable", "--now", "ssh"])
    if cust.wifi_enabled is not None:
        word, state = ("unblock", "0") if cust.wifi_enabled else ("block", "1")
        runcmd.append(["rfkill", word, "wifi"])
        # systemd-rfkill restores these at every boot: make the state stick.
        runcmd.append(["sh", "-c", 'for f in /var/lib/systemd/rfkill/*:wlan; do [ -e "$f" ] && echo %s >"$f"; done'
                       % state])
    if runcmd:
        cfg["runcmd"] = runcmd
    return ("#cloud-config\n" + (_dump(cfg) if cfg else "{}\n")).encode("ascii")


def network_config(cust):
    """Network configuration version 2 (bytes), or None when the customisation leaves the network alone."""
    net = cust.network
    if net is None:
        return None
    eth = {}
    if net.dhcp:
        eth["dhcp4"] = True
    else:
        v6 = ":" in net.address
        eth["dhcp4"] = False
        eth["addresses"] = [net.address]
        if net.gateway:
            eth["routes"] = [{"to": "::/0" if v6 else "0.0.0.0/0", "via": net.gateway}]
        if net.nameservers:
            eth["nameservers"] = {"addresses": list(net.nameservers)}
    return _dump({"version": 2, "ethernets": {net.interface: eth}}).encode("ascii")


def instance_id(user_data_bytes, network_bytes, hostname):
    h = hashlib.sha256()
    for part in (user_data_bytes, network_bytes or b"", (hostname or "").encode()):
        h.update(hashlib.sha256(part).digest())
    return "iid-picluster-" + h.hexdigest()[:20]


def meta_data(iid, hostname):
    # dsmode local, as the meta-data Raspberry Pi OS ships: user-data is applied before the network is up.
    data = {"instance-id": iid, "dsmode": "local"}
    if hostname:
        data["local-hostname"] = hostname
    return _dump(data).encode("ascii")


# --- firstrun.sh ----------------------------------------------------------------------------------


def _lines_hostname(cust):
    q = shlex.quote
    name = q(cust.hostname)
    hosts_line = "127.0.1.1\\t%s" % ("%s %s" % (cust.fqdn, cust.hostname) if cust.fqdn else cust.hostname)
    return [
        "if [ -x %s ]; then" % IMAGER_CUSTOM,
        "   %s set_hostname %s" % (IMAGER_CUSTOM, name),
        "else",
        "   echo %s >/etc/hostname" % name,
        "fi",
        # Host names are [a-z0-9-] and FQDNs add dots only: nothing sed would read as syntax but '.'.
        'sed -i "s/^127\\.0\\.1\\.1.*/%s/" /etc/hosts' % hosts_line,
        'grep -q "^127\\.0\\.1\\.1" /etc/hosts || printf "%s\\n" >>/etc/hosts' % hosts_line,
    ]


def _lines_first_user(user):
    """The first user takes over the image's uid 1000 account (userconf-pi's way, as Imager does)."""
    q = shlex.quote
    name = q(user.name)
    return [
        "FIRSTUSER=$(getent passwd 1000 | cut -d: -f1)",
        "if [ -x %s ]; then" % USERCONF,
        "   %s %s ''" % (USERCONF, name),
        'elif [ -n "$FIRSTUSER" ] && [ "$FIRSTUSER" != %s ]; then' % name,
        '   usermod -l %s "$FIRSTUSER"' % name,
        "   usermod -m -d %s %s" % (q("/home/" + user.name), name),
        '   groupmod -n %s "$(getent group 1000 | cut -d: -f1)"' % name,
        'elif [ -z "$FIRSTUSER" ]; then',
        "   useradd -m -s /bin/bash %s" % name,
        "fi",
    ]


def _lines_user(user, first):
    q = shlex.quote
    name = q(user.name)
    out = _lines_first_user(user) if first else [
        "id -u %s >/dev/null 2>&1 || useradd -m -s /bin/bash %s" % (name, name)]
    for group in user.groups:
        out.append("getent group %s >/dev/null || groupadd %s" % (q(group), q(group)))
        out.append("usermod -a -G %s %s" % (q(group), name))
    if user.password_hash:
        # chpasswd reads the hash on stdin: printf is a shell builtin, so no process shows it.
        out.append("# shellcheck disable=SC2016  # the '$' of a crypt hash are literal")
        out.append("printf '%%s\\n' %s | chpasswd -e" % q("%s:%s" % (user.name, user.password_hash)))
    else:
        out.append("usermod -L %s" % name)
    sudoers = "/etc/sudoers.d/010_%s-nopasswd" % user.name
    if user.sudo:
        out.append("printf '%%s\\n' %s >%s" % (q("%s %s" % (user.name, SUDO_RULE)), q(sudoers)))
        out.append("chmod 0440 %s" % q(sudoers))
    else:
        # Raspberry Pi OS gives its first user passwordless sudo (renamed with it by userconf).
        out.append("[ -f /etc/sudoers.d/010_pi-nopasswd ] && sed -i %s /etc/sudoers.d/010_pi-nopasswd"
                   % q("/^%s /d" % user.name))
    if user.ssh_authorized_keys:
        out += [
            "HOME_DIR=$(getent passwd %s | cut -d: -f6)" % name,
            'install -o %s -g "$(id -g %s)" -m 700 -d "$HOME_DIR/.ssh"' % (name, name),
            # A quoted here-document delimiter: the keys are taken literally (no expansion).
            "cat >\"$HOME_DIR/.ssh/authorized_keys\" <<'PICLUSTER_CARRIER_KEYS'",
        ]
        out += list(user.ssh_authorized_keys)
        out += [
            "PICLUSTER_CARRIER_KEYS",
            'chown %s: "$HOME_DIR/.ssh/authorized_keys"' % name,
            'chmod 600 "$HOME_DIR/.ssh/authorized_keys"',
        ]
    return out


def _lines_ssh(cust):
    ssh = _ssh_enabled(cust)
    if ssh is None:
        return []
    if not ssh:
        return ["systemctl disable ssh"]
    conf = "/etc/ssh/sshd_config.d/01-picluster-carrier.conf"
    return [
        # sshd takes the first value it reads; sshd_config includes sshd_config.d/*.conf at its top.
        "install -d -m 755 /etc/ssh/sshd_config.d",
        "printf 'PasswordAuthentication %s\\n' >%s" % ("yes" if cust.ssh_password_authentication else "no", conf),
        "systemctl enable ssh",
    ]


def _lines_locale(cust):
    q = shlex.quote
    out = []
    if cust.timezone:
        tz = q(cust.timezone)
        out += [
            "if [ -x %s ]; then" % IMAGER_CUSTOM,
            "   %s set_timezone %s" % (IMAGER_CUSTOM, tz),
            "else",
            "   rm -f /etc/localtime",
            "   echo %s >/etc/timezone" % tz,
            "   ln -s %s /etc/localtime" % q("/usr/share/zoneinfo/" + cust.timezone),
            "   dpkg-reconfigure -f noninteractive tzdata",
            "fi",
        ]
    if cust.locale:
        loc = q(cust.locale)
        charset = _locale_charset(cust.locale)
        out += [
            "if command -v raspi-config >/dev/null; then",
            "   raspi-config nonint do_change_locale %s" % loc,
            "else",
            "   grep -q %s /etc/locale.gen || echo %s >>/etc/locale.gen"
            % (q("^%s " % cust.locale.replace(".", "\\.")), q("%s %s" % (cust.locale, charset))),
            "   locale-gen",
            "   update-locale LANG=%s" % loc,
            "fi",
        ]
    if cust.keyboard:
        layout, variant, model = cust.keyboard
        out += ["cat >/etc/default/keyboard <<'PICLUSTER_CARRIER_KEYBOARD'",
                'XKBMODEL="%s"' % (model or "pc105"), 'XKBLAYOUT="%s"' % layout, 'XKBVARIANT="%s"' % (variant or ""),
                'XKBOPTIONS=""', "PICLUSTER_CARRIER_KEYBOARD",
                "dpkg-reconfigure -f noninteractive keyboard-configuration"]
    return out


def _lines_network(cust):
    net = cust.network
    if net is None or net.dhcp:
        return []
    v6 = ":" in net.address
    nm = "/etc/NetworkManager/system-connections/picluster-%s.nmconnection" % net.interface
    ip4 = ["method=manual", "address1=%s%s" % (net.address, "," + net.gateway if net.gateway else "")]
    if net.nameservers:
        ip4.append("dns=%s;" % ";".join(net.nameservers))
    sections = (["[ipv4]", "method=auto", "[ipv6]"] + ip4) if v6 else (["[ipv4]"] + ip4 + ["[ipv6]", "method=auto"])
    dhcpcd = ["interface %s" % net.interface, "static %s=%s" % ("ip6_address" if v6 else "ip_address", net.address)]
    if net.gateway:
        dhcpcd.append("static routers=%s" % net.gateway)
    if net.nameservers:
        dhcpcd.append("static domain_name_servers=%s" % " ".join(net.nameservers))
    # NetworkManager from Bookworm on, dhcpcd before it.
    out = ["if [ -d /etc/NetworkManager/system-connections ]; then",
           "cat >%s <<'PICLUSTER_CARRIER_NET'" % nm,
           "[connection]", "id=picluster-%s" % net.interface, "type=ethernet",
           "interface-name=%s" % net.interface, "autoconnect-priority=100"]
    out += sections
    out += ["PICLUSTER_CARRIER_NET", "   chmod 600 %s" % nm, "else", "cat >>/etc/dhcpcd.conf <<'PICLUSTER_CARRIER_NET'"]
    out += dhcpcd
    out += ["PICLUSTER_CARRIER_NET", "fi"]
    return out


def _lines_wifi(cust):
    if cust.wifi_enabled is None:
        return []
    word, state = ("unblock", "0") if cust.wifi_enabled else ("block", "1")
    return ["rfkill %s wifi" % word,
            "for f in /var/lib/systemd/rfkill/*:wlan; do",
            '   [ -e "$f" ] && echo %s >"$f"' % state,
            "done"]


def firstrun_sh(cust):
    """rpi-imager's ``firstrun.sh`` (bytes) for the customisation."""
    lines = ["#!/bin/sh", "# First-boot customisation by picluster.carrier: run once through systemd.run= on the",
             "# kernel command line, then removes itself and that hook (Raspberry Pi Imager's format).", "set +e", ""]
    if cust.hostname:
        lines += _lines_hostname(cust)
    for i, user in enumerate(cust.users):
        lines += _lines_user(user, first=(i == 0))
    lines += _lines_ssh(cust) + _lines_locale(cust) + _lines_network(cust) + _lines_wifi(cust)
    # The cleanup must stay last and in this shape (see the module docstring: imager_fixup).
    lines += ["rm -f /boot/firstrun.sh", "sed -i 's| systemd.run.*||g' /boot/cmdline.txt", "exit 0"]
    return ("\n".join(lines) + "\n").encode("ascii")


# --- cmdline.txt ----------------------------------------------------------------------------------


def edit_cmdline(text, style, iid=None, wifi_country=None):
    """``cmdline.txt`` (str) with this library's words for ``style`` and no stale ones: one line.

    The firmware reads the first line only, so later lines are dropped. The firstrun hook goes
    last: the script's own cleanup removes everything from `` systemd.run`` to the end of the line.
    """
    first = text.splitlines()[0] if text.strip() else ""
    words = [w for w in first.split() if not w.startswith(_OWNED_PREFIXES) and w not in _OWNED_WORDS]
    if wifi_country:
        words.append("cfg80211.ieee80211_regdom=%s" % wifi_country)
    if style == "cloud-init" and iid:
        words.append("ds=nocloud;i=%s" % iid)
    if style == "firstrun":
        words.extend(FIRSTRUN_HOOK)
    return " ".join(words) + "\n"
