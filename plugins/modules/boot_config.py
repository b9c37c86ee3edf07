#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: boot_config
short_description: Edit a Raspberry Pi's cmdline.txt token by token and config.txt section by section
version_added: 0.1.0
description:
  - "Runs on a node. Finds the boot partition (O(boot_dir)), then edits C(cmdline.txt), the one line of kernel
    parameters, by token (O(cmdline_set), O(cmdline_add), O(cmdline_absent)) and C(config.txt) inside the section
    filters named (O(config_set), O(config_absent)): C([all]), C([pi4]), C([cm4]), C([pi5]), C([gpio4=1]) ..."
  - Lines and tokens the options do not name are kept byte for byte; tokens after a lone C(--) in C(cmdline.txt)
    (arguments for init) are never touched. Lines before the first section filter of C(config.txt) count as
    C([all]).
  - In C(config.txt), setting a key rewrites its last line in that section, or adds a line at the end of the last
    block of the section (a new C([filter]) block at the end of the file when the section has none). The
    repeatable keys C(dtoverlay), C(dtparam) and C(include) are never rewritten, a line is added when no line of
    the section has that exact value.
  - The order is removals, then O(cmdline_set)/O(config_set), then O(cmdline_add). Files are replaced atomically
    (temp file and rename in the same directory), and together; both are written out before either is renamed, so
    an error leaves both as they were. Changes take effect at the next boot (RV(reboot_required)).
  - Fails, changing nothing, when a file an option concerns is missing or a value is not valid.
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
    details: One diff per file changed (C(cmdline.txt), C(config.txt)).
options:
  boot_dir:
    description:
      - The boot partition's directory. Default the first of C(/boot/firmware) and C(/boot) that holds a
        C(cmdline.txt) or C(config.txt).
    type: path
  cmdline_set:
    description:
      - "Kernel parameters to set in C(cmdline.txt): C({key: value}). The tokens of each key become exactly the
        ones given, at the place of the key's first token (at the end of the kernel parameters when absent)."
      - "A null value sets a bare flag (C(quiet)); a list sets the key once per element
        (C({console: [serial0,115200, tty1]})); booleans become C(1)/C(0)."
    type: dict
  cmdline_add:
    description:
      - Tokens (C(key=value) or flags) that must be in C(cmdline.txt); other tokens of the same key are kept.
        For keys the kernel takes many times, such as C(cgroup_enable=memory).
    type: list
    elements: str
  cmdline_absent:
    description:
      - Tokens to remove from C(cmdline.txt). A C(key) removes every token of that key, a C(key=value) only that
        exact token.
    type: list
    elements: str
  config_set:
    description:
      - "Settings for C(config.txt) by section filter, without brackets: C({all: {arm_boost: 1}, cm4: {otg_mode: 1}})."
      - Booleans become C(1)/C(0). C(dtoverlay), C(dtparam) and C(include) take a list of values, one line each.
    type: dict
  config_absent:
    description:
      - "Lines to remove from C(config.txt) by section filter: C({all: [dtoverlay=vc4-kms-v3d, camera_auto_detect]})."
      - A C(key) removes every line of the key in that section, a C(key=value) only that exact line.
    type: dict
  backup:
    description:
      - Keep a copy of each file changed beside it, with a timestamp in its name.
    type: bool
    default: false
notes:
  - Reboot the node for a change to take effect; C(/proc/cmdline) shows the parameters the kernel booted with.
  - Section filters are matched as written; the module does not evaluate which filters apply to the board it runs on.
seealso:
  - module: picluster.carrier.eeprom_config
"""

EXAMPLES = r"""
- name: Memory cgroup for k3s and no serial console on the kernel command line
  picluster.carrier.boot_config:
    cmdline_set:
      cgroup_memory: 1
    cmdline_add:
      - cgroup_enable=memory
    cmdline_absent:
      - console=serial0,115200
  register: boot

- name: PCIe Gen 3 for the NVMe data disk on CM4 and CM5, USB host mode on CM4
  picluster.carrier.boot_config:
    config_set:
      all:
        dtparam: [pciex1_gen=3]
      cm4:
        otg_mode: 1
    config_absent:
      all: [dtoverlay=vc4-kms-v3d]

- name: Reboot when a boot file changed
  ansible.builtin.reboot:
  when: boot.reboot_required

