# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host name a node's OS gives itself on its first boot, from the files of its boot partition or
TFTP directory (cloud-init's NoCloud seed, rpi-imager's firstrun.sh): what the getty and the shell
show after a flash or a netboot with a customisation."""

from __future__ import annotations

import re

DEFAULT_HOSTNAME = "raspberrypi"  # what Raspberry Pi OS images ship in /etc/hostname (ext4: not read here)
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?"  # a name or an FQDN: the first label is the name
_QUOTED = r"""["']?(%s)["']?""" % _NAME
# firstrun.sh as rpi-imager writes it (and the customisation of this collection): the new name is what
# imager_custom set_hostname, hostnamectl set-hostname or a write to /etc/hostname gets; a literal
# CURRENT_HOSTNAME= counts last (rpi-imager's reads the old one with $(cat /etc/hostname)).
_FIRSTRUN = [re.compile(r"imager_custom\s+set_hostname\s+%s" % _QUOTED),
             re.compile(r"hostnamectl\s+(?:--\S+\s+)*set-hostname\s+%s" % _QUOTED),
             re.compile(r"echo\s+%s\s*>\s*/etc/hostname" % _QUOTED),
             re.compile(r"^\s*CURRENT_HOSTNAME=%s\s*$" % _QUOTED, re.M)]


def _yaml_value(text, key):
    """A top-level ``key: value`` of a small YAML file (cloud-init's seed files), without a YAML parser."""
    m = re.search(r"^%s\s*:\s*%s\s*(?:#.*)?$" % (re.escape(key), _QUOTED), text, re.M)
    return m.group(1) if m else None


def first_boot_hostname(fat, cmdline):
    """The host name the OS sets on its first boot, from the boot partition:

    cloud-init's NoCloud seed (``user-data`` ``hostname:`` over ``meta-data`` ``local-hostname:``, as
    cc_set_hostname does), else a firstrun.sh that cmdline.txt runs (``systemd.run=.../firstrun.sh``),
    else the image's default."""
    def text(name):
        data = fat.read(name)
        return data.decode("utf-8", "replace") if data is not None else None

    meta, user = text("meta-data"), text("user-data")
    if meta is not None or user is not None:
        name = (_yaml_value(user or "", "hostname") or _yaml_value(meta or "", "local-hostname"))
        if name:
            return name.split(".", 1)[0]
    if "firstrun.sh" in (cmdline or ""):
        script = text("firstrun.sh") or ""
        for pattern in _FIRSTRUN:
            m = pattern.search(script)
            if m:
                return m.group(1).split(".", 1)[0]
    return DEFAULT_HOSTNAME
