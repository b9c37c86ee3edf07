#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: power_restore
short_description: Apply a carrier board's power-restore policy after the controller starts
version_added: 0.2.0
description:
  - Puts the board's nodes back in the power state they should have after the controller (or the whole board) lost
    power, following the policy O(policy) (default the profile's C(restore), itself V(last) by default).
  - V(last) switches on the slots whose last intended state, recorded by M(picluster.carrier.node_power) in
    O(state_file), is on; V(on) switches on every slot; V(off) switches nothing on.
  - Every slot's lines are read first. Only slots whose power reads off are ever written to; a node that is on
    (the board kept its power while the controller restarted) is never touched, and nothing is switched off.
    Expander bits become outputs glitch-free (the latch takes the pin levels first), and power-on is staggered.
  - The C(power_restore) role runs this module from a systemd oneshot unit at boot.
author:
  - picluster.carrier contributors (@picluster)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
  - picluster.carrier.board
  - picluster.carrier.board.bmc
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The diff lists each slot's power (on or off) before and after.
  action_group:
    support: full
    membership:
      - picluster.carrier.board
options:
  policy:
    description:
      - The restore policy. Omitted, the profile's C(restore) (V(last) unless the profile says otherwise).
    type: str
    choices: [last, "off", "on"]
  state_file:
    description:
      - The file of intended power states that M(picluster.carrier.node_power) keeps (its
        O(picluster.carrier.node_power#module:restore_state_file)).
    type: path
    default: /var/lib/picluster-carrier/power-state.json
  slot:
    description:
      - The slots to restore, a list of them, or V(all).
    type: raw
    default: all
"""

EXAMPLES = r"""
- name: Power the nodes that were on before the outage back on
  picluster.carrier.power_restore:
    board: carrier1
    profile: itx4
    bus: 1
    protected_slots: [1]

- name: After an outage, switch every node of a rack on
  picluster.carrier.power_restore:
    board: rack1
    profile: backplane10
    bus: 1
    policy: "on"
"""

RETURN = r"""
board:
  description: The board name.
  returned: always
  type: str
  sample: carrier1
policy:
  description: The policy applied.
  returned: always
  type: str
  sample: last
state_file:
  description: The intended-state file read (for V(last)).
  returned: always
  type: str
  sample: /var/lib/picluster-carrier/power-state.json
slots:
  description: One entry per slot, in slot order.
  returned: always
  type: list
  elements: dict
  contains:
    slot:
      description: The slot number.
      type: int
    action:
      description: V(on) when the slot was (in check mode, would be) switched on, else V(none).
      type: str
      choices: [none, "on"]
    intended:
      description: The slot's intended state under the policy (V(null) when none is recorded).
      type: str
    reason:
      description: Why the slot was or was not switched on.
      type: str
      sample: "already on: not touched"
    power_before:
      description: The power line as read before the task.
      type: bool
    power_after:
      description: The power line after the task (predicted in check mode).
      type: bool
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.picluster.carrier.plugins.module_utils._common import (  # noqa: E402
    board_argument_spec,
    board_from_params,
)
from ansible_collections.picluster.carrier.plugins.module_utils._errors import run_module  # noqa: E402
from ansible_collections.picluster.carrier.plugins.module_utils._restore import restore  # noqa: E402


def _run(module):
    params = module.params
    result = restore(board_from_params(params), policy=params["policy"], state_file=params["state_file"],
                     slots=params["slot"], check_mode=module.check_mode)
    if not module._diff:
        result.pop("diff")
    return result


def main():
    module = AnsibleModule(
        argument_spec=board_argument_spec(
            policy=dict(type="str", choices=["last", "off", "on"]),
            state_file=dict(type="path", default="/var/lib/picluster-carrier/power-state.json"),
            slot=dict(type="raw", default="all"),
        ),
        supports_check_mode=True,
    )
    run_module(module, _run)


if __name__ == "__main__":
    main()
