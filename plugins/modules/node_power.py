#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: node_power
short_description: Power nodes of a carrier board on, off, cycle or reset them, and set USB boot mode
version_added: 0.1.0
description:
  - Drives the power, run (reset) and nRPIBOOT lines of compute-module slots through the board's I2C GPIO expanders
    (or the command protocol of a ClusterCTRL, or the power register of a Turing Pi 1).
  - The state is read from the hardware (the expanders' input registers) before anything is written, so a state
    that already holds reports RV(ignore:changed=false), and check mode reports exactly what a run would do.
  - Runs on the controller that is wired to the board; delegate to it (the inventory sets C(carrier_controller)).
  - Every successful run of O(state=on), O(state=off) or O(state=cycle) records the slots' intended power state in
    O(restore_state_file), which M(picluster.carrier.power_restore) applies when the controller starts.
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
    details: The diff lists each slot's state (off, on, reset, usb_boot) before and after.
  action_group:
    support: full
    membership:
      - picluster.carrier.board
options:
  slot:
    description:
      - The slot to act on, a list of slots, or V(all) for every slot of the board.
    type: raw
    required: true
  state:
    description:
      - V(on) powers the node and releases its reset; already on is unchanged.
      - V(off) removes power; already off is unchanged.
      - V(cycle) powers off, waits O(off_time), powers on again (a node that is off is only powered on).
        Always a change.
      - V(reset) pulses the run line low for O(reset_pulse) on nodes that are on (a profile without a run line
        power-cycles instead); nodes that are off are left alone and unchanged.
      - Omitted, only O(identify) is acted on (one of the two is required).
    type: str
    choices: ["on", "off", cycle, reset]
  identify:
    description:
      - V(true) lights the slot's identify LED (the profile's C(led) line), V(false) puts it out; a LED already in that
        state is unchanged. Refused for slots whose profile has no C(led) line.
      - Omitted, the LED is left as it is.
    type: bool
  restore_state_file:
    description:
      - The file on the controller keeping each slot's last intended power state (JSON, mode 0644, written atomically).
      - An empty string records nothing. A file that cannot be written is a warning, not a failure (the power change
        itself was made).
    type: path
    default: /var/lib/picluster-carrier/power-state.json
  usb_boot:
    description:
      - V(true) holds nRPIBOOT low so the node's boot ROM enters USB device boot (rpiboot) at power-on; V(false)
        releases it so the node boots from its boot order.
      - On a node that is running, a change of this setting resets it (or power-cycles it when the slot has no run
        line) so that it takes effect.
      - Omitted, the line is left as it is.
    type: bool
  stagger:
    description:
      - Seconds between two nodes of this board being switched on, to limit the inrush current. Honoured across
        concurrent Ansible forks acting on the same board.
      - Defaults to the profile's timing (0.5 s for the built-in profiles). V(0) switches all requested slots in one
        bus write.
    type: float
  off_time:
    description:
      - Seconds a node stays off during O(state=cycle). Defaults to the profile's timing (1 s).
    type: float
  reset_pulse:
    description:
      - Seconds the run line is held low during O(state=reset). Defaults to the profile's timing (0.1 s).
    type: float
  force:
    description:
      - Allow acting on a slot listed in O(protected_slots) (the controller's own slot).
    type: bool
    default: false
  isolate_slots:
    description:
      - With several slots, a slot that fails does not stop the others. The slots are read once more before the
        change; when the change fails, each slot is then acted on alone, and each slot that failed is reported in its
        RV(slots) entry (C(failed), C(msg)) and the task fails naming them.
      - A V(cycle) or V(reset) that failed part-way cycles (or resets) again the slots the first attempt had reached.
      - Used by M(picluster.carrier.fleet), which calls the module once for all the nodes of a board.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Power every node of the play on, one board at a time through its controller
  picluster.carrier.node_power:
    board: "{{ carrier_board }}"
    profile: "{{ carrier_profile_data | default(carrier_profile) }}"
    bus: "{{ carrier_bus }}"
    protected_slots: "{{ carrier_protected_slots | default([]) }}"
    slot: "{{ carrier_slot }}"
    state: "on"
  delegate_to: "{{ carrier_controller }}"

- name: Put slot 3 of a rack backplane into rpiboot mode to flash its eMMC
  picluster.carrier.node_power:
    board: rack1
    profile: backplane10
    bus: 1
    slot: 3
    state: "on"
    usb_boot: true

- name: Light the identify LED of slot 2 to find it in the rack
  picluster.carrier.node_power:
    board: carrier1
    profile: itx4_hwmon
    bus: 1
    slot: 2
    identify: true

- name: Switch a whole 4-slot carrier off, except the slot that hosts the controller
  picluster.carrier.node_power:
    board: carrier1
    profile: itx4
    bus: /dev/i2c-1
    protected_slots: [1]
    slot: all
    state: "off"

- name: Set the board options once for a whole play
  module_defaults:
    group/picluster.carrier.board:
      board: rack1
      profile: backplane10
      bus: 1
  block:
    - name: Hard-reset slots 4 and 5
      picluster.carrier.node_power:
        slot: [4, 5]
        state: reset
"""

RETURN = r"""
board:
  description: The board name.
  returned: always
  type: str
  sample: rack1
state:
  description: The requested state (V(null) when only O(identify) was given).
  returned: always
  type: str
  sample: "on"
slots:
  description: One entry per slot acted on, in slot order.
  returned: always
  type: list
  elements: dict
  contains:
    slot:
      description: The slot number.
      type: int
      sample: 3
    action:
      description: What was done (or, in check mode, would be done) to the slot.
      type: str
      sample: "on"
      choices: [none, "on", "off", cycle, reset, reboot]
    changed:
      description: Whether the slot was changed.
      type: bool
    failed:
      description: With O(isolate_slots), whether acting on this slot failed (then C(msg) says why).
      type: bool
    before:
      description:
        - The slot's lines as read from the hardware before the task (V(true) = asserted), and a summary
          C(state) (V(off), V(on), V(reset), V(usb_boot)). Lines the slot does not have are left out; C(led) is the
          identify LED.
      type: dict
      sample: {"power": false, "run": true, "rpiboot": false, "state": "off"}
    after:
      description: The same, read back from the hardware after the task (predicted in check mode).
      type: dict
      sample: {"power": true, "run": true, "rpiboot": false, "state": "on"}
restore_state:
  description: Where the intended state was recorded, and whether the file changed.
  returned: when O(state) is V(on), V(off) or V(cycle), not in check mode, and O(restore_state_file) is set
  type: dict
  sample: {"path": "/var/lib/picluster-carrier/power-state.json", "changed": true}
skipped:
  description: Slots left out of O(slot=all) because they are protected.
  returned: always
  type: list
  elements: dict
  sample: [{"slot": 1, "reason": "protected: hosts the controller (use force)"}]
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.picluster.carrier.plugins.module_utils._errors import run_module  # noqa: E402
from ansible_collections.picluster.carrier.plugins.module_utils._power_task import (  # noqa: E402
    POWER_RULES,
    power_argument_spec,
    run_power,
)


def main():
    module = AnsibleModule(argument_spec=power_argument_spec(), supports_check_mode=True, **POWER_RULES)
    run_module(module, run_power)


if __name__ == "__main__":
    main()
