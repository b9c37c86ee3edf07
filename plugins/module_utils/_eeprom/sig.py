# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``.sig`` files (docs/hardware.md section 4), as Raspberry Pi's ``rpi-eeprom-digest`` writes them.

Line 1 is the lowercase sha256 hex of the file, then ``ts: <unix seconds>``, then, for a firmware
update (``pieeprom.sig``), ``target-soc: 2711`` or ``2712`` (the SoC the image is for, which lets a
bootloader skip an update for another SoC without reading the image), then optionally
``rsa2048: <hex>``, a PKCS#1 v1.5 / SHA-256 signature with a customer key (``_keys``). The
timestamp of a new ``.sig`` is ``SOURCE_DATE_EPOCH`` when that is set, for reproducible builds.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass, field

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._keys import rsa_sign, rsa_verify

#: The ``target-soc:`` value of each SoC.
TARGET_SOC = {"bcm2711": "2711", "bcm2712": "2712"}


@dataclass
class Sig:
    sha256: str
    ts: int | None
    rsa2048: str | None = None
    extra: list = field(default_factory=list)
    target_soc: str | None = None


def sig_timestamp(environ=None):
    """The ``ts:`` of a new ``.sig``: ``SOURCE_DATE_EPOCH`` when set and not empty (as rpi-eeprom-digest
    reads it), else the current time; CarrierError naming the variable when it is not a number of seconds."""
    raw = (os.environ if environ is None else environ).get("SOURCE_DATE_EPOCH", "")
    if raw == "":
        return int(time.time())
    if not re.fullmatch(r"[0-9]{1,12}", raw):
        raise CarrierError("SOURCE_DATE_EPOCH: %r is not a number of seconds since 1970-01-01 (the timestamp of "
                           "reproducible builds): unset it or give one such as 1700000000" % (raw,))
    return int(raw)


def _target_soc(soc):
    if soc is None:
        return None
    return TARGET_SOC.get(soc, soc)


def make_sig(data, ts=None, private_key=None, target_soc=None):
    """The ``.sig`` text of ``data``: sha256 hex, ``ts:``, ``target-soc:`` with a SoC (``bcm2711`` or
    ``2711``), ``rsa2048:`` with a key, in rpi-eeprom-digest's order."""
    if ts is None:
        ts = sig_timestamp()
    lines = [hashlib.sha256(data).hexdigest(), "ts: %d" % int(ts)]
    if target_soc is not None:
        lines.append("target-soc: %s" % _target_soc(target_soc))
    if private_key is not None:
        lines.append("rsa2048: %s" % rsa_sign(private_key, data).hex())
    return "\n".join(lines) + "\n"


def _parse_line(sig, line, label):
    key, dummy, value = line.partition(":")
    value = value.strip()
    if key == "ts":
        if not re.fullmatch(r"\d+", value):
            raise CarrierError("%s: bad .sig file: ts %r is not a number of seconds" % (label, value))
        sig.ts = int(value)
    elif key == "target-soc":
        if not re.fullmatch(r"[0-9A-Za-z]+", value):
            raise CarrierError("%s: bad .sig file: target-soc %r is not a SoC number such as 2711 or 2712"
                               % (label, value))
        sig.target_soc = value
    elif key == "rsa2048":
        if not re.fullmatch(r"[0-9a-fA-F]{512}", value):
            raise CarrierError("%s: bad .sig file: rsa2048 must be 512 hex digits" % label)
        sig.rsa2048 = value.lower()
    else:
        sig.extra.append(line)


def parse_sig(text, label="sig"):
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise CarrierError("%s: bad .sig file: not ASCII text" % label) from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or not re.fullmatch(r"[0-9a-f]{64}", lines[0]):
        raise CarrierError("%s: bad .sig file: the first line must be a lowercase sha256 hex digest, got %r"
                           % (label, lines[0] if lines else ""))
    sig = Sig(lines[0], None)
    for line in lines[1:]:
        _parse_line(sig, line, label)
    if sig.ts is None:
        raise CarrierError("%s: bad .sig file: no 'ts:' line" % label)
    return sig


def verify_sig(data, sig_text, public_key=None, label="sig", target_soc=None):
    """Check a ``.sig`` against ``data`` (its rsa2048 line against ``public_key``, its target-soc line
    against ``target_soc``). Returns the parsed :class:`Sig`; raises CarrierError naming what does not match.
    """
    sig = parse_sig(sig_text, label)
    digest = hashlib.sha256(data).hexdigest()
    if sig.sha256 != digest:
        raise CarrierError("%s: bad .sig file: sha256 %s does not match the data (%s)" % (label, sig.sha256, digest))
    if target_soc is not None and sig.target_soc != _target_soc(target_soc):
        raise CarrierError("%s: bad .sig file: target-soc %s, the image is for %s"
                           % (label, sig.target_soc or "missing", _target_soc(target_soc)))
    if public_key is not None:
        if sig.rsa2048 is None:
            raise CarrierError("%s: bad .sig file: no rsa2048 signature but a key was given" % label)
        if not rsa_verify(public_key, data, bytes.fromhex(sig.rsa2048)):
            raise CarrierError("%s: bad .sig file: the rsa2048 signature does not verify with the key" % label)
    return sig


def sig_matches(data, sig_text, public_key=None, want_rsa=False, target_soc=None):
    """True when an existing ``.sig`` is valid for ``data``, has (or lacks) rsa2048 as wanted and, with
    ``target_soc``, names that SoC."""
    if sig_text is None:
        return False
    try:
        sig = verify_sig(data, sig_text, public_key, target_soc=target_soc)
    except CarrierError:
        return False
    return (sig.rsa2048 is not None) == bool(want_rsa)