- name: Edit the files of a boot partition mounted elsewhere
  picluster.carrier.boot_config:
    boot_dir: /mnt/node07-boot
    config_set:
      all:
        enable_uart: 1
"""

RETURN = r"""
boot_dir:
  description: The boot directory used.
  returned: success
  type: str
  sample: /boot/firmware
cmdline:
  description: The C(cmdline.txt) line after the change, without its newline (when a cmdline option was given).
  returned: when O(cmdline_set), O(cmdline_add) or O(cmdline_absent) is given
  type: str
  sample: console=tty1 root=PARTUUID=4e639091-02 rootwait cgroup_memory=1 cgroup_enable=memory
cmdline_expected:
  description:
    - The kernel parameters O(cmdline_set) and O(cmdline_add) ask for, as tokens. Once the node has booted with
      the new C(cmdline.txt), C(/proc/cmdline) holds each of them.
  returned: when O(cmdline_set), O(cmdline_add) or O(cmdline_absent) is given
  type: list
  elements: str
  sample: [cgroup_memory=1, cgroup_enable=memory]
cmdline_unexpected:
  description:
    - O(cmdline_absent) as given; a booted kernel's C(/proc/cmdline) holds none of these exact tokens, nor any token
      of the keys given without a value.
  returned: when O(cmdline_set), O(cmdline_add) or O(cmdline_absent) is given
  type: list
  elements: str
  sample: [cgroup_disable=memory]
config:
  description: The C(config.txt) text after the change (when a config option was given).
  returned: when O(config_set) or O(config_absent) is given
  type: str
  sample: "arm_64bit=1\n\n[cm4]\notg_mode=1\n\n[all]\n"
changed_files:
  description: The files changed (or that would change in check mode).
  returned: success
  type: list
  elements: str
  sample: [/boot/firmware/cmdline.txt]
reboot_required:
  description: True when a file changed, so the node must reboot for the change to take effect.
  returned: success
  type: bool
  sample: true
backup_files:
  description: Copies kept by O(backup), by file changed.
  returned: when O(backup=true) and a file changed
  type: dict
  sample: {/boot/firmware/cmdline.txt: /boot/firmware/cmdline.txt.2417.2026-11-22@01:02:03~}
"""


from ansible.module_utils.basic import AnsibleModule

from ansible_collections.picluster.carrier.plugins.module_utils._bootcfg import cmdline_expectations, plan_boot_files
from ansible_collections.picluster.carrier.plugins.module_utils._errors import run_module
from ansible_collections.picluster.carrier.plugins.module_utils._fileio import KEEP, atomic_write_many


def _run(module):
    p = module.params
    boot_dir, changes = plan_boot_files(
        boot_dir=p["boot_dir"], cmdline_set=p["cmdline_set"], cmdline_add=p["cmdline_add"],
        cmdline_absent=p["cmdline_absent"], config_set=p["config_set"], config_absent=p["config_absent"],
    )
    changed = [c for c in changes.values() if c.changed]
    result = dict(changed=bool(changed), boot_dir=boot_dir, changed_files=[c.path for c in changed],
                  reboot_required=bool(changed))
    if "cmdline" in changes:
        result["cmdline"] = changes["cmdline"].after.strip()
        result["cmdline_expected"], result["cmdline_unexpected"] = cmdline_expectations(
            p["cmdline_set"], p["cmdline_add"], p["cmdline_absent"])
    if "config" in changes:
        result["config"] = changes["config"].after
    if module._diff:
        result["diff"] = [dict(before=c.before, after=c.after, before_header=c.path, after_header=c.path)
                          for c in changed]
    if changed and not module.check_mode:
        backups = {}
        if p["backup"]:
            for change in changed:
                backups[change.path] = module.backup_local(change.path)
        # cmdline.txt and config.txt are read together at the next boot: both or neither change.
        atomic_write_many([(c.path, c.after) for c in changed], mode=KEEP, makedirs=False)
        if backups:
            result["backup_files"] = backups
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            boot_dir=dict(type="path"),
            cmdline_set=dict(type="dict"),
            cmdline_add=dict(type="list", elements="str"),
            cmdline_absent=dict(type="list", elements="str"),
            config_set=dict(type="dict"),
            config_absent=dict(type="dict"),
            backup=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    run_module(module, _run)


if __name__ == "__main__":
    main()
