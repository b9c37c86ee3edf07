#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: redfish_accounts
short_description: Accounts of the carrier-redfish service, in its accounts file with hashed passwords
version_added: 0.1.0
description:
  - Writes the accounts file of the C(carrier-redfish) service that the C(picluster.carrier.redfish_service) role
    installs. The file is JSON, mode V(0600), each account a name, a Redfish role and a PBKDF2-HMAC-SHA256 hash
    of its password with a random salt. Passwords are never stored.
  - Idempotent although every hash has its own salt, an account whose stored hash verifies the given password keeps
    that hash; only a new password is hashed again. A changed role alone keeps the hash.
  - The file is replaced atomically (a temporary file in the same directory, flushed, then renamed) and only when its
    accounts or its mode differ. A file that is not an accounts file is an error and is left as it is.
  - Neither the result nor the diff holds a password or a hash; the diff lists one line per account, its name and role,
    and marks new accounts and new passwords.
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
    details: Account names and roles only, never passwords or hashes.
options:
  path:
    description: The accounts file (the service's C(accounts_file)).
    type: path
    default: /etc/picluster-carrier/redfish-accounts.json
  accounts:
    description:
      - The accounts. With O(state=absent) only their C(name) is used.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The user name (letters, digits and C(. _ + -), starting with a letter or digit).
        type: str
        required: true
      password:
        description: The password (required with O(state=present)).
        type: str
      role:
        description:
          - Redfish's predefined role. V(Administrator) may do everything, V(Operator) may switch and configure
            nodes, V(ReadOnly) may only read.
        type: str
        choices: [Administrator, Operator, ReadOnly]
  state:
    description: Whether the accounts of O(accounts) exist (V(present)) or not (V(absent)).
    type: str
    choices: [present, absent]
    default: present
  exclusive:
    description: With O(state=present), remove every account of the file that O(accounts) does not name.
    type: bool
    default: false
  iterations:
    description: PBKDF2 rounds of a new hash (a kept hash keeps its own).
    type: int
    default: 600000
notes:
  - The service reads the file when it starts; the C(redfish_service) role restarts it when the file changes.
seealso:
  - name: DMTF Redfish specification (DSP0266), roles and privileges
    description: The predefined roles Administrator, Operator and ReadOnly.
    link: https://www.dmtf.org/dsp/DSP0266
"""

EXAMPLES = r"""
- name: The service's accounts, no others
  picluster.carrier.redfish_accounts:
    path: /etc/picluster-carrier/redfish-accounts.json
    accounts:
      - {name: admin, password: "{{ vault_redfish_admin_password }}", role: Administrator}
      - {name: ironic, password: "{{ vault_redfish_ironic_password }}", role: Operator}
      - {name: monitor, password: "{{ vault_redfish_monitor_password }}", role: ReadOnly}
    exclusive: true
  no_log: true

- name: Remove an account
  picluster.carrier.redfish_accounts:
    accounts: [{name: monitor}]
    state: absent
"""

RETURN = r"""
accounts:
  description: The accounts of the file after the run (in check mode, as they would be), sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The user name.
      type: str
    role:
      description: Its role.
      type: str
  sample: [{name: admin, role: Administrator}, {name: ironic, role: Operator}]
added:
  description: Accounts created.
  returned: always
  type: list
  elements: str
  sample: [ironic]
removed:
  description: Accounts removed.
  returned: always
  type: list
  elements: str
  sample: []
password_changed:
  description: Existing accounts whose password was hashed anew (the given one did not verify).
  returned: always
  type: list
  elements: str
  sample: []
role_changed:
  description: Existing accounts whose role changed.
  returned: always
  type: list
  elements: str
  sample: [monitor]
mode_fixed:
  description: Whether the existing file's mode was not V(0600) and was (or would be) set to it.
  returned: always
  type: bool
created:
  description: Whether the file was (or would be) created.
  returned: always
  type: bool
path:
  description: The file.
  returned: always
  type: str
  sample: /etc/picluster-carrier/redfish-accounts.json
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.picluster.carrier.plugins.module_utils._errors import run_module
from ansible_collections.picluster.carrier.plugins.module_utils._redfish.accountfile import apply


def _run(module):
    params = module.params
    accounts = [{key: value for key, value in spec.items() if value is not None} for spec in params["accounts"]]
    result = apply(params["path"], accounts, state=params["state"], exclusive=params["exclusive"],
                   check_mode=module.check_mode, iterations=params["iterations"])
    diff = result.pop("diff")
    if module._diff and result["changed"]:
        result["diff"] = diff
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", default="/etc/picluster-carrier/redfish-accounts.json"),
            accounts=dict(type="list", elements="dict", default=[], options=dict(
                name=dict(type="str", required=True),
                password=dict(type="str", no_log=True),
                role=dict(type="str", choices=["Administrator", "Operator", "ReadOnly"]),
            )),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            exclusive=dict(type="bool", default=False),
            iterations=dict(type="int", default=600000),
        ),
        supports_check_mode=True,
    )
    run_module(module, _run)


if __name__ == "__main__":
    main()
