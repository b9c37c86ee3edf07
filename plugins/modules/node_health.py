#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: node_health
short_description: Read a Raspberry Pi node's health on the node, cheaply
version_added: 0.2.0
description:
  - Run on the node itself (no fact gathering needed) it reads the SoC temperature
    (C(/sys/class/thermal/thermal_zone0/temp)), the firmware's throttling flags (C(vcgencmd get_throttled)),
    the uptime (C(/proc/uptime)), the load averages (C(/proc/loadavg)), the memory (C(/proc/meminfo)) and the
    root file system's use (C(statvfs)).
  - A field that cannot be read (no C(vcgencmd) on a machine that is not a Pi, a missing file) is null, with
    the reason in RV(unavailable). Changes nothing.
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
    support: none
options:
  root:
    description:
      - The directory the paths are read under (V(/) on a node; a tree of test files otherwise). The disk use
        is that of the file system holding it.
    type: path
    default: /
  vcgencmd:
    description:
      - The C(vcgencmd) program, a name looked up in C(PATH) and C(/usr/bin) or a path.
    type: str
    default: vcgencmd
  timeout:
    description:
      - Seconds C(vcgencmd) may take before it counts as unavailable.
    type: float
    default: 5.0
"""

EXAMPLES = r"""
- name: Read the health of the nodes that are up
  picluster.carrier.node_health:
  register: health

- name: Say which nodes are, or were, short of power
  ansible.builtin.debug:
    msg: "{{ inventory_hostname }}: under-voltage {{ 'now' if health.throttled.undervoltage else 'since boot' }}"
  when: health.throttled is not none and (health.throttled.undervoltage or health.throttled.undervoltage_occurred)
"""

RETURN = r"""
temperature_c:
  description: The SoC temperature in degrees Celsius, or null.
  returned: always
  type: float
  sample: 47.2
throttled:
  description:
    - C(vcgencmd get_throttled) decoded, or null. Bits 0-3 are the state now, 16-19 whether it happened since boot.
  returned: always
  type: dict
  contains:
    raw:
      description: The value as hexadecimal.
      type: str
    undervoltage:
      description: Bit 0, under-voltage now.
      type: bool
    arm_frequency_capped:
      description: Bit 1, ARM frequency capped now.
      type: bool
    throttled:
      description: Bit 2, throttled now.
      type: bool
    soft_temperature_limit:
      description: Bit 3, soft temperature limit active now.
      type: bool
    undervoltage_occurred:
      description: Bit 16, under-voltage since boot.
      type: bool
    arm_frequency_capped_occurred:
      description: Bit 17, ARM frequency capped since boot.
      type: bool
    throttled_occurred:
      description: Bit 18, throttled since boot.
      type: bool
    soft_temperature_limit_occurred:
      description: Bit 19, soft temperature limit since boot.
      type: bool
    other_bits:
      description: Any set bit that has no name here, as hexadecimal.
      type: str
  sample: {"raw": "0x50005", "undervoltage": true, "arm_frequency_capped": false, "throttled": true,
           "soft_temperature_limit": false, "undervoltage_occurred": true, "arm_frequency_capped_occurred": false,
           "throttled_occurred": true, "soft_temperature_limit_occurred": false, "other_bits": "0x0"}
uptime_s:
  description: Seconds since boot, or null.
  returned: always
  type: float
  sample: 3605.2
load:
  description: The 1, 5 and 15 minute load averages, or null.
  returned: always
  type: list
  elements: float
  sample: [0.15, 0.1, 0.05]
memory:
  description: C(total_kb), C(available_kb) (MemAvailable) and C(used_percent), or null.
  returned: always
  type: dict
  sample: {"total_kb": 3884160, "available_kb": 3312004, "used_percent": 14.7}
disk:
  description: The root file system's C(total_bytes), C(available_bytes) and C(used_percent), or null.
  returned: always
  type: dict
  sample: {"total_bytes": 31024283648, "available_bytes": 26437226496, "used_percent": 10.8}
unavailable:
  description: For each null field, why it could not be read.
  returned: always
  type: dict
  sample: {"throttled": "vcgencmd is not installed"}
"""

import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.picluster.carrier.plugins.module_utils import _command  # noqa: E402
from ansible_collections.picluster.carrier.plugins.module_utils._errors import run_module  # noqa: E402
from ansible_collections.picluster.carrier.plugins.module_utils._health import Unavailable, read_health  # noqa: E402
from ansible_collections.picluster.carrier.plugins.module_utils._values import check_number  # noqa: E402


def _vcgencmd_runner(module):
    name = module.params["vcgencmd"]
    timeout = check_number(module.params["timeout"], "timeout", minimum=0.1, maximum=600)
    program = name if os.sep in name else module.get_bin_path(name, opt_dirs=["/usr/bin", "/opt/vc/bin"])
    if not program or not os.access(program, os.X_OK):
        return None

    timed = _command.module_timed_runner(module)

    def run():
        # a firmware mailbox that does not answer must not hold the play
        rc, out, err = timed([program, "get_throttled"], timeout)
        if rc == _command.TIMED_OUT:
            raise Unavailable("%s get_throttled did not answer in %.1f s" % (program, timeout))
        if rc == _command.NOT_FOUND or rc == _command.CANNOT_RUN:
            raise Unavailable("cannot run %s (timeout(1) exited %d)" % (program, rc))
        if rc != 0:
            raise Unavailable("%s get_throttled exited %d: %s" % (program, rc, (err or out).strip()[:200]))
        return out

    return run


def _run(module):
    result = read_health(module.params["root"], _vcgencmd_runner(module))
    result["changed"] = False
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="path", default="/"),
            vcgencmd=dict(type="str", default="vcgencmd"),
            timeout=dict(type="float", default=5.0),
        ),
        supports_check_mode=True,
    )
    run_module(module, _run)


if __name__ == "__main__":
    main()
