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
