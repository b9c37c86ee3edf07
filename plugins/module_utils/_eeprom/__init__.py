# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Raspberry Pi bootloader EEPROMs, one module per concern (plain Python, no Ansible import).

- ``image``: the pieeprom image format (sections, files, A/B partitions, synthetic images).
- ``config``: the config text (``bootconf.txt``), BOOT_ORDER, known keys and edits.
- ``sig``: ``.sig`` files (sha256, ``ts:``, ``target-soc:``, ``rsa2048:``).
- ``files``: what ``eeprom_image`` writes (image files, recovery directories), as a plan.
- ``node``: the node side of ``eeprom_config`` (firmware detection, the live config, staging).

RSA keys are in ``_keys``; the config.txt-style section parser is ``_sections``.
"""
