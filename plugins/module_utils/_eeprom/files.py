# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What ``eeprom_image`` writes, computed as a :class:`Plan` without writing anything (check mode), then
written by :func:`write_planned`: an image file and its ``.sig``, an rpiboot recovery directory
(docs/hardware.md section 4) or a node's TFTP self-update files.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

from ansible_collections.picluster.carrier.plugins.module_utils._eeprom.config import (
    apply_changes,
    effective_boot_order,
    encode_config,
    validate_config,
)
from ansible_collections.picluster.carrier.plugins.module_utils._eeprom.image import (
    BOOTCONF_SIG,
    BOOTCONF_TXT,
    EepromImage,
)
from ansible_collections.picluster.carrier.plugins.module_utils._eeprom.sig import (
    make_sig,
    parse_sig,
    sig_matches,
    sig_timestamp,
)
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._fileio import atomic_write, read_optional
from ansible_collections.picluster.carrier.plugins.module_utils._keys import pubkey_bin
from ansible_collections.picluster.carrier.plugins.module_utils._sections import section_name
from ansible_collections.picluster.carrier.plugins.module_utils._values import check_number


@dataclass
class Plan:
    """What a module would write: ``files`` maps a path to its new bytes (only the changed ones)."""

    files: dict = field(default_factory=dict)
    modes: dict = field(default_factory=dict)
    unchanged: list = field(default_factory=list)
    before_config: str | None = None
    after_config: str = ""
    warnings: list = field(default_factory=list)
    info: dict = field(default_factory=dict)

    @property
    def changed(self):
        return bool(self.files)

    def add(self, path, data, mode=0o644):
        if read_optional(path) == data:
            self.unchanged.append(path)
        else:
            self.files[path] = data
            self.modes[path] = mode


def write_planned(plan):
    for path, data in plan.files.items():
        atomic_write(path, data, plan.modes.get(path, 0o644))


def desired_config(base_text, config=None, boot_order=None, settings=None, section="all", state="present",
                   soc=None):
    """The wanted config text and the validation warnings; ``soc`` is the SoC of the image it goes into."""
    section_name(section)
    if config is not None:
        if boot_order is not None or settings:
            raise CarrierError("config: give either the whole config text or boot_order/settings, not both")
        text = config
    else:
        text = apply_changes(base_text, boot_order, settings, section, state, soc=soc)
    warnings = validate_config(text, base=base_text, soc=soc)
    return text, warnings


def build_image(base, config_text, private_key=None, existing=None, ts=None):
    """A new image from ``base`` with ``config_text``; with a key, pubkey.bin and a signed bootconf.sig.

    ``existing`` (an EepromImage or None): when its bootconf.sig already signs the same config
    with the same key, its timestamp is reused so that a re-run gives the same bytes.
    """
    image = base.copy()
    image.set_config(config_text)
    if private_key is not None:
        public = private_key.public_key()
        image.set_pubkey(pubkey_bin(public))
        conf = encode_config(config_text)
        if existing is not None and existing.has_file(BOOTCONF_SIG):
            old = existing.get_file(BOOTCONF_SIG).rstrip(b"\0\xff")
            if sig_matches(conf, old, public, want_rsa=True):
                ts = parse_sig(old).ts
        image.replace_file(BOOTCONF_SIG, make_sig(conf, ts, private_key).encode("ascii"))
    return image


def _existing_image(path):
    data = read_optional(path)
    if data is None:
        return None
    try:
        return EepromImage(data, path)
    except CarrierError:
        return None


def image_sig(image, sig_path, private_key=None, ts=None):
    """The ``.sig`` bytes of a whole image: the existing file when it is still valid for the image (and
    names its SoC), else a new one with ``target-soc:`` as rpi-eeprom-update writes it."""
    data = image.to_bytes()
    public = private_key.public_key() if private_key is not None else None
    old = read_optional(sig_path)
    if sig_matches(data, old, public, want_rsa=private_key is not None, target_soc=image.soc):
        return old
    return make_sig(data, ts, private_key, target_soc=image.soc).encode("ascii")


TARGET_FILES = {
    "image": None,
    "usb_recovery": ("pieeprom.bin", "pieeprom.sig"),
    "tftp_self_update": ("pieeprom.upd", "pieeprom.sig"),
}

#: A recovery.bin is a second stage the boot ROM checks before it runs it, so it ends with the
#: trailer Raspberry Pi's rpi-sign-bootcode appends for that ROM: the code's length (32-bit
#: little-endian), then for BCM2711 a key number, a 256-byte RSA signature and a 20-byte HMAC-SHA1
#: (284 bytes), for BCM2712 a key number, a version, a 256-byte RSA signature and the 264-byte
#: public key (532 bytes). The length field holding its own offset tells the two apart; the code
#: before it is the same loader for both and cannot.
RECOVERY_TRAILER_SIZES = {"bcm2711": 284, "bcm2712": 532}


