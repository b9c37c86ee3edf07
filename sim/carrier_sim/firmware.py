# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The release of the bootloader and firmware that every simulated node runs (docs/hardware.md section 8).

One place for what the bootloader prints at boot (boot.py), what ``vcgencmd bootloader_version``
answers (shell.py) and the date in the name of the rpi-eeprom package's image in a node's tree
(eeprom.py).
"""

from __future__ import annotations

BOOTLOADER_VERSION = "5f18ffb6"
BOOTLOADER_DATE = "2024/07/30"
BOOTLOADER_TIME = "14:02:35"
BOOTLOADER_BUILD_TS = 1722344555
FIRMWARE_HASH = "4942b7633c0ff1af1ee95a51a33b56a9dae47529"
# The same release as rpi-eeprom names its images: pieeprom-<release>.bin.
FIRMWARE_RELEASE = BOOTLOADER_DATE.replace("/", "-")
