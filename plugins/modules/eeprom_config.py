#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: eeprom_config
short_description: Set the bootloader EEPROM config (boot order and keys) of a Raspberry Pi 4/5 or CM4/CM5 node
version_added: 0.1.0
description:
  - Runs on a node (a Raspberry Pi 4, Pi 400, CM4, Pi 5 or CM5). Reads the current bootloader config, changes
    O(boot_order) and O(settings) in one O(section), and stages the new EEPROM image the way the firmware expects,
    as C(pieeprom.upd), C(pieeprom.sig) and C(recovery.bin) in the boot partition. The bootloader flashes it at the
    next reboot (the ROM runs C(recovery.bin)).
  - Needs none of rpi-eeprom's scripts (Compute Modules refuse them by default), only the EEPROM images of the
    C(rpi-eeprom) package or an image given in O(image).
  - "The current config is read from: a pending update (C(pieeprom.upd) in the boot partition) when there is one,
    else the C(blconfig) nvmem device named by C(/sys/firmware/devicetree/base/aliases/blconfig), else
    C(vcgencmd bootloader_config)."
  - "The image modified is the pending update when there is one, else O(image), else the newest
    C(pieeprom-*.bin) of O(release) for the node's SoC (read from C(/proc/device-tree/compatible)) under
    O(firmware_dir)."
  - "C(pieeprom.sig) is written as C(rpi-eeprom-update) writes it: the sha256, C(ts:) (the task's C(SOURCE_DATE_EPOCH)
    when set, else the current time) and C(target-soc: 2711) or C(2712)."
  - A copy of the old config is written under O(backup_dir) before staging. Nothing is written when the config
    already holds the wanted values.
  - Fails, changing nothing, on a machine that is not a Raspberry Pi with a bootloader EEPROM.
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
    details: The diff is the bootloader config text before and after.
options:
  boot_order:
    description:
      - The boot modes in the order tried, written as C(BOOT_ORDER) in O(section).
      - At most 8; V(rpiboot) only as the last one. V(bcm_usb) is refused on a BCM2712 node (Pi 5, CM5 have no
        such mode).
      - A C(BOOT_ORDER) the current config already holds is kept and reported even with a code Raspberry Pi's
        documentation calls deprecated (C(0x0)) or leaves undefined (C(0x8)-C(0xd)).
      - With O(state=absent), removes C(BOOT_ORDER) from O(section) (the values given do not matter).
    type: list
    elements: str
    choices: [sd, network, rpiboot, usb, bcm_usb, nvme, http, stop, restart]
  settings:
    description:
      - "Config keys to set in O(section), for example C({BOOT_UART: 1, POWER_OFF_ON_HALT: 1}). Booleans become 1/0."
      - Known keys are range-checked; unknown keys are kept with a warning.
      - With O(state=absent), the keys named are removed from O(section) (the values do not matter).
      - Without O(boot_order) and O(settings) the module only reads and returns the config.
    type: dict
  section:
    description:
      - The section filter to act in, without brackets (V(all), V(gpio8=0), V(0x1234abcd), V(partition=1) ...).
      - "Letters, digits and C(_ . : + = & < > -) only: a name that could close the filter, start a comment or
        break the line is refused."
    type: str
    default: all
  state:
    description:
      - V(present) sets the keys, V(absent) removes them.
    type: str
    choices: [present, absent]
    default: present
  image:
    description:
      - The EEPROM image to put the config into, when no update is pending. Default the newest image of O(release)
        for the node's SoC under O(firmware_dir).
    type: path
  release:
    description:
      - The rpi-eeprom release directory searched for the image (C(<firmware_dir>/bootloader-2711/<release>/)).
    type: str
    choices: [default, latest]
    default: default
  recovery_bin:
    description:
      - The C(recovery.bin) to stage. Default the one beside the image.
    type: path
  boot_partition:
    description:
      - The boot partition where the update is staged. Default C(/boot/firmware) when it exists, else C(/boot).
    type: path
  backup_dir:
    description:
      - Where the old config is saved. Default C(/var/lib/raspberrypi/bootloader/backup).
    type: path
  firmware_dir:
    description:
      - Root of the EEPROM images. Default C(/lib/firmware/raspberrypi).
    type: path
  vcgencmd:
    description:
      - The C(vcgencmd) command, used when neither a pending update nor the blconfig device gives the config.
    type: str
    default: vcgencmd
  root:
    description:
      - A directory taken as the node's C(/) for every default path above (C(/proc), C(/sys), C(/boot) ...). For
        tests against a copy of a node's files; leave the default on a real node.
    type: path
    default: /
