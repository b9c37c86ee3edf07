# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Console capture at the line rate, and prompt-to-match latency. Prints figures; no pass/fail.

1. A writer on the node's end of a socat pty pair sends numbered lines continuously, paced like a
   115200 8N1 line (11,520 bytes/s), for BENCH_CONSOLE_SECONDS (default 60) seconds; the library's
   ConsoleSession.capture reads the other end, directly and through a real ser2net 4 (rfc2217).
   Figures: bytes received / bytes sent, lines lost or damaged, throughput against 11,520 B/s.
2. The writer prints a login prompt; the time until capture(until=...) matches it, and until
   wait_for('login') returns (which waits for the line to be quiet first, see PROMPT_QUIET).

Run: .venv/bin/python bench/bench_console.py   (needs socat and ser2net)
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import collection_link  # noqa: E402

COLLECTIONS = collection_link.activate()
sys.path.insert(0, str(REPO / "tests" / "integration"))

from ansible_collections.picluster.carrier.plugins.module_utils._console import (  # noqa: E402
    PROMPT_QUIET,
    ConsoleSession,
)
from console_rig import PtyPair, Ser2net  # noqa: E402

LINE_RATE = 11520  # bytes/s: 115200 baud, 8N1 = 10 bits a byte (docs/hardware.md section 8)
SECONDS = float(os.environ.get("BENCH_CONSOLE_SECONDS", "60"))
LATENCY_ROUNDS = int(os.environ.get("BENCH_CONSOLE_LATENCY_ROUNDS", "20"))


def paced_writer(pair, seconds, stats):
    """Numbered lines at LINE_RATE bytes/s, written every 10 ms to keep to the schedule."""
    start = time.monotonic()
    sent = 0
    number = 0
    pending = b""
    while True:
        elapsed = time.monotonic() - start
        if elapsed >= seconds:
            break
        due = int(elapsed * LINE_RATE) - sent
        while len(pending) < due:
            pending += b"%08d the quick brown fox jumps over the lazy dog 0123456789\r\n" % number
            number += 1
        if due > 0:
            pair.write(pending[:due])
            sent += due
            pending = pending[due:]
        time.sleep(0.01)
    pair.write(pending + b"END-OF-STREAM\r\n")  # finish the last line, then the marker
    sent += len(pending) + len(b"END-OF-STREAM\r\n")
    stats.update(sent=sent, lines=number, write_seconds=time.monotonic() - start)


def check_lines(lines, expected):
    damaged = 0
    numbers = []
    for line in lines:
        if line == "END-OF-STREAM":
            continue
        head, _sep, rest = line.partition(" ")
        if rest != "the quick brown fox jumps over the lazy dog 0123456789" or not head.isdigit():
            damaged += 1
            continue
        numbers.append(int(head))
    missing = expected - len(set(numbers))
    in_order = numbers == sorted(numbers)
    return damaged, missing, in_order


def line_rate(url, pair, label):
    stats = {}
    with ConsoleSession(url) as session:
        writer = threading.Thread(target=paced_writer, args=(pair, SECONDS, stats))
        started = time.monotonic()
        writer.start()
        result = session.capture(until=r"^END-OF-STREAM\n", timeout=SECONDS + 30)
        received_at = time.monotonic()
        writer.join()
        received = session.bytes_received
    damaged, missing, in_order = check_lines(result["lines"], stats["lines"])
    seconds = received_at - started
    print("%-28s sent %9d B in %5.1f s, received %9d B: ratio %.6f; lines %d, missing %d, damaged %d, "
          "in order %s" % (label, stats["sent"], stats["write_seconds"], received, received / stats["sent"],
                           stats["lines"], missing, damaged, in_order))
    rate = received / seconds
    print("%-28s throughput %8.0f B/s = %.3f x the 11,520 B/s line" % ("", rate, rate / LINE_RATE))


def latency(url, pair, label):
    capture_ms = []
    wait_ms = []
    with ConsoleSession(url) as session:
        for i in range(LATENCY_ROUNDS):
            pair.write(b"[  OK  ] Reached target getty.target - Login Prompts.\r\n")
            session.capture(until=r"Login Prompts\.\n", timeout=10)
            time.sleep(0.05)
            shown = time.monotonic()
            pair.write(b"\r\nDebian GNU/Linux 12 node01 ttyS0\r\n\r\nnode%02d login: " % i)
            session.capture(until=r"node%02d login: $" % i, timeout=10)
            capture_ms.append((time.monotonic() - shown) * 1000)
            pair.write(b"\r\n")
            session.capture(until=r"^$\n", timeout=10)
            time.sleep(0.05)
            shown = time.monotonic()
            pair.write(b"node%02d login: " % i)
            session.wait_for("login", 10, poke=False)
            wait_ms.append((time.monotonic() - shown) * 1000)
            pair.write(b"\r\n")
            session.capture(until=r"\n", timeout=10)

    def summary(values):
        values = sorted(values)
        return "median %6.2f ms, p95 %6.2f ms, max %6.2f ms" % (
            statistics.median(values), values[int(len(values) * 0.95) - 1], values[-1])

    print("%-28s prompt -> capture(until) match:  %s (%d rounds)" % (label, summary(capture_ms), LATENCY_ROUNDS))
    print("%-28s prompt -> wait_for('login'):     %s (includes %.0f ms quiet time)"
          % ("", summary(wait_ms), PROMPT_QUIET * 1000))


def main():
    for tool in ("socat", "ser2net"):
        if shutil.which(tool) is None:
            print("bench_console: %s is not installed; skipped" % tool)
            return 0
    print("console capture at 115200 baud pacing (%d B/s) for %.0f s (BENCH_CONSOLE_SECONDS)" % (LINE_RATE, SECONDS))
    with tempfile.TemporaryDirectory(prefix="bench-console-") as directory:
        pair = PtyPair(directory, "direct")
        try:
            line_rate(pair.dev, pair, "pty (pyserial, direct)")
            latency(pair.dev, pair, "pty (pyserial, direct)")
        finally:
            pair.stop()
        pair = PtyPair(directory, "viaser2net")
        server = None
        try:
            server = Ser2net(directory, {"node01": pair.dev})
            line_rate(server.url("node01"), pair, "ser2net 4 (rfc2217)")
            latency(server.url("node01"), pair, "ser2net 4 (rfc2217)")
        finally:
            if server:
                server.stop()
            pair.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
