# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Raspberry Pi boot files: ``cmdline.txt`` edited token by token, ``config.txt`` section by section.

``cmdline.txt`` is one line of kernel parameters (the firmware passes it to the kernel as it is);
tokens after a lone ``--`` go to init and are never touched. ``config.txt`` is ``key=value`` lines
under conditional section filters (``[all]``, ``[pi4]``, ``[cm4]``, ``[gpio4=1]`` ...; the syntax of
docs/hardware.md section 5, read by ``_sections`` as for the bootloader EEPROM config); lines before the
first filter apply to all boards, like ``[all]``.

Every edit keeps the lines and tokens it does not own byte for byte, so a second run with the same
wishes finds nothing to do. Nothing is written here: :func:`plan_boot_files` says what the files
would become.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._sections import (
    ALL,
    ConfigLine,
    header_line,
    parse_lines,
    render_lines,
    section_name,
)
from ansible_collections.picluster.carrier.plugins.module_utils._values import check_number

#: Searched in this order when no boot directory is given: Raspberry Pi OS bookworm and later
#: mount the boot partition at /boot/firmware, older releases at /boot (docs/hardware.md section 4).
BOOT_DIR_CANDIDATES = ("/boot/firmware", "/boot")
CMDLINE_FILE = "cmdline.txt"
CONFIG_FILE = "config.txt"

#: config.txt keys that may appear many times in one section, each line adding something
#: (overlays, their parameters, included files): "set" adds a line, it never replaces one.
REPEATABLE_KEYS = frozenset(("dtoverlay", "dtparam", "include"))

_KEY_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:\-]*$")
_SETTING_RE = re.compile(r"^\s*([A-Za-z0-9_][A-Za-z0-9_.:\-]*)\s*=(.*)$")


def find_boot_dir(root="/", candidates=BOOT_DIR_CANDIDATES):
    """The first candidate directory (under ``root``) holding cmdline.txt or config.txt."""
    for candidate in candidates:
        path = os.path.join(root, candidate.lstrip("/"))
        if os.path.isfile(os.path.join(path, CMDLINE_FILE)) or os.path.isfile(os.path.join(path, CONFIG_FILE)):
            return path
    raise CarrierError(
        "boot_dir: none given and no %s or %s found in %s" % (CMDLINE_FILE, CONFIG_FILE, ", ".join(candidates))
    )


