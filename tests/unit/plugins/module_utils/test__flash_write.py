# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_flash.write: whole-image and bmap writes, read-back verification, and what is refused."""

from __future__ import annotations

import hashlib
import lzma
import os
import shutil
import subprocess

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils._flash import bmap as _bmap
from ansible_collections.picluster.carrier.plugins.module_utils._flash import source, write

MIB = 1024 * 1024


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "os.img"
    with open(path, "wb") as handle:
        handle.truncate(8 * MIB)
        handle.seek(MIB)
        handle.write(os.urandom(300000))
        handle.seek(6 * MIB)
        handle.write(b"\x5a" * 8192)
    return path


def _device(tmp_path, size=16 * MIB, fill=b"\xaa"):
    dev = tmp_path / "dev.img"
    dev.write_bytes(fill * size)
    return str(dev)


@pytest.mark.parametrize("compressed", [False, True])
def test_write_stream_verifies(tmp_path, image, compressed):
    path = str(image)
    if compressed:
        path = str(image) + ".xz"
        with open(path, "wb") as handle:
            handle.write(lzma.compress(image.read_bytes(), preset=0))
    dev = _device(tmp_path)
    lines = []
    result = write.write_stream(source.ImageSource(path), dev, 16 * MIB, write.Progress(lines.append, 0),
                                chunk=MIB, image_size=8 * MIB)
    data = open(dev, "rb").read()
    assert data[:8 * MIB] == image.read_bytes() and data[8 * MIB:] == b"\xaa" * 8 * MIB
    assert result.written == result.image_size == 8 * MIB
    assert result.sha256 == hashlib.sha256(image.read_bytes()).hexdigest()
    assert any(line.startswith("write: 8 of 8 MiB (100%)") for line in lines)
    assert any(line.startswith("verify: 8 of 8 MiB (100%)") for line in lines)
    assert os.path.getsize(dev) == 16 * MIB


def test_image_larger_than_the_device_is_refused_before_the_excess(tmp_path, image):
    dev = _device(tmp_path, size=4 * MIB)
    with pytest.raises(source.ImageError, match="^image: .* holds more than the device's 4194304 bytes"):
        write.write_stream(source.ImageSource(str(image)), dev, 4 * MIB, chunk=MIB)
    assert os.path.getsize(dev) == 4 * MIB  # never grown


def test_corrupt_xz_half_way_names_image(tmp_path, image):
    path = tmp_path / "os.img.xz"
    data = bytearray(lzma.compress(image.read_bytes(), preset=0))
    middle = len(data) // 2
    data[middle:middle + 32] = b"\x00" * 32
    path.write_bytes(bytes(data))
    with pytest.raises(source.ImageError, match="^image: "):
        write.write_stream(source.ImageSource(str(path)), _device(tmp_path), 16 * MIB, chunk=MIB)


def test_read_back_mismatch_is_an_error(tmp_path, image, monkeypatch):
    real_pread = os.pread

    def flipping_pread(fd, length, offset):
        data = real_pread(fd, length, offset)
        return (bytes([data[0] ^ 0xFF]) + data[1:]) if offset == 0 else data

    monkeypatch.setattr(write.os, "pread", flipping_pread)
    with pytest.raises(write.WriteError, match="read back differs from what was written"):
        write.write_stream(source.ImageSource(str(image)), _device(tmp_path), 16 * MIB, chunk=MIB)


def test_device_that_vanished_is_not_created(tmp_path, image):
    with pytest.raises(write.WriteError, match="^device: cannot open .* for writing"):
        write.write_stream(source.ImageSource(str(image)), str(tmp_path / "gone"), 16 * MIB)
    assert not (tmp_path / "gone").exists()


needs_bmaptool = pytest.mark.skipif(shutil.which("bmaptool") is None, reason="bmaptool not installed")


def _bmap_of(image):
    out = str(image) + ".bmap"
    subprocess.run(["bmaptool", "create", "-o", out, str(image)], check=True, capture_output=True)
    return _bmap.parse(out)


@needs_bmaptool
@pytest.mark.parametrize("compressed", [False, True])
def test_write_bmap_writes_only_mapped_ranges(tmp_path, image, compressed):
    b = _bmap_of(image)
    path = str(image)
    if compressed:
        path += ".xz"
        with open(path, "wb") as handle:
            handle.write(lzma.compress(image.read_bytes(), preset=0))
    dev = _device(tmp_path)
    result = write.write_bmap(source.ImageSource(path), b, dev, 16 * MIB, chunk=65536)
    data = open(dev, "rb").read()
    img = image.read_bytes()
    assert result.written == b.mapped_size < 8 * MIB and result.ranges == len(b.ranges) == 2
    for first, last, _checksum in b.ranges:
        offset, length = b.byte_range(first, last)
        assert data[offset:offset + length] == img[offset:offset + length]
    assert data[:MIB] == b"\xaa" * MIB  # unmapped: left alone, as bmaptool does


@needs_bmaptool
def test_image_not_matching_its_bmap(tmp_path, image):
    b = _bmap_of(image)
    with open(image, "r+b") as handle:
        handle.seek(MIB + 10)
        handle.write(b"changed")
    with pytest.raises(source.ImageError, match="^image: .* does not match the bmap"):
        write.write_bmap(source.ImageSource(str(image)), b, _device(tmp_path), 16 * MIB)


