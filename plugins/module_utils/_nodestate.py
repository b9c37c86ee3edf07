# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lifecycle state of a node, from what the controller sees: its slot's lines and its console.

One function, :func:`node_state`, for the node_status module, the status playbook and the exporter:
pure (no I/O, no clock: the caller passes ``now``), fed the console text that is new since the last
call and the ``history`` that call returned (a JSON-able dict: keep it, pass it back). A caller
that keeps no history gets the state of the text it passes, with no times.

:func:`read_log` reads what is new in the terminal_server role's per-node log (ser2net's
trace-read file, ``<log dir>/<node>.log``) from the offset kept in the history, so a large log
is read once; a log rotated by copytruncate (smaller than the offset) or replaced (another inode)
is read again from its start.

Times are wall-clock seconds (``time.time()``). ser2net's trace stamps only its OPEN/CLOSE lines,
so a console event is dated by when the reader saw it written: the log's mtime at the read (an
upper bound; exact for the last thing the node printed, as a login prompt is). Events in the first
text a history ever sees are not dated (that text may be days old).
"""

from __future__ import annotations

import os

from ansible_collections.picluster.carrier.plugins.module_utils._board import slot_summary
from ansible_collections.picluster.carrier.plugins.module_utils._bootlog import classify, clean, event
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._models import DEFAULT_MODEL, MODELS

# Every state node_state reports. The lines first: a node that is off, held in reset or waiting for
# USB boot is that, whatever its console said before.
STATES = ("off", "held_in_reset", "usb_boot", "on", "bootloader", "kernel", "login", "halted", "panic", "hung",
          "boot_loop", "unknown")
LINE_STATES = {"off": "off", "reset": "held_in_reset", "usb_boot": "usb_boot"}
# Seconds a powered node may stay silent before login before it counts as hung. Generous bounds (a
# real CM4 reaches login in ~12 s from eMMC, a netboot takes longer), slower SoCs given more.
BOOT_TIMEOUTS = {"cm3": 240.0, "pi3": 240.0, "pi3bplus": 240.0, "pizero": 240.0, "pizero2": 240.0, "cm4": 180.0,
                 "cm4s": 180.0, "pi4": 180.0, "cm5": 120.0, "pi5": 120.0}
LOOP_BOOTS = 3  # boots in a row without a login: a boot loop
WARNINGS = ("undervoltage", "thermal", "oops")
HEAD_BYTES = 64  # the start of a log, to know it again
MAX_CARRY = 4096  # characters of an unfinished line kept between reads
LOG_DIR = "/var/log/picluster/console"  # the terminal_server role's terminal_server_log_dir


def new_history():
    """The history of a node nothing was seen of yet."""
    return {"offset": 0, "inode": None, "head": "", "carry": "", "reads": 0, "boots": 0, "stage": None,
            "reached_login": False, "boots_without_login": 0, "boot_seen": None, "login_seen": None,
            "time_to_login": None, "last_output": None, "lines": None, "powered_since": None, "events": {},
            "panic": None}


def boot_timeout(model, override=None):
    """Seconds without progress before a booting node is hung: ``override`` or the model's."""
    if override is not None:
        return float(override)
    if model not in MODELS:
        raise CarrierError("model: %r is not one of %s" % (model, ", ".join(MODELS)))
    return BOOT_TIMEOUTS.get(model, BOOT_TIMEOUTS[DEFAULT_MODEL])


def _start_boot(h, stamp):
    h["boots"] += 1
    h["boots_without_login"] = 1 if h["reached_login"] or h["boots"] == 1 else h["boots_without_login"] + 1
    h["reached_login"] = False
    h["stage"] = "bootloader"
    h["boot_seen"] = stamp
    h["login_seen"] = h["time_to_login"] = h["panic"] = None
    h["events"] = {}


def _login(h, stamp):
    if h["stage"] is None and not h["boots"]:
        _start_boot(h, None)  # the log starts after this boot's first lines
    h["stage"] = "login"
    if not h["reached_login"]:
        h["reached_login"] = True
        h["boots_without_login"] = 0
        h["login_seen"] = stamp
        if stamp is not None and h["boot_seen"] is not None and stamp > h["boot_seen"]:
            h["time_to_login"] = round(stamp - h["boot_seen"], 3)


def _note(h, name, line, active=None):
    entry = h["events"].setdefault(name, {"count": 0, "last": None})
    entry["count"] += 1
    entry["last"] = line[-200:]
    if active is not None:
        entry["active"] = active


def _line(h, line, stamp):
    kind = event(line)
    if kind is None:
        return
    stage = h["stage"]
    if kind == "boot" or (kind == "bootloader" and stage is None):
        _start_boot(h, stamp)
    elif kind in ("linux", "kernel"):
        if kind == "linux" and stage != "bootloader" or stage is None:
            _start_boot(h, stamp)  # a model without bootloader output, or a log that starts here
        if h["stage"] == "bootloader":
            h["stage"] = "kernel"
    elif kind == "login":
        _login(h, stamp)
    elif kind in ("panic", "oops"):
        h["stage"] = "panic"
        h["panic"] = line[-200:]
        if kind == "oops":
            _note(h, "oops", line)
    elif kind == "undervoltage":
        _note(h, "undervoltage", line, active=True)
    elif kind == "voltage_ok":
        if "undervoltage" in h["events"]:
            h["events"]["undervoltage"]["active"] = False
    elif kind == "thermal":
        _note(h, "thermal", line)
    elif kind == "restart":
        h["stage"] = None  # the next boot's first line starts it
    elif kind == "halt":
        h["stage"] = "halted"


