# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing the Redfish service's accounts file (the redfish_accounts module's logic).

The file's format and the password hashes are ``_redfish.accounts``'s; this module only plans and
makes a change: an account whose stored hash already verifies the given password keeps that hash
(a new salt would rewrite the file at every run), a changed role alone keeps it too, and the file is
replaced atomically, 0600, only when its accounts or its mode differ. What it reports never holds a
password or a hash.
"""

from __future__ import annotations

import json
import os

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._fileio import atomic_write, read_optional
from ansible_collections.picluster.carrier.plugins.module_utils._redfish.accounts import (
    DEFAULT_ITERATIONS,
    ROLES,
    check_accounts,
    hash_password,
    verify_password,
)
from ansible_collections.picluster.carrier.plugins.module_utils._values import check_name

FILE_MODE = 0o600


def check_requested(accounts, state):
    """The requested accounts as ``[(name, password, role)]``, checked before anything is read or written."""
    if not isinstance(accounts, list):
        raise CarrierError("accounts: %r is not a list" % type(accounts).__name__)
    seen = set()
    result = []
    for index, spec in enumerate(accounts):
        where = "accounts[%d]" % index
        if not isinstance(spec, dict):
            raise CarrierError("%s: not a mapping of name, password and role" % where)
        unknown = set(spec) - {"name", "password", "role"}
        if unknown:
            raise CarrierError("%s: unknown keys %s" % (where, ", ".join(sorted(unknown))))
        name = check_name(spec.get("name"), "%s.name" % where, what="account name")
        if name in seen:
            raise CarrierError("%s.name: %r is given twice" % (where, name))
        seen.add(name)
        password, role = spec.get("password"), spec.get("role")
        if state == "present":
            if not isinstance(password, str) or not password:
                raise CarrierError("%s.password: a non-empty string is required for account %r" % (where, name))
            if role not in ROLES:
                raise CarrierError("%s.role: %r is not one of %s" % (where, role, ", ".join(ROLES)))
        result.append((name, password, role))
    return result


def read_current(path):
    """``(accounts, mode)`` of the file at ``path``: its checked accounts and permission bits, or ``({}, None)``."""
    data = read_optional(path)
    if data is None:
        return {}, None
    try:
        document = json.loads(data.decode("utf-8"))
    except ValueError as exc:
        raise CarrierError("path: %s is not an accounts file (not JSON: %s); nothing changed" % (path, exc)) from None
    try:
        accounts = check_accounts(document, "path")
    except CarrierError as exc:
        raise CarrierError("%s (%s); nothing changed" % (exc, path)) from None
    return accounts, os.stat(path).st_mode & 0o7777


def plan(current, requested, state, exclusive, iterations=DEFAULT_ITERATIONS):
    """The new accounts mapping and what changed: ``(accounts, changes)``.

    ``changes``: ``{"added": [...], "removed": [...], "password": [...], "role": [...]}`` (names only).
    """
    new = {name: dict(spec) for name, spec in current.items()}
    changes = {"added": [], "removed": [], "password": [], "role": []}
    names = [name for name, _password, _role in requested]
    if state == "absent":
        for name in names:
            if new.pop(name, None) is not None:
                changes["removed"].append(name)
        return new, changes
    for name, password, role in requested:
        old = new.get(name)
        if old is None:
            new[name] = {"password_hash": hash_password(password, iterations=iterations), "role": role}
            changes["added"].append(name)
            continue
        if not verify_password(password, old["password_hash"]):
            old["password_hash"] = hash_password(password, iterations=iterations)
            changes["password"].append(name)
        if old["role"] != role:
            old["role"] = role
            changes["role"].append(name)
    if exclusive:
        for name in sorted(set(new) - set(names)):
            del new[name]
            changes["removed"].append(name)
    return new, changes


def render(accounts):
    """The file's text: sorted, so equal accounts give equal bytes."""
    return json.dumps({"version": 1, "accounts": accounts}, indent=2, sort_keys=True) + "\n"


def summary(accounts):
    """What may be shown of the accounts: ``[{"name", "role"}]`` sorted by name."""
    return [{"name": name, "role": accounts[name]["role"]} for name in sorted(accounts)]


def _diff_text(accounts, changes=None):
    changes = changes or {}
    lines = []
    for name in sorted(accounts):
        mark = (" (new account)" if name in changes.get("added", ()) else
                " (new password)" if name in changes.get("password", ()) else "")
        lines.append("%s: %s%s\n" % (name, accounts[name]["role"], mark))
    return "".join(lines)


def apply(path, accounts, state="present", exclusive=False, check_mode=False, iterations=DEFAULT_ITERATIONS):
    """Make the accounts file at ``path`` hold ``accounts``; the module's result (without secrets)."""
    if state not in ("present", "absent"):
        raise CarrierError("state: %r is not present or absent" % (state,))
    requested = check_requested(accounts, state)
    current, mode = read_current(path)
    new, changes = plan(current, requested, state, exclusive, iterations=iterations)
    content_changed = any(changes.values())
    mode_changed = mode is not None and mode != FILE_MODE
    created = mode is None and (bool(new) or state == "present")
    changed = content_changed or mode_changed or created
    if changed and not check_mode:
        atomic_write(path, render(new), mode=FILE_MODE)
    result = {
        "changed": changed,
        "created": created,
        "path": path,
        "accounts": summary(new),
        "added": sorted(changes["added"]),
        "removed": sorted(changes["removed"]),
        "password_changed": sorted(changes["password"]),
        "role_changed": sorted(changes["role"]),
        "mode_fixed": mode_changed,
        "diff": {
            "before_header": path, "after_header": path,
            "before": "" if mode is None else _diff_text(current),
            "after": _diff_text(new, changes),
        },
    }
    if mode_changed:
        result["diff"]["before"] += "(mode %04o)\n" % mode
    return result
