# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Settings of Pi-hole v6's ``/etc/pihole/pihole.toml``, managed by value.

pihole-FTL rewrites ``pihole.toml`` whenever it starts or a setting changes (every key, with
comments and ``### CHANGED`` markers, in its own order), so comparing bytes would never be
idempotent. This module compares the *values* of dotted keys (``dns.upstreams``,
``webserver.api.pwhash`` ...) as ``tomllib`` reads them, and when one differs edits only the
lines of that key in the existing text (comments and the rest of the file are kept), checks
that the edited text parses to the wanted values, and writes it atomically.

Python 3.11+ (``tomllib``). No third-party TOML library: the writer serialises the value types
Pi-hole uses (strings, integers, floats, booleans and arrays of those).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import tomllib

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._fileio import KEEP, atomic_write

KEY_PART_RE = re.compile(r"^[A-Za-z0-9_-]+$")
# A table header line: [a.b.c] (Pi-hole writes bare keys only; array-of-tables are refused).
HEADER_RE = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\- ]+?)\s*\]\s*(#.*)?$")
AOT_RE = re.compile(r"^\s*\[\[")
ASSIGN_RE = re.compile(r"^(\s*)([A-Za-z0-9_-]+)\s*=")


class PiholeTomlError(CarrierError):
    """A pihole.toml that cannot be read or edited, or a setting that cannot be written."""


def split_key(key):
    """``"dns.upstreams"`` -> ``("dns",), "upstreams"``; errors name the key."""
    if not isinstance(key, str) or not key:
        raise PiholeTomlError(f"settings: key {key!r} must be a non-empty dotted string such as 'dns.upstreams'")
    parts = key.split(".")
    for part in parts:
        if not KEY_PART_RE.match(part):
            raise PiholeTomlError(
                f"settings: key {key!r} has the invalid part {part!r} (letters, digits, '_' and '-' only)")
    if len(parts) < 2:
        raise PiholeTomlError(f"settings: key {key!r} must name a table and a key, such as 'dns.upstreams'")
    return tuple(parts[:-1]), parts[-1]


def parse(text, source="pihole.toml"):
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PiholeTomlError(f"{source}: not valid TOML: {exc}") from exc


_MISSING = object()


def get_value(doc, key):
    """The value at a dotted key, or ``_MISSING``. A table at that key is an error."""
    tables, name = split_key(key)
    node = doc
    for part in tables:
        node = node.get(part, _MISSING) if isinstance(node, dict) else _MISSING
        if node is _MISSING:
            return _MISSING
        if not isinstance(node, dict):
            raise PiholeTomlError(f"settings: {key!r}: {'.'.join(tables)} is a value, not a table")
    value = node.get(name, _MISSING)
    if isinstance(value, dict):
        raise PiholeTomlError(f"settings: {key!r} is a table in the file; set its keys one by one")
    return value


def _check_scalar(key, value):
    if isinstance(value, bool) or isinstance(value, (int, str)):
        return
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise PiholeTomlError(f"settings: {key!r}: {value!r} cannot be written")
        return
    raise PiholeTomlError(
        f"settings: {key!r}: {value!r} ({type(value).__name__}) is not a string, number, boolean or list of those")


def normalize(key, wanted, current=_MISSING):
    """Check ``wanted`` and convert it to the type of the current value where that is unambiguous.

    Integers and floats become strings for a string setting (``webserver.port: 8080``), integers
    become floats for a float setting. Any other type change is refused with the two types named.
    """
    if isinstance(wanted, tuple):
        wanted = list(wanted)
    if isinstance(wanted, list):
        for item in wanted:
            if isinstance(item, (list, tuple, dict)):
                raise PiholeTomlError(f"settings: {key!r}: nested lists and tables are not supported ({wanted!r})")
            _check_scalar(key, item)
    elif isinstance(wanted, dict) or wanted is None:
        raise PiholeTomlError(f"settings: {key!r}: {wanted!r} is not a string, number, boolean or list of those")
    else:
        _check_scalar(key, wanted)

    if current is _MISSING:
        return wanted
    if isinstance(current, str) and isinstance(wanted, (int, float)) and not isinstance(wanted, bool):
        return str(wanted)
    if isinstance(current, float) and isinstance(wanted, int) and not isinstance(wanted, bool):
        return float(wanted)
    if isinstance(current, list) and isinstance(wanted, list):
        return wanted
    if type(current) is not type(wanted):
        raise PiholeTomlError(
            f"settings: {key!r}: the file holds a {type(current).__name__} ({current!r}), "
            f"got a {type(wanted).__name__} ({wanted!r})")
    return wanted


def _toml_string(value):
    out = ['"']
    for char in value:
        code = ord(char)
        if char == '"':
            out.append('\\"')
        elif char == "\\":
            out.append("\\\\")
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif char == "\r":
            out.append("\\r")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04X}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def format_scalar(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        return text if any(c in text for c in ".eE") else text + ".0"
    return _toml_string(value)


def format_value(value, indent=""):
    """TOML text of a value; arrays one item a line, like pihole-FTL writes them."""
    if isinstance(value, list):
        if not value:
            return "[]"
        inner = indent + "  "
        return "[\n" + ",\n".join(inner + format_scalar(item) for item in value) + "\n" + indent + "]"
    return format_scalar(value)


def _header_path(name):
    return tuple(part.strip() for part in name.split("."))


def _value_end(lines, start, key):
    """Index after the last line of the assignment starting at ``lines[start]`` (multi-line arrays)."""
    chunk = ""
    for end in range(start, len(lines)):
        chunk += lines[end]
        try:
            tomllib.loads(chunk if chunk.endswith("\n") else chunk + "\n")
            return end + 1
        except tomllib.TOMLDecodeError:
            continue
    raise PiholeTomlError(f"pihole.toml: cannot find the end of the value of {key!r}")


def _locate(lines):
    """Map each table path to (header line index or None, end index) and each key to its line span."""
    tables = {(): [None, len(lines)]}
    keys = {}
    current = ()
    order = [()]
    i = 0
    while i < len(lines):
        line = lines[i]
        if AOT_RE.match(line):
            raise PiholeTomlError(f"pihole.toml line {i + 1}: arrays of tables are not supported")
        header = HEADER_RE.match(line)
        if header:
            tables[order[-1]][1] = i
            current = _header_path(header.group(1))
            tables[current] = [i, len(lines)]
            order.append(current)
            i += 1
            continue
        assign = ASSIGN_RE.match(line)
        if assign:
            end = _value_end(lines, i, assign.group(2))
            keys[current + (assign.group(2),)] = (i, end, assign.group(1))
            i = end
            continue
        i += 1
    return tables, keys


def edit_text(text, changes):
    """Return ``text`` with each ``(dotted key, value)`` of ``changes`` set, other lines untouched."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    for key, value in changes:
        tables, name = split_key(key)
        table_spans, key_spans = _locate(lines)
        path = tables + (name,)
        if path in key_spans:
            start, end, indent = key_spans[path]
            new = f"{indent}{name} = {format_value(value, indent)}\n".splitlines(keepends=True)
            lines[start:end] = new
        elif tables in table_spans:
            header, end = table_spans[tables]
            # After the table's last non-blank line (keeps the blank line before the next table).
            insert = end
            while insert > (header + 1 if header is not None else 0) and not lines[insert - 1].strip():
                insert -= 1
            indent = "  " if header is not None and tables else ""
            lines[insert:insert] = f"{indent}{name} = {format_value(value, indent)}\n".splitlines(keepends=True)
        else:
            if lines and lines[-1].strip():
                lines.append("\n")
            lines.append(f"[{'.'.join(tables)}]\n")
            lines.extend(f"  {name} = {format_value(value, '  ')}\n".splitlines(keepends=True))
    return "".join(lines)


def same(a, b):
    """Equal values of the same TOML types (1 and True, or 1 and 1.0, are different settings)."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def plan(doc, settings):
    """``[(key, before, after)]`` for each setting whose value differs (before is None when absent)."""
    changes = []
    for key in sorted(settings):
        current = get_value(doc, key)
        wanted = normalize(key, settings[key], current)
        if current is _MISSING or not same(current, wanted):
            changes.append((key, None if current is _MISSING else current, wanted))
    return changes


def read_file(path):
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise PiholeTomlError(f"path: cannot read {path}: {exc}") from exc


# Pi-hole v6 settings that hold a secret or what stands for one (FTL's pihole.toml reference,
# section [webserver.api]): never returned in clear, whether or not the task sets no_log.
SECRET_KEYS = frozenset({
    "webserver.api.password",
    "webserver.api.pwhash",
    "webserver.api.app_pwhash",
    "webserver.api.totp_secret",
})
MASK = "********"


def mask(key, value):
    """``value``, or MASK when ``key`` is a secret setting that has a value."""
    return MASK if key in SECRET_KEYS and value not in (None, "") else value


def fingerprint(value):
    """A SHA-256 of a secret setting's value: tells a change (a password reset in the web interface)
    without telling the value; Pi-hole's own values here are already salted hashes."""
    return hashlib.sha256(str(value).encode("utf-8")).hexdigest()


def masked(result):
    """The ``changes`` and ``current`` of an :func:`apply` result with every secret value masked, and
    ``fingerprints``: :func:`fingerprint` of each secret setting in ``current`` that has a value."""
    return {
        "changes": [dict(c, before=mask(c["key"], c["before"]), after=mask(c["key"], c["after"]))
                    for c in result["changes"]],
        "current": {key: mask(key, value) for key, value in result["current"].items()},
        "fingerprints": {key: fingerprint(value) for key, value in result["current"].items()
                         if key in SECRET_KEYS and value not in (None, "")},
    }


def _write(path, text, mode):
    """The file replaced atomically: an existing file keeps its mode and owner (``mode`` KEEP)."""
    try:
        atomic_write(path, text, mode=mode, makedirs=False)
    except CarrierError as exc:
        reason = getattr(exc.__cause__, "strerror", None) or exc
        raise PiholeTomlError(f"path: cannot write in {os.path.dirname(os.path.abspath(path))}: {reason}") from exc


def apply(path, settings, get=(), check_mode=False, create=True, mode=0o644):
    """Set ``settings`` (dotted key -> value) in the file at ``path``.

    Returns a dict: ``changed``, ``changes`` (list of {key, before, after}), ``current`` (the
    value of every key of ``settings`` and ``get`` after the run; None for an absent key),
    ``created``, and ``before_text``/``after_text`` (None when nothing changes).
    """
    if not isinstance(settings, dict):
        raise PiholeTomlError(f"settings: expected a dict of dotted keys, got {type(settings).__name__}")
    for key in list(settings) + list(get):
        split_key(key)
    text = read_file(path)
    created = text is None
    if created and settings and not create:
        raise PiholeTomlError(f"path: {path} does not exist and create is false")
    doc = parse(text or "", path)
    changes = plan(doc, settings)
    after_text = text
    if changes:
        after_text = edit_text(text or "", [(key, after) for key, _before, after in changes])
        new_doc = parse(after_text, f"{path} (edited)")
        for key, _before, after in changes:
            got = get_value(new_doc, key)
            if not same(got, after):
                raise PiholeTomlError(f"settings: {key!r}: the edited file reads back {got!r}, not {after!r}")
        if not check_mode:
            _write(path, after_text, KEEP if text is not None else mode)
        doc = new_doc
    values = {}
    for key in list(settings) + [k for k in get if k not in settings]:
        value = get_value(doc, key)
        values[key] = None if value is _MISSING else value
    return {
        "changed": bool(changes),
        "created": bool(changes) and created,
        "changes": [{"key": k, "before": b, "after": a} for k, b, a in changes],
        "current": values,
        "before_text": text if changes else None,
        "after_text": after_text if changes else None,
    }
