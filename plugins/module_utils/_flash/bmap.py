# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The block map of bmap-tools (``bmaptool create``): which blocks of an image hold data.

Read here rather than through bmap-tools' own ``BmapCopy``: that class parses the file and then
copies with its own threads to a file object, checking each range's checksum on the image side
only, and walks the ranges through a private generator; node_flash needs the ranges themselves
(to write them with its own writer, then read them back from the device and check them again).
The format, as bmaptool 3.x writes and reads it: ``<bmap version="2.0">`` (1.3 and 1.4 too) with
``ImageSize``, ``BlockSize``, ``BlocksCount``, ``MappedBlocksCount``, ``ChecksumType`` (2.0/1.4;
1.3 is SHA-1 with ``sha1`` attributes), ``BmapFileChecksum`` (the file's own checksum computed with
that field's text replaced by zeros) and ``BlockMap`` of ``Range`` elements ``first-last`` (or one
block number) with a ``chksum`` attribute over the range's bytes.
"""

from __future__ import annotations

import hashlib
from xml.etree import ElementTree
from dataclasses import dataclass

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError

MAX_MAJOR = 2


class BmapError(CarrierError):
    """The bmap file is malformed, of an unknown version, or fails its own checksum."""


@dataclass(frozen=True)
class Bmap:
    image_size: int
    block_size: int
    blocks_count: int
    mapped_blocks: int
    checksum_type: str | None
    ranges: tuple  # (first block, last block, checksum or None), in block order

    @property
    def mapped_size(self):
        """Bytes the ranges cover, the last block cut at the image's end."""
        return sum(self.byte_range(first, last)[1] for first, last, _checksum in self.ranges)

    def byte_range(self, first, last):
        """(offset, length) of blocks ``first..last`` in the image."""
        start = first * self.block_size
        return start, min((last + 1) * self.block_size, self.image_size) - start


def _int(xml, tag, path, field):
    node = xml.find(tag)
    try:
        value = int(node.text.strip())
    except (AttributeError, ValueError):
        raise BmapError("%s: %s has no valid <%s>" % (field, path, tag)) from None
    if value < 0:
        raise BmapError("%s: %s: <%s> is negative" % (field, path, tag))
    return value


def _verify_file_checksum(raw, xml, cs_type, tag, path, field):
    node = xml.find(tag)
    if node is None or not (node.text or "").strip():
        raise BmapError("%s: %s has no <%s>" % (field, path, tag))
    expected = node.text.strip().lower()
    position = raw.find(node.text.strip().encode("ascii", "replace"))
    if position < 0:
        raise BmapError("%s: %s: cannot locate its own <%s>" % (field, path, tag))
    zeroed = raw[:position] + b"0" * len(expected) + raw[position + len(expected):]
    actual = hashlib.new(cs_type, zeroed).hexdigest()
    if actual != expected:
        raise BmapError("%s: %s fails its own checksum (%s %s, the file says %s): it is damaged or was edited"
                        % (field, path, cs_type, actual, expected))


def parse(path, field="bmap"):
    """Read and check a bmap file; :class:`Bmap` or a BmapError naming ``field``."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise BmapError("%s: cannot read %s: %s" % (field, path, exc.strerror or exc)) from None
    try:
        xml = ElementTree.fromstring(raw)
    except ElementTree.ParseError as exc:
        raise BmapError("%s: %s is not a bmap file (XML: %s)" % (field, path, exc)) from None
    version = str(xml.attrib.get("version", ""))
    try:
        major, minor = (int(x) for x in version.split(".", 1))
    except ValueError:
        raise BmapError("%s: %s: <bmap> has no version (got %r)" % (field, path, version)) from None
    if xml.tag != "bmap" or major > MAX_MAJOR:
        raise BmapError("%s: %s: bmap format %s is not supported (up to %d.x)" % (field, path, version, MAX_MAJOR))
    image_size = _int(xml, "ImageSize", path, field)
    block_size = _int(xml, "BlockSize", path, field)
    blocks_count = _int(xml, "BlocksCount", path, field)
    mapped = _int(xml, "MappedBlocksCount", path, field)
    if block_size == 0 or blocks_count != (image_size + block_size - 1) // block_size:
        raise BmapError("%s: %s: image size %d does not match %d blocks of %d bytes"
                        % (field, path, image_size, blocks_count, block_size))
    if major >= 2 or (major, minor) == (1, 4):
        cs_node = xml.find("ChecksumType")
        cs_type = (cs_node.text or "").strip().lower() if cs_node is not None else ""
        attr, file_tag = "chksum", "BmapFileChecksum"
    elif (major, minor) == (1, 3):
        cs_type, attr, file_tag = "sha1", "sha1", "BmapFileSHA1"
    else:
        cs_type, attr, file_tag = None, None, None  # before 1.3 bmap files carried no checksums
    if cs_type is not None:
        if cs_type not in hashlib.algorithms_available:
            raise BmapError("%s: %s: unknown checksum type %r" % (field, path, cs_type))
        _verify_file_checksum(raw, xml, cs_type, file_tag, path, field)
    ranges = _ranges(xml, attr, blocks_count, path, field)
    counted = sum(last - first + 1 for first, last, _checksum in ranges)
    if counted != mapped:
        raise BmapError("%s: %s: its ranges cover %d blocks, MappedBlocksCount says %d"
                        % (field, path, counted, mapped))
    return Bmap(image_size, block_size, blocks_count, mapped, cs_type, tuple(ranges))


def _ranges(xml, attr, blocks_count, path, field):
    block_map = xml.find("BlockMap")
    if block_map is None:
        raise BmapError("%s: %s has no <BlockMap>" % (field, path))
    ranges = []
    previous = -1
    for element in block_map.findall("Range"):
        text = (element.text or "").strip()
        parts = [p.strip() for p in text.split("-", 1)]
        try:
            first = int(parts[0])
            last = int(parts[1]) if len(parts) > 1 else first
        except ValueError:
            raise BmapError("%s: %s: bad range %r" % (field, path, text)) from None
        if first > last or first <= previous or last >= blocks_count:
            raise BmapError("%s: %s: range %r is reversed, overlaps the one before, or lies beyond the image's %d "
                            "blocks" % (field, path, text, blocks_count))
        checksum = element.attrib.get(attr) if attr else None
        ranges.append((first, last, checksum.strip().lower() if checksum else None))
        previous = last
    return ranges
