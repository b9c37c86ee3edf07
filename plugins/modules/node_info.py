#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: node_info
short_description: Read the control lines of carrier-board slots from the hardware
version_added: 0.1.0
description:
  - Reads each slot's power, run, rpiboot and EEPROM write-protect lines from the expanders' input registers (the
    real pin levels, so a line held by something else shows the truth), with facts about the profile and the chips.
  - Changes nothing. Reading the chips never reconfigures them.
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
    support: none
  action_group:
    support: full
    membership:
      - picluster.carrier.board
options:
  slot:
    description:
      - The slot, a list of slots, or V(all).
    type: raw
    default: all
"""

EXAMPLES = r"""
- name: Read every slot of a backplane
  picluster.carrier.node_info:
    board: rack1
    profile: backplane10
    bus: 1
  register: rack

- name: Show the nodes that are off
  ansible.builtin.debug:
    msg: "{{ rack.slots | selectattr('state', 'equalto', 'off') | map(attribute='slot') | list }}"
"""

RETURN = r"""
board:
  description: The board name.
  returned: always
  type: str
  sample: rack1
slots:
  description: One entry per slot, in slot order.
  returned: always
  type: list
  elements: dict
  contains:
    slot:
      description: The slot number.
      type: int
    state:
      description: Summary of the lines.
      type: str
      choices: [off, on, reset, usb_boot]
    power:
      description: Whether the power line is asserted (the node is powered).
      type: bool
    run:
      description: Whether the run line is asserted (not held in reset). Only for slots with a run line.
      type: bool
    rpiboot:
      description: Whether nRPIBOOT is pulled low (USB boot). Only for slots with an rpiboot line.
      type: bool
    eeprom_wp:
      description: Whether EEPROM write protect is asserted. Only for slots with that line.
      type: bool
  sample: [{"slot": 1, "state": "on", "power": true, "run": true, "rpiboot": false}]
profile:
  description: The profile in use, as data (the shape a user profile takes).
  returned: always
  type: dict
  sample: {"name": "itx4", "kind": "gpio", "chips": {"u1": {"type": "pca9555", "address": 32}}}
chips:
  description:
    - Per chip (or, for command-style boards, C(device)), its type, address and what was read. For expanders,
      C(direction) (1 = input) and C(first_use) (all bits still inputs, as after power-on).
  returned: always
  type: dict
  sample: {"u1": {"type": "pca9555", "address": "0x20", "width": 16, "direction": "0x0000", "inputs": "0x36db",
           "first_use": false}}
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.picluster.carrier.plugins.module_utils._board import slot_summary  # noqa: E402
from ansible_collections.picluster.carrier.plugins.module_utils._common import (  # noqa: E402
    board_argument_spec,
    board_from_params,
)
from ansible_collections.picluster.carrier.plugins.module_utils._errors import run_module  # noqa: E402


def _run(module):
    board = board_from_params(module.params)
    slots = board.resolve_slots(module.params["slot"])
    with board.session() as session:
        states = session.read_state(slots)
        chips = session.chip_facts()
    result = []
    for slot in slots:
        entry = {"slot": slot, "state": slot_summary(states[slot])}
        entry.update({name: value for name, value in states[slot].items() if value is not None})
        result.append(entry)
    return {"changed": False, "board": board.name, "slots": result, "profile": board.profile.to_dict(), "chips": chips}


def main():
    module = AnsibleModule(
        argument_spec=board_argument_spec(slot=dict(type="raw", default="all")),
        supports_check_mode=True,
    )
    run_module(module, _run)


if __name__ == "__main__":
    main()
