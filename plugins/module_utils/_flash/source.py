# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The image file: its compression (by magic bytes, not by name), a stream of its uncompressed
bytes in constant memory, its SHA-256, and its uncompressed size.

Raw images, xz (and its lzma ancestor) and gzip need only the standard library; zstd needs the
``zstandard`` package (``requirements.txt``; Debian ``python3-zstandard``), imported only when a
zstd image is met. Every fault of a compressed stream (corrupt, truncated) is a
:class:`ImageError` naming ``image`` and about where in the uncompressed image it was met.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import os
import struct
import zlib

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError

CHUNK = 4 * 1024 * 1024

_MAGIC = (
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)
# The legacy .lzma format has no magic; its first byte is the lc/lp/pb properties (93 = 0x5d by default).
_LZMA_ALONE_SUFFIXES = (".lzma",)


class ImageError(CarrierError):
    """The image cannot be read or decompressed."""


def detect_compression(path, field="image"):
    """``raw``, ``xz``, ``lzma``, ``gzip`` or ``zstd`` from the file's first bytes."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError as exc:
        raise ImageError("%s: cannot read %s: %s" % (field, path, exc.strerror or exc)) from None
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if len(head) >= 4 and 0x184D2A50 <= struct.unpack("<I", head[:4])[0] <= 0x184D2A5F:
        return "zstd"  # a skippable frame first, as pzstd writes
    if path.endswith(_LZMA_ALONE_SUFFIXES):
        return "lzma"
    return "raw"


def file_sha256(path, field="image", chunk=CHUNK):
    """The SHA-256 of the file as it is on disk (compressed or not), read in chunks."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while True:
                data = handle.read(chunk)
                if not data:
                    break
                digest.update(data)
    except OSError as exc:
        raise ImageError("%s: cannot read %s: %s" % (field, path, exc.strerror or exc)) from None
    return digest.hexdigest()


def _read_varint(buf, pos):
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("bad varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def xz_uncompressed_size(path):
    """The uncompressed size an xz file's indexes declare (every stream, walking back from the end),
    or None when the file does not read as a well-formed xz file. Costs a few small reads."""
    try:
        with open(path, "rb") as f:
            end = f.seek(0, os.SEEK_END)
            total = streams = 0
            while end > 0:
                while end >= 4:  # stream padding: zero bytes in groups of four
                    f.seek(end - 4)
                    if f.read(4) != b"\x00\x00\x00\x00":
                        break
                    end -= 4
                if end == 0:
                    break
                if end < 24:
                    return None
                f.seek(end - 12)
                footer = f.read(12)
                if footer[10:12] != b"YZ" or zlib.crc32(footer[4:10]) != struct.unpack("<I", footer[:4])[0]:
                    return None
                index_size = (struct.unpack("<I", footer[4:8])[0] + 1) * 4
                index_start = end - 12 - index_size
                if index_start < 12:
                    return None
                f.seek(index_start)
                index = f.read(index_size)
                if index[:1] != b"\x00":
                    return None
                count, pos = _read_varint(index, 1)
                blocks = 0
                for _record in range(count):
                    unpadded, pos = _read_varint(index, pos)
                    size, pos = _read_varint(index, pos)
                    blocks += (unpadded + 3) & ~3
                    total += size
                start = index_start - blocks - 12
                if start < 0:
                    return None
                f.seek(start)
                if f.read(6) != b"\xfd7zXZ\x00":
                    return None
                end = start
                streams += 1
            return total if streams else None
    except (OSError, ValueError):
        return None


def zstd_uncompressed_size(path, field="image"):
    """The uncompressed size a zstd file's frame headers declare, or None when a frame does not say;
    walks every frame's block headers (a few reads per 128 KiB block) so that a truncated file is an
    ImageError before anything is written (zstandard's stream reader ends a truncated frame silently)."""
    total = 0
    known = True
    try:
        with open(path, "rb") as f:
            end = f.seek(0, os.SEEK_END)
            pos = 0
            while pos < end:
                f.seek(pos)
                head = f.read(18)
                magic = struct.unpack("<I", head[:4])[0] if len(head) >= 4 else None
                if magic is not None and 0x184D2A50 <= magic <= 0x184D2A5F and len(head) >= 8:
                    pos += 8 + struct.unpack("<I", head[4:8])[0]
                    continue
                if head[:4] != b"\x28\xb5\x2f\xfd" or len(head) < 5:
                    raise ImageError("%s: %s: no zstd frame at byte %d" % (field, path, pos))
                size, pos = _zstd_frame(f, head, pos, end, path, field)
                if size is None:
                    known = False
                else:
                    total += size
    except OSError as exc:
        raise ImageError("%s: cannot read %s: %s" % (field, path, exc.strerror or exc)) from None
    if pos != end:
        raise ImageError("%s: %s: the zstd stream is truncated (its last block runs past the end)" % (field, path))
    return total if known else None


def _zstd_frame(f, head, pos, end, path, field):
    """(content size or None, position after the frame) of the frame at ``pos``."""
    descriptor = head[4]
    fcs_flag, single, checksum, dict_flag = descriptor >> 6, descriptor >> 5 & 1, descriptor >> 2 & 1, descriptor & 3
    offset = 5 + (0 if single else 1) + (0, 1, 2, 4)[dict_flag]
    fcs_len = (1 if single else 0, 2, 4, 8)[fcs_flag]
    size = None
    if fcs_len:
        size = int.from_bytes(head[offset:offset + fcs_len], "little") + (256 if fcs_len == 2 else 0)
    pos += offset + fcs_len
    while True:
        f.seek(pos)
        raw = f.read(3)
        if len(raw) < 3:
            raise ImageError("%s: %s: the zstd stream is truncated at byte %d" % (field, path, pos))
        header = int.from_bytes(raw, "little")
        kind, length = header >> 1 & 3, header >> 3
        if kind == 3:
            raise ImageError("%s: %s: the zstd stream is corrupt (reserved block type at byte %d)" % (field, path, pos))
        pos += 3 + (1 if kind == 1 else length)
        if pos > end:
            raise ImageError("%s: %s: the zstd stream is truncated (a block runs past the end)" % (field, path))
        if header & 1:
            break
    return size, pos + (4 if checksum else 0)


class ImageSource(object):
    """One image file. ``open()`` returns a reader of its uncompressed bytes (``read(n)``)."""

    def __init__(self, path, field="image"):
        self.path = path
        self.field = field
        if not os.path.isfile(path):
            raise ImageError("%s: %s is not a file" % (field, path))
        self.file_size = os.path.getsize(path)
        self.compression = detect_compression(path, field)

    def declared_size(self):
        """The uncompressed size known without decompressing (raw: the file size; xz: its index), else None."""
        if self.compression == "raw":
            return self.file_size
        if self.compression == "xz":
            return xz_uncompressed_size(self.path)
        if self.compression == "zstd":
            return zstd_uncompressed_size(self.path, self.field)
        return None

    def open(self):
        try:
            if self.compression == "raw":
                # Unbuffered (FileIO): a 4 MiB read goes straight into its buffer (4x faster than BufferedReader here).
                return _Reader(open(self.path, "rb", buffering=0), self)
            if self.compression == "xz":
                return _Reader(_XzStreams(open(self.path, "rb", buffering=0)), self)
            if self.compression == "lzma":
                return _Reader(lzma.open(self.path, "rb", format=lzma.FORMAT_ALONE), self)
            if self.compression == "gzip":
                return _Reader(gzip.open(self.path, "rb"), self)
            try:
                import zstandard
            except ImportError:
                raise ImageError("%s: %s is zstd-compressed: install the zstandard Python package on the controller "
                                 "(pip install zstandard, or Debian's python3-zstandard)" % (self.field, self.path)
                                 ) from None
            raw = open(self.path, "rb")
            return _Reader(zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=True),
                           self)
        except OSError as exc:
            raise ImageError("%s: cannot read %s: %s" % (self.field, self.path, exc.strerror or exc)) from None

    def measure(self, chunk=CHUNK, progress=None):
        """The uncompressed size by one streaming pass (every byte decompressed, checked, dropped)."""
        size = 0
        with self.open() as reader:
            while True:
                data = reader.read(chunk)
                if not data:
                    return size
                size += len(data)
                if progress:
                    progress(size)

    def size(self):
        declared = self.declared_size()
        return declared if declared is not None else self.measure()


