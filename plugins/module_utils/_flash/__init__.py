# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing an OS image onto a node's own storage from the controller (``node_flash``), by concern:
``source`` (the image file: raw, xz, gzip, zstd, streamed, its SHA-256 and size), ``bmap`` (the
block map of bmap-tools), ``device`` (finding and vetting the block device on the node's USB port),
``write`` (writing, fsync, read-back verification), ``state`` (the "already flashed" record),
``usb`` (holding the node in USB boot and serving it rpiboot's mass-storage gadget), ``turingpi``
(the Turing Pi 2 BMC's flash API) and ``flash`` (the whole operation the module runs).
"""
