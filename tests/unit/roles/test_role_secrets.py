# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""No role puts a secret on a command line: any local user can read a process's arguments in
``ps`` or /proc/PID/cmdline. Secrets go by standard input, an environment file or a 0600 file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[3] / "roles"
COMMAND_MODULES = {"command", "shell", "ansible.builtin.command", "ansible.builtin.shell",
                   "raw", "ansible.builtin.raw"}
SECRET = re.compile(r"\{\{[^}]*(password|passwd|token|secret|api_key|private_key)[^}]*\}\}", re.I)


def _tasks(node):
    if isinstance(node, list):
        for item in node:
            yield from _tasks(item)
    elif isinstance(node, dict):
        yield node
        for key in ("block", "rescue", "always"):
            yield from _tasks(node.get(key))


def _command_lines():
    for path in sorted(ROLES.glob("*/tasks/*.yml")) + sorted(ROLES.glob("*/handlers/*.yml")):
        for task in _tasks(yaml.safe_load(path.read_text()) or []):
            for module in COMMAND_MODULES & set(task):
                args = task[module]
                if isinstance(args, dict):
                    line = " ".join(str(args.get(k, "")) for k in ("argv", "cmd", "_raw_params"))
                else:
                    line = str(args)
                yield "%s: %s" % (path.relative_to(ROLES), task.get("name")), line


def test_the_roles_have_command_tasks_to_check():
    assert len(list(_command_lines())) > 5


@pytest.mark.parametrize("where,line", list(_command_lines()))
def test_no_secret_on_a_command_line(where, line):
    assert not SECRET.search(line), "%s passes a secret as an argument: %s" % (where, line)
