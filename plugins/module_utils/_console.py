# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Serial console sessions over pyserial URLs: capture, expect/send, node state, login and commands.

A ``ConsoleSession`` opens one port (a device path such as ``/dev/ttyUSB0``, or a pyserial URL:
``rfc2217://host:port?ign_set_control`` for a ser2net terminal server, ``socket://host:port``,
``loop://``), reads what the node prints and matches regular expressions against it.

- Local devices are opened with exclusive access (``flock``); a device another process holds, or
  one with a live UUCP lock file (``/var/lock/LCK..name``, as ser2net and minicom make) is busy.
- ser2net lets one client in at a time (docs/hardware.md section 8): a second client is accepted,
  told ``Port already in use`` and disconnected. That is reported as a busy port, not a hang.
- Text is decoded as UTF-8 with ``errors='replace'``; ``\\r\\n`` and lone ``\\r`` become ``\\n``;
  ANSI colour and cursor sequences (systemd's ``[  OK  ]``) are removed.
- Every ``ConsoleTimeout`` carries the last lines seen (``.lines``) and names them in its message.
"""

from __future__ import annotations

import codecs
import collections
import errno
import os
import re
import secrets
import threading
import time

from ansible_collections.picluster.carrier.plugins.module_utils._bootlog import (
    DEFAULT_PROMPT,
    LOGIN_FAILED_RE,
    LOGIN_PROMPT_RE,
    PASSWORD_PROMPT_RE,
    STATES,
    StreamCleaner,
    classify,
)
from ansible_collections.picluster.carrier.plugins.module_utils._console_port import (
    BUSY_BANNER, probe_busy, url_host_port, uucp_lock_holder,
)
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._turingpi import (
    CONSOLE_PREFIX as BMC_CONSOLE_PREFIX,
    BmcClient,
    BmcUart,
    parse_console_port,
)

try:
    import serial
except ImportError:  # reported when a session is opened, so the module can say which package is missing
    serial = None

DEFAULT_BAUDRATE = 115200  # docs/hardware.md section 8: UART0 at 115200 8N1
HISTORY_LINES = 20  # lines kept for error messages
BUFFER_LIMIT = 256 * 1024  # characters of unmatched text kept for matching
POLL = 0.05  # seconds per read while waiting
PROMPT_QUIET = 0.1  # seconds of silence after an unfinished line before it counts as a prompt

NEWLINES = {"cr": "\r", "lf": "\n", "crlf": "\r\n"}


class ConsoleError(CarrierError):
    """A console operation failed; ``lines`` are the last lines seen, ``state`` the node's last known state."""

    def __init__(self, message, lines=(), state=None):
        super().__init__(message)
        self.lines = list(lines)
        self.state = state


class ConsoleBusyError(ConsoleError):
    """Another client holds the port."""


class ConsoleTimeout(ConsoleError):
    """What was waited for did not come in time."""


_default_excepthook = threading.excepthook


def _quiet_reader_threads(args):
    """pyserial's RFC 2217 reader thread dies with a traceback when ser2net hangs up on a busy port:
    that is reported as a busy port, so do not print the thread's traceback too."""
    name = getattr(args.thread, "name", "") or ""
    if name.startswith("pySerial RFC 2217 reader thread") and issubclass(args.exc_type, OSError):
        return
    _default_excepthook(args)


threading.excepthook = _quiet_reader_threads


def _describe_lines(lines):
    if not lines:
        return "nothing was received"
    return "last lines seen: " + " | ".join(repr(line) for line in lines)


def compile_regex(pattern, field):
    """re.compile with MULTILINE, a CarrierError naming the field when the pattern is not valid."""
    try:
        return re.compile(pattern, re.MULTILINE)
    except (re.error, TypeError) as exc:
        raise CarrierError("%s: %r is not a valid regular expression: %s" % (field, pattern, exc)) from None


def check_command(command):
    """The command line to run, stripped; a CarrierError when it is empty or has a line break."""
    if not isinstance(command, str) or not command.strip():
        raise CarrierError("command: %r is empty" % (command,))
    if "\n" in command or "\r" in command:
        raise CarrierError("command: %r has a line break: give one shell line (join commands with ; or &&)"
                           % (command,))
    return command.strip().rstrip(";").rstrip()


class ConsoleSession:
    """One open console. Use as a context manager.

    ``port``: a device path or pyserial URL; ``log_file``: append everything read to this file (created
    0600), after the line ``log_header`` if given; ``prompt``: the regex of a shell prompt at the end of a
    line; ``newline``: what Enter sends (``cr`` as a terminal does, ``lf`` or ``crlf``).
    """

    def __init__(self, port, baudrate=DEFAULT_BAUDRATE, log_file=None, prompt=DEFAULT_PROMPT, newline="cr",
                 open_timeout=5.0, log_header=None, bmc=None):
        if not port or not isinstance(port, str):
            raise CarrierError("port: %r is not a device path or a pyserial URL (set it, for example "
                               "port: \"{{ carrier_console }}\")" % (port,))
        if not isinstance(baudrate, int) or baudrate <= 0:
            raise CarrierError("baudrate: %r is not a positive integer" % (baudrate,))
        if newline not in NEWLINES:
            raise CarrierError("newline: %r is not one of %s" % (newline, ", ".join(NEWLINES)))
        self.port = port
        self.baudrate = baudrate
        self.log_file = log_file
        self.log_header = log_header
        self.prompt_re = compile_regex(prompt, "prompt")
        self.newline = NEWLINES[newline]
        self.open_timeout = open_timeout
        self.bmc = dict(bmc or {})  # a Turing Pi 2 console: BmcClient's keyword arguments (token_dir among them)
        self.state = None
        self.history = collections.deque(maxlen=HISTORY_LINES)
        self.lines = []  # every complete line read in this session
        self.bytes_received = 0
        self._serial = None
        self._log = None
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._cleaner = StreamCleaner()
        self._buf = ""  # unmatched text (matching starts here)
        self._partial = ""  # the current line, not ended yet
        self._raw_head = b""  # the first bytes of the session, to recognise a busy banner
        self.last_rx = time.monotonic()
        self.before = ""

    # -- opening and closing ------------------------------------------------------------------
    def _open_bmc(self):
        """A Turing Pi 2 node's console through its BMC (``turingpi2:<BMC URL>#<node>``): see BmcUart."""
        url, slot = parse_console_port(self.port)
        uart = BmcUart(BmcClient(url, **self.bmc), slot, timeout=POLL)
        uart.open()
        return uart

    def open(self):
        if self.port.startswith(BMC_CONSOLE_PREFIX):
            self._serial = self._open_bmc()
            return self._open_log()
        if serial is None:
            raise CarrierError("port: %s: the Python package pyserial is required (pip install pyserial)" % self.port)
        is_url = "://" in self.port
        if not is_url:
            if not os.path.exists(self.port):
                raise ConsoleError("port: %s: no such device" % self.port)
            holder = uucp_lock_holder(self.port)
            if holder:
                raise ConsoleBusyError("port: %s is busy: process %d holds its UUCP lock (a terminal server or "
                                       "another console client has it open)" % (self.port, holder))
        try:
            ser = serial.serial_for_url(self.port, do_not_open=True, baudrate=self.baudrate, timeout=POLL)
        except (ValueError, serial.SerialException) as exc:
            raise ConsoleError("port: %r is not a usable device path or pyserial URL: %s" % (self.port, exc)) from None
        if not is_url:
            ser.exclusive = True
            ser.write_timeout = self.open_timeout  # a device that never drains (flow control) must not hang us
        try:
            ser.open()
        except serial.SerialException as exc:
            raise self._open_error(exc) from None
        except OSError as exc:
            raise self._open_error(exc) from None
        self._serial = ser
        return self._open_log()

    def _open_log(self):
        if self.log_file:
            try:
                fd = os.open(self.log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            except OSError as exc:
                self.close()
                raise ConsoleError("log_file: cannot open %s for appending: %s" % (self.log_file, exc.strerror))
            self._log = os.fdopen(fd, "a", encoding="utf-8")
            if self.log_header:  # written once the port is open: a reader of the log knows reading started
                self._log.write(self.log_header.rstrip("\n") + "\n")
                self._log.flush()
        return self

    def _open_error(self, exc):
        text = str(exc)
        err = getattr(exc, "errno", None)
        if "://" not in self.port:
            if err in (errno.EAGAIN, errno.EWOULDBLOCK) or "exclusively lock" in text:
                return ConsoleBusyError("port: %s is busy: another process has it open with exclusive access "
                                        "(a terminal server or another console client)" % self.port)
            return ConsoleError("port: cannot open %s: %s" % (self.port, text))
        scheme = self.port.split("://", 1)[0].lower()
        if scheme in ("rfc2217", "socket"):
            try:
                host, port = url_host_port(self.port)
            except ValueError:
                return ConsoleError("port: %s: %s" % (self.port, text))
            busy = probe_busy(host, port)
            if busy:
                return ConsoleBusyError("port: %s is busy: the terminal server says 'Port already in use' "
                                        "(another client is connected to this console)" % self.port)
            if busy is None:
                return ConsoleError("port: cannot connect to %s: nothing accepts connections on %s:%d "
                                    "(is the terminal server running?): %s" % (self.port, host, port, text))
        return ConsoleError("port: cannot open %s: %s" % (self.port, text))

    def close(self):
        if self._serial is not None:
            try:
                self._serial.close()
            except Exception:  # noqa: BLE001 - closing a dead connection must not hide the real error
                pass
            self._serial = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc_info):
        self.close()

    # -- reading --------------------------------------------------------------------------------
    def feed(self, data):
        """Take raw bytes read from the port: decode, normalise line ends, split lines, classify them."""
        self.bytes_received += len(data)
        self.last_rx = time.monotonic()
        if len(self._raw_head) < 512:
            self._raw_head += data[:512 - len(self._raw_head)]
        text = self._decoder.decode(data)
        text = self._cleaner.feed(text)
        if not text:
            return
        if self._log is not None:
            self._log.write(text)
        self._buf += text
        if len(self._buf) > BUFFER_LIMIT:
            self._buf = self._buf[-BUFFER_LIMIT:]
        pieces = (self._partial + text).split("\n")
        self._partial = pieces.pop()
        for line in pieces:
            self.lines.append(line)
            self.history.append(line)
            state = classify(line)
            if state:
                self.state = state

    def _read_some(self, deadline):
        """Read what comes before ``deadline`` (waiting at most POLL seconds); True when something came."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        ser = self._serial
        if ser is None:
            raise ConsoleError("port: %s is not open" % self.port)
        # the read timeout stays POLL: setting it reconfigures the port (tcsetattr; for rfc2217 a round trip
        # of option negotiation with the server), so a wait may overrun its deadline by up to POLL
        data = self._read_port(ser, 1)
        if not data:
            return False
        self.feed(data)
        waiting = self._in_waiting(ser)
        if waiting:
            more = self._read_port(ser, waiting)
            if more:
                self.feed(more)
        return True

    def _in_waiting(self, ser):
        try:
            return ser.in_waiting
        except (serial.SerialException, OSError) as exc:
            raise self._lost(exc) from None

    def _read_port(self, ser, size):
        try:
            return ser.read(size)
        except (serial.SerialException, OSError) as exc:
            raise self._lost(exc) from None

    def _lost(self, exc):
        """The error for a connection that ended: busy when the server said so first."""
        busy = BUSY_BANNER in self._raw_head
        if not busy and self.bytes_received < 1024 and self.port.split("://", 1)[0].lower() in ("socket", "rfc2217"):
            # pyserial's socket:// discards what arrives before open() returns (ser2net's banner among it):
            # a connection that ends at once is asked again, to tell a busy port from a dead server
            try:
                busy = bool(probe_busy(*url_host_port(self.port)))
            except ValueError:
                busy = False
        if busy:
            return ConsoleBusyError("port: %s is busy: the terminal server says 'Port already in use' "
                                    "(another client is connected to this console)" % self.port,
                                    self.recent_lines(), self.state)
        return ConsoleError("port: lost the connection to %s: %s; %s"
                            % (self.port, exc, _describe_lines(self.recent_lines())),
                            self.recent_lines(), self.state)

    def recent_lines(self):
        """The last lines seen, the unfinished one included."""
        lines = list(self.history)
        if self._partial:
            lines.append(self._partial)
        return lines

    def current_line(self):
        """The line being printed, not ended yet (a prompt waits there)."""
        return self._partial

    def prompt(self):
        """The prompt the node waits at (``login``, ``password``, ``shell``) or None.

        A prompt is an unfinished line that matches and after which the line has been quiet
        PROMPT_QUIET seconds: so a long line cut in two by a read (``... #1 SMP``) is not a prompt.
        """
        line = self._partial
        if not line or time.monotonic() - self.last_rx < PROMPT_QUIET:
            return None
        if LOGIN_PROMPT_RE.search(line):
            return "login"
        if PASSWORD_PROMPT_RE.search(line):
            return "password"
        if self.prompt_re.search(line):
            return "shell"
        return None

    def _update_state_from_prompt(self):
        kind = self.prompt()
        if kind:
            self.state = "shell" if kind == "shell" else "login"
        return kind

    def _timeout(self, what, seconds):
        lines = self.recent_lines()
        return ConsoleTimeout("port %s: timed out after %.1f s waiting for %s; %s"
                              % (self.port, seconds, what, _describe_lines(lines)), lines, self.state)

    # -- writing --------------------------------------------------------------------------------
    def send(self, text, newline=True):
        """Write ``text`` (then Enter, the session's newline, when ``newline``) to the port."""
        data = (text + (self.newline if newline else "")).encode("utf-8")
        try:
            self._serial.write(data)
            self._serial.flush()
        except (serial.SerialException, OSError) as exc:
            raise ConsoleError("port: cannot write to %s: %s" % (self.port, exc),
                               self.recent_lines(), self.state) from None

    # -- waiting --------------------------------------------------------------------------------
    def expect(self, regex, timeout, what=None):
        """Read until ``regex`` (compiled) matches the text not matched yet; return the match.

        The text up to the end of the match is consumed; ``self.before`` is the text before the match.
        """
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self._buf)
            if match:
                self.before = self._buf[:match.start()]
                self._buf = self._buf[match.end():]
                return match
            if time.monotonic() >= deadline:
                raise self._timeout(what or "/%s/" % regex.pattern, timeout)
            self._read_some(deadline)

    def capture(self, duration=None, until=None, timeout=None):
        """Read for ``duration`` seconds, or until the regex ``until`` matches (within ``timeout``).

        Returns a dict: ``lines`` (the complete lines read, then the unfinished one if any), ``match``
        (the matched text or None), ``groups``, ``named_groups``, ``state``.
        """
        first = len(self.lines)
        result = {"match": None, "groups": [], "named_groups": {}}
        if until is not None:
            regex = until if hasattr(until, "search") else compile_regex(until, "until")
            limit = timeout if timeout is not None else 60.0
            match = self.expect(regex, limit, what="/%s/" % regex.pattern)
            result.update(match=match.group(0), groups=list(match.groups()), named_groups=match.groupdict())
        else:
            if duration is None or duration < 0:
                raise CarrierError("capture: give a duration (seconds, >= 0) or an until regex; got duration %r"
                                   % (duration,))
            deadline = time.monotonic() + duration
            while time.monotonic() < deadline:
                self._read_some(deadline)
            self._buf = ""
        self._update_state_from_prompt()
        result["lines"] = self.lines[first:] + ([self._partial] if self._partial else [])
        result["state"] = self.state
        return result

    def run_steps(self, steps):
        """Expect/send steps, in order: each a dict ``match`` (regex, optional), ``send`` (text, optional),
        ``timeout`` (seconds for the match, default 30), ``newline`` (send Enter after the text, default true)."""
        if not isinstance(steps, (list, tuple)) or not steps:
            raise CarrierError("expect: %r is not a non-empty list of steps" % (steps,))
        checked = []
        for index, step in enumerate(steps):
            field = "expect[%d]" % index
            if not isinstance(step, dict):
                raise CarrierError("%s: %r is not a mapping with match/send/timeout" % (field, step))
            unknown = set(step) - {"match", "send", "timeout", "newline"}
            if unknown:
                raise CarrierError("%s: unknown key(s) %s (use match, send, timeout, newline)"
                                   % (field, ", ".join(sorted(unknown))))
            if step.get("match") is None and step.get("send") is None:
                raise CarrierError("%s: give match, send or both" % field)
            timeout = step.get("timeout")
            timeout = 30.0 if timeout is None else timeout
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
                raise CarrierError("%s.timeout: %r is not a positive number of seconds" % (field, timeout))
            regex = compile_regex(step["match"], field + ".match") if step.get("match") is not None else None
            checked.append((field, regex, step.get("send"), timeout, step.get("newline", True)))
        results = []
        for field, regex, send, timeout, newline in checked:  # every step is valid before anything is sent
            entry = {"match": None, "groups": [], "named_groups": {}, "sent": False}
            if regex is not None:
                match = self.expect(regex, timeout, what="%s.match /%s/" % (field, regex.pattern))
                entry.update(match=match.group(0), groups=list(match.groups()), named_groups=match.groupdict())
            if send is not None:
                self.send(str(send), newline=bool(newline))
                entry["sent"] = True
            results.append(entry)
        self._update_state_from_prompt()
        return results

    def wait_for(self, state, timeout, poke=True, poke_after=2.0):
        """Read until the node shows ``state`` or a later one (bootloader < kernel < login < shell).

        With ``poke``, an empty line (Enter) is sent each time the line has been silent ``poke_after``
        seconds, so a node sitting at a prompt prints it again. Returns the state reached.
        """
        if state not in STATES:
            raise CarrierError("wait_for: %r is not one of %s" % (state, ", ".join(STATES)))
        target = STATES.index(state)
        start = time.monotonic()
        deadline = start + timeout
        quiet_since = start
        while True:
            kind = self._update_state_from_prompt()
            if target >= STATES.index("login"):
                # login and shell need the prompt itself on the line: the issue line comes before it
                reached = {"login": "login", "password": "login", "shell": "shell"}.get(kind)
                if reached and STATES.index(reached) >= target:
                    return reached
            elif self.state is not None and STATES.index(self.state) >= target:
                return self.state
            now = time.monotonic()
            if now >= deadline:
                raise self._timeout("the node to reach state %r (last state seen: %s)"
                                    % (state, self.state or "none"), timeout)
            if poke and now - max(quiet_since, self.last_rx) >= poke_after:
                self.send("")
                quiet_since = now
            self._read_some(deadline)

    def login(self, user, password=None, timeout=60.0, poke_after=2.0):
        """Get a shell prompt: log in as ``user`` at the login prompt (at a shell prompt already: nothing to do).

        Waits through a boot (the login prompt comes when it comes), sending Enter when the line has been
        silent ``poke_after`` seconds before anything was typed. Returns True when it logged in, False when
        the node was at a shell prompt already. A refused password raises a ConsoleError.
        """
        if not user or not isinstance(user, str):
            raise CarrierError("login_user: %r: a user name is needed to log in" % (user,))
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        sent_user = sent_password = False
        acted_at = -1  # bytes_received when we last answered a prompt: answer each prompt once
        self._buf = ""
        while True:
            failed = LOGIN_FAILED_RE.search(self._buf)
            if failed:
                raise ConsoleError("login_user: login as %r failed on %s: the node says %r"
                                   % (user, self.port, failed.group(0)), self.recent_lines(), self.state)
            kind = self._update_state_from_prompt() if self.bytes_received != acted_at else None
            if kind == "shell":
                self._buf = ""
                return sent_user
            if kind == "login":
                if sent_password:
                    raise ConsoleError("login_user: login as %r failed on %s: the login prompt came back"
                                       % (user, self.port), self.recent_lines(), self.state)
                self._buf = ""
                self.send(user)
                sent_user, acted_at = True, self.bytes_received
            elif kind == "password":
                self._buf = ""
                if not sent_user:
                    self.send("")  # a login someone else left half-typed: end it, the login prompt comes back
                else:
                    self.send(password or "")
                    sent_password = True
                acted_at = self.bytes_received
            now = time.monotonic()
            if now >= deadline:
                raise self._timeout("a login or shell prompt to log in as %r (last state seen: %s)"
                                    % (user, self.state or "none"), timeout)
            if (not sent_user or sent_password) and now - max(quiet_since, self.last_rx) >= poke_after:
                self.send("")
                quiet_since = now
            self._read_some(deadline)

    def run_command(self, command, timeout=60.0):
        """Run a shell command at the shell prompt; return (stdout, rc).

        The output is framed by markers (``echo PCB''<token>`` ... ``echo PCE''<token> $?``): the typed
        line carries the marker split by an empty quoted string, so the echo of the command line never
        matches, and neither the prompt nor the echo reaches stdout. One trailing newline is removed.
        """
        command = check_command(command)
        token = secrets.token_hex(6)
        begin, end = "PCB" + token, "PCE" + token
        self._buf = ""
        self.send("echo PCB''%s; %s; echo PCE''%s $?" % (token, command, token))
        self.expect(re.compile(begin + "\n"), timeout, what="the start of the output of %r" % command)
        match = self.expect(re.compile(end + r" (\d+)\n"), timeout, what="the end of the output of %r" % command)
        stdout = self.before
        # the shell prints its prompt again: read it, so the next command starts clean
        deadline = time.monotonic() + min(5.0, timeout)
        while self.prompt() != "shell" and time.monotonic() < deadline:
            self._read_some(deadline)
        self._update_state_from_prompt()
        self._buf = ""
        if stdout.endswith("\n"):
            stdout = stdout[:-1]
        return stdout, int(match.group(1))
