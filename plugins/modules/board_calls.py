#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: board_calls
short_description: Run one board module for several boards of one controller in a single run
version_added: 0.2.0
description:
  - Makes the calls of M(picluster.carrier.node_power) or M(picluster.carrier.node_status) that one run per board would
    make, for several boards wired to the same controller, in one module run, each call in its own thread, so the
    boards act in parallel and each board's stagger between power-ons stays exact.
  - Every call is validated by the module's own options before any of them runs; a call that fails (a bus that does
    not answer, a slot that does not follow) is reported in its own entry of RV(calls) and does not stop the others.
  - M(picluster.carrier.fleet) uses it for the boards of each controller. A module run costs far more than a board's
    bus traffic, so one run per controller instead of one per board is what keeps power.yml and status.yml cheap at
    fleet scale.
  - Runs on the controller that is wired to the boards.
author:
  - picluster.carrier contributors (@picluster)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
    details: Every call runs in check mode.
  diff_mode:
    support: full
    details: Each call's result carries its own diff.
options:
  module:
    description:
      - The board module whose calls these are.
    type: str
    required: true
    choices: [node_power, node_status]
  calls:
    description:
      - One mapping of the module's options per board (C(board) is required and names one call only), without
        C(bmc_password) and C(bmc_priv_password), which go in O(secrets).
    type: list
    elements: dict
    required: true
  secrets:
    description:
      - Board name -> its C(bmc_password) and C(bmc_priv_password), merged into that board's call. Given apart so that
        only the secrets are masked in the result.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Switch two backplanes of one controller on in one module run
  picluster.carrier.board_calls:
    module: node_power
    calls:
      - {board: rack1, profile: backplane10, bus: 1, slot: all, state: "on"}
      - {board: rack2, profile: backplane10, bus: 1, addresses: {power: 0x21}, slot: [1, 2], state: "on"}

- name: Read a Turing Pi 2 and an expander board
  picluster.carrier.board_calls:
    module: node_status
    calls:
      - {board: tpi, profile: turingpi2, bus: "https://tpi.lan", bmc_user: root, console: none}
      - {board: rack1, profile: backplane10, bus: 1, console: none}
    secrets:
      tpi: {bmc_password: "{{ vault_tpi_password }}"}
"""

RETURN = r"""
calls:
  description:
    - Per call, in the order given, what the module returns for that board (for example
      RV(picluster.carrier.node_power#module:slots)), or, for a call that failed, C(failed), C(msg) and what the module
      returns with a failure. A call's warnings are in its own C(warnings).
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.picluster.carrier.plugins.module_utils._board_calls import (  # noqa: E402
    SECRET_KEYS,
    run_calls,
    validate_calls,
)
from ansible_collections.picluster.carrier.plugins.module_utils._errors import run_module  # noqa: E402


def _run(module):
    params = module.params
    # A secret given in a call instead of in secrets is refused; it is not echoed in the refusal either.
    module.no_log_values.update(str(call[key]) for call in params["calls"] if isinstance(call, dict)
                                for key in SECRET_KEYS if call.get(key) is not None)
    validated, masked = validate_calls(params["module"], params["calls"], params["secrets"])
    module.no_log_values.update(masked)
    results = run_calls(params["module"], validated, module.check_mode, module._diff)
    return {"changed": any(result.get("changed", False) for result in results), "calls": results}


def main():
    module = AnsibleModule(
        argument_spec=dict(
            module=dict(type="str", required=True, choices=["node_power", "node_status"]),
            calls=dict(type="list", elements="dict", required=True),
            secrets=dict(type="dict", default={}, no_log=True),
        ),
        supports_check_mode=True,
    )
    run_module(module, _run)


if __name__ == "__main__":
    main()
