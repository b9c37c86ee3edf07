# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The picluster.carrier carrier-board simulator (a digital twin of boards and nodes).

Modules:
- ``chips``: I2C targets with the register semantics of HARDWARE.md section 2 (expanders) and
  section 3 (ClusterCTRL, Turing Pi 1).
- ``boards``: a board built from a profile: its devices, pulls, and the level of each slot's lines.
- ``bus``: one simulated I2C bus (devices by address, faults, transaction counters).
- ``uart``: a node's serial line: a pty paced like 115200 8N1.
- ``boot``: the boot pipeline (stages) and the bootloader/kernel text.
- ``shell``: getty login and the minimal shell.
- ``nodes``: the node state machine driven by its lines.
- ``topology``: reads the topology file (``*.carrier.yml``).
- ``server``: the simulator process (bus sockets, control socket).
- ``client``: tiny clients for a bus socket and the control socket.
- ``cli``: ``carrier-sim start|stop|status|fault``.
"""

from __future__ import annotations

DEFAULT_STATE_DIR = "/tmp/picluster-sim"
