# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing an image to a device and proving it arrived: chunked writes, fsync, then a read-back
from the device itself (its cached pages dropped first, so the bytes come from the storage, not
from the controller's memory) checked against the SHA-256 of what was written, or with a bmap
against each mapped range's checksum.

Memory stays flat: a few 4 MiB chunks in flight whatever the image size. The device is written and
read by a second thread, so that reading, decompressing and hashing one chunk overlap the I/O of the
next (hashlib, the decompressors and the system calls release the GIL). A write never goes past the
device's size (a simulated device is a file, which would otherwise grow).

A whole image is mostly zeros (free space). Those chunks are still overwritten, but cheaply: on a
regular file (the simulator's device) by punching a hole (fallocate PUNCH_HOLE, so they read back
as zeros without any disk I/O), on a block device by pwrite from one preallocated zero buffer. The
read-back then checks a zero chunk byte for byte against zeros (a memcmp) and hashes only the data
chunks, against the digest of the same data chunks as written: every byte is still verified, while
the SHA-256 of the whole image is the one of what was handed to the device.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import hashlib
import os
import queue
import stat
import threading
import time
from dataclasses import dataclass

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._flash.source import CHUNK, ImageError


class WriteError(CarrierError):
    """Writing or reading back the device failed, or what was read back differs from what was written."""


@dataclass
class WriteResult:
    image_size: int      # bytes of uncompressed image
    written: int         # bytes written to the device
    sha256: str | None   # of the whole image (without a bmap)
    ranges: int          # bmap ranges written and verified (0 without a bmap)
    seconds: float


class Progress(object):
    """Calls ``report(line)`` at most every ``interval`` seconds (and at each phase's end)."""

    def __init__(self, report=None, interval=10.0, clock=time.monotonic):
        self.report = report
        self.interval = interval
        self.clock = clock
        self.start = clock()
        self.last = None

    def __call__(self, phase, done, total, final=False):
        if self.report is None:
            return
        now = self.clock()
        if not final and self.last is not None and now - self.last < self.interval:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-6) / 1e6
        if total:
            line = "%s: %d of %d MiB (%.0f%%), %.1f MB/s" % (phase, done >> 20, total >> 20, 100.0 * done / total, rate)
        else:
            line = "%s: %d MiB, %.1f MB/s" % (phase, done >> 20, rate)
        self.report(line)


