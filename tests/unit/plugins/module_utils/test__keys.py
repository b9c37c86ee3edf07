# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the RSA customer keys (_keys.py)."""

from __future__ import annotations

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils import _keys as K
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError


def test_keys_rejected():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = small.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    with pytest.raises(CarrierError, match="RSA 2048-bit"):
        K.load_private_key(pem)
    with pytest.raises(CarrierError, match="not a usable PEM private key"):
        K.load_private_key(b"-----BEGIN nonsense")
    with pytest.raises(CarrierError, match="empty"):
        K.public_key_from_bin(b"\0" * 264)


def test_sign_verify_and_pubkey_bin(tmp_path):
    key = K.generate_private_key(str(tmp_path / "private.pem"))
    assert (tmp_path / "private.pem").stat().st_mode & 0o777 == 0o600
    signature = K.rsa_sign(key, b"data")
    assert K.rsa_verify(key.public_key(), b"data", signature)
    assert not K.rsa_verify(key.public_key(), b"other", signature)
    blob = K.pubkey_bin(key.public_key())
    assert len(blob) == 264
    assert K.public_key_from_bin(blob).public_numbers() == key.public_key().public_numbers()
    again, generated = K.read_private_key(str(tmp_path / "private.pem"))
    assert not generated and again.private_numbers() == key.private_numbers()
    assert K.load_public_key(K.public_key_pem(key)).public_numbers() == key.public_key().public_numbers()
    with pytest.raises(CarrierError, match="does not exist"):
        K.read_private_key(str(tmp_path / "missing.pem"))
    with pytest.raises(CarrierError, match="pubkey.bin: 10 bytes, expected 264"):
        K.public_key_from_bin(b"\0" * 10)
