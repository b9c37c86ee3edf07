#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: board_sensors
short_description: Read a carrier board's sensors and fans, and set fan duty or follow the fan curve
version_added: 0.2.0
description:
  - Reads the temperature sensors (LM75, LM75A, TMP102), the current/voltage monitors (INA219, INA226, INA3221) and
    the fan controllers (EMC2301, EMC2305) that the board's profile lists under C(sensors), C(fans) and each slot's
    C(monitor), register by register over the board's I2C bus; each chip is read under its own hold of the bus lock.
  - A chip that does not answer is reported (C(ok=false), C(missing=true) when it does not acknowledge its address)
    and the others are still read; the task does not fail for it.
  - With O(duty) or O(follow_curve) it also sets the fans' drive; a fan already at that setting is unchanged.
  - The module has the same name as the concern (reading and driving the board's sensors and fans) so the two
    stay in one place, as node_power keeps every power line.
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
    details: Sensors are read; no fan setting is written.
  diff_mode:
    support: full
    details: The diff lists each fan's duty before and after.
  action_group:
    support: full
    membership:
      - picluster.carrier.board
options:
  sensors:
    description:
      - Names of the profile's sensors and fans to read. Omitted, all of them.
    type: list
    elements: str
  fans:
    description:
      - Names of the profile's fans that O(duty) or O(follow_curve) act on. Omitted, all of them (for
        O(follow_curve), all that have a C(curve)).
    type: list
    elements: str
  duty:
    description:
      - The drive in percent (0-100) to set the fans to. The chip's register takes 256 steps; the duty read back
        is reported rounded to 0.1 %.
    type: float
  follow_curve:
    description:
      - Set each fan to the duty its profile C(curve) gives at its C(sensor)'s temperature (the hottest board
        temperature sensor when it names none); 100 % when that temperature cannot be read.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Read the board's temperatures, per-slot currents and fan speed
  picluster.carrier.board_sensors:
    board: carrier1
    profile: itx4_hwmon
    bus: 1
  register: sensors
  delegate_to: "{{ carrier_controller }}"

- name: Run the fan at 80 %
  picluster.carrier.board_sensors:
    board: carrier1
    profile: itx4_hwmon
    bus: 1
    duty: 80

- name: Set the fan from its temperature curve (a cron job or timer can run this)
  picluster.carrier.board_sensors:
    board: carrier1
    profile: itx4_hwmon
    bus: 1
    follow_curve: true
"""

RETURN = r"""
board:
  description: The board name.
  returned: always
  type: str
  sample: carrier1
sensors:
  description:
    - Per sensor name, its reading. Every entry has C(type), C(address) and C(ok); a failed one has C(error) and
      C(missing) instead of values.
    - Temperature sensors have C(temperature) (degrees C). Current monitors have C(channels), per channel
      C(bus_voltage) (V), C(shunt_voltage) (V), C(current) (A), C(power) (W) and C(slot) (the slot it monitors,
      or null); an INA219 also C(overflow).
  returned: always
  type: dict
  sample: {"board_temp": {"type": "tmp102", "address": "0x48", "ok": true, "temperature": 41.5}}
slots:
  description: Per monitored slot, its monitor channel's reading (as in RV(sensors)) with C(sensor) and C(channel).
  returned: always
  type: dict
  sample: {"1": {"sensor": "ina3221_1", "channel": 1, "ok": true, "bus_voltage": 5.072, "current": 0.6,
                 "power": 3.04, "shunt_voltage": 0.006}}
fans:
  description:
    - "Per fan name, read after any change: C(duty) (percent), C(setting) (0-255), C(rpm) (0 when stalled or
      stopped), C(tach_count), C(algorithm) (the chip's own RPM control is on), C(channel), C(ok)."
  returned: always
  type: dict
  sample: {"fan": {"type": "emc2301", "address": "0x2f", "ok": true, "duty": 30.2, "setting": 77, "rpm": 1506.3,
                   "tach_count": 5221, "algorithm": false, "channel": 1}}
fan_changes:
  description: The fans whose setting changed (or would, in check mode), with the setting before and after (0-255).
  returned: always
  type: list
  elements: dict
  sample: [{"fan": "fan", "before": 0, "after": 77}]
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.picluster.carrier.plugins.module_utils._common import (  # noqa: E402
    board_argument_spec,
    board_from_params,
)
from ansible_collections.picluster.carrier.plugins.module_utils._errors import run_module  # noqa: E402
from ansible_collections.picluster.carrier.plugins.module_utils._sensors import fan_plan, read_and_drive  # noqa: E402


def _run(module):
    params = module.params
    board = board_from_params(params)
    plan = fan_plan(board.profile, params["fans"], params["duty"], params["follow_curve"])
    result = read_and_drive(board, plan, names=params["sensors"], check_mode=module.check_mode)
    if not module._diff:
        result.pop("diff")
    return result


def main():
    module = AnsibleModule(
        argument_spec=board_argument_spec(
            sensors=dict(type="list", elements="str"),
            fans=dict(type="list", elements="str"),
            duty=dict(type="float"),
            follow_curve=dict(type="bool", default=False),
        ),
        mutually_exclusive=[["duty", "follow_curve"]],
        supports_check_mode=True,
    )
    run_module(module, _run)


if __name__ == "__main__":
    main()