def recovery_bin_soc(data):
    """The SoC a recovery.bin is signed for (``bcm2711``, ``bcm2712``), or None when it has no such trailer."""
    found = []
    for soc, trailer in RECOVERY_TRAILER_SIZES.items():
        start = len(data) - trailer
        if start > 0 and struct.unpack_from("<I", data, start)[0] == start:
            found.append(soc)
    return found[0] if len(found) == 1 else None


def read_recovery_bin(path, soc):
    """The bytes of the recovery.bin at ``path``, refused unless it is one for ``soc``."""
    if not path:
        raise CarrierError("recovery_bin: needed for target usb_recovery (the recovery.bin of the node's SoC)")
    data = read_optional(path)
    if data is None:
        raise CarrierError("recovery_bin: %s does not exist" % path)
    found = recovery_bin_soc(data)
    if found != soc:
        raise CarrierError("recovery_bin: %s is %s, but the image is for %s (%s)" % (
            path, "a %s recovery.bin" % found.upper() if found else "not a recovery.bin of a BCM2711 or BCM2712",
            soc.upper(), "the rpi-eeprom package has one per SoC: bootloader-%s/<release>/recovery.bin" % soc[3:]))
    return data


def default_sig_path(image_path):
    root, ext = os.path.splitext(image_path)
    return (root if ext else image_path) + ".sig"


def recovery_config_txt(recovery_reboot=True, eeprom_write_protect=None):
    """config.txt for rpiboot recovery (docs/hardware.md section 4)."""
    lines = ["# Written by picluster.carrier.eeprom_image for rpiboot EEPROM recovery"]
    lines.append("recovery_reboot=%d" % (1 if recovery_reboot else 0))
    if eeprom_write_protect is not None:
        protect = check_number(eeprom_write_protect, "eeprom_write_protect", -1, 1, integer=True,
                               what="-1, 0 or 1")
        lines.append("eeprom_write_protect=%d" % protect)
    return ("\n".join(lines) + "\n").encode("ascii")


def _target_paths(dest, target, sig_dest):
    if target not in TARGET_FILES:
        raise CarrierError("target: %r must be one of %s" % (target, ", ".join(TARGET_FILES)))
    if target == "image":
        if os.path.isdir(dest):
            raise CarrierError("dest: %s is a directory; with target image it is the image file to write" % dest)
        return dest, sig_dest or default_sig_path(dest)
    if os.path.exists(dest) and not os.path.isdir(dest):
        raise CarrierError("dest: %s must be a directory for target %s" % (dest, target))
    return os.path.join(dest, TARGET_FILES[target][0]), os.path.join(dest, TARGET_FILES[target][1])


def plan_image_files(src, dest, target="image", config=None, boot_order=None, settings=None, section="all",
                     private_key=None, sig_dest=None, recovery_bin=None, recovery_reboot=True,
                     eeprom_write_protect=None):
    """Everything ``eeprom_image`` writes, as a :class:`Plan` (nothing written here)."""
    image_path, sig_path = _target_paths(dest, target, sig_dest)
    ts = sig_timestamp()
    base = EepromImage.from_file(src)
    text, warnings = desired_config(base.config, config, boot_order, settings, section, soc=base.soc)
    recovery = None
    if target == "usb_recovery":
        recovery = read_recovery_bin(recovery_bin, base.soc)
        recovery_txt = recovery_config_txt(recovery_reboot, eeprom_write_protect)
    existing = _existing_image(image_path)
    image = build_image(base, text, private_key, existing, ts)
    plan = Plan(warnings=warnings, after_config=text,
                before_config=existing.config if existing is not None and existing.has_file(BOOTCONF_TXT) else None)
    plan.add(image_path, image.to_bytes())
    plan.add(sig_path, image_sig(image, sig_path, private_key, ts))
    if recovery is not None:
        plan.add(os.path.join(dest, "recovery.bin"), recovery)
        # rpiboot serves the second stage by this name (usbboot's recovery directories).
        plan.add(os.path.join(dest, "bootcode%s.bin" % ("4" if image.soc == "bcm2711" else "5")), recovery)
        plan.add(os.path.join(dest, "config.txt"), recovery_txt)
    plan.info.update(image=image_path, sig=sig_path, sha256=image.sha256, soc=image.soc,
                     boot_order=effective_boot_order(text, section))
    return plan
