# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_console_port: who has a console port (a terminal server's busy banner, the URL's host and port)."""

from __future__ import annotations

import socket
import threading

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils._console_port import (
    BUSY_BANNER, probe_busy, url_host_port,
)


@pytest.mark.parametrize("url,expected", [
    ("rfc2217://ctrl0:7001", ("ctrl0", 7001)),
    ("socket://[::1]:2000?logging=debug", ("::1", 2000)),
    ("rfc2217://10.0.0.2:7003/path", ("10.0.0.2", 7003)),
])
def test_url_host_port(url, expected):
    assert url_host_port(url) == expected


def _server(reply):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)

    def serve():
        conn, _addr = sock.accept()
        conn.sendall(reply)
        conn.close()
        sock.close()

    threading.Thread(target=serve, daemon=True).start()
    return sock.getsockname()[1]


def test_probe_busy_tells_the_banner_from_a_console_and_from_nothing():
    assert probe_busy("127.0.0.1", _server(b"\r\n" + BUSY_BANNER + b"\r\n")) is True
    assert probe_busy("127.0.0.1", _server(b"node01 login: ")) is False
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    assert probe_busy("127.0.0.1", port, timeout=0.5) is None
