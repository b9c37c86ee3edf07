# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``carrier-sim start|stop|status|fault``: run the simulator as a daemon and talk to it.

State dir layout (default /tmp/picluster-sim): ``carrier-sim.pid`` (also the lock that makes a
second start on the same dir fail), ``control.sock``, ``console/<host>`` (symlinks to the node
ptys), ``carrier-sim.log`` (the daemon's log, kept after stop), ``carrier-sim.files`` (what the
running daemon created, so ``stop`` can clean up after a daemon that died).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import sys
import time

from . import DEFAULT_STATE_DIR
from .client import ControlError, control

PID_FILE = "carrier-sim.pid"
LOG_FILE = "carrier-sim.log"
FILES_FILE = "carrier-sim.files"
# A start ends in failure when the daemon says nothing for this long (not after a fixed time:
# a large topology starts for as long as its progress lines keep coming).
STALL_TIMEOUT = 20.0
PROGRESS_EVERY = 2.0
STOP_TIMEOUT = 15.0

EXIT_NOT_RUNNING = 3  # status: like an LSB init script


def _err(msg):
    sys.stderr.write("carrier-sim: %s\n" % msg)


def _pid_path(state_dir):
    return os.path.join(state_dir, PID_FILE)


def read_pid(state_dir):
    try:
        with open(_pid_path(state_dir)) as fh:
            return int(fh.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


def daemon_running(state_dir):
    """True while a daemon holds the lock on the state dir's pid file."""
    try:
        fd = os.open(_pid_path(state_dir), os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def process_gone(pid):
    """True when ``pid`` has exited (a zombie waiting for its parent counts as gone)."""
    try:
        with open("/proc/%d/stat" % pid) as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


def _cleanup_files(state_dir):
    """Remove what a dead daemon left (its file list, pid file, console dir if empty)."""
    listing = os.path.join(state_dir, FILES_FILE)
    try:
        with open(listing) as fh:
            paths = [p for p in fh.read().splitlines() if p]
    except OSError:
        paths = []
    for path in paths:
        if os.path.islink(path) or (os.path.exists(path) and not os.path.isdir(path)):
            with contextlib.suppress(OSError):
                os.unlink(path)
    for path in (listing, _pid_path(state_dir)):
        with contextlib.suppress(OSError):
            os.unlink(path)
    with contextlib.suppress(OSError):
        os.rmdir(os.path.join(state_dir, "console"))
    # The node file trees (root/, eeprom/) a killed daemon left: only the simulator writes there.
    shutil.rmtree(os.path.join(state_dir, "nodes"), ignore_errors=True)
    for path in paths:  # the gadgets' disks beside each usb.sock (usb.py): its sys/ and dev/ entries
        if os.path.basename(path) == "usb.sock":
            _cleanup_usb(os.path.dirname(path))


def _cleanup_usb(directory):
    shutil.rmtree(os.path.join(directory, "sys", "devices", "platform", "sim-xhci"), ignore_errors=True)
    for sub in (os.path.join("sys", "block"), "dev"):
        folder = os.path.join(directory, sub)
        for name in (os.listdir(folder) if os.path.isdir(folder) else ()):
            if name.startswith("sd") and os.path.islink(os.path.join(folder, name)):
                os.unlink(os.path.join(folder, name))
    for sub in ("sys/devices/platform", "sys/devices", "sys/block", "sys", "dev"):
        with contextlib.suppress(OSError):
            os.rmdir(os.path.join(directory, sub))


# --- the daemon ----------------------------------------------------------------------------------
def run_daemon(args, notify):
    """Run the simulator until stopped. ``notify(message)`` tells the starter 'ready ...' or
    'error: ...' once; ``notify("progress ...", final=False)`` before that, as often as it likes,
    tells it the start is still moving. Returns the exit code."""
    # Only the daemon needs the simulator (and the collection it reads topologies with); stop, status
    # and fault talk to its control socket.
    from .server import SimError, Simulator

    state_dir = args.state_dir
    os.makedirs(state_dir, exist_ok=True)
    pid_fd = os.open(_pid_path(state_dir), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(pid_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(pid_fd)
        notify("error: a simulator is already running on state dir %s (pid %s)"
               % (state_dir, read_pid(state_dir) or "?"))
        return 1
    os.ftruncate(pid_fd, 0)
    os.write(pid_fd, b"%d\n" % os.getpid())

    def log(msg):
        sys.stderr.write("%s carrier-sim[%d]: %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), os.getpid(), msg))
        sys.stderr.flush()

    errors = []  # told to the starter only once the pid file is gone
    code = 1
    try:
        try:
            sim = Simulator(args.topology, state_dir, boot_time=args.boot_time, baud=args.baud, log=log,
                            gadget_time=args.gadget_time)
        except SimError as exc:
            errors.append(str(exc))
            return 1

        async def main():
            loop = asyncio.get_running_loop()
            try:
                await sim.start(progress=lambda msg: notify("progress " + msg, final=False))
            except (SimError, OSError) as exc:
                errors.append(str(exc))
                return 1
            with open(os.path.join(state_dir, FILES_FILE), "w") as fh:
                fh.write("".join(p + "\n" for p in sim.created))
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.add_signal_handler(sig, sim.request_stop)
            notify("ready pid %d: %d bus(es), %d board(s), %d node(s), state dir %s"
                   % (os.getpid(), len(sim.buses), len(sim.boards), len(sim.nodes), state_dir))
            await sim.run()
            return 0

        code = asyncio.run(main())
        return code
    finally:
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(state_dir, FILES_FILE))
        with contextlib.suppress(OSError):
            os.unlink(_pid_path(state_dir))
        os.close(pid_fd)
        if errors:
            notify("error: %s" % errors[0])


def cmd_start(args):
    args.state_dir = os.path.abspath(args.state_dir)
    args.topology = os.path.abspath(args.topology)
    if not os.path.isfile(args.topology):
        _err("topology file %s not found" % args.topology)
        return 2
    pid = read_pid(args.state_dir)
    if daemon_running(args.state_dir):
        _err("already running on state dir %s (pid %d); stop it first: carrier-sim stop --state-dir %s"
             % (args.state_dir, pid, args.state_dir))
        return 1
    if pid:  # a dead daemon's leftovers
        _cleanup_files(args.state_dir)
    os.makedirs(args.state_dir, exist_ok=True)

    if args.foreground:
        def notify(msg, final=True):
            if final:
                print("carrier-sim: %s" % msg, flush=True)
        return run_daemon(args, notify)

    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(read_fd)
            _daemonize(args, write_fd)
        finally:
            os._exit(1)
    os.close(write_fd)
    os.waitpid(child, 0)
    text = _wait_ready(read_fd)
    if text.startswith("ready"):
        print("carrier-sim: %s" % text)
        return 0
    _err("%s (log: %s)" % (text, os.path.join(args.state_dir, LOG_FILE)))
    pid = read_pid(args.state_dir)
    if pid and daemon_running(args.state_dir):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    return 1


def _daemonize(args, write_fd):
    """In the first child: a new session, then fork again so the daemon is not a session leader."""
    os.setsid()
    if os.fork():
        os._exit(0)
    log_fd = os.open(os.path.join(args.state_dir, LOG_FILE), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null_fd, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(null_fd)
    os.close(log_fd)
    os.chdir("/")
    done = []

    def notify(msg, final=True):
        if not done:
            with contextlib.suppress(OSError):
                os.write(write_fd, (msg + "\n").encode())
                if final:
                    done.append(msg)
                    os.close(write_fd)
        if final:
            sys.stderr.write(msg + "\n")
            sys.stderr.flush()

    code = 1
    try:
        code = run_daemon(args, notify)
    except BaseException as exc:  # noqa: BLE001 - the daemon reports anything it dies of
        notify("error: %s: %s" % (type(exc).__name__, exc))
    finally:
        sys.stderr.flush()
        os._exit(code)


def _wait_ready(read_fd):
    """The daemon's final word ('ready ...' or 'error: ...'), waiting as long as it makes progress.

    A large topology takes as long as it takes to start; what ends the wait is a daemon that has
    said nothing (no progress line) for STALL_TIMEOUT seconds, or that closed the pipe without a
    word. Progress goes to stderr at most every PROGRESS_EVERY seconds.
    """
    buffer = b""
    deadline = time.monotonic() + STALL_TIMEOUT
    shown = time.monotonic()
    try:
        while True:
            remaining = deadline - time.monotonic()
            ready = select.select([read_fd], [], [], max(remaining, 0))[0] if remaining > 0 else []
            if not ready:
                return "the simulator made no progress for %.0f s" % STALL_TIMEOUT
            chunk = os.read(read_fd, 4096)
            if not chunk:
                return "the simulator ended without reporting ready"
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                text = line.decode(errors="replace").strip()
                if not text.startswith("progress "):
                    return text
                deadline = time.monotonic() + STALL_TIMEOUT
                if time.monotonic() - shown >= PROGRESS_EVERY:
                    shown = time.monotonic()
                    sys.stderr.write("carrier-sim: starting: %s\n" % text[len("progress "):])
                    sys.stderr.flush()
    finally:
        os.close(read_fd)


def _wait_gone(state_dir, pid, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not daemon_running(state_dir) and process_gone(pid):
            return True
        time.sleep(0.05)
    return not daemon_running(state_dir) and process_gone(pid)


def cmd_stop(args):
    state_dir = os.path.abspath(args.state_dir)
    pid = read_pid(state_dir)
    if not pid:
        print("carrier-sim: not running (no pid file in %s)" % state_dir)
        return 0
    if not daemon_running(state_dir):
        _cleanup_files(state_dir)
        print("carrier-sim: not running (removed the files of dead pid %d in %s)" % (pid, state_dir))
        return 0
    try:
        control(state_dir, {"op": "stop"}, timeout=5.0)
    except ControlError:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    if not _wait_gone(state_dir, pid, STOP_TIMEOUT):
        _err("pid %d did not stop in %.0f s: killing it" % (pid, STOP_TIMEOUT))
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        _wait_gone(state_dir, pid, 5.0)
        _cleanup_files(state_dir)
    print("carrier-sim: stopped (pid %d)" % pid)
    return 0


def _onoff(value):
    return "on" if value else "off"


def _usb(node):
    """The node's USB port and, while the mass-storage gadget runs, its disks: ``1-1.3 sda,sdb``."""
    port = node.get("usb_port") or "-"
    devices = ",".join(d["device"] for d in node.get("usb_devices") or ())
    return "%s %s" % (port, devices) if devices else port


def format_status(status):
    rows = [("BOARD", "PROFILE", "SLOT", "HOST", "MODEL", "STATE", "BOOTS", "POWER", "RUN", "RPIBOOT", "USB",
             "CONSOLE")]
    for bname, board in status["boards"].items():
        for slot, node in board["slots"].items():
            lines = node["lines"]
            rows.append((bname, board["profile"], slot, node["host"], node["model"], node["state"], node["boots"],
                         _onoff(lines.get("power")), _onoff(lines.get("run")), _onoff(lines.get("rpiboot")),
                         _usb(node), node.get("console", "")))
    out = ["carrier-sim pid %s, state dir %s, topology %s" % (status["pid"], status["state_dir"], status["topology"])]
    out.extend(_table(rows))
    out.append("")
    brows = [("BUS", "DEVICES", "TRANSACTIONS", "READS", "WRITES", "NACKS", "ERRORS")]
    for path, bus in status["buses"].items():
        brows.append((path, ",".join(bus["devices"]), bus["transactions"], bus["reads"], bus["writes"],
                      bus["nacks"], bus["errors"]))
    out.extend(_table(brows))
    faults = []
    for bname, board in status["boards"].items():
        if board["i2c_error_rate"]:
            faults.append("board %s: i2c error rate %g" % (bname, board["i2c_error_rate"]))
        for dname, dev in board["devices"].items():
            for bit, level in (dev.get("stuck") or {}).items():
                faults.append("board %s: %s bit %s stuck at %s" % (bname, dname, bit, level))
            if dev.get("missing"):
                faults.append("board %s: sensor %s missing (does not acknowledge 0x%02x)"
                              % (bname, dname, dev["address"]))
        for slot, node in board["slots"].items():
            if node["hang"]:
                faults.append("node %s: hangs while booting" % node["host"])
            for name, text in (("panic", "panics while booting"), ("boot_loop", "resets before login at every boot"),
                               ("undervolt", "under-voltage")):
                if node.get(name):
                    faults.append("node %s: %s" % (node["host"], text))
    if faults:
        out.append("")
        out.append("FAULTS")
        out.extend("  " + f for f in faults)
    if status.get("skipped_boards"):
        out.append("")
        out.append("not simulated (not on a sim: bus): %s" % ", ".join(status["skipped_boards"]))
    return "\n".join(out)


def _table(rows):
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def cmd_status(args):
    state_dir = os.path.abspath(args.state_dir)
    try:
        reply = control(state_dir, {"op": "status"})
    except ControlError as exc:
        if args.json:
            print(json.dumps({"running": False, "state_dir": state_dir}))
        else:
            print("carrier-sim: not running on state dir %s (%s)" % (state_dir, exc))
        return EXIT_NOT_RUNNING
    status = reply["status"]
    if args.json:
        status["running"] = True
        print(json.dumps(status, indent=2, sort_keys=True))
    else:
        print(format_status(status))
    return 0


def _level(text):
    text = text.lower()
    if text in ("0", "low"):
        return 0
    if text in ("1", "high"):
        return 1
    if text in ("none", "off", "clear"):
        return None
    raise argparse.ArgumentTypeError("%r: 0, 1 or none" % text)


def _truth(text):
    text = text.lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError("%r: true or false" % text)


def _rate(text):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("%r: a fraction from 0 to 1" % text)
    return value


def cmd_fault(args):
    state_dir = os.path.abspath(args.state_dir)
    request = {"op": "fault"}
    if args.host:
        given = {name: getattr(args, name) for name in ("hang", "panic", "boot_loop", "undervolt")
                 if getattr(args, name) is not None}
        if not given or args.board or args.i2c_error_rate is not None or args.stuck is not False:
            _err("fault --host HOST takes --hang, --panic, --boot-loop or --undervolt true|false (and nothing else)")
            return 2
        request.update(dict(given, host=args.host))
    elif args.board:
        request["board"] = args.board
        if args.i2c_error_rate is not None:
            request["i2c_error_rate"] = args.i2c_error_rate
        if args.stuck is not False:
            if args.chip is None or args.bit is None:
                _err("--stuck needs --chip and --bit")
                return 2
            request.update({"chip": args.chip, "bit": args.bit, "stuck": args.stuck})
        if (args.sensor is None) != (args.missing is None):
            _err("--sensor and --missing go together")
            return 2
        if args.sensor is not None:
            request.update({"sensor": args.sensor, "missing": args.missing})
        if len(request) == 2:
            _err("fault --board B needs --i2c-error-rate R, --chip C --bit N --stuck 0|1|none, "
                 "or --sensor NAME --missing true|false")
            return 2
    else:
        _err("fault needs --board B or --host H")
        return 2
    try:
        reply = control(state_dir, request)
    except ControlError as exc:
        _err(str(exc))
        return 1
    print("carrier-sim: fault set: %s" % json.dumps(reply["fault"], sort_keys=True))
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="carrier-sim",
        description="Simulate the carrier boards and nodes of a picluster.carrier topology file.")
    sub = parser.add_subparsers(dest="command", required=True)

    def state_dir(p):
        p.add_argument("--state-dir", default=os.environ.get("CARRIER_SIM_STATE_DIR", DEFAULT_STATE_DIR),
                       help="directory for the pid file, control socket and console links (default %(default)s)")

    p = sub.add_parser("start", help="start the simulator (a daemon; returns once every socket is ready)")
    p.add_argument("--topology", required=True, help="the topology file (*.carrier.yml)")
    state_dir(p)
    p.add_argument("--foreground", action="store_true", help="do not daemonize (log to stderr; Ctrl-C stops)")
    p.add_argument("--gadget-time", type=float, default=None,
                   help="seconds rpiboot's mass-storage gadget takes to boot (default 2; a board's "
                        "sim.gadget_time wins)")
    p.add_argument("--boot-time", type=float, default=None,
                   help="seconds from power-on to the login prompt (default 2; a slot's sim.boot_time wins)")
    p.add_argument("--baud", type=int, default=115200, help="console line speed (default %(default)s, 8N1)")
    p.set_defaults(func=cmd_start)

    p = sub.add_parser("stop", help="stop the simulator and remove its sockets, pid file and console links")
    state_dir(p)
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser("status", help="boards, slots and node states (exit 3 when not running)")
    state_dir(p)
    p.add_argument("--json", action="store_true", help="everything as JSON, bus transaction counters included")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("fault", help="inject a fault at run time")
    state_dir(p)
    p.add_argument("--board", help="board name (for --i2c-error-rate and --stuck)")
    p.add_argument("--i2c-error-rate", type=_rate, default=None,
                   help="fraction of the board's transactions failing with EIO (errno 5); 0 clears")
    p.add_argument("--chip", help="chip name of the board's profile (u1, u2 ...)")
    p.add_argument("--bit", type=int, help="bit of the chip (0-7 or 0-15)")
    p.add_argument("--stuck", type=_level, default=False, help="hold the pin at 0 or 1 whatever the latch; none clears")
    p.add_argument("--sensor", help="sensor or fan name of the board's profile (for --missing)")
    p.add_argument("--missing", type=_truth, default=None,
                   help="true: the sensor stops acknowledging its address (unplugged or dead); false: back")
    p.add_argument("--host", help="node host name (for --hang, --panic, --boot-loop, --undervolt)")
    p.add_argument("--hang", type=_truth, default=None,
                   help="true: the node stops printing in the middle of booting and never reaches login")
    p.add_argument("--panic", type=_truth, default=None,
                   help="true: at its next boot the kernel prints a Kernel panic and stops")
    p.add_argument("--boot-loop", dest="boot_loop", type=_truth, default=None,
                   help="true: the node resets in the middle of every boot, never reaching login")
    p.add_argument("--undervolt", type=_truth, default=None,
                   help="true: the supply sags: the kernel prints Under-voltage detected! and vcgencmd "
                        "get_throttled answers 0x50005; false: Voltage normalised")
    p.set_defaults(func=cmd_fault)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # `carrier-sim status | head`
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
