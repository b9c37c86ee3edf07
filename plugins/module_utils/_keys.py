# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RSA-2048 customer keys, the one home of key handling: loading, generating, signing and
verifying for EEPROM images (``rsa2048:`` lines, ``pubkey.bin``) and for signed HTTP boot images
(docs/hardware.md, "Bootloader EEPROM image" and "HTTP boot").

``cryptography`` is imported when a key is first used: nodes that only read configs need not
have it.
"""

from __future__ import annotations

import os
import stat
import types

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._fileio import atomic_write, read_optional


def _crypto():
    """The cryptography modules used here, as one namespace."""
    try:
        from cryptography import exceptions
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding, rsa
    except ImportError as e:  # pragma: no cover - depends on the host
        raise CarrierError("signing: the Python package 'cryptography' is needed for rsa2048 signatures") from e
    return types.SimpleNamespace(hashes=hashes, serialization=serialization, padding=padding, rsa=rsa,
                                 exceptions=exceptions)


def load_private_key(pem, passphrase=None, label="signing_key"):
    c = _crypto()
    if isinstance(pem, str):
        pem = pem.encode("ascii", "replace")
    if isinstance(passphrase, str):
        passphrase = passphrase.encode()
    try:
        key = c.serialization.load_pem_private_key(pem, password=passphrase or None)
    except (ValueError, TypeError) as e:
        raise CarrierError("%s: not a usable PEM private key (%s)" % (label, e)) from None
    if not isinstance(key, c.rsa.RSAPrivateKey) or key.key_size != 2048:
        raise CarrierError("%s: must be an RSA 2048-bit key" % label)
    return key


def load_public_key(pem, label="public_key"):
    c = _crypto()
    if isinstance(pem, str):
        pem = pem.encode("ascii", "replace")
    try:
        key = c.serialization.load_pem_public_key(pem)
    except ValueError as e:
        raise CarrierError("%s: not a PEM public key (%s)" % (label, e)) from None
    if not isinstance(key, c.rsa.RSAPublicKey) or key.key_size != 2048:
        raise CarrierError("%s: must be an RSA 2048-bit key" % label)
    return key


def rsa_sign(private_key, data):
    c = _crypto()
    return private_key.sign(data, c.padding.PKCS1v15(), c.hashes.SHA256())


def rsa_verify(public_key, data, signature):
    c = _crypto()
    try:
        public_key.verify(signature, data, c.padding.PKCS1v15(), c.hashes.SHA256())
    except c.exceptions.InvalidSignature:
        return False
    return True


def pubkey_bin(public_key):
    """``pubkey.bin``: 256-byte little-endian modulus + 8-byte little-endian exponent."""
    numbers = public_key.public_numbers()
    return numbers.n.to_bytes(256, "little") + numbers.e.to_bytes(8, "little")


def public_key_from_bin(blob):
    c = _crypto()
    if len(blob) < 264:
        raise CarrierError("pubkey.bin: %d bytes, expected 264" % len(blob))
    n = int.from_bytes(blob[:256], "little")
    e = int.from_bytes(blob[256:264], "little")
    if n == 0 or e == 0:
        raise CarrierError("pubkey.bin: empty (no customer key embedded)")
    return c.rsa.RSAPublicNumbers(e, n).public_key()


def generate_private_key(path):
    """A new RSA-2048 customer key, saved at ``path`` (PEM, mode 0600 from birth, written atomically)
    unless ``path`` is None (check mode's throwaway key). Returns the key."""
    c = _crypto()
    key = c.rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if path is not None:
        pem = key.private_bytes(c.serialization.Encoding.PEM, c.serialization.PrivateFormat.PKCS8,
                                c.serialization.NoEncryption())
        atomic_write(path, pem, 0o600)
    return key


def public_key_pem(private_key):
    c = _crypto()
    return private_key.public_key().public_bytes(c.serialization.Encoding.PEM,
                                                 c.serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def read_private_key(path=None, content=None, passphrase=None, generate=False, warn=None):
    """The customer key from a file or PEM text; with ``generate`` a missing file is created (0600).
    Returns ``(key, generated)``."""
    if path:
        if not os.path.exists(path):
            if not generate:
                raise CarrierError("signing_key: %s does not exist (generate_key: true makes one)" % path)
            return generate_private_key(path), True
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & 0o077 and warn is not None:
            warn("signing_key: %s is mode %04o: a private key should be 0600" % (path, mode))
        pem = read_optional(path)
        return load_private_key(pem, passphrase, "signing_key"), False
    if content:
        return load_private_key(content, passphrase, "signing_key_content"), False
    raise CarrierError("signing_key: one of signing_key or signing_key_content is required")
