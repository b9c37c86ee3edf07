# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""http_boot_image, run for real: the module as a process with its arguments file, as Ansible runs it."""

from __future__ import annotations

import functools
import hashlib
import os
import sys
from pathlib import Path

from modrun import run_module

REPO = Path(__file__).resolve().parents[4]
_COLL = REPO / ".collections"
sys.path.insert(0, str(REPO / "tests" / "unit" / "plugins" / "module_utils"))
if str(_COLL) not in sys.path:
    sys.path.insert(0, str(_COLL))

from netboot_fixtures import make_boot_dir, make_os_image, rsa_key  # noqa: E402

from ansible_collections.picluster.carrier.plugins.module_utils._eeprom import sig as E  # noqa: E402
from ansible_collections.picluster.carrier.plugins.module_utils import _keys as K  # noqa: E402


run_http_boot_image = functools.partial(run_module, "http_boot_image")


def test_generate_key_build_verify_and_rerun(tmp_path):
    boot = make_boot_dir(tmp_path / "boot")
    key = tmp_path / "keys" / "boot.pem"
    dest = tmp_path / "www" / "cm4"
    args = dict(source=boot, dest=str(dest), signing_key=str(key), generate_key=True,
                cmdline_txt="console=serial0,115200 root=/dev/nfs nfsroot=10.99.0.1:/srv/nfs/cm4 rw ip=dhcp\n")
    r = run_http_boot_image(args, tmp_path, check=True)
    assert r["changed"] is True and r["key_generated"] is True
    assert not key.exists() and not dest.exists()
    r = run_http_boot_image(args, tmp_path)
    assert r["changed"] is True and r["key_generated"] is True, r
    assert os.stat(key).st_mode & 0o777 == 0o600
    img, sig = (dest / "boot.img").read_bytes(), (dest / "boot.sig").read_text()
    assert r["image"] == str(dest / "boot.img") and r["sig"] == str(dest / "boot.sig")
    assert r["sha256"] == hashlib.sha256(img).hexdigest() and r["size"] == len(img) <= 96 * 1024 * 1024
    assert "cmdline.txt" in r["files"] and "overlays/dwc2.dtbo" in r["files"]
    public = K.load_public_key(r["public_key"])
    parsed = E.verify_sig(img, sig, public)
    assert parsed.ts == 1704067200 and sig.splitlines()[0] == r["sha256"]
    assert r["diff"]["before"] == "" and r["diff"]["after"].startswith("boot.img sha256 %s\n" % r["sha256"])
    # Again: same bytes, nothing written.
    mtimes = [os.stat(dest / n).st_mtime_ns for n in ("boot.img", "boot.sig")]
    r2 = run_http_boot_image(args, tmp_path)
    assert r2["changed"] is False and r2["key_generated"] is False and r2["sha256"] == r["sha256"]
    assert [os.stat(dest / n).st_mtime_ns for n in ("boot.img", "boot.sig")] == mtimes
    # A different timestamp makes different bytes (file times are in the image).
    r3 = run_http_boot_image(dict(args, timestamp=1735689600), tmp_path, check=True)
    assert r3["changed"] is True and r3["sha256"] != r["sha256"]
    assert (dest / "boot.img").read_bytes() == img


def test_same_input_same_bytes_from_an_image_and_a_directory(tmp_path):
    boot = make_boot_dir(tmp_path / "boot")
    image = make_os_image(tmp_path / "os.img", boot)
    pem = tmp_path / "k.pem"
    rsa_key(pem)
    common = dict(signing_key=str(pem), volume_id="1a2b3c4d")
    a = run_http_boot_image(dict(common, source=boot, dest=str(tmp_path / "a")), tmp_path)
    b = run_http_boot_image(dict(common, source=image, dest=str(tmp_path / "b")), tmp_path)
    assert a["volume_id"] == b["volume_id"] == "1a2b3c4d"
    assert (tmp_path / "a" / "boot.img").read_bytes() == (tmp_path / "b" / "boot.img").read_bytes()
    assert (tmp_path / "a" / "boot.sig").read_bytes() == (tmp_path / "b" / "boot.sig").read_bytes()