class _XzStreams(object):
    """The concatenated streams of an xz file, with stream padding, as xz itself reads them.

    Not ``lzma.open``: its reader stops without a word at anything after a stream that does not
    decode (stream padding, or a damaged second stream), which would pass a short image as whole.
    """

    def __init__(self, handle):
        self.handle = handle
        self.decoder = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        self.pending = b""

    def _next_stream(self):
        rest, zeros = self.decoder.unused_data, 0
        while True:
            if not rest:
                rest = self.handle.read(CHUNK)
                if not rest:
                    break
            stripped = rest.lstrip(b"\0")
            zeros += len(rest) - len(stripped)
            rest = stripped
            if rest:
                break
        if zeros % 4:
            raise lzma.LZMAError("stream padding of %d bytes is not a multiple of four" % zeros)
        if not rest:
            return False
        self.decoder = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        self.pending = rest
        return True

    def read(self, size):
        while True:
            if self.decoder.eof and not self._next_stream():
                return b""
            if self.pending or not self.decoder.needs_input:
                data, self.pending = self.pending, b""
            else:
                data = self.handle.read(CHUNK)
                if not data:
                    raise EOFError("the file ends before the end of its xz stream")
            out = self.decoder.decompress(data, max_length=size)
            if out:
                return out

    def close(self):
        self.handle.close()


def _stream_errors():
    errors = [lzma.LZMAError, EOFError, zlib.error, gzip.BadGzipFile, OSError]
    try:
        import zstandard
        errors.append(zstandard.ZstdError)
    except ImportError:
        pass
    return tuple(errors)


class _Reader(object):
    """The uncompressed bytes, with every decompression fault turned into an ImageError."""

    def __init__(self, inner, source):
        self.inner = inner
        self.source = source
        self.offset = 0
        self._errors = _stream_errors()
        # What the container declares (xz index, zstd frame headers): the stream must end exactly there.
        self.expected = source.declared_size() if source.compression in ("xz", "zstd") else None

    def read(self, size):
        try:
            data = self.inner.read(size)
        except self._errors as exc:
            raise ImageError("%s: %s: the %s stream is corrupt or truncated after %d bytes of image: %s"
                             % (self.source.field, self.source.path, self.source.compression, self.offset, exc)
                             ) from None
        if not data and size and self.expected is not None and self.offset != self.expected:
            raise ImageError("%s: %s: the %s stream ends after %d bytes of image, its headers declare %d"
                             % (self.source.field, self.source.path, self.source.compression, self.offset,
                                self.expected))
        self.offset += len(data)
        return data

    def skip(self, count, chunk=CHUNK):
        """Move ``count`` bytes forward (a seek for a raw file, decompress-and-drop otherwise)."""
        if self.source.compression == "raw":
            self.inner.seek(count, os.SEEK_CUR)
            self.offset += count
            return
        while count > 0:
            data = self.read(min(chunk, count))
            if not data:
                return
            count -= len(data)

    def close(self):
        self.inner.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