def _feed(h, text, partial, written):
    stamp = written if h["reads"] else None
    pieces = (h["carry"] + clean(text)).split("\n") if text else [h["carry"]]
    h["carry"] = pieces.pop()[-MAX_CARRY:]
    for line in pieces:
        _line(h, line, stamp)
    tail = h["carry"] + (clean(partial) if partial else "")
    if tail and classify(tail, partial=True) == "login" and h["stage"] not in ("panic",):
        _login(h, stamp)
    if written is not None and (text or partial or h["last_output"] is None):
        h["last_output"] = written


def _lines_edge(h, lines, now):
    """The slot's lines as read now: a node seen switched on (or let out of reset) starts afresh."""
    summary = slot_summary(lines)
    before = h["lines"]
    h["lines"] = summary
    if summary != "on":
        h["stage"] = None
        h["powered_since"] = None
        h["carry"] = ""  # a prompt printed before: not this node's state any more
        return summary
    if before is not None and before != "on":
        h["powered_since"] = now
        h["stage"] = None
        h["carry"] = ""
        h["boots_without_login"] = 0  # a boot the operator ended is no loop
        h["reached_login"] = True
    return summary


def _decide(h, summary, now, timeout, loop_boots, console):
    if summary in LINE_STATES:
        return LINE_STATES[summary]
    stage = h["stage"]
    if stage == "panic":
        return "panic"
    if h["boots_without_login"] >= loop_boots and stage != "login":
        return "boot_loop"
    if stage in ("login", "halted"):
        return stage
    progress = max([t for t in (h["last_output"], h["powered_since"]) if t is not None] or [None]) \
        if console else None
    if progress is not None and now is not None and summary == "on" and now - progress > timeout:
        return "hung"
    if stage:
        return stage
    return "on" if summary == "on" else "unknown"


def node_state(lines=None, text="", written=None, now=None, model=DEFAULT_MODEL, history=None, partial="",
               timeout=None, loop_boots=LOOP_BOOTS, console=True):
    """The state of one node; returns ``(state, history)``.

    ``lines``: the slot's lines as ``Board.read_state`` gives them (``power``, ``run``, ``rpiboot``), or
    None when they were not read. ``text``: console text new since ``history`` (decoded; ser2net trace
    lines and ANSI sequences are removed here); ``partial``: an unfinished last line that is not
    consumed (a prompt waits there); ``written``: when the node last wrote (the log's mtime, a live
    read's last byte). ``console``: False when the node has no console to read (no hung then).
    ``timeout`` overrides the model's boot timeout; ``loop_boots`` boots in a row without login are a
    boot loop. The state dict: ``state`` (one of :data:`STATES`), ``stage`` (the console's),
    ``boots``, ``boots_without_login``, ``last_power_on``, ``boot_seen``, ``login_seen``,
    ``time_to_login``, ``last_output``, ``silent_for``, ``warnings`` (names, see :data:`WARNINGS`),
    ``events`` (per warning: count, last line, whether still active), ``panic`` (the line).
    """
    h = dict(new_history(), **(history or {}))
    h["events"] = {k: dict(v) for k, v in h["events"].items()}
    limit = boot_timeout(model, timeout)
    summary = _lines_edge(h, lines, now) if lines is not None else None
    if console:
        _feed(h, text or "", partial or "", written)
        h["reads"] += 1
    state = _decide(h, summary, now, limit, loop_boots, console)
    power_on = max([t for t in (h["powered_since"], h["boot_seen"]) if t is not None] or [None])
    silent = round(now - h["last_output"], 3) if now is not None and h["last_output"] is not None else None
    result = {
        "state": state, "stage": h["stage"], "lines": summary, "boots": h["boots"],
        "boots_without_login": h["boots_without_login"], "last_power_on": power_on, "boot_seen": h["boot_seen"],
        "login_seen": h["login_seen"], "time_to_login": h["time_to_login"], "last_output": h["last_output"],
        "silent_for": silent, "boot_timeout": limit, "panic": h["panic"],
        "warnings": [name for name in WARNINGS if name in h["events"]
                     and h["events"][name].get("active", True)],
        "events": h["events"],
    }
    return result, h


def read_log(path, history=None):
    """What is new in a console log since ``history``: ``(text, partial, written, history)``.

    ``text`` ends at the last line break (decoded UTF-8, bad bytes replaced); ``partial`` is what
    follows it (not consumed: the next read starts there); ``written`` is the log's mtime. A log that
    does not exist gives ``(None, "", None, history)``.
    """
    h = dict(new_history(), **(history or {}))
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return None, "", None, h
    except OSError as exc:
        raise CarrierError("log_dir: cannot read %s: %s" % (path, exc.strerror)) from None
    with handle:
        info = os.fstat(handle.fileno())
        head = handle.read(HEAD_BYTES).hex()
        offset = h["offset"]
        # a new file may get the inode of the one it replaced: its first bytes tell them apart
        if h["inode"] != info.st_ino or info.st_size < offset or not head.startswith(h["head"][:len(head)]):
            offset = 0
            h["carry"] = ""
        handle.seek(offset)
        data = handle.read()
    cut = data.rfind(b"\n") + 1
    if len(data) - cut > MAX_CARRY:  # no line break for a long time: take it as it is
        cut = len(data)
    h["offset"] = offset + cut
    h["inode"] = info.st_ino
    h["head"] = head
    return (data[:cut].decode("utf-8", "replace"), data[cut:].decode("utf-8", "replace"), info.st_mtime, h)


def log_path(log_dir, host):
    """``<log_dir>/<host>.log``, the terminal_server role's name for a node's console log."""
    return os.path.join(log_dir, "%s.log" % host)
