# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared data of the first-boot tests: real SSH keys (made by ssh-keygen once per session) and
crypt hashes made by the real tools (openssl passwd; mkpasswd when installed)."""

from __future__ import annotations

import base64
import os
import shutil
import struct
import subprocess
import tempfile

_CACHE = {}


def ssh_key(kind="ed25519", bits=None, comment="admin@laptop"):
    """An OpenSSH public key line from ssh-keygen (cached per kind/bits)."""
    key = (kind, bits)
    if key not in _CACHE:
        d = tempfile.mkdtemp(prefix="fb-keys.")
        try:
            argv = ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "x", "-f", os.path.join(d, "k")]
            if bits:
                argv[4:4] = ["-b", str(bits)]
            subprocess.run(argv, check=True, capture_output=True)
            with open(os.path.join(d, "k.pub")) as f:
                _CACHE[key] = " ".join(f.read().split()[:2])
        finally:
            shutil.rmtree(d, ignore_errors=True)
    return "%s %s" % (_CACHE[key], comment) if comment else _CACHE[key]


def _ssh_string(b):
    return struct.pack(">I", len(b)) + b


def sk_ed25519_key(application=b"ssh:", pub=b"\x01" * 32):
    """A FIDO security-key Ed25519 public key line (the blob layout of OpenSSH's PROTOCOL.u2f)."""
    blob = _ssh_string(b"sk-ssh-ed25519@openssh.com") + _ssh_string(pub) + _ssh_string(application)
    return "sk-ssh-ed25519@openssh.com %s yubikey" % base64.b64encode(blob).decode()


def sk_ecdsa_key():
    point = b"\x04" + b"\x02" * 64
    blob = (_ssh_string(b"sk-ecdsa-sha2-nistp256@openssh.com") + _ssh_string(b"nistp256") + _ssh_string(point)
            + _ssh_string(b"ssh:"))
    return "sk-ecdsa-sha2-nistp256@openssh.com %s" % base64.b64encode(blob).decode()


def crypt_hash(method="-6", password="correct horse"):
    """A crypt hash from ``openssl passwd`` (-6 SHA-512, -5 SHA-256)."""
    out = subprocess.run(["openssl", "passwd", method, "-stdin"], input=password, capture_output=True, text=True,
                         check=True)
    return out.stdout.strip()


SHA512 = "$6$rounds=5000$saltsaltsalt$" + "a" * 86
YESCRYPT = "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7"
BCRYPT = "$2b$12$" + "b" * 53
