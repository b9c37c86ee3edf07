# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A simulated node: a state machine driven by its slot's lines (docs/hardware.md section 1).

- power de-asserted: off at once (what was on its way out of the UART is lost);
- power asserted with run asserted: it boots (the pipeline of boot.py); with rpiboot asserted
  at that moment the boot ROM waits for USB instead (state ``rpiboot``, silent);
- run de-asserted while powered: held in reset (silent); run rising again: a fresh boot;
- rpiboot changing alone does nothing until the next power-on or reset;
- ``poweroff`` in its shell halts it (state ``halted``): its power line stays as the controller
  left it, as on real hardware; a power cycle or a run pulse starts it again.

States: off, rpiboot, mass_storage (rpiboot served it the mass-storage gadget: usb.py), reset, recovery
(the ROM runs recovery.bin), error (recovery.bin stopped with an error code), bootloader, kernel, login,
shell, halted, hung.

A model with a bootloader EEPROM (cm4, pi4, cm5, pi5) has one (:mod:`eeprom`): the bootloader boots
with its config, recovery.bin and the network self-update flash it. ``attach_tree`` gives the node its
file tree under the state dir (what eeprom_config and the shell read).
"""

from __future__ import annotations

import asyncio
import time

from . import boot
from . import eeprom as eeprom_mod
from . import usb as usb_mod
from .models import model_info, serial_for

STATES = ("off", "rpiboot", "mass_storage", "reset", "recovery", "error", "bootloader", "kernel", "login", "shell",
          "halted", "hung", "panic")
UNDERVOLT_THROTTLED = 0x5  # vcgencmd get_throttled while under-voltage: bits 0 (under-voltage) and 2 (throttled)
DEFAULT_BOOT_TIME = 2.0  # seconds from power-on to the login prompt (scaled from a real ~12 s)
DEFAULT_USERS = {"pi": "raspberry"}
DEFAULT_BOOTCONF = {"BOOT_UART": "1", "BOOT_ORDER": "0xf41"}


class Node:
    def __init__(self, spec, uart, boot_time=None, users=None):
        """``spec``: a ``_topology.Node``; ``uart``: a :class:`uart.Uart` (or anything with
        write/clear/drain). Simulator settings come from the slot's ``sim:`` mapping."""
        sim = dict(spec.sim or {})
        self.spec = spec
        self.host = spec.host
        self.board = spec.board
        self.slot = spec.slot
        self.model = spec.model or "cm4"
        self.info = model_info(self.model)
        self.serial = serial_for(spec.host, spec.serial)
        self.uart = uart
        self.boot_time = float(sim.get("boot_time", boot_time if boot_time is not None else DEFAULT_BOOT_TIME))
        self.scale = max(self.boot_time, 0.0) / boot.REAL_BOOT_SECONDS
        self.users = dict(sim.get("users") or users or DEFAULT_USERS)
        self.media = dict(sim.get("media") or {"sd": True})
        self.bootconf = dict(DEFAULT_BOOTCONF)
        self.bootconf.update({str(k): str(v) for k, v in (sim.get("bootconf") or {}).items()})
        self.hang = bool(sim.get("hang", False))
        # faults for the node state tests: a kernel panic, a reset before login at every boot, a weak supply
        self.panic = bool(sim.get("panic", False))
        self.boot_loop = bool(sim.get("boot_loop", False))
        self.undervolt = bool(sim.get("undervolt", False))
        self.throttled_since_boot = 0
        # The module's own storage (usb.py): sizes from sim.emmc_gb / sim.nvme_gb, backing files made with the tree.
        self.storage = usb_mod.node_media(self.model, sim)
        self.storage_files = {}
        self.usb_devices = []  # the disks the mass-storage gadget exposes (state mass_storage)
        self.on_stop = []  # called with the node at power-off and reset (the gadget's disks go away)
        self.twin = None  # its container when the topology asks for one (twin.py)
        self.os_hostname = None  # the name the booted OS took from its storage (diskboot.py); None: the host
        # The bootloader EEPROM (docs/hardware.md section 4): the config starts from sim.bootconf (or the image
        # of sim.eeprom_image with those keys set).
        self.eeprom = None
        self._eeprom_raw = None  # netboot's sim.eeprom_image of a model without an EEPROM
        soc = eeprom_mod.soc_of(self.info)
        if soc:
            base = None
            if sim.get("eeprom_image"):
                with open(str(sim["eeprom_image"]), "rb") as f:
                    base = f.read()
            self.eeprom = eeprom_mod.NodeEeprom(soc, eeprom_mod.initial_image(soc, sim.get("bootconf"), base),
                                                self.serial)
        self.tree = None
        self.live_config = self.eeprom.config_text if self.eeprom else None
        self.error = None  # why recovery.bin stopped
        self.pipeline = list(boot.DEFAULT_PIPELINE)
        self.jump_stages = dict(boot.JUMP_STAGES)
        self.state = "off"
        self.state_since = time.time()
        self.lines = {"power": False, "run": True, "rpiboot": False, "eeprom_wp": False}
        self.boots = 0
        self.history = []  # (wall time, state), the last 50
        self.t0 = time.monotonic()
        self.last_input_cr = False
        self._input = bytearray()
        self._input_event = None
        self._task = None

    # --- what stages and the shell use -------------------------------------------------------------
    def eeprom_config(self):
        """The keys the bootloader applies (strings), read from the node's EEPROM image: ``[all]`` and
        the node's ``[0x<serial>]`` sections. A model without an EEPROM: the slot's ``sim.bootconf``."""
        if self.eeprom is not None:
            return self.eeprom.settings()
        return dict(self.bootconf)

    @property
    def eeprom_image(self):
        """The bytes of the EEPROM (what netboot's self-update compares and reads pubkey.bin from)."""
        return self.eeprom.data if self.eeprom is not None else self._eeprom_raw

    @eeprom_image.setter
    def eeprom_image(self, data):
        if self.eeprom is not None:
            self.flash_eeprom(data)
        else:
            self._eeprom_raw = bytes(data)

    def flash_eeprom(self, data):
        """Write a new image into the EEPROM (recovery.bin, the network self-update); it applies from the
        next boot. Raises CarrierError for an image that is not a bootloader image of this SoC."""
        if self.eeprom is None:
            raise ValueError("%s (%s) has no bootloader EEPROM" % (self.host, self.model))
        return self.eeprom.flash(data)

    def attach_tree(self, directory):
        """Create the node's file tree in ``directory`` (``root/``, ``eeprom/pieeprom.bin``)."""
        tree = eeprom_mod.NodeTree(directory, self.model, self.info, self.eeprom.soc if self.eeprom else None)
        tree.create()
        self.tree = tree
        self.storage_files = usb_mod.create_backing(directory, self.storage)
        if self.eeprom is not None:
            self.eeprom.attach(tree.eeprom_file)
            tree.write_blconfig(self.live_config)

    def remove_tree(self):
        if self.tree is not None:
            self.tree.remove()
            self.tree = None

    def booted_with(self, text):
        """The bootloader loaded this config: the OS sees it (blconfig nvmem, vcgencmd bootloader_config)."""
        self.live_config = text
        if self.tree is not None:
            self.tree.write_blconfig(text)

    @property
    def hostname(self):
        """The host name the node's OS runs with: what a flashed image set up, else the inventory's."""
        return self.os_hostname or self.host

    def set_state(self, state):
        if state not in STATES:
            raise ValueError("unknown node state %r" % state)
        if state != self.state:
            self.state = state
            self.state_since = time.time()
            self.history.append((self.state_since, state))
            del self.history[:-50]

    def write(self, data):
        self.uart.write(data)

    def line(self, text):
        self.uart.write(text + "\r\n")

    async def uart_drain(self):
        await self.uart.drain()

    def clock(self):
        """Seconds since reset in the node's own (real-hardware) time."""
        if self.scale <= 0:
            return boot.REAL_BOOT_SECONDS
        return (time.monotonic() - self.t0) / self.scale

    async def at(self, t):
        """Wait until ``t`` seconds (real-hardware time) after reset."""
        delay = self.t0 + t * self.scale - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    async def pause(self, seconds):
        await asyncio.sleep(max(0.0, seconds * self.scale))

    def uptime(self):
        return time.monotonic() - self.t0

    def throttled(self):
        """What ``vcgencmd get_throttled`` answers: bits 0-3 now, 16-19 the same since boot."""
        now = UNDERVOLT_THROTTLED if self.undervolt else 0
        self.throttled_since_boot |= now
        return now | self.throttled_since_boot << 16

    def set_undervolt(self, on):
        """The supply sags (or recovers): a running kernel says so on the console, as raspberrypi-hwmon does."""
        self.undervolt = bool(on)
        value = self.throttled()
        if self.state in ("kernel", "login", "shell"):
            text = "Under-voltage detected! (0x%08x)" % value if on else "Voltage normalised (0x00000000)"
            self.line("\r\n" + boot.dmesg(self.clock(), text))

    def feed(self, data):
        """Bytes typed on the console. Only a getty or a shell reads them."""
        if self.state not in ("login", "shell"):
            return
        if b"\x03" in data:
            # ^C: the tty flushes what is still queued for output (ISIG without NOFLSH), so a
            # long command output stops at once
            self.uart.clear()
        self._input += data
        if self._input_event is not None:
            self._input_event.set()

    async def read_byte(self):
        if self._input_event is None:
            self._input_event = asyncio.Event()
        while not self._input:
            self._input_event.clear()
            await self._input_event.wait()
        byte = bytes(self._input[:1])
        del self._input[:1]
        return byte

    # --- the lines ---------------------------------------------------------------------------------
    def apply_lines(self, lines):
        """New line levels from the board (``{line: asserted}``); acts on the edges."""
        old = self.lines
        self.lines = dict(lines)
        power, run = bool(lines.get("power")), bool(lines.get("run", True))
        if not power:
            if old.get("power") or self.state != "off":
                self._stop("off")
            return
        if not old.get("power"):
            self.power_on_or_reset()
        elif not run and old.get("run", True):
            self._stop("reset")
        elif run and not old.get("run", True):
            self.power_on_or_reset()

    def power_on_or_reset(self):
        """A fresh boot from reset (power rising, run rising, or the bootloader resetting itself)."""
        if not self.lines.get("run", True):
            self._stop("reset")
            return
        self._stop("reset")
        self.error = None
        if self.lines.get("rpiboot"):
            self.set_state("rpiboot")
            return
        self._task = asyncio.get_running_loop().create_task(self._run_pipeline(), name="boot-%s" % self.host)

    def _stop(self, state):
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.uart.clear()
        self._input.clear()
        for hook in self.on_stop:
            hook(self)
        if self.twin is not None:
            self.twin.on_stop(state)
        self.set_state(state)

    async def _run_pipeline(self):
        try:
            while True:
                self.t0 = time.monotonic()
                self.boots += 1
                self.throttled_since_boot = 0
                self.os_hostname = None  # set again by whatever this boot loads (diskboot.py)
                ctx = boot.BootContext(self)
                jump = await self._run_stages(ctx)
                if jump != "restart":
                    return
                if self.lines.get("rpiboot"):  # a reboot is a reset: nRPIBOOT counts again
                    self.set_state("rpiboot")
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in a stage must not kill the simulator: say it on the line
            self.line("carrier-sim: node %s boot stage failed: %r" % (self.host, exc))
            self.set_state("hung")

    async def _run_stages(self, ctx):
        names = [name for name, _fn in self.pipeline]
        index = 0
        jump = None
        while True:
            if jump is not None:
                if jump == "restart":
                    return jump
                if jump in names:
                    index = names.index(jump)
                    jump = None
                    continue
                name, fn = jump, self.jump_stages[jump]
            elif index < len(self.pipeline):
                name, fn = self.pipeline[index]
                index += 1
            else:
                return None
            if name in STATES:
                self.set_state(name)
            try:
                jump = await fn(self, ctx)
            except boot.BootHalted:
                await asyncio.Event().wait()

    def close(self):
        if self._task is not None:
            self._task.cancel()

    def snapshot(self):
        return {
            "host": self.host,
            "board": self.board,
            "slot": self.slot,
            "model": self.model,
            "serial": self.serial,
            "state": self.state,
            "state_since": self.state_since,
            "lines": dict(self.lines),
            "boots": self.boots,
            "hang": self.hang,
            "panic": self.panic,
            "boot_loop": self.boot_loop,
            "undervolt": self.undervolt,
            "boot_time": self.boot_time,
            "root": self.tree.root if self.tree is not None else None,
            "hostname": self.hostname,
            "usb_port": getattr(self.spec, "usb_port", None),
            "storage": {kind: {"size": size, "file": self.storage_files.get(kind)}
                        for kind, size in self.storage.items() if size},
            "usb_devices": list(self.usb_devices),
            "eeprom": self.eeprom.snapshot() if self.eeprom is not None else None,
            "error": self.error,
            "uart": self.uart.snapshot() if hasattr(self.uart, "snapshot") else {},
            "history": [{"time": t, "state": s} for t, s in self.history[-10:]],
            "twin": self.twin.snapshot() if self.twin is not None else None,
        }
