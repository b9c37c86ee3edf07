# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The serial getty (login prompt, docs/hardware.md section 8) and a minimal shell.

The shell answers ``hostname``, ``cat FILE`` (``/proc/cpuinfo`` with the node's Serial,
``/etc/hostname``, ``/etc/os-release``, ``/proc/uptime``, the device-tree serial-number), ``uptime``,
``uname [-a|-r|-m|-n|-s]``, ``echo [-n]`` (``$?``, ``$HOSTNAME``, ``$USER``, ``$HOME``), ``true``,
``false``, ``sleep N``, ``seq [FIRST [STEP]] LAST`` (a long steady output), ``poweroff``/``halt``/
``shutdown``, ``reboot``, ``exit``/``logout``, and the filters ``grep [-i|-v|-c] PATTERN [FILE]``,
``head``/``tail [-n N]``, ``wc [-l]``, ``vcgencmd get_throttled`` (the undervolt fault's bits),
``vcgencmd bootloader_config`` (the config the bootloader
booted with, from the node's EEPROM) and ``bootloader_version``, ``ls [-1] [-a] [-l] [PATH...]`` and
``cat`` of the files of the node's tree (``/boot/firmware`` is the boot partition; eeprom.py).
Pipelines (``|``) and lists (``;``, ``&&``, ``||``) work,
``$?`` is expanded per command; a command starting with ``sudo`` runs as is; Ctrl-C drops the
output still queued and gives a new prompt.
Anything else: ``-sh: NAME: not found``, exit status 127.
"""

from __future__ import annotations

import asyncio
import os
import posixpath
import shlex
import stat
import time

from .firmware import BOOTLOADER_BUILD_TS, BOOTLOADER_DATE, BOOTLOADER_TIME, BOOTLOADER_VERSION
from .models import cpuinfo


class Interrupted(Exception):
    """Ctrl-C on the line."""


class EndOfInput(Exception):
    """Ctrl-D on an empty line."""


async def readline(node, echo=True):
    """One line typed on the console: CR, LF or CRLF ends it; backspace edits; Ctrl-C, Ctrl-D."""
    buf = bytearray()
    while True:
        byte = await node.read_byte()
        if byte in (b"\r", b"\n"):
            if byte == b"\n" and node.last_input_cr and not buf:
                node.last_input_cr = False
                continue  # the LF of a CRLF
            node.last_input_cr = byte == b"\r"
            node.write("\r\n")
            return buf.decode("utf-8", "replace")
        node.last_input_cr = False
        if byte in (b"\x7f", b"\x08"):
            if buf:
                del buf[-1]
                if echo:
                    node.write("\b \b")
            continue
        if byte == b"\x03":
            node.write("^C\r\n")
            raise Interrupted()
        if byte == b"\x04":
            if not buf:
                raise EndOfInput()
            continue
        if byte == b"\x15":  # Ctrl-U: kill the line
            if echo:
                node.write("\b \b" * len(buf))
            buf.clear()
            continue
        if byte < b" " and byte != b"\t":
            continue
        buf += byte
        if echo:
            node.write(byte)


def issue(node):
    return "\r\nDebian GNU/Linux 12 %s ttyS0\r\n\r\n" % node.hostname


async def getty(node):
    """agetty on ttyS0: the issue, ``<host> login:``, a password, then the shell; again at logout."""
    show_issue = True
    while True:
        if show_issue:
            node.write(issue(node))
        show_issue = True
        node.write("%s login: " % node.hostname)
        await node.uart_drain()  # "login" once the prompt is on the line
        node.set_state("login")
        try:
            user = (await readline(node)).strip()
        except (Interrupted, EndOfInput):
            continue
        if not user:
            show_issue = False
            continue
        node.write("Password: ")
        try:
            password = await readline(node, echo=False)
        except (Interrupted, EndOfInput):
            continue
        if node.users.get(user) != password:
            await node.pause(2.0)
            node.write("\r\nLogin incorrect\r\n")
            show_issue = False
            continue
        node.set_state("shell")
        result = await Shell(node, user).run()
        if result in ("poweroff", "reboot"):
            return result


class Shell:
    def __init__(self, node, user):
        self.node = node
        self.user = user
        self.status = 0

    @property
    def prompt(self):
        if self.user == "root":
            return "root@%s:~# " % self.node.hostname
        return "%s@%s:~$ " % (self.user, self.node.hostname)

    def out(self, text):
        self.node.write(text.replace("\r\n", "\n").replace("\n", "\r\n"))

    def file(self, path):
        """The few files the node has: their text, or None."""
        node = self.node
        if path == "/proc/cpuinfo":
            return cpuinfo(node.model, node.serial)
        if path == "/etc/hostname":
            return "%s\n" % node.hostname
        if path == "/sys/firmware/devicetree/base/serial-number":
            return node.serial
        if path == "/proc/uptime":
            return "%.2f %.2f\n" % (node.uptime(), node.uptime() * 3.9)
        if path == "/etc/os-release":
            return ('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\n'
                    'VERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n')
        real = self.tree_path(path)
        if real is not None and os.path.isfile(real):
            with open(real, "rb") as f:
                return f.read().decode("utf-8", "replace")
        return None

    def tree_path(self, path):
        """``path`` (absolute, or relative to the home directory) in the node's file tree, or None."""
        tree = self.node.tree
        if tree is None:
            return None
        home = "/root" if self.user == "root" else "/home/%s" % self.user
        absolute = posixpath.normpath(posixpath.join(home, path))
        return os.path.join(tree.root, absolute.lstrip("/")) if absolute != "/" else tree.root

    def vcgencmd(self, args):
        node = self.node
        if not args:
            self.emit("Usage: vcgencmd [-t] command\n")
            self.status = 255
            return
        if args[0] == "get_throttled":
            self.emit("throttled=0x%x\n" % node.throttled())
        elif node.eeprom is not None and args[0] == "bootloader_config":
            text = node.live_config or ""
            self.emit(text if text.endswith("\n") else text + "\n")
        elif node.eeprom is not None and args[0] == "bootloader_version":
            self.emit("%s %s\nversion %s (release)\ntimestamp %d\nupdate-time 0\ncapabilities 0x0000007f\n"
                      % (BOOTLOADER_DATE, BOOTLOADER_TIME, BOOTLOADER_VERSION, BOOTLOADER_BUILD_TS))
        else:
            self.emit('error=2 error_msg="Command not registered"\n')
            self.status = 2

    def ls(self, args):
        flags = "".join(a[1:] for a in args if a.startswith("-") and len(a) > 1)
        paths = [a for a in args if not (a.startswith("-") and len(a) > 1)] or ["."]
        blocks = []
        for path in paths:
            real = self.tree_path(path)
            if real is None or not os.path.lexists(real):
                self.emit("ls: cannot access '%s': No such file or directory\n" % path)
                self.status = 2
                continue
            if os.path.isdir(real):
                names = sorted(os.listdir(real), key=lambda n: n.lower().lstrip("."))
                if "a" in flags:
                    names = [".", ".."] + names
                else:
                    names = [n for n in names if not n.startswith(".")]
                blocks.append((path, real, names))
            else:
                blocks.append((None, os.path.dirname(real), [os.path.basename(real)]))
        for i, (title, directory, names) in enumerate(blocks):
            if len(paths) > 1 and title is not None:
                self.emit("%s%s:\n" % ("\n" if i else "", title))
            if "l" in flags:
                stats = [(n, os.lstat(os.path.join(directory, n))) for n in names]
                # the boot partition is vfat mounted with fmask=0022,dmask=0022: no holes, every file 0755
                vfat = directory.startswith(self.node.tree.boot_partition)
                if title is not None:
                    self.emit("total %d\n" % sum(-(-st.st_size // 1024) if vfat else st.st_blocks // 2
                                                 for _n, st in stats))
                width = max([len(str(st.st_size)) for _n, st in stats] or [1])
                for n, st in stats:
                    mode = stat.filemode(st.st_mode)
                    if vfat:
                        mode = mode[0] + "rwxr-xr-x"
                    when = time.strftime("%b %d %H:%M", time.gmtime(st.st_mtime))
                    self.emit("%s 1 root root %*d %s %s\n" % (mode, width, st.st_size, when, n))
            elif "1" in flags:
                self.emit("".join(n + "\n" for n in names))
            elif names:
                self.emit(_columns(names))

    def emit(self, text):
        self._output.append(text)

    async def run(self):
        node = self.node
        node.write("Linux %s %s #1 SMP PREEMPT Debian 1:6.6.51-1+rpt3 (2024-10-08) %s\r\n\r\n"
                   "The programs included with the Debian GNU/Linux system are free software.\r\n\r\n"
                   % (node.hostname, node.info["kernel"], node.info["machine"]))
        while True:
            node.write(self.prompt)
            try:
                line = await readline(node)
            except Interrupted:
                self.status = 130
                continue
            except EndOfInput:
                node.write("logout\r\n")
                return "exit"
            try:
                action = await self.execute(line)
            except ValueError as exc:  # unbalanced quotes
                self.out("-sh: syntax error: %s\n" % exc)
                self.status = 2
                continue
            if action:
                return action

    def expand(self, line):
        """$?, ${?}, $HOSTNAME, $USER, $HOME expanded outside single quotes."""
        values = {"?": str(self.status), "HOSTNAME": self.node.hostname, "USER": self.user,
                  "HOME": "/root" if self.user == "root" else "/home/%s" % self.user, "SHELL": "/bin/sh"}
        out = []
        i = 0
        quote = None
        while i < len(line):
            ch = line[i]
            if ch == "'" and quote != '"':
                quote = None if quote == "'" else "'"
            elif ch == '"' and quote != "'":
                quote = None if quote == '"' else '"'
            elif ch == "\\" and quote != "'" and i + 1 < len(line):
                out.append(line[i:i + 2])
                i += 2
                continue
            elif ch == "$" and quote != "'":
                rest = line[i + 1:]
                name = None
                if rest.startswith("{") and "}" in rest:
                    name = rest[1:rest.index("}")]
                    length = len(name) + 2
                elif rest.startswith("?"):
                    name, length = "?", 1
                else:
                    j = 0
                    while j < len(rest) and (rest[j].isalnum() or rest[j] == "_"):
                        j += 1
                    if j:
                        name, length = rest[:j], j
                if name is not None:
                    out.append(values.get(name, ""))
                    i += 1 + length
                    continue
            out.append(ch)
            i += 1
        return "".join(out)

    async def execute(self, line):
        """A command list: pipelines joined by ``;``, ``&&``, ``||``; ``$?`` is expanded per command."""
        action = None
        for connector, text in split_list(line):
            if connector == "&&" and self.status != 0:
                continue
            if connector == "||" and self.status == 0:
                continue
            stages = [shlex.split(part) for part in split_pipeline(self.expand(text))]
            if not any(stages):
                continue
            data = None
            for i, argv in enumerate(stages):
                data, action = await self.command(argv, data)
                if action:
                    break
            if data:
                self.out(data)
            if action:
                return action
        return None

    async def command(self, argv, stdin=None):
        """Run one command: (its output, an action for the getty or None); sets the status."""
        output = []
        self._output = output
        action = await self._command(argv, stdin)
        return "".join(output), action

    async def _command(self, argv, stdin):
        while argv and argv[0] == "sudo":
            argv = argv[1:]
        self.status = 0
        if not argv:
            return None
        name, args = argv[0], argv[1:]
        if name in ("poweroff", "halt", "shutdown"):
            return "poweroff"
        if name == "reboot":
            return "reboot"
        if name in ("exit", "logout"):
            self.node.write("logout\r\n")
            return "exit"
        if name == "sleep":
            await self._sleep(args)
        elif name in self.COMMANDS:
            self.COMMANDS[name](self, name, args, stdin or "")
        else:
            self.emit("-sh: %s: not found\n" % name)
            self.status = 127
        return None

    async def _sleep(self, args):
        try:
            seconds = float(args[0]) if args else None
        except ValueError:
            seconds = None
        if seconds is None:
            self.emit("sleep: invalid time interval\n")
            self.status = 1
        else:
            await asyncio.sleep(seconds)

    # The commands below take (name, args, stdin); they set self.status when it is not 0.

    def _hostname(self, name, args, stdin):
        self.emit("%s\n" % self.node.hostname)

    def _cat(self, name, args, stdin):
        if not args:
            self.emit(filter_text(name, args, stdin, self))
        for path in args:
            text = self.file(path)
            if text is None:
                self.emit("cat: %s: No such file or directory\n" % path)
                self.status = 1
            else:
                self.emit(text)

    def _uptime(self, name, args, stdin):
        self.emit(" %s up %d min,  1 user,  load average: 0.08, 0.03, 0.01\n"
                  % (time.strftime("%H:%M:%S", time.gmtime()), int(self.node.uptime() // 60)))

    def _uname(self, name, args, stdin):
        info = self.node.info
        fields = {"-s": "Linux", "-n": self.node.hostname, "-r": info["kernel"], "-m": info["machine"]}
        if not args:
            self.emit("Linux\n")
        elif args == ["-a"]:
            self.emit("Linux %s %s #1 SMP PREEMPT Debian 1:6.6.51-1+rpt3 (2024-10-08) %s GNU/Linux\n"
                      % (self.node.hostname, info["kernel"], info["machine"]))
        elif all(a in fields for a in args):
            self.emit(" ".join(fields[a] for a in args) + "\n")
        else:
            self.emit("uname: invalid option -- '%s'\n" % args[0].lstrip("-"))
            self.status = 1

    def _echo(self, name, args, stdin):
        newline = not (args and args[0] == "-n")
        self.emit(" ".join(args if newline else args[1:]) + ("\n" if newline else ""))

    def _true(self, name, args, stdin):
        pass

    def _false(self, name, args, stdin):
        self.status = 1

    def _seq(self, name, args, stdin):
        try:
            numbers = [int(a) for a in args]
        except ValueError:
            numbers = []
        if len(numbers) not in (1, 2, 3):
            self.emit("seq: invalid arguments\n")
            self.status = 1
            return
        first = numbers[0] if len(numbers) >= 2 else 1
        step = (numbers[1] or 1) if len(numbers) == 3 else 1
        last = numbers[-1]
        self.emit("".join("%d\n" % n for n in range(first, last + (1 if step > 0 else -1), step)))

    def _grep(self, name, args, stdin):
        words = [a for a in args if not a.startswith("-")]
        if len(words) <= 1:
            self.emit(filter_text(name, args, stdin, self))
            return
        flags = [a for a in args if a.startswith("-")]
        text = self.file(words[1])
        if text is None:
            self.emit("grep: %s: No such file or directory\n" % words[1])
            self.status = 2
        else:
            self.emit(filter_text(name, flags + [words[0]], text, self))

    def _filter(self, name, args, stdin):
        self.emit(filter_text(name, args, stdin, self))

    def _vcgencmd(self, name, args, stdin):
        self.vcgencmd(args)

    def _ls(self, name, args, stdin):
        self.ls(args)

    COMMANDS = {"hostname": _hostname, "cat": _cat, "uptime": _uptime, "uname": _uname, "echo": _echo,
                "true": _true, "false": _false, "seq": _seq, "grep": _grep, "head": _filter, "tail": _filter,
                "wc": _filter, "vcgencmd": _vcgencmd, "ls": _ls}


def _columns(names, width=80):
    """``ls`` on a terminal: names in columns filled top to bottom, two spaces apart."""
    for rows in range(1, len(names) + 1):
        cols = -(-len(names) // rows)
        widths = [max(len(n) for n in names[c * rows:(c + 1) * rows]) for c in range(cols)]
        if sum(widths) + 2 * (cols - 1) <= width or rows == len(names):
            break
    lines = []
    for r in range(rows):
        cells = [names[c * rows + r] for c in range(cols) if c * rows + r < len(names)]
        lines.append("  ".join(cell.ljust(widths[c]) for c, cell in enumerate(cells)).rstrip())
    return "".join(line + "\n" for line in lines)


def _scan(line, separators):
    """Split ``line`` at the separators that stand outside quotes: [(separator before, text)]."""
    parts = []
    current = []
    before = None
    quote = None
    i = 0
    while i < len(line):
        ch = line[i]
        if quote:
            if ch == quote:
                quote = None
            elif ch == "\\" and quote == '"' and i + 1 < len(line):
                current.append(line[i:i + 2])
                i += 2
                continue
            current.append(ch)
            i += 1
            continue
        if ch in "'\"":
            quote = ch
            current.append(ch)
            i += 1
            continue
        if ch == "\\" and i + 1 < len(line):
            current.append(line[i:i + 2])
            i += 2
            continue
        for sep in separators:
            if line.startswith(sep, i):
                parts.append((before, "".join(current)))
                current = []
                before = sep
                i += len(sep)
                break
        else:
            current.append(ch)
            i += 1
    if quote:
        raise ValueError("unterminated quoted string")
    parts.append((before, "".join(current)))
    return parts


def split_list(line):
    """``a; b && c || d`` -> [(";", "a"), (";", " b"), ("&&", " c"), ("||", " d")]."""
    return [(sep or ";", text) for sep, text in _scan(line, ("&&", "||", ";"))]


def split_pipeline(text):
    return [part for _sep, part in _scan(text, ("|",))]


def filter_text(name, args, data, shell):
    """grep [-i] [-v] [-c] PATTERN, head/tail [-n N | -N], wc [-l], cat: on the previous command's output."""
    lines = data.splitlines(True)
    if name == "cat":
        return data
    if name == "wc":
        if args == ["-l"]:
            return "%d\n" % len(lines)
        return "%7d %7d %7d\n" % (len(lines), len(data.split()), len(data.encode()))
    if name in ("head", "tail"):
        count = 10
        rest = list(args)
        while rest:
            arg = rest.pop(0)
            if arg == "-n" and rest:
                arg = rest.pop(0)
            try:
                count = abs(int(arg))
            except ValueError:
                shell.status = 1
                return "%s: invalid number of lines: %r\n" % (name, arg)
        return "".join(lines[:count] if name == "head" else (lines[-count:] if count else []))
    flags = [a for a in args if a.startswith("-")]
    words = [a for a in args if not a.startswith("-")]
    if not words:
        shell.status = 2
        return "Usage: grep [OPTION]... PATTERNS [FILE]...\n"
    pattern = words[0]
    ignore = "-i" in flags
    invert = "-v" in flags
    matched = [ln for ln in lines
               if ((pattern.lower() in ln.lower()) if ignore else (pattern in ln)) != invert]
    shell.status = 0 if matched else 1
    if "-c" in flags:
        return "%d\n" % len(matched)
    return "".join(matched)