@needs_bmaptool
def test_bmap_image_larger_than_the_device(tmp_path, image):
    b = _bmap_of(image)
    dev = _device(tmp_path, size=4 * MIB)
    with pytest.raises(source.ImageError, match="^image: the bmap's image size 8388608 is larger"):
        write.write_bmap(source.ImageSource(str(image)), b, dev, 4 * MIB)
    assert open(dev, "rb").read() == b"\xaa" * 4 * MIB


def test_progress_is_rate_limited():
    now = [0.0]
    lines = []
    progress = write.Progress(lines.append, interval=10, clock=lambda: now[0])
    for step in range(30):
        now[0] = float(step)
        progress("write", step * MIB, 30 * MIB)
    progress("write", 30 * MIB, 30 * MIB, final=True)
    assert len(lines) == 4 and lines[-1].startswith("write: 30 of 30 MiB (100%)")


@needs_bmaptool
def test_bmap_read_back_mismatch_blames_the_device(tmp_path, image, monkeypatch):
    b = _bmap_of(image)
    real_pread = os.pread
    first = b.byte_range(*b.ranges[0][:2])[0]

    def flipping_pread(fd, length, offset):
        data = real_pread(fd, length, offset)
        return (bytes([data[0] ^ 0xFF]) + data[1:]) if offset == first else data

    monkeypatch.setattr(write.os, "pread", flipping_pread)
    with pytest.raises(write.WriteError, match="^device: .* read back differs at byte %d" % first):
        write.write_bmap(source.ImageSource(str(image)), b, _device(tmp_path), 16 * MIB)


def test_bmap_without_checksums_verifies_what_was_written(tmp_path, image, monkeypatch):
    path = tmp_path / "old.bmap"
    path.write_text('<bmap version="1.2"><ImageSize>%d</ImageSize><BlockSize>4096</BlockSize>'
                    '<BlocksCount>2048</BlocksCount><MappedBlocksCount>74</MappedBlocksCount>'
                    '<BlockMap><Range>256-328</Range><Range>1536</Range></BlockMap></bmap>' % (8 * MIB))
    b = _bmap.parse(str(path))
    dev = _device(tmp_path)
    result = write.write_bmap(source.ImageSource(str(image)), b, dev, 16 * MIB)
    assert result.written == 74 * 4096
    data, img = open(dev, "rb").read(), image.read_bytes()
    assert data[MIB:MIB + 73 * 4096] == img[MIB:MIB + 73 * 4096] and data[:MIB] == b"\xaa" * MIB
    real_pread = os.pread
    monkeypatch.setattr(write.os, "pread", lambda fd, n, off: b"\x00" * len(real_pread(fd, n, off)))
    with pytest.raises(write.WriteError, match="read back differs at byte 1048576"):
        write.write_bmap(source.ImageSource(str(image)), b, _device(tmp_path), 16 * MIB)


def test_zero_chunks_of_a_file_device_become_holes(tmp_path, image):
    dev = _device(tmp_path)
    write.write_stream(source.ImageSource(str(image)), dev, 16 * MIB, chunk=MIB)
    data = open(dev, "rb").read()
    assert data[:8 * MIB] == image.read_bytes() and data[8 * MIB:] == b"\xaa" * 8 * MIB
    # 6 of the image's 8 MiB chunks are zeros: punched, not written (the 8 MiB after the image stay allocated)
    assert os.stat(dev).st_blocks * 512 <= 11 * MIB


def test_zero_chunks_without_hole_punching_are_written(tmp_path, image, monkeypatch):
    monkeypatch.setattr(write, "_punch_hole", lambda fd, offset, length: False)
    dev = _device(tmp_path)
    write.write_stream(source.ImageSource(str(image)), dev, 16 * MIB, chunk=MIB)
    assert open(dev, "rb").read(8 * MIB) == image.read_bytes()
    assert os.stat(dev).st_blocks * 512 >= 16 * MIB


def test_zero_chunk_read_back_not_zero_names_the_byte(tmp_path, image, monkeypatch):
    real_pread = os.pread

    def dirty_pread(fd, length, offset):
        data = real_pread(fd, length, offset)
        if offset <= 3 * MIB + 5 < offset + len(data):
            at = 3 * MIB + 5 - offset
            data = data[:at] + b"\x01" + data[at + 1:]
        return data

    monkeypatch.setattr(write.os, "pread", dirty_pread)
    with pytest.raises(write.WriteError, match="read back differs from what was written \\(byte %d, written as zero"
                       % (3 * MIB + 5)):
        write.write_stream(source.ImageSource(str(image)), _device(tmp_path), 16 * MIB, chunk=MIB)


def test_data_chunk_read_back_differs(tmp_path, image, monkeypatch):
    real_pread = os.pread

    def flipping_pread(fd, length, offset):
        data = real_pread(fd, length, offset)
        return (bytes([data[0] ^ 0xFF]) + data[1:]) if offset == MIB else data

    monkeypatch.setattr(write.os, "pread", flipping_pread)
    with pytest.raises(write.WriteError, match="read back differs from what was written \\(the data chunks' SHA-256"):
        write.write_stream(source.ImageSource(str(image)), _device(tmp_path), 16 * MIB, chunk=MIB)
