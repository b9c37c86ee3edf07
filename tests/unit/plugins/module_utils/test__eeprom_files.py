# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the plans of eeprom_image (_eeprom/files.py): images, .sig files, recovery directories."""

from __future__ import annotations

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils._eeprom import files as F
from ansible_collections.picluster.carrier.plugins.module_utils._eeprom import image as I
from ansible_collections.picluster.carrier.plugins.module_utils._eeprom import sig as S
from ansible_collections.picluster.carrier.plugins.module_utils import _keys as K
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError


_KEYS = {}


def _key(n=0):
    """A throwaway RSA-2048 key per ``n``, made once per test run."""
    if n not in _KEYS:
        _KEYS[n] = K.generate_private_key(None)
    return _KEYS[n]


def test_build_image_signed_is_stable():
    base = I.EepromImage(I.make_synthetic_image("bcm2711"))
    key = _key()
    one = F.build_image(base, "[all]\nSIGNED_BOOT=1\n", key)
    sig_text = one.get_file("bootconf.sig").decode()
    S.verify_sig(b"[all]\nSIGNED_BOOT=1\n", sig_text, key.public_key())
    assert K.public_key_from_bin(one.get_file("pubkey.bin")).public_numbers() == key.public_key().public_numbers()
    two = F.build_image(base, "[all]\nSIGNED_BOOT=1\n", key, existing=one)
    assert two.to_bytes() == one.to_bytes()
