# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who has a console port: what the console session says when a port cannot be opened or is cut off.

A local serial device may be held by a process with a UUCP lock (ser2net, minicom, picocom); a
terminal server's TCP port answers a second client with ser2net's busy banner and closes.
"""

from __future__ import annotations

import os
import socket
import time

BUSY_BANNER = b"Port already in use"  # what ser2net 4 sends a second client before closing it


def uucp_lock_holder(device):
    """The pid of a live process holding a UUCP lock on ``device`` (ser2net, minicom ...), or None."""
    names = set()
    for path in (device, os.path.realpath(device)):
        name = path[5:] if path.startswith("/dev/") else path
        names.add(name.replace("/", "_"))
        names.add(os.path.basename(path))
    for directory in ("/var/lock", "/run/lock"):
        for name in names:
            try:
                with open(os.path.join(directory, "LCK.." + name), "rb") as handle:
                    content = handle.read(64)
            except OSError:
                continue
            try:
                pid = int(content.strip() or b"0") if len(content) != 4 else int.from_bytes(content, "little")
            except ValueError:
                continue
            if pid <= 0 or pid == os.getpid():
                continue
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue  # a stale lock file
            except PermissionError:
                pass
            return pid
    return None


def probe_busy(host, port, timeout=1.0):
    """Connect to a terminal server's TCP port and tell whether it says the port is busy.

    True when it sends ser2net's busy banner, False when it answers otherwise, None when nothing listens.
    """
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError:
        return None
    data = b""
    try:
        sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        while BUSY_BANNER not in data and time.monotonic() < deadline:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    finally:
        sock.close()
    return BUSY_BANNER in data


def url_host_port(url):
    rest = url.split("://", 1)[1]
    hostport = rest.split("?", 1)[0].split("/", 1)[0]
    host, _sep, port = hostport.rpartition(":")
    return host.strip("[]"), int(port)
