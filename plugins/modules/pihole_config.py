#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pihole_config
short_description: Set Pi-hole v6 settings in pihole.toml by value
version_added: 0.1.0
description:
  - Sets dotted keys (V(dns.upstreams), V(dns.hosts), V(webserver.port) ...) in Pi-hole v6's C(pihole.toml).
  - pihole-FTL rewrites that file in its own layout whenever it starts or a setting changes, so this module
    compares the values as TOML reads them, not the bytes. Only the lines of a key whose value differs are
    rewritten (comments and other keys stay); the edited text must read back to the wanted values before it
    replaces the file atomically (temporary file in the same directory, then rename). An existing file keeps its
    mode and owner.
  - A number given for a setting that the file holds as a string is written as a string (V(webserver.port=8080)); an
    integer given for a float setting becomes a float; any other change of type is refused, naming the key and both
    values.
  - Pi-hole notices the change itself (FTL watches the file); restart C(pihole-FTL) when a setting needs it.
  - Needs Python 3.11 or later on the managed node (C(tomllib)).
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
    details: The diff lists the changed settings as C(key = value) lines, not the whole file.
options:
  path:
    description: The Pi-hole configuration file.
    type: path
    default: /etc/pihole/pihole.toml
  settings:
    description:
      - Dotted key (table path and key) to value. Values are strings, numbers, booleans or lists of those.
      - Secrets (for example V(webserver.api.app_pwhash)) belong in a task with C(no_log). Even without it, the
        values of V(webserver.api.password), V(webserver.api.pwhash), V(webserver.api.app_pwhash) and
        V(webserver.api.totp_secret) are returned as V(********) in RV(changes), RV(current) and the diff.
    type: dict
    default: {}
  get:
    description: Dotted keys whose values to return in RV(current) without setting them.
    type: list
    elements: str
    default: []
  create:
    description:
      - Create the file (with only the given settings) when it does not exist, for example to preset the settings
        before an unattended install. With V(false), a missing file is an error.
    type: bool
    default: true
  mode:
    description: Mode of a file this module creates (an existing file keeps its own).
    type: raw
    default: "0644"
notes:
  - Arrays of tables and inline tables are not supported; Pi-hole v6 uses neither.
seealso:
  - name: Pi-hole configuration reference
    description: The keys of pihole.toml.
    link: https://docs.pi-hole.net/ftldns/configfile/
"""

EXAMPLES = r"""
- name: Upstream DNS servers and local records
  picluster.carrier.pihole_config:
    settings:
      dns.upstreams: [9.9.9.9, 149.112.112.112]
      dns.hosts:
        - 192.168.10.11 node01.cluster.lan node01
        - 192.168.10.12 node02.cluster.lan node02
      webserver.port: "8080o"
  notify: Restart pihole-FTL

- name: Read the password hash (nothing is changed)
  picluster.carrier.pihole_config:
    get: [webserver.api.pwhash]
  register: pihole_pw
  no_log: true
"""

RETURN = r"""
changes:
  description: One entry per setting that changed (or would change in check mode), sorted by key.
  returned: always
  type: list
  elements: dict
  contains:
    key:
      description: The dotted key.
      type: str
    before:
      description: The value before (null when the key was absent).
      type: raw
    after:
      description: The value written.
      type: raw
  sample: [{key: dns.upstreams, before: [8.8.8.8], after: [9.9.9.9]}]
current:
  description: The value of every key of O(settings) and O(get) after the run (null for an absent key).
  returned: always
  type: dict
  sample: {dns.upstreams: [9.9.9.9], webserver.port: "8080o"}
fingerprints:
  description:
    - For each secret setting in RV(current) that has a value, the SHA-256 of that value, so that a playbook can tell
      whether it changed (for example a password set again in the web interface) without seeing it.
  returned: always
  type: dict
  sample: {"webserver.api.pwhash": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}
created:
  description: Whether the file was (or, in check mode, would be) created.
  returned: always
  type: bool
path:
  description: The file.
  returned: always
  type: str
  sample: /etc/pihole/pihole.toml
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError, run_module
from ansible_collections.picluster.carrier.plugins.module_utils._pihole_toml import (
    SECRET_KEYS,
    apply,
    format_value,
    masked,
)


def _mode(value):
    if isinstance(value, int):
        return value
    try:
        return int(str(value), 8)
    except ValueError:
        raise CarrierError(f"mode: {value!r} is not an octal mode such as '0644'") from None


def _hide(module, values):
    """Secret values go to no_log_values: Ansible then masks them everywhere in the result, the
    echoed module arguments included, although ``settings`` as a whole is not no_log."""
    for value in values:
        if value not in (None, ""):
            module.no_log_values.add(str(value))


def _run(module):
    path = module.params["path"]
    _hide(module, [v for k, v in module.params["settings"].items() if k in SECRET_KEYS])
    try:
        result = apply(path, module.params["settings"], get=module.params["get"], check_mode=module.check_mode,
                       create=module.params["create"], mode=_mode(module.params["mode"]))
    except CarrierError as exc:
        raise exc.with_result(path=path)
    _hide(module, [c["before"] for c in result["changes"] if c["key"] in SECRET_KEYS]
          + [v for k, v in result["current"].items() if k in SECRET_KEYS])
    shown = masked(result)
    output = dict(changed=result["changed"], changes=shown["changes"], current=shown["current"],
                  fingerprints=shown["fingerprints"], created=result["created"], path=path)
    if module._diff and result["changed"]:
        output["diff"] = dict(
            before_header=path, after_header=path,
            before="".join(f"{c['key']} = {format_value(c['before'])}\n" for c in shown["changes"]
                           if c["before"] is not None),
            after="".join(f"{c['key']} = {format_value(c['after'])}\n" for c in shown["changes"]),
        )
    return output


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", default="/etc/pihole/pihole.toml"),
            settings=dict(type="dict", default={}),
            get=dict(type="list", elements="str", default=[]),
            create=dict(type="bool", default=True),
            mode=dict(type="raw", default="0644"),
        ),
        supports_check_mode=True,
    )
    run_module(module, _run)


if __name__ == "__main__":
    main()
