# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tests/molecule-assets/ceph/objects.py: what reaches the manifest, retries, read-back, cluster state.

librados is replaced by fakes: an ioctx whose writes fail as told, a clock that only moves when
the code sleeps (or a write takes time)."""

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "tests" / "molecule-assets" / "ceph" / "objects.py"


def load():
    spec = importlib.util.spec_from_file_location("ceph_objects", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


objects = load()


class FakeError(Exception):
    """Stands for rados.Error (rados.TimedOut ...)."""


class NotFound(Exception):
    """Stands for rados.ObjectNotFound."""


class Clock:
    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


class FakeIoctx:
    """Objects in a dict; ``failures[name]`` writes of that object fail first, each taking
    ``op_time`` seconds of the clock (a timed-out write)."""

    def __init__(self, clock, failures=None, op_time=10.0, store=None):
        self.clock = clock
        self.failures = dict(failures or {})
        self.op_time = op_time
        self.store = {} if store is None else store
        self.attempts = []

    def write_full(self, name, data):
        self.attempts.append((name, data))
        if self.failures.get(name, 0) > 0:
            self.failures[name] -= 1
            self.clock.now += self.op_time
            raise FakeError("RADOS timed out")
        self.store[name] = bytes(data)

    def stat(self, name):
        if name not in self.store:
            raise NotFound(name)
        return len(self.store[name]), 0

    def read(self, name, length=8192):
        return self.store[name][:length]


def counter_bytes():
    state = {"n": 0}

    def randbytes(size):
        state["n"] += 1
        return (b"%08d" % state["n"] * (size // 8 + 1))[:size]
    return randbytes


def write(ioctx, manifest, clock, count=3, **kwargs):
    lines = []
    kwargs.setdefault("retry_on", (FakeError,))
    written = objects.write_objects(ioctx, str(manifest), count, 64, clock=clock, sleep=clock.sleep,
                                    log=lines.append, randbytes=counter_bytes(), **kwargs)
    return written, lines


def manifest_entries(path):
    return [tuple(line.split()) for line in path.read_text().splitlines()]


def test_every_acknowledged_object_is_in_the_manifest_with_its_checksum(tmp_path):
    clock, manifest = Clock(), tmp_path / "m"
    ioctx = FakeIoctx(clock)
    written, lines = write(ioctx, manifest, clock, count=3)
    assert written == 3
    entries = manifest_entries(manifest)
    assert [name for name, _digest in entries] == ["obj-000000", "obj-000001", "obj-000002"]
    for name, digest in entries:
        assert hashlib.sha256(ioctx.store[name]).hexdigest() == digest
    assert lines[-1].startswith("wrote 3 objects of 64 bytes")


def test_a_failed_write_is_retried_with_the_same_bytes_on_a_new_connection(tmp_path):
    clock, manifest = Clock(), tmp_path / "m"
    stuck = FakeIoctx(clock, failures={"obj-000001": 2})
    fresh = []

    def reconnect():
        # Each new connection sees the same cluster (the same objects and pending failures).
        new = FakeIoctx(clock, store=stuck.store)
        new.failures, new.attempts = stuck.failures, stuck.attempts
        fresh.append(new)
        return new

    written, lines = write(stuck, manifest, clock, count=3, reconnect=reconnect)
    assert written == 3
    tries = [data for name, data in stuck.attempts if name == "obj-000001"]
    assert len(tries) == 3 and len(set(tries)) == 1
    assert len(fresh) == 2  # one per retry, none for the writes that went through first time
    retries = [line for line in lines if line.startswith("retry ")]
    assert len(retries) == 2 and "obj-000001 (attempt 1 failed" in retries[0] and "FakeError" in retries[0]
    assert [name for name, _digest in manifest_entries(manifest)] == ["obj-000000", "obj-000001", "obj-000002"]
    assert dict(manifest_entries(manifest))["obj-000001"] == hashlib.sha256(tries[0]).hexdigest()
    assert "2 retries" in lines[-1]


def test_an_object_never_acknowledged_is_not_in_the_manifest_and_ends_the_run(tmp_path):
    clock, manifest = Clock(), tmp_path / "m"
    ioctx = FakeIoctx(clock, failures={"obj-000001": 10 ** 6}, op_time=10.0)
    with pytest.raises(objects.GaveUp, match="obj-000001: not acknowledged after"):
        write(ioctx, manifest, clock, count=3, retry_for=60, pause=1.0)
    assert [name for name, _digest in manifest_entries(manifest)] == ["obj-000000"]
    # Bounded: the attempts stop within the allowed time (each takes 10 s plus a 1 s pause).
    assert len([n for n, _data in ioctx.attempts if n == "obj-000001"]) == 6
    assert "obj-000002" not in ioctx.store


def test_an_error_not_retried_on_propagates_at_once(tmp_path):
    clock, manifest = Clock(), tmp_path / "m"

    class Broken(FakeIoctx):
        def write_full(self, name, data):
            raise PermissionError("no caps")

    with pytest.raises(PermissionError):
        write(Broken(clock), manifest, clock, count=2)
    assert manifest.read_text() == ""


def test_a_kept_manifest_gets_new_objects_instead_of_overwritten_ones(tmp_path):
    clock, manifest = Clock(), tmp_path / "m"
    manifest.write_text("obj-000000 %s\nobj-000002 %s\n" % ("a" * 64, "b" * 64))
    ioctx = FakeIoctx(clock)
    write(ioctx, manifest, clock, count=2)
    assert sorted(ioctx.store) == ["obj-000001", "obj-000003"]
    names = [name for name, _digest in manifest_entries(manifest)]
    assert names == ["obj-000000", "obj-000002", "obj-000001", "obj-000003"]


def test_a_line_cut_short_is_ignored_then_dropped_before_appending(tmp_path):
    clock, manifest = Clock(), tmp_path / "m"
    manifest.write_text("obj-000000 %s\nobj-000001 %s" % ("a" * 64, "b" * 20))
    assert objects.read_manifest(str(manifest)) == {"obj-000000": "a" * 64}
    ioctx = FakeIoctx(clock)
    _written, lines = write(ioctx, manifest, clock, count=2)
    assert lines[0] == "dropped an unfinished manifest line: 'obj-000001 %s'" % ("b" * 20)
    # The name is free again: its object is written anew, and recorded whole.
    assert sorted(ioctx.store) == ["obj-000001", "obj-000002"]
    assert [name for name, _digest in manifest_entries(manifest)] == ["obj-000000", "obj-000001", "obj-000002"]
    assert manifest.read_text().endswith("\n")


def test_the_rate_paces_writes_from_the_start(tmp_path):
    clock, manifest = Clock(), tmp_path / "m"
    write(FakeIoctx(clock), manifest, clock, count=4, rate=2.0)
    assert clock.sleeps == [0.5, 0.5, 0.5]


def test_progress_lines_while_writing(tmp_path):
    clock, manifest = Clock(), tmp_path / "m"
    _written, lines = write(FakeIoctx(clock), manifest, clock, count=30, rate=2.0)
    progress = [line for line in lines if line.startswith("written ")]
    assert progress and progress[0].startswith("written 11/30 (2.2/s, 0 retries)")


def test_a_malformed_manifest_is_refused(tmp_path):
    manifest = tmp_path / "m"
    manifest.write_text("obj-000000\n")
    with pytest.raises(ValueError, match="m:1: expected 'name sha256'"):
        objects.read_manifest(str(manifest))


def test_verify_reports_lost_and_corrupt_objects(tmp_path):
    clock, manifest = Clock(), tmp_path / "m"
    ioctx = FakeIoctx(clock)
    write(ioctx, manifest, clock, count=4)
    assert objects.verify_objects(ioctx, str(manifest), not_found=(NotFound,), log=lambda _line: None) == (4, [], [])
    del ioctx.store["obj-000001"]
    ioctx.store["obj-000002"] = b"x" + ioctx.store["obj-000002"][1:]
    lines = []
    checked, lost, corrupt = objects.verify_objects(ioctx, str(manifest), not_found=(NotFound,), log=lines.append)
    assert (checked, lost, corrupt) == (4, ["obj-000001"], ["obj-000002"])
    assert lines[0] == "lost: obj-000001" and lines[1].startswith("corrupt: obj-000002")


def status(pgs, osds=(3, 3, 3), health="HEALTH_OK"):
    return {"health": {"status": health},
            "osdmap": {"num_osds": osds[0], "num_up_osds": osds[1], "num_in_osds": osds[2]},
            "pgmap": {"num_pgs": sum(pgs.values()),
                      "pgs_by_state": [{"state_name": s, "count": n} for s, n in pgs.items()]}}


@pytest.mark.parametrize("doc, clean", [
    (status({"active+clean": 33}), True),
    (status({"active+clean": 30, "active+clean+scrubbing": 3}), True),
    (status({"active+clean": 30, "active+undersized+degraded": 3}, osds=(3, 2, 3)), False),
    (status({"active+clean": 33}, osds=(3, 2, 3)), False),
    (status({"active+clean": 33}, osds=(3, 3, 2)), False),
    (status({"stale+active+clean": 33}), False),
    (status({}, osds=(0, 0, 0)), False),
])
def test_cluster_state(doc, clean):
    assert objects.cluster_state(doc)[0] is clean


def test_cluster_state_summary():
    assert objects.cluster_state(status({"active+clean": 30, "peering": 3}, health="HEALTH_WARN"))[1] == (
        "pgs 30/33 clean [30 active+clean, 3 peering]; osds 3, 3 up, 3 in; HEALTH_WARN")


def test_wait_clean_waits_then_gives_up_with_the_last_state():
    clock, lines = Clock(), []
    answers = iter([RuntimeError("monitors away")] + [status({"active+undersized": 8}, osds=(3, 2, 3))] * 100)

    def get_status():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert objects.wait_clean(get_status, 10, every=3.0, clock=clock, sleep=clock.sleep, log=lines.append) is False
    assert lines[0] == "status failed: RuntimeError: monitors away"
    assert lines[-1].startswith("not clean after 10 s: pgs 0/8 clean")
    assert clock.sleeps == [3.0, 3.0, 3.0]


def test_wait_clean_returns_once_clean():
    clock, lines = Clock(), []
    answers = iter([status({"peering": 8}), status({"active+clean": 8})])
    assert objects.wait_clean(lambda: next(answers), 60, clock=clock, sleep=clock.sleep, log=lines.append) is True
    assert lines[-1] == "clean" and len(clock.sleeps) == 1


def test_verify_counts_an_unreadable_object_as_lost_and_goes_on(tmp_path):
    clock, manifest = Clock(), tmp_path / "m"
    ioctx = FakeIoctx(clock)
    write(ioctx, manifest, clock, count=3)

    class Failing(FakeIoctx):
        def read(self, name, length=8192):
            if name == "obj-000000":
                raise FakeError("EIO")
            return super().read(name, length)

    broken = Failing(clock, store=ioctx.store)
    lines = []
    result = objects.verify_objects(broken, str(manifest), not_found=(NotFound,), unreadable=(FakeError,),
                                    log=lines.append)
    assert result == (3, ["obj-000000"], [])
    assert lines == ["lost (unreadable): obj-000000: FakeError: EIO"]


class FakeRados:
    """Stands for the rados module: ``Rados(...).connect()`` fails ``refusals`` times, then connects
    to a cluster whose status is ``status``."""

    Error = FakeError

    def __init__(self, refusals, answer):
        self.refusals, self.answer, self.clusters = refusals, answer, []
        fake = self

        class Rados:
            def __init__(self, conffile, conf):
                self.conf, self.shut = conf, False
                fake.clusters.append(self)

            def connect(self, timeout):
                if fake.refusals:
                    fake.refusals -= 1
                    raise FakeError("RADOS timed out")

            def mon_command(self, command, inbuf):
                assert json.loads(command) == {"prefix": "status", "format": "json"} and inbuf == b""
                return 0, json.dumps(fake.answer).encode(), ""

            def shutdown(self):
                self.shut = True

        self.Rados = Rados


def test_wait_clean_connects_when_the_monitors_answer():
    fake = FakeRados(refusals=2, answer=status({"active+clean": 8}))
    session = objects.Session(7, rados=fake)
    clock, lines = Clock(), []
    assert objects.wait_clean(session.status, 60, errors=(FakeError,), clock=clock, sleep=clock.sleep,
                              log=lines.append) is True
    assert lines[:2] == ["status failed: FakeError: RADOS timed out"] * 2
    assert lines[-1] == "clean"
    # A refused connection is shut down, not leaked; the one that worked stays open until closed.
    assert [c.shut for c in fake.clusters] == [True, True, False]
    assert fake.clusters[-1].conf["rados_osd_op_timeout"] == "7"
    session.close()
    assert fake.clusters[-1].shut and session.cluster is None
