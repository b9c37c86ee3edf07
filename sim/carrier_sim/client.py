# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tiny clients: a simulator bus socket (smbus2 method names) and the control socket."""

from __future__ import annotations

import json
import os
import socket


class ControlError(Exception):
    """The control socket refused a request, or is not there."""


class _LineClient:
    def __init__(self, path, timeout=10.0):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except OSError:
            self.sock.close()
            raise
        self.reader = self.sock.makefile("rb")

    def call(self, request):
        self.sock.sendall(json.dumps(request).encode() + b"\n")
        line = self.reader.readline()
        if not line:
            raise ConnectionError("%s closed the connection" % self.path)
        return json.loads(line)

    def close(self):
        self.reader.close()
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class BusClient(_LineClient):
    """smbus2-like access to one simulated bus; errors are OSError(errno) as smbus2 raises."""

    def _op(self, op, addr, reg=None, value=None):
        request = {"op": op, "addr": addr}
        if reg is not None:
            request["reg"] = reg
        if value is not None:
            request["value"] = value
        reply = self.call(request)
        if "errno" in reply:
            raise OSError(reply["errno"], reply.get("error") or os.strerror(reply["errno"]))
        return reply["value"]

    def read_byte(self, addr):
        return self._op("read_byte", addr)

    def write_byte(self, addr, value):
        self._op("write_byte", addr, value=value)

    def read_byte_data(self, addr, reg):
        return self._op("read_byte_data", addr, reg=reg)

    def write_byte_data(self, addr, reg, value):
        self._op("write_byte_data", addr, reg=reg, value=value)

    def read_word_data(self, addr, reg):
        return self._op("read_word_data", addr, reg=reg)

    def write_word_data(self, addr, reg, value):
        self._op("write_word_data", addr, reg=reg, value=value)


def control(state_dir, request, timeout=10.0):
    """Send one request to the simulator of ``state_dir``; the reply, or ControlError."""
    path = os.path.join(state_dir, "control.sock")
    try:
        with _LineClient(path, timeout=timeout) as client:
            reply = client.call(request)
    except (OSError, ValueError) as exc:
        raise ControlError("no simulator answers on %s: %s" % (path, exc)) from None
    if not reply.get("ok"):
        raise ControlError(reply.get("error") or "request refused: %r" % (reply,))
    return reply
