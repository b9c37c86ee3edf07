# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Boards on emulated chips, in process: the simulator's chip models behind smbus2's interface.

The chips are the simulator's own (sim/carrier_sim/chips.py, the register semantics of
docs/hardware.md section 2); only the socket is left out, so a test sees every transaction.
"""

from __future__ import annotations

import os
import sys
import types

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
if os.path.join(REPO, "sim") not in sys.path:
    sys.path.insert(0, os.path.join(REPO, "sim"))

from carrier_sim.boards import SimBoard  # noqa: E402
from carrier_sim.bus import SimBus as EmulatedBus  # noqa: E402

from ansible_collections.picluster.carrier.plugins.module_utils._board import Board, get_profile  # noqa: E402
from ansible_collections.picluster.carrier.plugins.module_utils._bus import CountingBus  # noqa: E402


class HandleBus:
    """smbus2's interface over an emulated bus's ``handle()``, raising OSError like smbus2."""

    def __init__(self, bus):
        self.bus = bus

    def _call(self, op, addr, *args):
        request = {"op": op, "addr": addr}
        if op in ("read_byte_data", "write_byte_data", "read_word_data", "write_word_data"):
            request["reg"] = args[0]
            args = args[1:]
        if args:
            request["value"] = args[0]
        reply = self.bus.handle(request)
        if "errno" in reply:
            raise OSError(reply["errno"], reply["error"])
        return reply["value"]

    def read_byte(self, addr):
        return self._call("read_byte", addr)

    def write_byte(self, addr, value):
        return self._call("write_byte", addr, value)

    def read_byte_data(self, addr, reg):
        return self._call("read_byte_data", addr, reg)

    def write_byte_data(self, addr, reg, value):
        return self._call("write_byte_data", addr, reg, value)

    def read_word_data(self, addr, reg):
        return self._call("read_word_data", addr, reg)

    def write_word_data(self, addr, reg, value):
        return self._call("write_word_data", addr, reg, value)

    def close(self):
        pass


class Rig:
    """A Board wired to an emulated board; ``log`` lists every transaction of every session."""

    def __init__(self, profile, lock_dir, addresses=None, protected_slots=(), sim=None, nodes=()):
        self.profile = get_profile(profile)
        spec = types.SimpleNamespace(name="b1", profile=self.profile, sim=dict(sim or {}), addresses=addresses or {},
                                     nodes={n: None for n in nodes})
        self.sim_board = SimBoard(spec, pending_time=0.0005)
        self.bus = EmulatedBus("inproc")
        for device in self.sim_board.devices.values():
            self.bus.attach(device)
        self.log = []
        self.handle_bus = HandleBus(self.bus)

        def opener(_spec):
            counting = CountingBus(self.handle_bus)
            counting.log = self.log
            return counting

        self.board = Board("b1", self.profile, "sim:/nonexistent/inproc.sock", addresses=addresses,
                           protected_slots=protected_slots, lock_dir=str(lock_dir), bus_opener=opener)

    def chip(self, name):
        return self.sim_board.chip(name)

    def levels(self, slot):
        return self.sim_board.line_levels(slot)

    def writes(self):
        return [entry for entry in self.log if entry[0].startswith("write")]