notes:
  - After a change, reboot the node (see RV(reboot_required)). C(rpi-eeprom-update -r) or deleting
    C(pieeprom.upd) from the boot partition cancels a staged update.
  - Network-booted and USB-MSD-booted nodes never run C(recovery.bin); update them with
    M(picluster.carrier.eeprom_image) O(picluster.carrier.eeprom_image#module:target=tftp_self_update).
seealso:
  - module: picluster.carrier.eeprom_image
"""

EXAMPLES = r"""
- name: NVMe first in service, then SD, then network
  picluster.carrier.eeprom_config:
    boot_order: [nvme, sd, network, restart]
  register: eeprom

- name: Reboot to flash the new config
  ansible.builtin.reboot:
  when: eeprom.reboot_required

- name: Keep the PMIC off after halt, and show bootloader logs on the UART
  picluster.carrier.eeprom_config:
    settings:
      POWER_OFF_ON_HALT: 1
      BOOT_UART: 1

- name: Network boot only when GPIO 8 is low at power-on
  picluster.carrier.eeprom_config:
    section: gpio8=0
    boot_order: [network, restart]

- name: Drop a key
  picluster.carrier.eeprom_config:
    settings:
      NET_INSTALL_AT_POWER_ON: ~
    state: absent

- name: Read the config only
  picluster.carrier.eeprom_config:
  register: current
"""

RETURN = r"""
config:
  description: The config after the change (or the current config when nothing changes).
  returned: success
  type: str
  sample: "[all]\nBOOT_UART=1\nBOOT_ORDER=0xf216\n"
previous_config:
  description: The config read before the change.
  returned: success
  type: str
  sample: "[all]\nBOOT_UART=1\n"
config_source:
  description: Where the current config was read.
  returned: success
  type: str
  sample: blconfig nvmem device
boot_order:
  description: The boot modes of C(BOOT_ORDER) in O(section) after the change (the firmware default when unset).
  returned: success
  type: list
  elements: str
  sample: [nvme, sd, network, restart]
soc:
  description: The node's SoC.
  returned: success
  type: str
  sample: bcm2711
reboot_required:
  description: True when an update is staged in the boot partition (now or before) and a reboot will flash it.
  returned: success
  type: bool
  sample: true
staged:
  description: Files written (or that would be written in check mode) in the boot partition.
  returned: success
  type: list
  elements: str
  sample: [/boot/firmware/pieeprom.upd, /boot/firmware/pieeprom.sig, /boot/firmware/recovery.bin]
backup_file:
  description: The copy of the old config.
  returned: changed
  type: str
  sample: /var/lib/raspberrypi/bootloader/backup/pieeprom-backup-20261122-013000.conf
image:
  description: The EEPROM image the new config was put into.
  returned: changed
  type: str
  sample: /lib/firmware/raspberrypi/bootloader-2711/default/pieeprom-2026-05-17.bin
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.picluster.carrier.plugins.module_utils._eeprom.config import BOOT_MODES
from ansible_collections.picluster.carrier.plugins.module_utils._eeprom.files import write_planned
from ansible_collections.picluster.carrier.plugins.module_utils._eeprom.node import NodePaths, plan_node_update
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError, run_module


def _run(module):
    p = module.params
    paths = NodePaths.defaults(p["root"], p["boot_partition"], p["backup_dir"], p["firmware_dir"])

    def vcgencmd():
        cmd = module.get_bin_path(p["vcgencmd"])
        if cmd is None:
            return None
        rc, out, err = module.run_command([cmd, "bootloader_config"])
        if rc != 0:
            raise CarrierError("vcgencmd bootloader_config failed (rc %d): %s" % (rc, (err or out).strip()))
        return out

    plan = plan_node_update(paths, p["boot_order"], p["settings"], p["section"], p["state"], image=p["image"],
                            recovery_bin=p["recovery_bin"], release=p["release"], vcgencmd=vcgencmd)
    for w in plan.warnings:
        module.warn(w)
    if plan.changed and not module.check_mode:
        write_planned(plan)
    info = plan.info
    result = dict(
        changed=plan.changed, config=plan.after_config, previous_config=plan.before_config,
        config_source=info["config_source"], boot_order=info["boot_order"], soc=info["soc"],
        reboot_required=info["reboot_required"],
        staged=sorted(f for f in plan.files if f.startswith(paths.boot_partition.rstrip("/") + "/")),
    )
    for key in ("backup_file", "image"):
        if key in info:
            result[key] = info[key]
    if module._diff:
        result["diff"] = dict(before=plan.before_config, after=plan.after_config,
                              before_header="bootloader config (%s)" % info["config_source"],
                              after_header="bootloader config (staged)" if plan.changed else "bootloader config")
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            boot_order=dict(type="list", elements="str", choices=list(BOOT_MODES)),
            settings=dict(type="dict"),
            section=dict(type="str", default="all"),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            image=dict(type="path"),
            release=dict(type="str", default="default", choices=["default", "latest"]),
            recovery_bin=dict(type="path"),
            boot_partition=dict(type="path"),
            backup_dir=dict(type="path"),
            firmware_dir=dict(type="path"),
            vcgencmd=dict(type="str", default="vcgencmd"),
            root=dict(type="path", default="/"),
        ),
        supports_check_mode=True,
    )
    run_module(module, _run)


if __name__ == "__main__":
    main()