def value_text(field_name, value):
    """A wished value as the boot files hold it: booleans 1/0, numbers as written (finite), no whitespace."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return str(check_number(value, field_name))
    if not isinstance(value, str):
        raise CarrierError("%s: value %r is not a string, number or boolean" % (field_name, value))
    if any(c.isspace() for c in value):
        raise CarrierError("%s: value %r contains whitespace" % (field_name, value))
    return value


def _check_key(field_name, key):
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise CarrierError("%s: invalid key %r (letters, digits, '_', '.', ':' and '-' only)" % (field_name, key))


# --- cmdline.txt ----------------------------------------------------------------------------


def split_cmdline(line):
    """Split a kernel command line into tokens as the kernel does: whitespace outside double quotes."""
    tokens = []
    current = []
    quoted = False
    for char in line:
        if char == '"':
            quoted = not quoted
            current.append(char)
        elif char.isspace() and not quoted:
            if current:
                tokens.append("".join(current))
                current = []
        else:
            current.append(char)
    if quoted:
        raise CarrierError("cmdline.txt: unbalanced double quote in %r" % line)
    if current:
        tokens.append("".join(current))
    return tokens


def token_key(token):
    """``key`` of ``key=value`` or of a bare flag ``key``."""
    return token.split("=", 1)[0]


@dataclass
class Cmdline:
    """The kernel parameters of cmdline.txt (``kernel``) and what follows ``--`` (``init``, kept as is)."""

    kernel: list = field(default_factory=list)
    init: list | None = None

    @classmethod
    def parse(cls, text):
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) > 1:
            raise CarrierError(
                "cmdline.txt: %d non-empty lines; the kernel command line must be one line" % len(lines)
            )
        tokens = split_cmdline(lines[0]) if lines else []
        if "--" in tokens:
            cut = tokens.index("--")
            return cls(tokens[:cut], tokens[cut + 1:])
        return cls(tokens, None)

    def render(self):
        tokens = list(self.kernel)
        if self.init is not None:
            tokens += ["--"] + list(self.init)
        return " ".join(tokens) + "\n"

    def remove(self, entry):
        """Remove ``key`` (every token of that key) or the exact token ``key=value``."""
        if "=" in entry:
            self.kernel = [t for t in self.kernel if t != entry]
        else:
            self.kernel = [t for t in self.kernel if token_key(t) != entry]

    def set(self, key, tokens):
        """Make ``tokens`` the only tokens of ``key``, at the place of the first one (else at the end)."""
        positions = [i for i, t in enumerate(self.kernel) if token_key(t) == key]
        if [self.kernel[i] for i in positions] == tokens:
            return
        if not positions:
            self.kernel += tokens
            return
        out = []
        for i, token in enumerate(self.kernel):
            if i == positions[0]:
                out += tokens
            elif i not in positions:
                out.append(token)
        self.kernel = out

    def add(self, token):
        if token not in self.kernel:
            self.kernel.append(token)


def cmdline_tokens_for(key, value):
    """The tokens ``cmdline_set`` wants for one key: None = a bare flag, a list = one token per value."""
    _check_key("cmdline_set", key)
    field_name = "cmdline_set.%s" % key
    if value is None:
        return [key]
    if isinstance(value, (list, tuple)):
        if not value:
            raise CarrierError("%s: empty list (use cmdline_absent to remove the key)" % field_name)
        return [key if v is None else "%s=%s" % (key, value_text(field_name, v)) for v in value]
    return ["%s=%s" % (key, value_text(field_name, value))]


def check_token(field_name, token):
    if not isinstance(token, str) or not token or any(c.isspace() for c in token) or token == "--":
        raise CarrierError("%s: invalid kernel parameter %r (one token, no whitespace)" % (field_name, token))
    _check_key(field_name, token_key(token))


def edit_cmdline(text, set_=None, add=None, absent=None):
    """Return the new cmdline.txt text: ``absent`` removed, then ``set_`` applied, then ``add`` appended.

    ``set_``: ``{key: value}`` (value None for a bare flag, a list for a key given many times);
    ``add``: tokens to have, others of the same key kept; ``absent``: keys or exact ``key=value`` tokens.
    """
    set_ = dict(set_ or {})
    add = list(add or [])
    absent = list(absent or [])
    wanted = {key: cmdline_tokens_for(key, value) for key, value in set_.items()}
    for token in add:
        check_token("cmdline_add", token)
    for entry in absent:
        check_token("cmdline_absent", entry)
        if token_key(entry) in wanted:
            raise CarrierError("cmdline_absent: %r names key %r that cmdline_set sets" % (entry, token_key(entry)))
        if entry in add:
            raise CarrierError("cmdline_absent: %r is also in cmdline_add" % entry)
    cmdline = Cmdline.parse(text)
    for entry in absent:
        cmdline.remove(entry)
    for key, tokens in wanted.items():
        cmdline.set(key, tokens)
    for token in add:
        cmdline.add(token)
    # Keep the original bytes when the tokens are the same (spacing, a missing final newline).
    if Cmdline.parse(text) == cmdline:
        return text
    return cmdline.render()


# --- config.txt -----------------------------------------------------------------------------


class ConfigTxt:
    """config.txt as classified lines (``_sections``), rendered back exactly as parsed except where edited."""

    def __init__(self, text):
        self.lines, trailing = parse_lines(text, _SETTING_RE)
        self.trailing_newline = trailing or not text

    def render(self):
        return render_lines(self.lines, self.trailing_newline)

    def values(self, key, section=ALL):
        """Every value of ``key`` in ``section``, in file order."""
        return [line.value for line in self.lines if line.kind == "setting" and line.section == section
                and line.key == key]

    def _insert(self, section, new):
        content = [i for i, line in enumerate(self.lines) if line.section == section
                   and line.kind in ("setting", "section", "other")]
        if content:
            self.lines.insert(content[-1] + 1, new)
            return
        has_filters = any(line.kind == "section" for line in self.lines)
        if section == ALL and not has_filters:
            self.lines.append(new)
            return
        if self.lines and self.lines[-1].kind != "blank":
            self.lines.append(ConfigLine("", "blank", self.lines[-1].section))
        self.lines.append(header_line(section))
        self.lines.append(new)

    def set(self, section, key, value):
        """``key=value`` in ``section``: the last occurrence rewritten, else a line added (see REPEATABLE_KEYS)."""
        new = ConfigLine("%s=%s" % (key, value), "setting", section, key, value)
        hits = [i for i, line in enumerate(self.lines) if line.kind == "setting" and line.section == section
                and line.key == key]
        if key in REPEATABLE_KEYS:
            if value not in [self.lines[i].value for i in hits]:
                self._insert(section, new)
            return
        if hits:
            if self.lines[hits[-1]].value != value:
                self.lines[hits[-1]] = new
            return
        self._insert(section, new)

    def remove(self, section, entry):
        """Remove ``key`` (every line of it) or the exact ``key=value`` line from ``section``."""
        key, value = entry.partition("=")[::2]
        self.lines = [line for line in self.lines
                      if not (line.kind == "setting" and line.section == section and line.key == key
                              and ("=" not in entry or line.value == value.strip()))]


def config_wishes(config_set):
    """Normalise ``config_set`` ({section: {key: value}}) to [(section, key, value text)]."""
    wishes = []
    if not isinstance(config_set, dict):
        raise CarrierError("config_set: %r is not a mapping of section filter to settings" % (config_set,))
    for given, settings in config_set.items():
        section = section_name(given, "config_set")
        if not isinstance(settings, dict):
            raise CarrierError("config_set.%s: %r is not a mapping of key to value" % (section, settings))
        for key, value in settings.items():
            field_name = "config_set.%s.%s" % (section, key)
            _check_key("config_set.%s" % section, key)
            if isinstance(value, (list, tuple)):
                if key not in REPEATABLE_KEYS:
                    raise CarrierError("%s: a list of values is only for %s, not %r"
                                       % (field_name, ", ".join(sorted(REPEATABLE_KEYS)), key))
                values = [value_text(field_name, v) for v in value]
            elif value is None:
                raise CarrierError("%s: no value given (use config_absent to remove a key)" % field_name)
            else:
                values = [value_text(field_name, value)]
            wishes += [(section, key, v) for v in values]
    return wishes


def edit_config(text, config_set=None, config_absent=None):
    """Return the new config.txt text: ``config_absent`` ({section: [key or key=value]}) removed, then
    ``config_set`` ({section: {key: value or [values]}}) set."""
    wishes = config_wishes(config_set or {})
    removals = []
    config_absent = config_absent or {}
    if not isinstance(config_absent, dict):
        raise CarrierError("config_absent: %r is not a mapping of section filter to keys" % (config_absent,))
    for given, entries in config_absent.items():
        section = section_name(given, "config_absent")
        if isinstance(entries, str) or not isinstance(entries, (list, tuple)):
            raise CarrierError("config_absent.%s: %r is not a list of keys" % (section, entries))
        for entry in entries:
            if not isinstance(entry, str):
                raise CarrierError("config_absent.%s: %r is not a key or key=value" % (section, entry))
            _check_key("config_absent.%s" % section, entry.partition("=")[0])
            for wish in wishes:
                if wish[0] == section and wish[1] == entry.partition("=")[0] and (
                        "=" not in entry or entry.partition("=")[2] == wish[2]):
                    raise CarrierError("config_absent.%s: %r is also set by config_set" % (section, entry))
            removals.append((section, entry))
    cfg = ConfigTxt(text)
    for section, entry in removals:
        cfg.remove(section, entry)
    for section, key, value in wishes:
        cfg.set(section, key, value)
    return cfg.render()


# --- files ----------------------------------------------------------------------------------


def read_text(path, field_name):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise CarrierError("%s: %s does not exist (not a Raspberry Pi boot directory?)" % (field_name, path)) from None
    except OSError as e:
        raise CarrierError("%s: cannot read %s: %s" % (field_name, path, e.strerror or e)) from e
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CarrierError("%s: %s is not UTF-8 text (%s)" % (field_name, path, e)) from e


def cmdline_expectations(cmdline_set=None, cmdline_add=None, cmdline_absent=None):
    """What a booted kernel's /proc/cmdline must show once the wishes are live: (tokens that must be there,
    entries that must not: exact tokens, or keys when given without a value)."""
    wanted = []
    for key, value in (cmdline_set or {}).items():
        wanted += cmdline_tokens_for(key, value)
    wanted += [t for t in (cmdline_add or []) if t not in wanted]
    return wanted, list(cmdline_absent or [])


@dataclass
class FileChange:
    path: str
    before: str
    after: str

    @property
    def changed(self):
        return self.before != self.after


def plan_boot_files(boot_dir=None, cmdline_set=None, cmdline_add=None, cmdline_absent=None,
                    config_set=None, config_absent=None, root="/"):
    """What the boot files would become: (boot dir, {"cmdline": FileChange, "config": FileChange}).

    A file is read (and must exist) only when some option concerns it. Nothing is written here.
    """
    if boot_dir is None:
        boot_dir = find_boot_dir(root)
    elif not os.path.isdir(boot_dir):
        raise CarrierError("boot_dir: %s is not a directory" % boot_dir)
    changes = {}
    if cmdline_set or cmdline_add or cmdline_absent:
        path = os.path.join(boot_dir, CMDLINE_FILE)
        before = read_text(path, "boot_dir")
        changes["cmdline"] = FileChange(path, before, edit_cmdline(before, cmdline_set, cmdline_add, cmdline_absent))
    if config_set or config_absent:
        path = os.path.join(boot_dir, CONFIG_FILE)
        before = read_text(path, "boot_dir")
        changes["config"] = FileChange(path, before, edit_config(before, config_set, config_absent))
    return boot_dir, changes
