# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Data-integrity checks on a Ceph cluster, for the twin rack test's power loss stage.

Run as root on a host with /etc/ceph/ceph.conf and the admin keyring:

  objects.py write --pool P --count N --size BYTES --manifest FILE [--prefix X] [--rate R]
      Writes N objects of random bytes to pool P (a replicated pool, created when missing) at about
      R a second. A write is recorded in the manifest, as "name sha256", only once Ceph has
      acknowledged it, so the manifest is a list of what the cluster promised to keep. A write that
      fails or times out is retried with the same bytes until acknowledged, for --retry-for seconds.
  objects.py verify --pool P --manifest FILE
      Reads every object of the manifest back and compares its checksum.
  objects.py wait-clean --timeout S
      Waits until every PG is active+clean and every OSD up and in.

Exit status 0 when the check holds, 1 when it does not, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time

CONF = "/etc/ceph/ceph.conf"
KEYRING = "/etc/ceph/ceph.client.admin.keyring"
# How long one operation may take before librados gives up on it. Long enough for a healthy small
# cluster under load, short enough that a write stuck on a dead OSD (before the monitors mark it
# down and its PGs move on) is retried rather than waited on.
OP_TIMEOUT = 10
RETRY_FOR = 300
# Pause between two attempts at the same object: the cluster needs seconds to notice a dead OSD.
RETRY_PAUSE = 1.0
PROGRESS_EVERY = 5.0


class GaveUp(Exception):
    """An operation kept failing for longer than it was allowed to."""