def test_key_content_is_no_log(tmp_path):
    from cryptography.hazmat.primitives import serialization

    boot = make_boot_dir(tmp_path / "boot")
    key = rsa_key()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    r = run_http_boot_image(dict(source=boot, dest=str(tmp_path / "out"), signing_key_content=pem), tmp_path)
    assert r["changed"] is True
    body = pem.splitlines()[5]
    assert body not in r.stdout
    if "invocation" in r:  # ansible-core 2.21 no longer returns the arguments; where it does, masked
        assert r["invocation"]["module_args"]["signing_key_content"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    E.verify_sig((tmp_path / "out" / "boot.img").read_bytes(), (tmp_path / "out" / "boot.sig").read_text(),
                 key.public_key())


def test_bad_input(tmp_path):
    boot = make_boot_dir(tmp_path / "boot")
    pem = tmp_path / "k.pem"
    rsa_key(pem)
    dest = tmp_path / "out"
    r = run_http_boot_image(dict(source=boot, dest=str(dest), signing_key=str(pem), size_mb=200), tmp_path)
    assert r["failed"] and r["msg"].startswith("size_mb: 200 must be from 3 (the smallest FAT16 file system) to 96")
    r = run_http_boot_image(dict(source=boot, dest=str(dest), signing_key=str(pem), size_mb=2), tmp_path)
    assert r["failed"] and r["msg"].startswith("size_mb: 2 must be from 3"), r
    with open(os.path.join(boot, "initramfs8"), "wb") as f:
        f.truncate(100 * 1024 * 1024)
    r = run_http_boot_image(dict(source=boot, dest=str(dest), signing_key=str(pem)), tmp_path)
    assert r["failed"] and r["msg"].startswith("source: its 10 files")
    assert "over the bootloader's limit of 96 MB" in r["msg"]
    with open(os.path.join(boot, "initramfs8"), "wb") as f:
        f.write(os.urandom(5 * 1024 * 1024))
    # mcopy's "Disk full" names the option that set the size, and the size the files need.
    r = run_http_boot_image(dict(source=boot, dest=str(dest), signing_key=str(pem), size_mb=4), tmp_path)
    assert r["failed"] and r["msg"].startswith("size_mb: a 4 MB boot.img cannot hold the 10 files of source"), r
    assert "they need about 8 MB" in r["msg"]
    os.unlink(os.path.join(boot, "initramfs8"))
    r = run_http_boot_image(dict(source=boot, dest=str(dest), signing_key=str(tmp_path / "missing.pem")), tmp_path)
    assert r["failed"] and "missing.pem does not exist" in r["msg"]
    r = run_http_boot_image(dict(source=boot, dest=str(dest)), tmp_path)
    assert r["failed"] and "signing_key" in r["msg"]
    (tmp_path / "bad.pem").write_text("not a key")
    r = run_http_boot_image(dict(source=boot, dest=str(dest), signing_key=str(tmp_path / "bad.pem")), tmp_path)
    assert r["failed"] and r["msg"].startswith("signing_key: not a usable PEM private key")
    r = run_http_boot_image(dict(source=boot, dest=str(dest), signing_key=str(pem), model="cm5"), tmp_path)
    assert r["failed"] and "no config.txt plus bcm2712 device tree" in r["msg"]
    assert not dest.exists()


def test_a_timestamp_fat_cannot_hold_is_refused_and_nothing_is_written(tmp_path):
    # FAT stores file times from 1980-01-01 to 2107-12-31: outside that, mtools would write other
    # times than asked (or fail), and a negative one made a boot.sig that its own check refused
    # after boot.img and boot.sig were already in place.
    boot = make_boot_dir(tmp_path / "boot")
    pem = tmp_path / "k.pem"
    rsa_key(pem)
    dest = tmp_path / "out"
    for ts in (-1, 0, 315532799, 4354819200, 10 ** 13):
        r = run_http_boot_image(dict(source=boot, dest=str(dest), signing_key=str(pem), timestamp=ts), tmp_path)
        assert r.get("failed") and r["msg"].startswith("timestamp: %d is not" % ts), (ts, r)
        assert not dest.exists() or not os.listdir(dest), ts
    r = run_http_boot_image(dict(source=boot, dest=str(dest), signing_key=str(pem), timestamp=315532800), tmp_path)
    assert r["changed"] is True, r


def test_refused_input_creates_no_key(tmp_path):
    # generate_key makes the key file; a run refused for its other options must not leave one behind.
    boot = make_boot_dir(tmp_path / "boot")
    key = tmp_path / "keys" / "boot.pem"
    dest = tmp_path / "out"
    base = dict(source=boot, dest=str(dest), signing_key=str(key), generate_key=True)
    for bad, match in ((dict(timestamp=-1), "timestamp: -1 is not"), (dict(size_mb=200), "size_mb: 200"),
                       (dict(model="cm5"), "no config.txt plus bcm2712 device tree"),
                       (dict(volume_id="xyz"), "volume_id: 'xyz'")):
        r = run_http_boot_image(dict(base, **bad), tmp_path)
        assert r.get("failed") and match in r["msg"], (bad, r)
        assert not key.exists(), bad
        assert not dest.exists() or not os.listdir(dest), bad
    r = run_http_boot_image(base, tmp_path)
    assert r["changed"] is True and r["key_generated"] is True and key.exists(), r
