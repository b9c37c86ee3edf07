# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_flash.bmap against the files the real ``bmaptool create`` writes, and every refusal."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils._flash import bmap

MIB = 1024 * 1024
pytestmark = pytest.mark.skipif(shutil.which("bmaptool") is None, reason="bmaptool (Debian bmap-tools) not installed")


@pytest.fixture
def image(tmp_path):
    """A sparse 8 MiB file with data at 1 MiB and 5 MiB (two mapped ranges) and a partial last block."""
    path = tmp_path / "os.img"
    with open(path, "wb") as handle:
        handle.truncate(8 * MIB + 1000)
        handle.seek(MIB)
        handle.write(os.urandom(12288))
        handle.seek(5 * MIB)
        handle.write(os.urandom(4096))
        handle.seek(8 * MIB)
        handle.write(b"tail" * 250)
    return path


@pytest.fixture
def bmap_file(image):
    out = image.parent / "os.bmap"
    subprocess.run(["bmaptool", "create", "-o", str(out), str(image)], check=True, capture_output=True)
    return out


def test_parses_bmaptool_output(image, bmap_file):
    b = bmap.parse(str(bmap_file))
    assert b.image_size == 8 * MIB + 1000 and b.block_size == 4096
    assert b.blocks_count == (8 * MIB + 1000 + 4095) // 4096
    assert [(first, last) for first, last, _checksum in b.ranges] == [(256, 258), (1280, 1280), (2048, 2048)]
    assert b.mapped_size == 12288 + 4096 + 1000  # the last block cut at the image's end
    data = image.read_bytes()
    for first, last, checksum in b.ranges:
        offset, length = b.byte_range(first, last)
        assert hashlib.new(b.checksum_type, data[offset:offset + length]).hexdigest() == checksum


def test_edited_file_fails_its_own_checksum(bmap_file):
    text = bmap_file.read_text().replace("<Range chksum", "<Range  chksum", 1)
    bmap_file.write_text(text)
    with pytest.raises(bmap.BmapError, match="^bmap: .* fails its own checksum"):
        bmap.parse(str(bmap_file))


@pytest.mark.parametrize("xml,message", [
    ("not xml", "is not a bmap file"),
    ('<bmap version="3.0"></bmap>', "bmap format 3.0 is not supported"),
    ('<bmap></bmap>', "has no version"),
    ('<bmap version="1.2"><ImageSize>4096</ImageSize><BlockSize>4096</BlockSize><BlocksCount>2</BlocksCount>'
     '<MappedBlocksCount>1</MappedBlocksCount><BlockMap><Range>0</Range></BlockMap></bmap>',
     "image size 4096 does not match 2 blocks"),
    ('<bmap version="1.2"><ImageSize>8192</ImageSize><BlockSize>4096</BlockSize><BlocksCount>2</BlocksCount>'
     '<MappedBlocksCount>1</MappedBlocksCount><BlockMap><Range>1-0</Range></BlockMap></bmap>', "is reversed"),
    ('<bmap version="1.2"><ImageSize>8192</ImageSize><BlockSize>4096</BlockSize><BlocksCount>2</BlocksCount>'
     '<MappedBlocksCount>3</MappedBlocksCount><BlockMap><Range>0-2</Range></BlockMap></bmap>', "beyond the image"),
    ('<bmap version="1.2"><ImageSize>8192</ImageSize><BlockSize>4096</BlockSize><BlocksCount>2</BlocksCount>'
     '<MappedBlocksCount>2</MappedBlocksCount><BlockMap><Range>1</Range></BlockMap></bmap>',
     "cover 1 blocks, MappedBlocksCount says 2"),
    ('<bmap version="1.2"><BlockSize>4096</BlockSize></bmap>', "has no valid <ImageSize>"),
])
def test_refusals(tmp_path, xml, message):
    path = tmp_path / "x.bmap"
    path.write_text(xml)
    with pytest.raises(bmap.BmapError, match=message):
        bmap.parse(str(path))


def test_old_format_without_checksums(tmp_path):
    path = tmp_path / "old.bmap"
    path.write_text('<bmap version="1.2"><ImageSize>8192</ImageSize><BlockSize>4096</BlockSize>'
                    '<BlocksCount>2</BlocksCount><MappedBlocksCount>1</MappedBlocksCount>'
                    '<BlockMap><Range> 1 </Range></BlockMap></bmap>')
    b = bmap.parse(str(path))
    assert b.checksum_type is None and b.ranges == ((1, 1, None),)


def test_missing_file(tmp_path):
    with pytest.raises(bmap.BmapError, match="^bmap: cannot read"):
        bmap.parse(str(tmp_path / "absent.bmap"))
