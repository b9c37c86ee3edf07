# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One simulated I2C bus: the targets on it by address, fault injection and counters.

The wire protocol (docs/internals.md): newline-delimited JSON, one request then one reply.
A bus carries one transaction at a time (the server runs them one by one across all
connections); nothing here makes a client's read-modify-write atomic.
"""

from __future__ import annotations

import time

from .chips import EIO, EREMOTEIO, I2CError

OPS = ("read_byte", "write_byte", "read_byte_data", "write_byte_data", "read_word_data", "write_word_data")
WRITE_OPS = ("write_byte", "write_byte_data", "write_word_data")
_NEEDS_REG = ("read_byte_data", "write_byte_data", "read_word_data", "write_word_data")
_NEEDS_VALUE = ("write_byte", "write_byte_data", "write_word_data")


class SimBus:
    def __init__(self, path):
        self.path = path
        self.devices = {}  # address -> Device
        self.on_change = None  # callable(device): after every transaction a device took (a PCF8574
        # read with a command byte writes its latch too)
        self.reset_counters()

    def reset_counters(self):
        self.counters = {"transactions": 0, "reads": 0, "writes": 0, "nacks": 0, "errors": 0,
                         "by_op": {op: 0 for op in OPS}, "since": time.time()}

    def attach(self, device):
        other = self.devices.get(device.address)
        if other is not None:
            raise ValueError("bus %s: %s (board %s) and %s (board %s) both use address 0x%02x"
                             % (self.path, other.name, getattr(other.board, "name", "?"), device.name,
                                getattr(device.board, "name", "?"), device.address))
        self.devices[device.address] = device

    def handle(self, request):
        """One transaction: a request dict -> a reply dict (never raises for a client's fault)."""
        op = request.get("op") if isinstance(request, dict) else None
        if op not in OPS:
            return {"errno": 22, "error": "bad request %r: op must be one of %s" % (request, ", ".join(OPS))}
        addr = request.get("addr")
        reg = request.get("reg")
        value = request.get("value")
        if not _byte(addr, 0x7F) or (op in _NEEDS_REG and not _byte(reg, 0xFF)) or (
                op in _NEEDS_VALUE and not _byte(value, 0xFFFF if op == "write_word_data" else 0xFF)):
            return {"errno": 22, "error": "bad request %r: addr, reg and value must be integers in range" % (request,)}
        counters = self.counters
        counters["transactions"] += 1
        counters["by_op"][op] += 1
        counters["writes" if op in WRITE_OPS else "reads"] += 1
        device = self.devices.get(addr)
        if device is None:
            counters["nacks"] += 1
            return {"errno": EREMOTEIO, "error": "no device acknowledged address 0x%02x" % addr}
        board = device.board
        if getattr(device, "missing", False):  # fault: a sensor unplugged or dead
            counters["nacks"] += 1
            return {"errno": EREMOTEIO, "error": "no device acknowledged address 0x%02x (%s missing: injected fault)"
                    % (addr, device.name)}
        rate = getattr(board, "error_rate", 0.0)
        if rate and board.rng.random() < rate:
            counters["errors"] += 1
            return {"errno": EIO, "error": "bus error (EIO) talking to 0x%02x (injected fault)" % addr}
        args = [a for a in (reg, value) if a is not None] if op in _NEEDS_REG else (
            [value] if op in _NEEDS_VALUE else [])
        try:
            result = getattr(device, op)(*args)
        except I2CError as exc:
            counters["nacks" if exc.errno == EREMOTEIO else "errors"] += 1
            return {"errno": exc.errno, "error": exc.message}
        if self.on_change:
            self.on_change(device)
        if op in WRITE_OPS:
            if getattr(board, "persist", None):
                board.persist()
            return {"value": None}
        return {"value": int(result)}

    def snapshot(self):
        out = dict(self.counters)
        out["by_op"] = dict(self.counters["by_op"])
        out["devices"] = ["0x%02x" % a for a in sorted(self.devices)]
        return out


def _byte(value, top):
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= top