def read_manifest(path):
    """The manifest's entries, name -> sha256, in order; a missing manifest is an empty one. A last
    line without its newline is a record cut short (its machine went down before the fsync): it is
    left out, as its object's acknowledgement was never fully recorded."""
    entries = {}
    try:
        with open(path, encoding="ascii") as manifest:
            text = manifest.read()
    except FileNotFoundError:
        return entries
    for number, line in enumerate(text.split("\n")[:-1], 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2:
            raise ValueError("%s:%d: expected 'name sha256', got %r" % (path, number, line))
        entries[fields[0]] = fields[1]
    return entries


def drop_partial_line(path):
    """Cut a last line without its newline off the manifest, so that appending starts on a line of
    its own; returns what was cut (empty when nothing was)."""
    try:
        with open(path, "rb+") as manifest:
            data = manifest.read()
            end = data.rfind(b"\n") + 1
            if end < len(data):
                manifest.truncate(end)
                manifest.flush()
                os.fsync(manifest.fileno())
            return data[end:]
    except FileNotFoundError:
        return b""


def fsync_dir(path):
    """Make a new file's directory entry durable (its fsync covers only its contents)."""
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def retrying(operation, what, retry_on, retry_for=RETRY_FOR, pause=RETRY_PAUSE, clock=time.monotonic,
             sleep=time.sleep, log=print):
    """Call ``operation()`` until it returns, retrying on ``retry_on`` exceptions for ``retry_for`` s."""
    start = clock()
    attempt = 1
    while True:
        try:
            return operation()
        except retry_on as error:
            waited = clock() - start
            if waited + pause > retry_for:
                raise GaveUp("%s: not acknowledged after %d attempts in %.0f s, last error: %s"
                             % (what, attempt, waited, describe(error))) from error
            log("retry %s (attempt %d failed after %.1f s: %s)" % (what, attempt, waited, describe(error)))
            sleep(pause)
            attempt += 1


def describe(error):
    return "%s: %s" % (type(error).__name__, error) if str(error) else type(error).__name__


def new_names(existing, prefix, count):
    """``count`` object names ``prefix-NNNNNN`` the manifest does not list yet: writing again with a
    manifest kept from an earlier run adds objects instead of overwriting ones it vouches for."""
    names = []
    index = 0
    while len(names) < count:
        name = "%s-%06d" % (prefix, index)
        if name not in existing:
            names.append(name)
        index += 1
    return names


def write_objects(ioctx, manifest_path, count, size, prefix="obj", rate=None, retry_on=(Exception,),
                  reconnect=None, retry_for=RETRY_FOR, pause=RETRY_PAUSE, clock=time.monotonic, sleep=time.sleep,
                  log=print, randbytes=os.urandom):
    """Write ``count`` objects through ``ioctx`` (``write_full(name, data)``), each recorded in the
    manifest after its acknowledgement. Returns how many were written; raises GaveUp when one never
    is (the objects before it stay in the manifest).

    ``reconnect()``, when given, returns a new ioctx on a new connection; a retry goes through one. A
    client that has timed out on an OSD can stay stuck with it after it comes back (seen with
    librados 16: every write to a restarted OSD timed out for minutes while new clients wrote at
    once), so a retry does not reuse it."""
    cut = drop_partial_line(manifest_path)
    if cut:
        log("dropped an unfinished manifest line: %r" % cut.decode("ascii", "replace"))
    created = not os.path.exists(manifest_path)
    names = new_names(read_manifest(manifest_path), prefix, count)
    start = last_progress = clock()
    retries = 0
    current = {"ioctx": ioctx, "stale": False}

    def put(name, data):
        if current["stale"] and reconnect is not None:
            current["ioctx"] = reconnect()
        current["stale"] = True
        current["ioctx"].write_full(name, data)
        current["stale"] = False

    def counting_log(line):
        nonlocal retries
        retries += 1
        log(line)

    with open(manifest_path, "a", encoding="ascii") as manifest:
        if created:
            fsync_dir(manifest_path)
        for done, name in enumerate(names):
            if rate:
                # Paced against the start, not the previous write, so retries do not slow the rest.
                ahead = start + done / rate - clock()
                if ahead > 0:
                    sleep(ahead)
            data = randbytes(size)
            retrying(lambda: put(name, data), name, retry_on, retry_for, pause, clock, sleep, counting_log)
            manifest.write("%s %s\n" % (name, hashlib.sha256(data).hexdigest()))
            manifest.flush()
            os.fsync(manifest.fileno())
            now = clock()
            if now - last_progress >= PROGRESS_EVERY:
                last_progress = now
                speed = (done + 1) / max(now - start, 1e-9)
                log("written %d/%d (%.1f/s, %d retries)" % (done + 1, count, speed, retries))
    elapsed = clock() - start
    log("wrote %d objects of %d bytes in %.1f s, %d retries" % (count, size, elapsed, retries))
    return count


def verify_objects(ioctx, manifest_path, not_found=(), retry_on=(), unreadable=(), retry_for=60,
                   clock=time.monotonic, sleep=time.sleep, log=print):
    """Read back every object of the manifest; returns (checked, lost names, corrupt names). An object
    whose read fails with one of ``unreadable`` (an I/O error) is lost too, and the others still get
    checked."""
    entries = read_manifest(manifest_path)
    lost, corrupt = [], []
    for name, expected in entries.items():
        def read(name=name):
            size, _mtime = ioctx.stat(name)
            return ioctx.read(name, length=size) if size else b""
        try:
            data = retrying(read, name, retry_on, retry_for, RETRY_PAUSE, clock, sleep, log)
        except not_found:
            lost.append(name)
            log("lost: %s" % name)
            continue
        except GaveUp as error:
            lost.append(name)
            log("lost (unreadable): %s" % error)
            continue
        except unreadable as error:
            lost.append(name)
            log("lost (unreadable): %s: %s" % (name, describe(error)))
            continue
        if hashlib.sha256(data).hexdigest() != expected:
            corrupt.append(name)
            log("corrupt: %s (sha256 %s, manifest %s)" % (name, hashlib.sha256(data).hexdigest(), expected))
    return len(entries), lost, corrupt


def cluster_state(status):
    """(clean, one-line summary) of ``ceph status --format json``'s document."""
    osdmap = status.get("osdmap", {})
    osdmap = osdmap.get("osdmap", osdmap)
    osds, up, in_ = osdmap.get("num_osds", 0), osdmap.get("num_up_osds", 0), osdmap.get("num_in_osds", 0)
    pgmap = status.get("pgmap", {})
    pgs = pgmap.get("num_pgs", 0)
    states = {s["state_name"]: s["count"] for s in pgmap.get("pgs_by_state", [])}
    clean = sum(n for s, n in states.items() if {"active", "clean"} <= set(s.split("+")) and "stale" not in s)
    summary = "pgs %d/%d clean [%s]; osds %d, %d up, %d in; %s" % (
        clean, pgs, ", ".join("%d %s" % (n, s) for s, n in sorted(states.items())) or "none", osds, up, in_,
        status.get("health", {}).get("status", "health unknown"))
    return osds > 0 and up == osds and in_ == osds and clean == pgs, summary


def wait_clean(get_status, timeout, errors=(OSError, RuntimeError, ValueError), every=3.0, clock=time.monotonic,
               sleep=time.sleep, log=print):
    """Poll ``get_status()`` until the cluster is clean; True when it is, False on timeout. A status
    that fails with one of ``errors`` (monitors unreachable for a moment) counts as not clean."""
    deadline = clock() + timeout
    summary = "no answer from the monitors yet"
    while True:
        try:
            clean, summary = cluster_state(get_status())
        except errors as error:
            clean, summary = False, "status failed: %s" % describe(error)
        log(summary)
        if clean:
            log("clean")
            return True
        if clock() + every > deadline:
            log("not clean after %d s: %s" % (timeout, summary))
            return False
        sleep(every)


# --- librados ---------------------------------------------------------------------------------------------

class Session:
    """A connection to the cluster (``cluster``, made by ``connect()``) and, once ``open(pool)``, an
    ioctx on a pool. ``rados`` is the librados binding (the import, by default)."""

    def __init__(self, op_timeout, rados=None):
        if rados is None:
            import rados  # only on the Ceph hosts, not needed by the unit tests

        self.rados = rados
        self.op_timeout = op_timeout
        self.pool = None
        self.ioctx = None
        self.cluster = None

    def connect(self):
        timeout = str(self.op_timeout)
        cluster = self.rados.Rados(conffile=CONF, conf={
            "keyring": KEYRING, "rados_osd_op_timeout": timeout, "rados_mon_op_timeout": timeout,
            "client_mount_timeout": timeout})
        try:
            cluster.connect(timeout=self.op_timeout)
        except self.rados.Error:
            cluster.shutdown()
            raise
        self.cluster = cluster
        return cluster

    def open(self, pool):
        self.pool = pool
        self.ioctx = self.cluster.open_ioctx(pool)
        return self.ioctx

    def reconnect(self):
        self.close()
        self.connect()
        return self.open(self.pool)

    def status(self):
        """``ceph status``'s document. Connects first when not connected, so that monitors out of
        reach at the start (or the machine running this just booted) make a failed poll, not a
        failed wait."""
        if self.cluster is None:
            self.connect()
        return mon_command(self.cluster, prefix="status")

    def close(self):
        if self.ioctx is not None:
            self.ioctx.close()
            self.ioctx = None
        if self.cluster is not None:
            self.cluster.shutdown()
            self.cluster = None


def mon_command(cluster, **command):
    ret, out, err = cluster.mon_command(json.dumps(dict(command, format="json")), b"")
    if ret != 0:
        raise RuntimeError("ceph %s: %s (%d)" % (command["prefix"], err or os.strerror(-ret), ret))
    return json.loads(out) if out else None


def ensure_pool(cluster, pool, log=print):
    if not cluster.pool_exists(pool):
        cluster.create_pool(pool)
        log("created pool %s" % pool)
    # Without an application Ceph reports the pool in a HEALTH_WARN; enabling it again is a no-op.
    mon_command(cluster, prefix="osd pool application enable", pool=pool, app="rados")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--op-timeout", type=int, default=OP_TIMEOUT,
                        help="seconds librados waits for one operation (default %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)
    write = sub.add_parser("write", help="write objects, recording the acknowledged ones")
    write.add_argument("--pool", required=True)
    write.add_argument("--count", type=int, required=True)
    write.add_argument("--size", type=int, required=True, help="bytes per object")
    write.add_argument("--manifest", required=True, help="file the acknowledged objects are appended to")
    write.add_argument("--prefix", default="obj", help="object names are PREFIX-NNNNNN (default %(default)s)")
    write.add_argument("--rate", type=float, help="objects a second (default: as fast as acknowledged)")
    write.add_argument("--retry-for", type=float, default=RETRY_FOR,
                       help="seconds one object may take, retries included (default %(default)s)")
    verify = sub.add_parser("verify", help="read the manifest's objects back and check them")
    verify.add_argument("--pool", required=True)
    verify.add_argument("--manifest", required=True)
    wait = sub.add_parser("wait-clean", help="wait for all PGs active+clean and all OSDs up and in")
    wait.add_argument("--timeout", type=float, required=True, help="seconds")
    args = parser.parse_args(argv)
    if args.command == "write" and (args.count < 1 or args.size < 0 or (args.rate is not None and args.rate <= 0)):
        parser.error("--count must be at least 1, --size not negative, --rate positive")

    def log(line):
        print(line, flush=True)

    session = Session(args.op_timeout)
    rados = session.rados
    try:
        if args.command == "wait-clean":
            clean = wait_clean(session.status, args.timeout, errors=(rados.Error, RuntimeError, ValueError), log=log)
            return 0 if clean else 1
        cluster = session.connect()
        if args.command == "write":
            ensure_pool(cluster, args.pool, log)
            ioctx = session.open(args.pool)
            try:
                write_objects(ioctx, args.manifest, args.count, args.size, args.prefix, args.rate,
                              retry_on=(rados.Error,), reconnect=session.reconnect, retry_for=args.retry_for,
                              log=log)
            except GaveUp as error:
                log("write failed: %s" % error)
                return 1
            return 0
        if not cluster.pool_exists(args.pool):
            log("verify: no pool %s" % args.pool)
            return 1
        checked, lost, corrupt = verify_objects(session.open(args.pool), args.manifest,
                                                not_found=(rados.ObjectNotFound,), retry_on=(rados.TimedOut,),
                                                unreadable=(rados.Error,), log=log)
        log("verified %d objects, %d lost, %d corrupt" % (checked, len(lost), len(corrupt)))
        return 1 if lost or corrupt else 0
    finally:
        session.close()


if __name__ == "__main__":
    sys.exit(main())
