# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""From a bare rack to a serving cluster (scripts/twin_rack.py), for racks of 5 and 14 twin nodes in
one run: seconds per stage side by side, the time to a serving cluster (every stage up to and
including verify) and its ratio between the two racks, and the memory of each twin node after the
power-loss stage (``podman stats``), by role. ``BENCH_TWIN_NODES`` (default "5,14") sets the racks.
Needs root and podman; skipped with the reason otherwise. Figures only; no pass/fail.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import twin_rack  # noqa: E402

SERVING = ("rack", "flash", "power", "ssh", "prepare", "site", "verify")


def run_rack(count):
    work = tempfile.mkdtemp(prefix="bench-twin-%d-" % count, dir="/tmp")
    rack = twin_rack.Rack(work, count, log=lambda *_args: None)
    ok = True
    try:
        rack.go(twin_rack.STAGES)
    except twin_rack.StageFailed as exc:
        ok = False
        print("bench_twin_rack: %d nodes: a stage failed: %s" % (count, str(exc)[:2000]))
    finally:
        memory = rack.memory()
        rack.stop()
        shutil.rmtree(work, ignore_errors=True)
    return rack, memory, ok


def _memory_by_role(rack, memory):
    roles = {}
    for host, mib in memory.items():
        label = "+".join(r for r in rack.roles.get(host, []) if r != "mpi") or "mpi"
        roles.setdefault(label, []).append(mib)
    return {label: (min(v), max(v), len(v)) for label, v in sorted(roles.items())}


def main():
    if os.geteuid() != 0 or shutil.which("podman") is None:
        print("bench_twin_rack: needs root and podman; skipped")
        return 0
    counts = [int(c) for c in os.environ.get("BENCH_TWIN_NODES", "5,14").split(",") if c.strip()]
    racks = {}
    for count in counts:
        racks[count] = run_rack(count)
    print("%-11s" % "stage" + "".join("%12s" % ("%d nodes" % c) for c in counts))
    for stage in twin_rack.STAGES:
        print("%-11s" % stage + "".join("%12s" % ("%.1f" % racks[c][0].times[stage] if stage in racks[c][0].times
                                                  else "-") for c in counts))
    serving = {c: sum(racks[c][0].times.get(s, 0.0) for s in SERVING) for c in counts}
    print("%-11s" % "to serving" + "".join("%12.1f" % serving[c] for c in counts))
    if len(counts) > 1 and serving[counts[0]]:
        print("to serving, %d vs %d nodes: %.2fx the time for %.1fx the nodes"
              % (counts[-1], counts[0], serving[counts[-1]] / serving[counts[0]], counts[-1] / counts[0]))
    for count in counts:
        rack, memory, ok = racks[count]
        by_role = ", ".join("%s %.0f-%.0f MiB (%d)" % (label, lo, hi, n)
                            for label, (lo, hi, n) in _memory_by_role(rack, memory).items())
        print("memory per twin, %d nodes%s: %s; total %.0f MiB" % (count, "" if ok else " (FAILED run)", by_role,
                                                                   sum(memory.values())))
        print("what the %d-node rack showed:\n%s" % (count, rack.summary()))
        loss = rack.results.get("power_loss")
        if loss:
            print("power loss, %d nodes: %s's OSDs down after %.1f s, up again %.1f s after power-on, clean %.1f s "
                  "after the pull; %s" % (count, loss["victim"], loss["seconds_until_osd_down"],
                                          loss["seconds_until_osd_up_again"], loss["seconds_pull_to_clean"],
                                          loss["verify"][-1]))
    return 0 if all(r[2] for r in racks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
