#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: eeprom_image
short_description: Build a Raspberry Pi bootloader EEPROM image with a given config, for rpiboot recovery or self-update
version_added: 0.1.0
description:
  - Runs on the controller. Reads a bootloader EEPROM image (C(pieeprom-*.bin) of a BCM2711 Pi 4/CM4 or a
    BCM2712 Pi 5/CM5, A/B images included), replaces its C(bootconf.txt) and writes the new image with its C(.sig)
    file.
  - The config is either the whole text (O(config)) or the current config of O(src) changed by O(boot_order) and
    O(settings) in one O(section). Comments, blank lines and section filters of the config are kept.
  - Writing back the same config gives a byte-identical image (the padding rules of Raspberry Pi's own
    C(rpi-eeprom-config)); only C(bootconf.txt) (and, with a key, C(pubkey.bin) and C(bootconf.sig)) change.
  - "Targets: a plain image file (O(target=image)); a directory to serve with C(rpiboot -d) to nodes put in rpiboot
    (USB boot) mode, with C(recovery.bin) (also as C(bootcode4.bin) or C(bootcode5.bin), the name rpiboot serves
    for the SoC), C(pieeprom.bin), C(pieeprom.sig) and a C(config.txt) holding the recovery options
    (O(target=usb_recovery)); or a node's TFTP directory, where a network-booted node finds C(pieeprom.upd) and
    C(pieeprom.sig) and flashes itself (O(target=tftp_self_update), needs C(ENABLE_SELF_UPDATE=1), the default)."
  - Idempotent. An existing C(.sig) whose sha256 still matches the image is kept, so its C(ts:) line does not make
    a re-run report a change. Files are written atomically.
  - "A new C(.sig) is written as Raspberry Pi's C(rpi-eeprom-digest) writes it for a firmware update: the sha256,
    C(ts:), C(target-soc: 2711) or C(2712), then C(rsa2048:) with a key. Its C(ts:) is the environment variable
    C(SOURCE_DATE_EPOCH) of the task when that is set (reproducible builds), else the current time."
author:
  - picluster.carrier contributors (@picluster)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff is the config text (C(bootconf.txt)) before and after.