def progress_file(path):
    """A ``report(line)`` appending time-stamped lines to ``path`` (emptied now)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w"):
        pass

    def report(line):
        with open(path, "a") as handle:
            handle.write("%s %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), line))
    return report


def open_device(path):
    """The device opened for writing: never created, never truncated; a block device exclusively
    (O_EXCL on a block device fails with EBUSY while anything has it mounted)."""
    try:
        st = os.stat(path)
        flags = os.O_WRONLY | getattr(os, "O_CLOEXEC", 0)
        if stat.S_ISBLK(st.st_mode):
            flags |= os.O_EXCL
        return os.open(path, flags)
    except OSError as exc:
        raise WriteError("device: cannot open %s for writing: %s" % (path, exc.strerror or exc)) from None


def _pwrite_all(fd, data, offset, path):
    view = memoryview(data)
    while view:
        try:
            count = os.pwrite(fd, view, offset)
        except OSError as exc:
            raise WriteError("device: writing %s at byte %d failed: %s" % (path, offset, exc.strerror or exc)) from None
        view = view[count:]
        offset += count


DEPTH = 2  # chunks queued between the two threads

_FALLOC_FL_KEEP_SIZE, _FALLOC_FL_PUNCH_HOLE = 0x01, 0x02
_fallocate = None


def _punch_hole(fd, offset, length):
    """Deallocate ``length`` bytes of a regular file at ``offset`` (they read as zeros, the size is kept);
    False when the file system or the C library cannot."""
    global _fallocate
    if _fallocate is None:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
            _fallocate = libc.fallocate
            _fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
            _fallocate.restype = ctypes.c_int
        except (OSError, AttributeError):
            _fallocate = False
    if not _fallocate:
        return False
    if _fallocate(fd, _FALLOC_FL_KEEP_SIZE | _FALLOC_FL_PUNCH_HOLE, offset, length) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, errno.ENODEV):
        return False
    raise OSError(code, os.strerror(code))


def _zeroes(length, zero):
    """The zero buffer ``zero`` cut to ``length`` bytes."""
    return zero if length == len(zero) else memoryview(zero)[:length]


class _Writer(object):
    """pwrite in a thread; ``put`` re-raises the first error the thread met, ``close`` waits for every write."""

    def __init__(self, fd, path, zero=b""):
        self.fd, self.path = fd, path
        self.queue = queue.Queue(DEPTH)
        self.error = None
        self.zero = zero
        try:
            self.punch = stat.S_ISREG(os.fstat(fd).st_mode)
        except OSError:
            self.punch = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            item = self.queue.get()
            if item is None:
                return
            if self.error is None:
                try:
                    if isinstance(item[1], int):
                        self._zero(*item)
                    else:
                        _pwrite_all(self.fd, item[1], item[0], self.path)
                except BaseException as exc:  # handed to the caller's thread
                    self.error = exc

    def _zero(self, offset, length):
        if self.punch:
            try:
                if _punch_hole(self.fd, offset, length):
                    return
            except OSError as exc:
                raise WriteError("device: zeroing %s at byte %d failed: %s"
                                 % (self.path, offset, exc.strerror or exc)) from None
            self.punch = False
        end = offset + length
        while offset < end:
            count = min(len(self.zero), end - offset)
            _pwrite_all(self.fd, _zeroes(count, self.zero), offset, self.path)
            offset += count

    def put(self, offset, data):
        """Write ``data`` at ``offset``; ``data`` an int: that many zero bytes."""
        if self.error is not None:
            raise self.error
        self.queue.put((offset, data))

    def close(self):
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()
        if self.error is not None:
            raise self.error

    def close_quietly(self):
        """Stop the thread after an error elsewhere (its own error, if any, is not the one to report)."""
        self.error = self.error or WriteError("device: %s: writing stopped" % self.path)
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()


def _prefetch(fd, path, ranges, chunk):
    """(range index, bytes) read ahead by a thread, in order, over every (offset, length) of ``ranges``."""
    out = queue.Queue(DEPTH)
    stop = threading.Event()

    def reader():
        try:
            for index, (offset, length) in enumerate(ranges):
                end = offset + length
                while offset < end and not stop.is_set():
                    try:
                        data = os.pread(fd, min(chunk, end - offset), offset)
                    except OSError as exc:
                        raise WriteError("device: reading %s back at byte %d failed: %s"
                                         % (path, offset, exc.strerror or exc)) from None
                    if not data:
                        raise WriteError("device: %s ended at byte %d while reading it back" % (path, offset))
                    out.put((index, data))
                    offset += len(data)
            out.put(None)
        except BaseException as exc:  # handed to the caller's thread
            out.put(exc)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        while True:
            item = out.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a reader waiting on a full queue
            try:
                out.get(timeout=0.05)
            except queue.Empty:
                pass
        thread.join()


def _drop_cache(fd):
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except (AttributeError, OSError):
        pass


def _sync(fd, path):
    try:
        os.fsync(fd)
    except OSError as exc:
        raise WriteError("device: fsync of %s failed: %s" % (path, exc.strerror or exc)) from None
    _drop_cache(fd)


def _read_back(path, ranges, hash_name, progress, total, chunk=CHUNK, digests=None, zero=None):
    """Each range's digest as read from the device (``ranges``: (offset, length)), in order.

    With ``digests`` (one hash object, or None for a range that must read back as zeros, per range)
    ranges may share a hash object, and a zero range's "digest" is the offset of its first byte that is
    not zero, or None when it is all zeros.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise WriteError("device: cannot open %s to read it back: %s" % (path, exc.strerror or exc)) from None
    try:
        _drop_cache(fd)
        if digests is None:
            digests = [hashlib.new(hash_name) for _range in ranges]
        bad = {}
        done = 0
        position = [r[0] for r in ranges]
        for index, data in _prefetch(fd, path, ranges, chunk):
            digest = digests[index]
            if digest is not None:
                digest.update(data)
            elif index not in bad and data != _zeroes(len(data), zero):
                bad[index] = position[index] + next(i for i, byte in enumerate(data) if byte)
            position[index] += len(data)
            done += len(data)
            progress("verify", done, total)
        return [bad.get(i) if d is None else d.hexdigest() for i, d in enumerate(digests)]
    finally:
        os.close(fd)


