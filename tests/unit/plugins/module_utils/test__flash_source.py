# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_flash.source: compression by magic bytes, streams, sizes (xz index), SHA-256, corrupt streams."""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils._flash import source

MIB = 1024 * 1024


@pytest.fixture
def raw(tmp_path):
    path = tmp_path / "os.img"
    data = bytearray(6 * MIB)
    data[MIB:MIB + 65536] = os.urandom(65536)
    data[-3:] = b"end"
    path.write_bytes(bytes(data))
    return path


def _compressed(raw, kind):
    data = raw.read_bytes()
    out = raw.parent / ("os.img." + kind)
    if kind == "xz":
        out.write_bytes(lzma.compress(data, preset=0))
    elif kind == "lzma":
        out.write_bytes(lzma.compress(data, format=lzma.FORMAT_ALONE, preset=0))
    elif kind == "gz":
        out.write_bytes(gzip.compress(data, 1))
    else:
        import zstandard
        out.write_bytes(zstandard.ZstdCompressor(level=1, write_checksum=True).compress(data))  # as the zstd CLI
    return out


@pytest.mark.parametrize("kind,name", [("xz", "xz"), ("lzma", "lzma"), ("gz", "gzip"), ("zst", "zstd")])
def test_streams_and_sizes(raw, kind, name):
    path = _compressed(raw, kind)
    src = source.ImageSource(str(path))
    assert src.compression == name
    with src.open() as reader:
        assert reader.read(MIB) == raw.read_bytes()[:MIB]
        reader.skip(3 * MIB)
        assert reader.read(MIB) == raw.read_bytes()[4 * MIB:5 * MIB]
    assert src.measure() == raw.stat().st_size == src.size()
    assert src.declared_size() == (raw.stat().st_size if name in ("xz", "zstd") else None)


def test_raw_by_magic_not_name(raw, tmp_path):
    named = tmp_path / "looks.img.xz"
    named.write_bytes(raw.read_bytes())
    src = source.ImageSource(str(named))
    assert src.compression == "raw" and src.declared_size() == raw.stat().st_size
    xz_named_img = tmp_path / "really-xz.img"
    xz_named_img.write_bytes(lzma.compress(b"x" * 1000))
    assert source.ImageSource(str(xz_named_img)).compression == "xz"


def test_xz_index_of_several_streams_with_padding(tmp_path):
    path = tmp_path / "multi.img.xz"
    path.write_bytes(lzma.compress(b"a" * 100000) + b"\0" * 8 + lzma.compress(b"b" * 12345))
    assert source.xz_uncompressed_size(str(path)) == 112345
    assert source.ImageSource(str(path)).measure() == 112345


@pytest.mark.parametrize("blob", [b"", b"\xfd7zXZ\x00garbage" * 3, b"\x00" * 64])
def test_xz_index_unreadable_is_none(tmp_path, blob):
    path = tmp_path / "bad.xz"
    path.write_bytes(blob)
    assert source.xz_uncompressed_size(str(path)) is None


@pytest.mark.parametrize("kind", ["xz", "gz", "zst"])
def test_corrupt_stream_half_way_names_image(raw, kind):
    path = _compressed(raw, kind)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(b ^ 0xFF for b in data[middle:middle + 64])
    path.write_bytes(bytes(data))
    with pytest.raises(source.ImageError, match=r"^image: .*stream (is corrupt|is truncated|ends after)"):
        source.ImageSource(str(path)).measure()


@pytest.mark.parametrize("kind", ["xz", "gz", "zst"])
def test_truncated_stream_names_image(raw, kind):
    path = _compressed(raw, kind)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(source.ImageError, match="^image: "):
        source.ImageSource(str(path)).measure()


def test_file_sha256_and_missing(raw, tmp_path):
    assert source.file_sha256(str(raw), chunk=1000) == hashlib.sha256(raw.read_bytes()).hexdigest()
    with pytest.raises(source.ImageError, match="^image: .* is not a file"):
        source.ImageSource(str(tmp_path / "absent.img"))
    with pytest.raises(source.ImageError, match="^image: .* is not a file"):
        source.ImageSource(str(tmp_path))


def test_zstd_without_the_package_says_how_to_install(raw, monkeypatch):
    import builtins
    path = _compressed(raw, "zst")
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "zstandard":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(source.ImageError, match="install the zstandard Python package"):
        source.ImageSource(str(path)).open()


def test_zstd_frames_without_size_and_skippable_frames(tmp_path):
    import zstandard
    frame = zstandard.ZstdCompressor(write_content_size=False).compress(b"z" * 5000)
    skippable = b"\x50\x2a\x4d\x18" + (4).to_bytes(4, "little") + b"meta"
    path = tmp_path / "x.img.zst"
    path.write_bytes(skippable + frame + zstandard.ZstdCompressor().compress(b"y" * 10))
    assert source.zstd_uncompressed_size(str(path)) is None
    assert source.ImageSource(str(path)).measure() == 5010


def test_xz_trailing_garbage_is_an_error(tmp_path):
    path = tmp_path / "x.img.xz"
    path.write_bytes(lzma.compress(b"a" * 1000) + b"garbage!")
    with pytest.raises(source.ImageError, match="^image: "):
        source.ImageSource(str(path)).measure()
    path.write_bytes(lzma.compress(b"a" * 1000) + b"\0\0\0")  # padding not a multiple of four
    with pytest.raises(source.ImageError, match="stream padding of 3 bytes"):
        source.ImageSource(str(path)).measure()
