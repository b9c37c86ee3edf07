# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check a ser2net 4 YAML configuration with ser2net itself: python3 ser2net-check.py FILE.

ser2net has no "check the configuration" option, and a configuration error does not stop it: it
logs "FILE:LINE(column N): message" and goes on without that connection. So this runs a throwaway
ser2net in the foreground (-n -d, no UUCP locks -u, its own pid file) on a copy of FILE whose
accepters listen on 127.0.0.1 port 0 (any free port: no clash with the running ser2net), reads
what it prints for about a second, stops it, and fails when it reported any configuration error.
Devices are not opened (ser2net opens one when a client connects), so a console that is not
plugged in is not an error. Exit status 0 = accepted, 1 = errors (printed), 2 = could not check.
"""

import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time

ACCEPTER_RE = re.compile(r"^(\s*accepter:\s*\S*?\btcp,)(?:[^,\s]+,)?\d+\s*$")
ERROR_RE = re.compile(r":(\d+)\(column \d+\): (.*)$")
SETTLE = float(os.environ.get("SER2NET_CHECK_SECONDS", "1.0"))


def main(argv):
    if len(argv) != 2:
        print("usage: python3 ser2net-check.py FILE", file=sys.stderr)
        return 2
    path = argv[1]
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        print("ser2net-check: cannot read %s: %s" % (path, exc), file=sys.stderr)
        return 2
    copy = [ACCEPTER_RE.sub(r"\g<1>127.0.0.1,0", line) for line in lines]
    with tempfile.TemporaryDirectory(prefix="ser2net-check-") as workdir:
        config = os.path.join(workdir, "ser2net.yaml")
        with open(config, "w", encoding="utf-8") as handle:
            handle.write("\n".join(copy) + "\n")
        try:
            proc = subprocess.Popen(["ser2net", "-n", "-d", "-u", "-c", config, "-P", os.path.join(workdir, "pid")],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=workdir)
        except OSError as exc:
            print("ser2net-check: cannot run ser2net: %s" % exc, file=sys.stderr)
            return 2
        output = b""
        deadline = time.monotonic() + SETTLE
        while time.monotonic() < deadline and proc.poll() is None:
            ready = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))[0]
            if ready:
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                output += chunk
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        output += proc.stdout.read()
        proc.stdout.close()
    errors = []
    for line in output.decode("utf-8", "replace").splitlines():
        if line.startswith("ser2net["):  # the same message again, from syslog's copy
            continue
        match = ERROR_RE.search(line)
        if match:
            errors.append("%s:%s: %s" % (path, match.group(1), match.group(2)))
        elif "Invalid" in line or "Unknown" in line or "rror" in line:
            errors.append("%s: %s" % (path, line.strip()))
    if errors:
        print("ser2net rejected the configuration:", file=sys.stderr)
        for error in errors:
            print("  " + error, file=sys.stderr)
        return 1
    print("ser2net accepted %s" % path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