def write_stream(source, path, device_size, progress=None, chunk=CHUNK, image_size=None):
    """Write the whole image (``source``: an ImageSource) to ``path``, then verify by read-back."""
    progress = progress or Progress()
    started = time.monotonic()
    digest = hashlib.sha256()
    data_digest = hashlib.sha256()  # of the data chunks only, what the read-back hashes
    zero = bytes(max(chunk, CHUNK))  # also the read-back's read size: large reads
    runs = []  # [offset, length, is zero]: consecutive chunks of one kind merged, so a few entries per image
    offset = 0
    fd = open_device(path)
    writer = _Writer(fd, path, zero)
    try:
        with source.open() as reader:
            while True:
                data = reader.read(chunk)
                if not data:
                    break
                if offset + len(data) > device_size:
                    raise ImageError("image: %s holds more than the device's %d bytes: the image is larger than the "
                                     "node's storage (%s)" % (source.path, device_size, path))
                is_zero = data == _zeroes(len(data), zero)
                writer.put(offset, len(data) if is_zero else data)
                digest.update(data)
                if not is_zero:
                    data_digest.update(data)
                if runs and runs[-1][2] == is_zero:
                    runs[-1][1] += len(data)
                else:
                    runs.append([offset, len(data), is_zero])
                offset += len(data)
                progress("write", offset, image_size)
        writer.close()
        _sync(fd, path)
    finally:
        writer.close_quietly()
        os.close(fd)
    progress("write", offset, image_size, final=True)
    expected = digest.hexdigest()
    shared = hashlib.sha256()
    found = _read_back(path, [(start, length) for start, length, _zero in runs], "sha256", progress, offset,
                       chunk=len(zero), digests=[None if z else shared for _s, _l, z in runs], zero=zero)
    nonzero = [where for (_s, _l, z), where in zip(runs, found) if z and where is not None]
    if nonzero or shared.hexdigest() != data_digest.hexdigest():
        where = ("byte %d, written as zero, is not" % nonzero[0]) if nonzero else "the data chunks' SHA-256"
        raise WriteError("device: %s read back differs from what was written (%s; image SHA-256 %s)"
                         % (path, where, expected))
    progress("verify", offset, offset, final=True)
    return WriteResult(offset, offset, expected, 0, time.monotonic() - started)


def _range_digest(source, offset, length, hash_name, chunk=CHUNK):
    """The digest of ``length`` bytes of the image at ``offset`` (read again: only after a mismatch)."""
    digest = hashlib.new(hash_name)
    with source.open() as reader:
        reader.skip(offset)
        while length > 0:
            data = reader.read(min(chunk, length))
            if not data:
                break
            digest.update(data)
            length -= len(data)
    return digest.hexdigest()


def write_bmap(source, bmap, path, device_size, progress=None, chunk=CHUNK):
    """Write only the ranges ``bmap`` maps, then read them back and check each against its checksum.

    The bytes are hashed once, as the device gives them back: a range that matches its checksum there
    was both in the image and written whole. Only when one does not is the image read again, to say
    which is at fault (the image does not match its bmap, or the device did not keep what it was
    given). A bmap without checksums (format before 1.3) gets the digests of what was written.
    """
    progress = progress or Progress()
    started = time.monotonic()
    if bmap.image_size > device_size:
        raise ImageError("image: the bmap's image size %d is larger than the node's storage (%s, %d bytes)"
                         % (bmap.image_size, path, device_size))
    hash_name = bmap.checksum_type or "sha256"
    spans = [(bmap.byte_range(first, last), checksum) for first, last, checksum in bmap.ranges]
    total = sum(length for (_offset, length), _checksum in spans)
    written = position = 0
    expected = []
    fd = open_device(path)
    writer = _Writer(fd, path)
    try:
        with source.open() as reader:
            for (offset, length), checksum in spans:
                reader.skip(offset - position)
                digest = None if checksum else hashlib.new(hash_name)
                end = offset + length
                while offset < end:
                    data = reader.read(min(chunk, end - offset))
                    if not data:
                        raise ImageError("image: %s ends at byte %d, inside a range the bmap maps (it does not "
                                         "match the bmap)" % (source.path, offset))
                    writer.put(offset, data)
                    if digest is not None:
                        digest.update(data)
                    offset += len(data)
                    written += len(data)
                    progress("write", written, total)
                position = end
                expected.append(checksum or digest.hexdigest())
        writer.close()
        _sync(fd, path)
    finally:
        writer.close_quietly()
        os.close(fd)
    progress("write", written, total, final=True)
    digests = _read_back(path, [span for span, _checksum in spans], hash_name, progress, total)
    for ((offset, length), checksum), wanted, actual in zip(spans, expected, digests):
        if actual == wanted:
            continue
        if checksum and _range_digest(source, offset, length, hash_name) != checksum:
            raise ImageError("image: %s does not match the bmap: blocks at byte %d do not have the %s the bmap "
                             "says (%s)" % (source.path, offset, hash_name, checksum))
        raise WriteError("device: %s read back differs at byte %d (%s %s, expected %s)"
                         % (path, offset, hash_name, actual, wanted))
    progress("verify", total, total, final=True)
    return WriteResult(bmap.image_size, written, None, len(spans), time.monotonic() - started)
