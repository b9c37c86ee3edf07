# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The picluster.carrier carrier-board simulator (a digital twin of boards and nodes).

Modules:
- ``chips``: I2C GPIO expanders with the register semantics of docs/hardware.md section 2.
- ``controllers``: ClusterCTRL and Turing Pi 1 (docs/hardware.md section 3).
- ``boards``: a board built from a profile: its devices, pulls, and the level of each slot's lines.
- ``bus``: one simulated I2C bus (devices by address, faults, transaction counters).
- ``bmc``: the emulated Turing Pi 2 BMC.
- ``uart``: a node's serial line: a pty paced like 115200 8N1.
- ``boot``: the boot pipeline (stages), the bootloader/kernel text and the table of boot modes.
- ``shell``: getty login and the minimal shell.
- ``nodes``: the node state machine driven by its lines.
- ``firmware``: the bootloader release every node runs.
- ``eeprom``: a node's EEPROM, its file tree and recovery.bin.
- ``pieeprom``, ``bootconf``: the EEPROM image, its ``.sig`` files and its config as the bootloader
  reads them (the simulator's own code: it is the oracle the collection's EEPROM code is tested against).
- ``netlink``, ``dhcp``, ``tftp``, ``netboot``, ``httpboot``: the network boot modes.
- ``models``: what a node reports about itself, per model.
- ``server``: the simulator process (bus sockets, control socket); the topology is the collection's
  ``_topology.load_topology``.
- ``client``: tiny clients for a bus socket and the control socket.
- ``cli``: ``carrier-sim start|stop|status|fault``.
"""

from __future__ import annotations

DEFAULT_STATE_DIR = "/tmp/picluster-sim"
