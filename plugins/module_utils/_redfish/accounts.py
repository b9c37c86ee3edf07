# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Redfish service's accounts: hashed passwords and Redfish's predefined roles.

The accounts file (JSON, written 0600 by the redfish_service role) is
``{"version": 1, "accounts": {NAME: {"password_hash": "pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>",
"role": "Administrator" | "Operator" | "ReadOnly"}}}``. Passwords are never stored, only PBKDF2-HMAC-SHA256
hashes with a per-account random salt; a check compares in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._values import check_name

ROLES = ("Administrator", "Operator", "ReadOnly")
SCHEME = "pbkdf2_sha256"
DEFAULT_ITERATIONS = 600000
MIN_ITERATIONS = 1000
MAX_ITERATIONS = 10000000
# Redfish's predefined privileges per role (DSP0266, "Roles"); Operator may switch and configure nodes.
PRIVILEGES = {
    "Administrator": ("Login", "ConfigureComponents", "ConfigureManager", "ConfigureUsers", "ConfigureSelf"),
    "Operator": ("Login", "ConfigureComponents", "ConfigureSelf"),
    "ReadOnly": ("Login", "ConfigureSelf"),
}


def hash_password(password, salt=None, iterations=DEFAULT_ITERATIONS):
    """The stored form of ``password``: ``pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>``.

    ``salt``: bytes (16 random bytes when None). ``iterations``: PBKDF2 rounds (OWASP's 2023 figure for
    SHA-256 by default).
    """
    if not isinstance(password, str) or not password:
        raise CarrierError("password: a non-empty string is required")
    whole = isinstance(iterations, int) and not isinstance(iterations, bool)
    if not whole or not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise CarrierError("iterations: %r is not a whole number between %d and %d"
                           % (iterations, MIN_ITERATIONS, MAX_ITERATIONS))
    if salt is None:
        salt = os.urandom(16)
    elif not isinstance(salt, bytes) or len(salt) < 8:
        raise CarrierError("salt: bytes of at least 8 are required")
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return "%s$%d$%s$%s" % (SCHEME, iterations, salt.hex(), digest.hex())


def parse_hash(stored, field="password_hash"):
    """``(iterations, salt, digest)`` of a stored hash; a CarrierError naming ``field`` when malformed."""
    parts = stored.split("$") if isinstance(stored, str) else []
    try:
        if len(parts) != 4 or parts[0] != SCHEME:
            raise ValueError
        iterations = int(parts[1])
        salt = bytes.fromhex(parts[2])
        digest = bytes.fromhex(parts[3])
        if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS or len(salt) < 8 or len(digest) != 32:
            raise ValueError
    except ValueError:
        raise CarrierError("%s: not of the form %s$<iterations>$<salt hex>$<sha256 hex> (value hidden)"
                           % (field, SCHEME)) from None
    return iterations, salt, digest


def verify_password(password, stored):
    """Whether ``password`` matches the stored hash (constant-time comparison; False for a malformed hash)."""
    if not isinstance(password, str):
        return False
    try:
        iterations, salt, digest = parse_hash(stored)
    except CarrierError:
        return False
    candidate = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return hmac.compare_digest(candidate, digest)


def check_accounts(data, field="accounts_file"):
    """The accounts mapping ``{name: {"password_hash", "role"}}`` of a loaded accounts document, checked."""
    if not isinstance(data, dict) or set(data) - {"version", "accounts"}:
        raise CarrierError("%s: not a mapping of version and accounts" % field)
    if data.get("version") != 1:
        raise CarrierError("%s.version: %r is not 1" % (field, data.get("version")))
    accounts = data.get("accounts")
    if not isinstance(accounts, dict):
        raise CarrierError("%s.accounts: %r is not a mapping" % (field, type(accounts).__name__))
    result = {}
    for name, spec in accounts.items():
        where = "%s.accounts.%s" % (field, name)
        check_name(name, "%s.accounts" % field, what="account name")
        if not isinstance(spec, dict) or set(spec) - {"password_hash", "role"}:
            raise CarrierError("%s: not a mapping of password_hash and role" % where)
        if spec.get("role") not in ROLES:
            raise CarrierError("%s.role: %r is not one of %s" % (where, spec.get("role"), ", ".join(ROLES)))
        parse_hash(spec.get("password_hash"), "%s.password_hash" % where)
        result[name] = {"password_hash": spec["password_hash"], "role": spec["role"]}
    return result


def load_accounts(path):
    """The accounts of the file at ``path``: ``{name: {"password_hash", "role"}}``, checked."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise CarrierError("accounts_file: %s: cannot read: %s" % (path, exc.strerror or exc)) from exc
    except ValueError as exc:
        raise CarrierError("accounts_file: %s: not JSON: %s" % (path, exc)) from exc
    return check_accounts(data, "accounts_file")


def authenticate(accounts, name, password):
    """The role of account ``name`` when ``password`` is its password, else None.

    An unknown name costs one hash too, so the reply time does not tell which names exist.
    """
    spec = accounts.get(name) if isinstance(name, str) else None
    if spec is None:
        verify_password(password or "", _DUMMY_HASH)
        return None
    return spec["role"] if verify_password(password, spec["password_hash"]) else None


_DUMMY_HASH = "%s$%d$%s$%s" % (SCHEME, DEFAULT_ITERATIONS, "00" * 16, "00" * 32)