options:
  src:
    description:
      - The base image, for example C(/lib/firmware/raspberrypi/bootloader-2711/default/pieeprom-2026-05-17.bin).
      - Must be 524288 (BCM2711) or 2097152 (BCM2712) bytes.
    type: path
    required: true
  model:
    description:
      - The model of the node the image is for, when known (the inventory's C(carrier_model)). A model without a
        bootloader EEPROM (C(pi3bplus), C(pi3), C(cm4s) ...) is refused with the reason, and the image must be one
        of the model's SoC. Without it only the image's own size says the SoC.
    type: str
  dest:
    description:
      - With O(target=image), the image file to write.
      - With O(target=usb_recovery) or O(target=tftp_self_update), the directory to write into (created when
        missing).
    type: path
    required: true
  target:
    description:
      - What to write, see the description.
    type: str
    choices: [image, usb_recovery, tftp_self_update]
    default: image
  config:
    description:
      - The whole config text to embed (at most 4076 bytes).
      - Mutually exclusive with O(boot_order) and O(settings).
    type: str
  boot_order:
    description:
      - The boot modes in the order tried, written as C(BOOT_ORDER) in O(section).
      - At most 8; V(rpiboot) only as the last one. V(bcm_usb) is refused for a BCM2712 image (Pi 5, CM5 have no
        such mode).
    type: list
    elements: str
    choices: [sd, network, rpiboot, usb, bcm_usb, nvme, http, stop, restart]
  settings:
    description:
      - "Config keys to set in O(section), for example C({BOOT_UART: 1, TFTP_PREFIX: 2}). Booleans become 1/0."
      - Known keys are range-checked; unknown keys are kept with a warning.
    type: dict
  section:
    description:
      - The section filter O(boot_order) and O(settings) apply to, without brackets (V(all), V(gpio8=0),
        V(0x1234abcd), V(partition=1) ...). Created at the end of the config when missing.
      - "Letters, digits and C(_ . : + = & < > -) only: a name that could close the filter, start a comment or
        break the line is refused."
    type: str
    default: all
  sig_dest:
    description:
      - With O(target=image), where to write the C(.sig) file. Default O(dest) with its extension replaced by C(.sig).
    type: path
  recovery_bin:
    description:
      - The C(recovery.bin) of the nodes' SoC, copied into O(dest). Required with O(target=usb_recovery).
      - Refused unless it is signed for the SoC of O(src) (the trailer the boot ROM checks tells a BCM2711
        C(recovery.bin) from a BCM2712 one).
    type: path
  recovery_reboot:
    description:
      - With O(target=usb_recovery), write C(recovery_reboot=1) in C(config.txt) so that the node reboots after
        flashing.
    type: bool
    default: true
  eeprom_write_protect:
    description:
      - With O(target=usb_recovery), the C(eeprom_write_protect) recovery option (V(1) protect, V(0) clear,
        V(-1) leave as is). Not written when unset.
    type: int
    choices: [-1, 0, 1]
  signing_key:
    description:
      - Path of a customer RSA-2048 private key (PEM). Its public key is embedded as C(pubkey.bin), the config is
        signed into C(bootconf.sig) and the C(.sig) file gets an C(rsa2048:) line (PKCS#1 v1.5 over SHA-256).
    type: path
  signing_key_content:
    description:
      - The private key itself (PEM text), instead of O(signing_key).
    type: str
  signing_key_passphrase:
    description:
      - Passphrase of an encrypted private key.
    type: str
requirements:
  - cryptography (only with O(signing_key) or O(signing_key_content))
notes:
  - The image format is described in the collection's docs/hardware.md section 4; the config keys in section 5.
seealso:
  - module: picluster.carrier.eeprom_config
"""

EXAMPLES = r"""
- name: Network boot first, then SD, loop forever (image file)
  picluster.carrier.eeprom_image:
    src: /lib/firmware/raspberrypi/bootloader-2711/default/pieeprom-2026-05-17.bin
    dest: /srv/eeprom/pieeprom-netboot.bin
    boot_order: [network, sd, restart]
    settings:
      TFTP_PREFIX: 2
      BOOT_UART: 1

- name: Recovery directory to serve with rpiboot to CM4s in USB boot mode
  picluster.carrier.eeprom_image:
    src: /lib/firmware/raspberrypi/bootloader-2711/default/pieeprom-2026-05-17.bin
    dest: /srv/rpiboot/cm4
    target: usb_recovery
    recovery_bin: /lib/firmware/raspberrypi/bootloader-2711/default/recovery.bin
    boot_order: [nvme, sd, network, restart]
    eeprom_write_protect: 0

- name: Self-update of a network-booted node from its TFTP directory
  picluster.carrier.eeprom_image:
    src: /lib/firmware/raspberrypi/bootloader-2712/default/pieeprom-2026-05-26.bin
    dest: /srv/tftp/b7f44626
    target: tftp_self_update
    boot_order: [nvme, network, restart]

- name: A whole config, signed with the customer key
  picluster.carrier.eeprom_image:
    src: pieeprom.original.bin
    dest: pieeprom.bin
    config: |
      [all]
      BOOT_UART=1
      BOOT_ORDER=0xf21
      SIGNED_BOOT=1
    signing_key: /etc/picluster/keys/private.pem
"""

RETURN = r"""
image:
  description: Path of the image written (or that would be written).
  returned: success
  type: str
  sample: /srv/tftp/b7f44626/pieeprom.upd
sig:
  description: Path of its C(.sig) file.
  returned: success
  type: str
  sample: /srv/tftp/b7f44626/pieeprom.sig
sha256:
  description: sha256 of the new image.
  returned: success
  type: str
  sample: fee8bee6a738a1a61004f0770f15534de7a48a2a199dc4c7af7ed73ab04f18dd
soc:
  description: The SoC of the image.
  returned: success
  type: str
  sample: bcm2711
config:
  description: The config text embedded in the image.
  returned: success
  type: str
  sample: "[all]\nBOOT_UART=1\nBOOT_ORDER=0xf12\n"
boot_order:
  description: The boot modes of C(BOOT_ORDER) in O(section) of the new config (the firmware default when unset).
  returned: success
  type: list
  elements: str
  sample: [network, sd, restart]
files:
  description: The files changed (or that would change in check mode).
  returned: success
  type: list
  elements: str
  sample: [/srv/tftp/b7f44626/pieeprom.upd, /srv/tftp/b7f44626/pieeprom.sig]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.picluster.carrier.plugins.module_utils._eeprom.config import BOOT_MODES
from ansible_collections.picluster.carrier.plugins.module_utils._eeprom.files import plan_image_files, write_planned
from ansible_collections.picluster.carrier.plugins.module_utils._keys import load_private_key
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError, run_module
from ansible_collections.picluster.carrier.plugins.module_utils._models import check_eeprom_model


def _private_key(module):
    p = module.params
    if p["signing_key"]:
        try:
            with open(p["signing_key"], "rb") as f:
                pem = f.read()
        except OSError as e:
            raise CarrierError("signing_key: cannot read %s: %s" % (p["signing_key"], e.strerror)) from e
        return load_private_key(pem, p["signing_key_passphrase"], "signing_key")
    if p["signing_key_content"]:
        return load_private_key(p["signing_key_content"], p["signing_key_passphrase"], "signing_key_content")
    return None


def _run(module):
    p = module.params
    model = check_eeprom_model(p["model"], "model", purpose="take an EEPROM image") if p["model"] else None
    plan = plan_image_files(
        p["src"], p["dest"], target=p["target"], config=p["config"], boot_order=p["boot_order"],
        settings=p["settings"], section=p["section"], private_key=_private_key(module), sig_dest=p["sig_dest"],
        recovery_bin=p["recovery_bin"], recovery_reboot=p["recovery_reboot"],
        eeprom_write_protect=p["eeprom_write_protect"],
    )
    if model is not None and plan.info["soc"] != model.soc:
        raise CarrierError("src: %s is a %s image, but model %s is a %s"
                           % (p["src"], plan.info["soc"], p["model"], model.soc))
    for w in plan.warnings:
        module.warn(w)
    if plan.changed and not module.check_mode:
        write_planned(plan)
    result = dict(
        changed=plan.changed, files=sorted(plan.files), config=plan.after_config, image=plan.info["image"],
        sig=plan.info["sig"], sha256=plan.info["sha256"], soc=plan.info["soc"], boot_order=plan.info["boot_order"],
    )
    if module._diff:
        result["diff"] = dict(before=plan.before_config or "", after=plan.after_config,
                              before_header="%s (config)" % plan.info["image"],
                              after_header="%s (config)" % plan.info["image"])
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type="path", required=True),
            model=dict(type="str"),
            dest=dict(type="path", required=True),
            target=dict(type="str", default="image", choices=["image", "usb_recovery", "tftp_self_update"]),
            config=dict(type="str"),
            boot_order=dict(type="list", elements="str", choices=list(BOOT_MODES)),
            settings=dict(type="dict"),
            section=dict(type="str", default="all"),
            sig_dest=dict(type="path"),
            recovery_bin=dict(type="path"),
            recovery_reboot=dict(type="bool", default=True),
            eeprom_write_protect=dict(type="int", choices=[-1, 0, 1]),
            signing_key=dict(type="path", no_log=False),
            signing_key_content=dict(type="str", no_log=True),
            signing_key_passphrase=dict(type="str", no_log=True),
        ),
        mutually_exclusive=[("config", "boot_order"), ("config", "settings"),
                            ("signing_key", "signing_key_content")],
        required_if=[("target", "usb_recovery", ("recovery_bin",))],
        supports_check_mode=True,
    )
    run_module(module, _run)


if __name__ == "__main__":
    main()
