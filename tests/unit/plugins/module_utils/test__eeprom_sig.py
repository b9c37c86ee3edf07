# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the .sig files (_eeprom/sig.py)."""

from __future__ import annotations

import hashlib
import re

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils._eeprom import sig as S
from ansible_collections.picluster.carrier.plugins.module_utils import _keys as K
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError


# --- .sig files ---------------------------------------------------------------------------------

_KEYS = {}


def _key(n=0):
    """A throwaway RSA-2048 key per ``n``, made once per test run."""
    if n not in _KEYS:
        _KEYS[n] = K.generate_private_key(None)
    return _KEYS[n]


def test_sig_plain():
    data = b"image bytes"
    text = S.make_sig(data, ts=1700000000)
    assert text == hashlib.sha256(data).hexdigest() + "\nts: 1700000000\n"
    sig = S.verify_sig(data, text)
    assert sig.ts == 1700000000 and sig.rsa2048 is None


def test_sig_rsa():
    data = b"x" * 1000
    key = _key()
    text = S.make_sig(data, ts=5, private_key=key)
    lines = text.splitlines()
    assert lines[1] == "ts: 5" and lines[2].startswith("rsa2048: ") and len(lines[2]) == 9 + 512
    S.verify_sig(data, text, key.public_key())
    with pytest.raises(CarrierError, match="does not verify"):
        S.verify_sig(data, text, _key(1).public_key())
    # Same data and ts: same text (PKCS#1 v1.5 is deterministic).
    assert S.make_sig(data, ts=5, private_key=key) == text


@pytest.mark.parametrize("text,message", [
    ("", "first line must be a lowercase sha256"),
    ("ABC\nts: 1\n", "first line must be a lowercase sha256"),
    (hashlib.sha256(b"other").hexdigest() + "\nts: 1\n", "does not match the data"),
    (hashlib.sha256(b"data").hexdigest() + "\n", "no 'ts:' line"),
    (hashlib.sha256(b"data").hexdigest() + "\nts: soon\n", "ts 'soon' is not a number"),
    (hashlib.sha256(b"data").hexdigest() + "\nts: 1\nrsa2048: 00\n", "rsa2048 must be 512 hex digits"),
])
def test_bad_sig(text, message):
    with pytest.raises(CarrierError, match=r"^sig: bad \.sig file: .*" + re.escape(message)):
        S.verify_sig(b"data", text)


def test_sig_missing_rsa_when_key_given():
    with pytest.raises(CarrierError, match="no rsa2048 signature"):
        S.verify_sig(b"d", S.make_sig(b"d"), _key().public_key())
