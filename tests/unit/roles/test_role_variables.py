# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Role variables carry their role's name (``<role>_...``; ansible-lint's var-naming[no-role-prefix]
checks the same, this runs without it): defaults, vars, argument specs, registered results,
set_fact names and task vars. A fact a role publishes for other plays is the one exception; it is
listed here and documented in the role's README under "Facts this role publishes"."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROLES_DIR = Path(__file__).resolve().parents[3] / "roles"
ROLES = sorted(path.name for path in ROLES_DIR.iterdir() if (path / "tasks" / "main.yml").is_file())
# role -> the facts it publishes for other plays under a collection-wide name.
PUBLISHED = {"terminal_server": {"carrier_console_urls"}}
# Keys of a set_fact that are its options, not facts.
SET_FACT_OPTIONS = {"cacheable"}


def _load(path):
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def _tasks(node):
    if isinstance(node, list):
        for item in node:
            yield from _tasks(item)
    elif isinstance(node, dict):
        yield node
        for key in ("block", "rescue", "always"):
            yield from _tasks(node.get(key))


def _task_files(role):
    base = ROLES_DIR / role
    yield from sorted((base / "tasks").glob("**/*.yml"))
    yield from sorted((base / "handlers").glob("**/*.yml"))
    # Molecule scenarios run the role's own plays (converge, verify ...): their names belong to it too.
    for path in sorted((base / "molecule").glob("*/*.yml")):
        if path.name != "molecule.yml":
            yield path


def _role_variables(role):
    """(where, name) of every variable the role defines."""
    base = ROLES_DIR / role
    for sub in ("defaults", "vars"):
        for name in _load(base / sub / "main.yml") or {}:
            yield "%s/main.yml" % sub, name
    specs = (_load(base / "meta" / "argument_specs.yml") or {}).get("argument_specs", {})
    for entry, spec in specs.items():
        for name in spec.get("options", {}):
            yield "meta/argument_specs.yml %s" % entry, name
    for path in _task_files(role):
        data = _load(path) or []
        plays = data if path.parent.parent.name == "molecule" else [{"tasks": data}]
        for play in plays:
            if not isinstance(play, dict):
                continue
            for section in ("pre_tasks", "tasks", "post_tasks", "handlers"):
                for task in _tasks(play.get(section)):
                    where = "%s: %s" % (path.relative_to(base), task.get("name"))
                    if isinstance(task.get("register"), str):
                        yield where + " (register)", task["register"]
                    for module in ("set_fact", "ansible.builtin.set_fact"):
                        if isinstance(task.get(module), dict):
                            for name in set(task[module]) - SET_FACT_OPTIONS:
                                yield where + " (set_fact)", name
                    if path.parent.parent.name != "molecule":
                        for name in task.get("vars") or {}:
                            yield where + " (vars)", name


def test_there_are_roles_and_variables_to_check():
    assert len(ROLES) >= 7, ROLES
    assert all(len(list(_role_variables(role))) > 5 for role in ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_role_variables_have_the_role_prefix(role):
    bad = sorted({(where, name) for where, name in _role_variables(role)
                  if not name.startswith(role + "_") and name not in PUBLISHED.get(role, ())})
    assert not bad, "not prefixed with %s_: %s" % (role, bad)


@pytest.mark.parametrize("role", sorted(PUBLISHED))
def test_published_facts_are_set_and_documented(role):
    names = {name for where, name in _role_variables(role) if where.endswith("(set_fact)")}
    readme = (ROLES_DIR / role / "README.md").read_text()
    section = re.search(r"^## Facts this role publishes\n(.*?)(?=^## |\Z)", readme, re.M | re.S)
    assert section, "%s/README.md has no 'Facts this role publishes' section" % role
    for fact in PUBLISHED[role]:
        assert fact in names, "%s no longer sets %s: drop it from PUBLISHED" % (role, fact)
        assert "`%s`" % fact in section.group(1), "%s is not documented in %s/README.md" % (fact, role)
