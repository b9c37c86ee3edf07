#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: fleet
short_description: Run a board module once per board for the nodes of a play, and report each node's own result
version_added: 0.2.0
description:
  - Runs on every node of the play, like a per-node task, but calls the board module (O(module)) only once per board
    of the play batch, with the slots of every node of that board the play targets; each node gets its own slot's part
    of the result (RV(slots) with its one entry, its own C(changed) and diff), so C(--limit), groups and
    C(--check --diff) behave as per-node tasks do.
  - The nodes of a board are found from the inventory's host vars C(carrier_board), C(carrier_slot) and
    C(carrier_controller) (set by the P(picluster.carrier.boards#inventory) inventory plugin) among
    C(ansible_play_batch).
  - The board call of M(picluster.carrier.node_power) sets its O(picluster.carrier.node_power#module:isolate_slots),
    so a slot that fails fails its own node only, with a message naming the slot, and the others are still switched.
    With C(state) V(cycle) or V(reset) in O(args), a change that fails part-way is then made slot by slot, which cycles
    (or resets) again the slots the first attempt had reached.
  - A node whose board call failed as a whole (no slots in its result), whose slot it did not cover, or whose own
    O(args) (other than its slot and node name, model and port) differ from the board call's, calls the module for
    its own slot, as a per-node task does.
  - For O(module=board_sensors), a module of the whole board, every node of the board gets the board's one result
    (a failure too).
  - Delegate the task to C(carrier_controller), as for the module itself.
  - Each node's fork templates the task's arguments anew (Ansible compiles a template each time), which at a hundred
    nodes cost more than the board calls; O(from_inventory) and O(arg_vars) let a task carry no template at all.
  - With O(from_inventory=true) and none of the board options in O(args), the calls of
    M(picluster.carrier.node_power) and M(picluster.carrier.node_status) for every board of a controller go in one run
    of M(picluster.carrier.board_calls) (the boards in threads, each board's stagger kept). A module run costs more
    than a board's bus traffic, so this is one module run per controller instead of one per board. Each node still
    gets its own board's slice, and a board whose call failed as a whole makes its nodes call alone, as above.
  - This is an action plugin; the module it calls runs on the controller.
author:
  - picluster.carrier contributors (@picluster)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  action:
    description: Indicates this has a corresponding action plugin, so some parts of the work run on the Ansible host.
    support: full
  async:
    description: Supports being run with C(async).
    support: none
  bypass_host_loop:
    description: Runs once per node, not once for the play (the grouping by board is its own).
    support: none
  check_mode:
    support: full
    details: The board call runs in check mode.
  diff_mode:
    support: full
    details: Each node's diff is its own slot's lines of the module's diff.
  platform:
    platforms: posix
options:
  module:
    description:
      - The board module to call.
    type: str
    required: true
    choices: [node_power, node_status, node_info, board_sensors]
  args:
    description:
      - The module's arguments for this node, with its one C(slot) (for M(picluster.carrier.node_status) also its
        C(node), C(model) and C(port); none for M(picluster.carrier.board_sensors)). A C(slot) that is a list or
        V(all) is passed through as one call.
      - Given here, an argument wins over one from O(from_inventory) or O(arg_vars).
    type: dict
    default: {}
  from_inventory:
    description:
      - Take the board arguments from the node's host vars, as the P(picluster.carrier.boards#inventory) inventory
        plugin sets them (C(board) from C(carrier_board), C(profile) from C(carrier_profile_data) or else
        C(carrier_profile), C(bus), C(addresses), C(lock_dir), C(bmc_user), C(bmc_password) and C(bmc_ca_path) from
        their C(carrier_*) vars when defined, C(slot) from C(carrier_slot); for M(picluster.carrier.node_power) also
        C(protected_slots) from C(carrier_protected_slots); for M(picluster.carrier.node_status) C(node) from
        C(inventory_hostname), C(model) from C(carrier_model) and C(port) from C(carrier_console)).
      - The plugin templates these values itself, so the task holds no template per argument; each template in a
        task's arguments is compiled again in every node's fork.
    type: bool
    default: false
  arg_vars:
    description:
      - Module argument -> the name of a variable holding its value, for the arguments that come from the play
        (for example V(state) from C(power_state)). A variable that is undefined or null leaves its argument out,
        as if the argument were not given. Like O(from_inventory), it keeps templates out of the task's arguments.
    type: dict
    default: {}
  board_sensors:
    description:
      - Also read the board's sensors and fans with M(picluster.carrier.board_sensors) in the board call (one read per
        board, with the board options of the module's arguments); every node of the board gets that result as
        RV(board_sensors). A failed read is reported there and does not fail the node.
      - Not with O(module=board_sensors).
    type: bool
    default: false
notes:
  - The board call's host is the first node of the board to reach the task; its arguments (other than slot and node)
    apply to the board, so they must not differ between the nodes of a board for the saving to apply.
seealso:
  - module: picluster.carrier.node_power
  - module: picluster.carrier.node_status
  - module: picluster.carrier.board_calls
"""

EXAMPLES = r"""
- name: Power the play's nodes on, one node_power call per board, the board options from the inventory
  picluster.carrier.fleet:
    module: node_power
    from_inventory: true
    arg_vars:
      state: power_state
  delegate_to: "{{ carrier_controller }}"
  register: power_result

- name: The same with every argument given
  picluster.carrier.fleet:
    module: node_power
    args:
      board: "{{ carrier_board }}"
      profile: "{{ carrier_profile }}"
      bus: "{{ carrier_bus }}"
      slot: "{{ carrier_slot }}"
      state: "on"
  delegate_to: "{{ carrier_controller }}"

- name: Each node's lines and console state, and its board's sensors, one read of each per board
  picluster.carrier.fleet:
    module: node_status
    from_inventory: true
    board_sensors: true
  delegate_to: "{{ carrier_controller }}"
  register: status_info
"""

RETURN = r"""
slots:
  description: The node's own entry of the module's C(slots) (one element; see the module's return values).
  returned: always, except for O(module=board_sensors) (its result as it is)
  type: list
  elements: dict
  sample: [{"slot": 3, "action": "on", "changed": true, "before": {"state": "off"}, "after": {"state": "on"}}]
board:
  description: The board name.
  returned: always
  type: str
  sample: rack1
board_sensors:
  description: The result of M(picluster.carrier.board_sensors) for the node's board (see its return values).
  returned: when O(board_sensors=true)
  type: dict
  sample: {"board": "carrier1", "slots": {"1": {"ok": true, "bus_voltage": 5.02, "current": 0.61, "power": 3.06}}}
fleet:
  description: How the node's result was obtained, when it came from a board call.
  returned: when the node's result is a slice of a board call
  type: dict
  contains:
    leader:
      description: Whether this node's fork made the module call.
      type: bool
    slots:
      description: The slots of the node's board in the call.
      type: list
      elements: int
    boards:
      description: The boards of the call (every board of the controller in the play batch when it was a
        M(picluster.carrier.board_calls) run, else the node's board).
      type: list
      elements: str
  sample: {"leader": false, "slots": [1, 2, 3, 4], "boards": ["carrier1", "rack1"]}
"""
