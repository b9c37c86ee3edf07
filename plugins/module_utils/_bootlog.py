# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a node's console output means: boot stages, prompts, panics and power/thermal warnings.

Shared by the console sessions (``_console``: the state a live session has seen) and the node state
tracker (``_nodestate``: the terminal server's console logs). Text given here is already decoded;
``clean`` turns raw console text (``\\r\\n``, ANSI colour and cursor sequences, ser2net's trace
lines) into plain lines.

docs/hardware.md section 8: the EEPROM bootloader prefixes each line (BOOT_UART=1) with the seconds since
reset (``  0.96 RPi: BOOTLOADER release ...``); the kernel's printk lines carry ``[    0.000000]``;
the getty prints ``Debian GNU/Linux 12 <hostname> ttyS0``, a blank line, ``<hostname> login:``.
"""

from __future__ import annotations

import re

STATES = ("bootloader", "kernel", "login", "shell")  # boot order: a later state implies the earlier ones passed

BOOTLOADER_RE = re.compile(
    r"^\s*(?:\d+\.\d+\s+)?(?:RPi: BOOTLOADER|BOOTMODE: |Boot mode: |NET \d|TFTP_GET: |Read \S+ bytes|HTTP: |"
    r"AON_RESET: |POWER_OFF_ON_HALT: |RP1_BOOT |Trying partition|MBR: |SD: |CSD: )"
    r"|^\s*\d+\.\d\d [A-Za-z]"
)
KERNEL_RE = re.compile(
    r"^\[\s*\d+\.\d+\]|^Booting Linux|^Linux version |^Starting kernel|^\[\s*(?:OK|FAILED|DEPEND)\s*\] |"
    r"^Welcome to .*Linux|^\s*Starting .*\.\.\.$"
)
ISSUE_RE = re.compile(r"^\S.* \S+ tty\w+$")
LOGIN_PROMPT_RE = re.compile(r"(?:^|\s)\S+ login: ?$")
PASSWORD_PROMPT_RE = re.compile(r"^\s*Password: ?$")
LOGIN_FAILED_RE = re.compile(r"^Login incorrect|^Login timed out", re.MULTILINE)
DEFAULT_PROMPT = r"(?:^|\s)\S*[$#] ?$"

ANSI_RE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|[()][A-Za-z0-9]|[=>78DEHM])")
CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# ser2net 4's trace file (trace-timestamp): "2026/12/02 17:40:08 OPEN (ipv4,127.0.0.1,35004)" and
# "... CLOSE netcon (network read close)" / "... CLOSE port (All users disconnected)" when clients come
# and go. ser2net writes them where the console output is, also in the middle of an unfinished line
# (after a login prompt), so they are cut out wherever they are.
TRACE_RE = re.compile(r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d (?:OPEN|CLOSE)(?: \w+)? \([^\n]*\)\r?\n")

# The kernel's own words (Linux: panic(), die(); raspberrypi-hwmon for the firmware's under-voltage
# flag; the thermal core when a trip point is crossed).
PANIC_RE = re.compile(r"Kernel panic - not syncing")
OOPS_RE = re.compile(r"Internal error: Oops|(?:^|\] )Oops(?: - BUG)?: ")
UNDERVOLT_RE = re.compile(r"(?i:Under-?voltage detected!)")
VOLTAGE_OK_RE = re.compile(r"Voltage normalised")
THERMAL_RE = re.compile(r"critical temperature reached|temperature above threshold|[Oo]ver-?temperature")
BOOT_START_RE = re.compile(r"^\s*(?:\d+\.\d+\s+)?RPi: BOOTLOADER release")
LINUX_START_RE = re.compile(r"^(?:\[\s*\d+\.\d+\]\s*)?Booting Linux")
RESTART_RE = re.compile(r"reboot: Restarting system")
HALT_RE = re.compile(r"reboot: (?:Power down|System halted)")


def clean(text):
    """Console text as plain lines: ``\\r\\n`` and lone ``\\r`` become ``\\n``, ANSI sequences, other
    control characters and ser2net trace lines go."""
    text = TRACE_RE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return CONTROL_RE.sub("", ANSI_RE.sub("", text))


class StreamCleaner:
    """``clean`` for text that comes in pieces (reads of a port): a ``\r`` at the end of a piece waits
    for the next one (its ``\n`` may be there), so does an escape sequence cut by the read."""

    def __init__(self):
        self._held_cr = False
        self._held_esc = ""

    def feed(self, text):
        if self._held_cr:
            text = "\r" + text
            self._held_cr = False
        if text.endswith("\r"):
            self._held_cr = True
            text = text[:-1]
        if self._held_esc:
            text = self._held_esc + text
            self._held_esc = ""
        esc = text.rfind("\x1b")
        if esc >= 0 and len(text) - esc < 32 and not ANSI_RE.match(text, esc):
            self._held_esc = text[esc:]
            text = text[:esc]
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        return CONTROL_RE.sub("", ANSI_RE.sub("", text))


def classify(line, partial=False):
    """The state one line shows (``bootloader``, ``kernel``, ``login``, ``shell``) or None.

    ``partial`` means the line has no newline yet: only prompts are recognised there, since a prompt
    waits for input at the end of a line. ``shell`` prompts are recognised by the caller (the prompt
    regex is a session setting); here a line shows ``login`` for the issue line or the prompts.
    """
    if partial:
        if LOGIN_PROMPT_RE.search(line) or PASSWORD_PROMPT_RE.search(line):
            return "login"
        return None
    if BOOTLOADER_RE.search(line):
        return "bootloader"
    if KERNEL_RE.search(line):
        return "kernel"
    if ISSUE_RE.search(line) and "GNU/Linux" in line or LOGIN_PROMPT_RE.search(line):
        return "login"
    return None


# What one complete line means to the node state tracker, in the order tried (the first match wins).
EVENTS = (
    ("boot", BOOT_START_RE),
    ("linux", LINUX_START_RE),
    ("panic", PANIC_RE),
    ("oops", OOPS_RE),
    ("undervoltage", UNDERVOLT_RE),
    ("voltage_ok", VOLTAGE_OK_RE),
    ("thermal", THERMAL_RE),
    ("restart", RESTART_RE),
    ("halt", HALT_RE),
)


# All of EVENTS in one pattern: one search per line instead of one per event (a log is mostly lines that
# are no event). Where two could match one line, the one matching further left wins.
_EVENT_RE = re.compile("|".join("(?P<%s>%s)" % (name, regex.pattern) for name, regex in EVENTS))
# A word every event line has: a line without any is no event, and is not searched for one.
_EVENT_WORDS = ("BOOTLOADER", "Booting Linux", "panic", "Oops", "oltage", "OLTAGE", "emperature", "reboot: ")


def event(line):
    """The event a complete, cleaned line is (``boot``, ``linux``, ``panic``, ``oops``, ``undervoltage``,
    ``voltage_ok``, ``thermal``, ``restart``, ``halt``), else its :func:`classify` state, else None."""
    if any(word in line for word in _EVENT_WORDS):
        match = _EVENT_RE.search(line)
        if match:
            return match.lastgroup
    return classify(line)
