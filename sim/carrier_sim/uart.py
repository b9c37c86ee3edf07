# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A node's UART: a pty paced like a 115200 8N1 line (docs/hardware.md section 8).

The node writes to the pty's master; a client (pyserial, ser2net, picocom) opens the slave
(``/dev/pts/N``, symlinked at ``<state-dir>/console/<host>``). Like a real line:

- bytes leave at baud / 10 bytes per second (8N1: ten bit times per byte), in small bursts;
- bytes sent while no client has the port open are lost (not buffered for a later reader), and
  what a client left unread when it closed is discarded, so a new client never sees stale output;
- if the client stops reading and the pty's buffer fills, further bytes are lost (an overrun).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import termios
import time
import tty
import weakref

TICK = 0.01  # seconds between bursts
BURST = 0.05  # at most this much line time is sent at once after an idle moment
WATCH = 0.05  # seconds between looks at whether idle lines have a client (opened or closed the port)


class _Watcher:
    """One look every WATCH seconds, for all the idle UARTs of a loop, at which have a client.

    A pty's master tells that no client has the slave open by POLLHUP; nothing signals the moment a
    client opens it. So the lines are polled, and all of them with one poll() call: a thousand
    idle nodes cost one wake-up per WATCH, not a thousand timers.
    """

    _by_loop = weakref.WeakKeyDictionary()

    @classmethod
    def forget(cls, loop, uart):
        watcher = cls._by_loop.get(loop)
        if watcher is not None:
            watcher.remove(uart)

    @classmethod
    def of(cls, loop):
        watcher = cls._by_loop.get(loop)
        if watcher is None or watcher.task.done():
            watcher = cls._by_loop[loop] = cls(loop)
        return watcher

    def __init__(self, loop):
        self.uarts = {}
        self.fds = set()
        self.connected = set()  # the fds the watcher last saw with a client
        self.poller = select.poll()
        self.task = loop.create_task(self._run(), name="uart-watcher")

    def add(self, uart):
        self.uarts[uart.master] = uart
        self.fds.add(uart.master)
        self.poller.register(uart.master, select.POLLHUP)

    def remove(self, uart):
        if self.uarts.pop(uart.master, None) is not None:
            self.fds.discard(uart.master)
            self.connected.discard(uart.master)
            with contextlib.suppress(KeyError, ValueError):
                self.poller.unregister(uart.master)

    async def _run(self):
        while True:
            await asyncio.sleep(WATCH)
            hung = {fd for fd, events in self.poller.poll(0) if events & select.POLLHUP}
            # Only the lines whose client came or went since the last look are touched (set
            # operations, no loop over a thousand idle lines in Python).
            for fd in (self.fds - hung) ^ self.connected:
                uart = self.uarts[fd]
                uart._check_connection()
                if uart.connected:
                    self.connected.add(fd)
                else:
                    self.connected.discard(fd)


class Uart:
    def __init__(self, name, baud=115200, on_input=None):
        self.name = name
        self.baud = int(baud)
        self.rate = self.baud / 10.0
        self.on_input = on_input
        self.master, slave = os.openpty()
        self.path = os.ttyname(slave)
        # A raw line at the configured speed: no echo or line editing by the pty itself (the node
        # echoes like a tty would). Clients set their own modes when they open it.
        tty.setraw(slave)
        attrs = termios.tcgetattr(slave)
        speed = getattr(termios, "B%d" % self.baud, termios.B115200)
        attrs[4] = attrs[5] = speed
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        os.close(slave)
        os.set_blocking(self.master, False)
        self.queue = bytearray()
        self.connected = False
        self.reading = False
        self.stats = {"queued": 0, "sent": 0, "lost_no_listener": 0, "lost_overrun": 0, "received": 0}
        self._wake = None
        self._idle = None
        self._task = None
        self._loop = None

    def start(self, loop=None):
        self._loop = loop or asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task = self._loop.create_task(self._pump(), name="uart-%s" % self.name)
        _Watcher.of(self._loop).add(self)

    # --- node side -----------------------------------------------------------------------------
    def write(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8", "replace")
        if not data:
            return
        self.queue += data
        self.stats["queued"] += len(data)
        if self._idle is not None:
            self._idle.clear()
            self._wake.set()

    def clear(self):
        """Power loss: what was not yet on the wire is gone."""
        self.queue.clear()
        if self._idle is not None:
            self._idle.set()

    async def drain(self):
        """Wait until every queued byte has left the line."""
        if self._idle is not None:
            await self._idle.wait()

    # --- the line --------------------------------------------------------------------------------
    def _hung_up(self):
        poller = select.poll()
        poller.register(self.master, select.POLLHUP | select.POLLIN)
        for _fd, events in poller.poll(0):
            if events & select.POLLHUP:
                return True
        return False

    def _check_connection(self):
        hung_up = self._hung_up()
        if not hung_up and not self.connected:
            self.connected = True
            if not self.reading:
                self._loop.add_reader(self.master, self._on_readable)
                self.reading = True
        elif hung_up and self.connected:
            self._disconnected()

    def _disconnected(self):
        self.connected = False
        if self.reading:
            self._loop.remove_reader(self.master)
            self.reading = False
        # Drop what the last client left unread: the next one must not see old output.
        with contextlib.suppress(OSError):
            fd = os.open(self.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            try:
                termios.tcflush(fd, termios.TCIFLUSH)
            finally:
                os.close(fd)

    def _on_readable(self):
        try:
            data = os.read(self.master, 4096)
        except BlockingIOError:
            return
        except OSError:  # EIO: the client closed the port
            self._disconnected()
            return
        if not data:
            return
        self.stats["received"] += len(data)
        if self.on_input:
            self.on_input(data)

    async def _pump(self):
        credit = 0.0
        last = time.monotonic()
        while True:
            self._check_connection()
            now = time.monotonic()
            if not self.queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()  # the watcher follows the client meanwhile
                last = time.monotonic()
                credit = 0.0
                continue
            credit = min(credit + (now - last) * self.rate, max(1.0, self.rate * BURST))
            last = now
            count = min(int(credit), len(self.queue))
            if count:
                chunk = bytes(self.queue[:count])
                del self.queue[:count]
                credit -= count
                if self.connected:
                    try:
                        written = os.write(self.master, chunk)
                    except BlockingIOError:
                        written = 0
                    except OSError:
                        written = 0
                        self._disconnected()
                    self.stats["sent"] += written
                    self.stats["lost_overrun"] += count - written
                else:
                    self.stats["lost_no_listener"] += count
            if not self.queue:
                self._idle.set()
            await asyncio.sleep(TICK)

    def close(self):
        if self._task is not None:
            self._task.cancel()
            _Watcher.forget(self._loop, self)
        if self.reading and self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self.master)
            self.reading = False
        with contextlib.suppress(OSError):
            os.close(self.master)

    def snapshot(self):
        out = dict(self.stats)
        out.update({"pty": self.path, "connected": self.connected, "baud": self.baud, "pending": len(self.queue)})
        return out
