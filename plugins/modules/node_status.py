#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: node_status
short_description: Tell what carrier-board nodes are doing, from their lines and their consoles
version_added: 0.2.0
description:
  - Reads each slot's lines from the board (as M(picluster.carrier.node_info) does) and what the node printed on
    its console, and says what the node is doing. V(off), V(held_in_reset) and V(usb_boot) come from the lines;
    for a powered node the console tells V(bootloader), V(kernel), V(login) (the OS is up), V(halted) (after a
    power-down), V(panic) (a kernel panic or an Oops it did not get past), V(hung) (powered, not at login and
    silent longer than its model's boot timeout) and V(boot_loop) (O(loop_boots) boots in a row without a login);
    V(on) is a powered node whose console says nothing yet. Under-voltage, thermal and Oops warnings, the boot
    count and the time to login come with it.
  - The console is the C(picluster.carrier.terminal_server) role's log of the node (O(console=log), read from where
    the last run stopped; the history is kept in the lock directory), or the console itself (O(console=live), which
    sends Enter and listens O(listen) seconds; a node at a prompt answers).
  - Changes nothing on the board or the nodes.
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
    details: It only reads; the history of what it read (its cache in the lock directory) is kept in check mode too.
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
  node:
    description:
      - The host name of the node in O(slot) (one slot). Its console log is C(<log_dir>/<node>.log).
      - Slots without a node name are reported from their lines alone.
    type: str
  model:
    description:
      - The model of O(node) (its boot timeout).
    type: str
    default: cm4
  port:
    description:
      - The console port of O(node) for O(console=live) (a device or a pyserial URL, the C(carrier_console) host var).
    type: str
  nodes:
    description:
      - For several slots, slot number to the node's host name, or to a mapping with C(host), C(model) and C(port).
      - Mutually exclusive with O(node).
    type: dict
  console:
    description:
      - Where the console comes from; V(none) reads the lines only.
    type: str
    choices: [log, live, none]
    default: log
  log_dir:
    description:
      - The directory of the consoles' logs (the terminal_server role's C(terminal_server_log_dir)).
    type: path
    default: /var/log/picluster/console
  keep_history:
    description:
      - Keep what was read of each log (its offset, boots, times) between runs, in C(<lock dir>/node-state/), so
        a large log is read once and times are known. Without it every run reads each log whole and no console
        event is dated.
    type: bool
    default: true
  listen:
    description:
      - Seconds to listen on a live console.
    type: float
    default: 2.0
  boot_timeout:
    description:
      - Seconds a powered node may stay silent before login before it is V(hung); default per model (120 for
        cm5 and pi5, 180 for cm4 and pi4, 240 for the older SoCs).
    type: float
  loop_boots:
    description:
      - Boots in a row without a login that make a V(boot_loop).
    type: int
    default: 3
  board_sensors:
    description:
      - Also read the board's sensors and fans (what M(picluster.carrier.board_sensors) returns, without driving a
        fan) in the same run, returned as RV(board_sensors). A board that cannot be read there does not fail the
        task; its RV(board_sensors) has C(failed) and C(msg).
      - The status playbook uses it to read a board's lines, consoles and sensors in one module run.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: What every node of a board is doing
  picluster.carrier.node_status:
    board: rack1
    profile: backplane10
    bus: 1
    nodes: {1: node05, 2: node06, 3: {host: node07, model: cm5}}
  register: rack

- name: The nodes that need a look
  ansible.builtin.debug:
    msg: "{{ rack.slots | selectattr('state', 'in', ['hung', 'panic', 'boot_loop']) | map(attribute='host') | list }}"

- name: One node, from its console itself
  picluster.carrier.node_status:
    board: "{{ carrier_board }}"
    profile: "{{ carrier_profile }}"
    bus: "{{ carrier_bus }}"
    slot: "{{ carrier_slot }}"
    node: "{{ inventory_hostname }}"
    console: live
    port: "{{ carrier_console }}"
  delegate_to: "{{ carrier_controller }}"
"""

RETURN = r"""
board:
  description: The board name.
  returned: always
  type: str
  sample: rack1
board_sensors:
  description: The board's sensors and fans, as M(picluster.carrier.board_sensors) returns them.
  returned: when O(board_sensors) is true
  type: dict
  sample: {"board": "carrier1", "sensors": {"board_temp": {"ok": true, "temperature": 31.5}}, "fans": {}, "slots": {}}
slots:
  description: One entry per slot, in slot order.
  returned: always
  type: list
  elements: dict
  contains:
    slot:
      description: The slot number.
      type: int
    host:
      description: The node's host name, null when none was given.
      type: str
    state:
      description: What the node is doing.
      type: str
      choices: [off, held_in_reset, usb_boot, on, bootloader, kernel, login, halted, panic, hung, boot_loop, unknown]
    lines:
      description:
        - The lines in one word, as M(picluster.carrier.node_info)'s C(state) (V(off), V(on), V(reset), V(usb_boot)).
      type: str
    stage:
      description: The boot stage the console shows (V(bootloader), V(kernel), V(login), V(halted), V(panic)) or null.
      type: str
    power:
      description: Whether the power line is asserted.
      type: bool
    run:
      description: Whether the run line is asserted (slots with a run line).
      type: bool
    rpiboot:
      description: Whether nRPIBOOT is pulled low (slots with an rpiboot line).
      type: bool
    eeprom_wp:
      description: Whether EEPROM write protect is asserted (slots with that line).
      type: bool
    boots:
      description: Boots seen on the console (in the log since it was last rotated).
      type: int
    boots_without_login:
      description: Boots in a row, up to the current one, that did not reach login.
      type: int
    last_power_on:
      description: When the node was last seen powered on or starting to boot (seconds since the epoch), or null.
      type: float
    time_to_login:
      description: Seconds from the start of the boot to the login prompt, as seen by the reads, or null.
      type: float
    last_output:
      description: When the node last printed something (the log's modification time), or null.
      type: float
    silent_for:
      description: Seconds since then.
      type: float
    warnings:
      description: Warnings of the current boot that still hold (V(undervoltage), V(thermal), V(oops)).
      type: list
      elements: str
    events:
      description: Per warning, its count, last line and (under-voltage) whether it is still active.
      type: dict
    panic:
      description: The panic or Oops line, or null.
      type: str
    console:
      description: Where the console came from (V(log), V(live)) or null when it was not read.
      type: str
    console_error:
      description: Why the console could not be read (a busy port, no log yet), when it could not.
      type: str
  sample: [{"slot": 1, "host": "node05", "state": "login", "stage": "login", "power": true, "run": true,
            "boots": 2, "boots_without_login": 0, "time_to_login": 12.4, "warnings": [], "console": "log"}]
summary:
  description: How many slots are in each state.
  returned: always
  type: dict
  sample: {"login": 3, "off": 1, "hung": 1}
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.picluster.carrier.plugins.module_utils._errors import run_module  # noqa: E402
from ansible_collections.picluster.carrier.plugins.module_utils._status_task import (  # noqa: E402
    STATUS_RULES,
    run_status,
    status_argument_spec,
)


def main():
    module = AnsibleModule(argument_spec=status_argument_spec(), supports_check_mode=True, **STATUS_RULES)
    run_module(module, run_status)


if __name__ == "__main__":
    main()
