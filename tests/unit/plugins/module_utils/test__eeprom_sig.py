# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the .sig files (_eeprom/sig.py)."""

from __future__ import annotations

import hashlib
import re
import time

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


def test_target_soc_line_as_rpi_eeprom_digest_writes_it():
    data = b"eeprom image"
    digest = hashlib.sha256(data).hexdigest()
    assert S.make_sig(data, ts=7, target_soc="bcm2712") == digest + "\nts: 7\ntarget-soc: 2712\n"
    assert S.make_sig(data, ts=7, target_soc="2711") == digest + "\nts: 7\ntarget-soc: 2711\n"
    # Its place: after ts:, before rsa2048:.
    lines = S.make_sig(data, ts=7, private_key=_key(), target_soc="bcm2711").splitlines()
    assert lines[1:3] == ["ts: 7", "target-soc: 2711"] and lines[3].startswith("rsa2048: ")
    sig = S.verify_sig(data, "\n".join(lines) + "\n", _key().public_key(), target_soc="bcm2711")
    assert sig.target_soc == "2711" and sig.extra == [] and sig.ts == 7
    with pytest.raises(CarrierError, match=r"^sig: bad \.sig file: target-soc 2711, the image is for 2712"):
        S.verify_sig(data, "\n".join(lines) + "\n", target_soc="bcm2712")
    with pytest.raises(CarrierError, match=r"target-soc missing, the image is for 2711"):
        S.verify_sig(data, S.make_sig(data, ts=7), target_soc="bcm2711")
    with pytest.raises(CarrierError, match=r"target-soc '' is not a SoC number"):
        S.parse_sig(digest + "\nts: 7\ntarget-soc:\n")
    assert S.sig_matches(data, S.make_sig(data, ts=7, target_soc="bcm2711"), target_soc="bcm2711")
    assert not S.sig_matches(data, S.make_sig(data, ts=7), target_soc="bcm2711")
    assert S.sig_matches(data, S.make_sig(data, ts=7))


def test_source_date_epoch(monkeypatch):
    data = b"image"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert S.parse_sig(S.make_sig(data)).ts == 1700000000
    assert S.make_sig(data) == S.make_sig(data, ts=1700000000)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "")
    assert abs(S.parse_sig(S.make_sig(data)).ts - time.time()) < 60
    for bad in ("soon", "-1", "1.5", " 17", "1e9"):
        monkeypatch.setenv("SOURCE_DATE_EPOCH", bad)
        message = r"^SOURCE_DATE_EPOCH: %s is not a number of seconds" % re.escape(repr(bad))
        with pytest.raises(CarrierError, match=message):
            S.make_sig(data)
    assert S.make_sig(data, ts=3).startswith(hashlib.sha256(data).hexdigest() + "\nts: 3\n")
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    assert abs(S.sig_timestamp() - time.time()) < 60
    assert S.sig_timestamp({"SOURCE_DATE_EPOCH": "5"}) == 5
