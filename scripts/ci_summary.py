# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Summarise a `make test` run for CI: stage timings and the pytest counts of every stage.

Reads tests/output/timings.tsv (written by scripts/stage.sh: name, seconds, status) and the
JUnit reports tests/output/junit/*.xml (written by scripts/pytest-stage.sh), prints a table per
stage, then one closing line ``ci: N passed, N failed, N skipped`` adding up every pytest run
(errors count as failed) and counting each stage that is not a pytest run (lint, sanity,
molecule ...) as one check, passed or failed by its exit status; a pytest stage that failed
without leaving a report counts as one failure too. Exits 1 when anything failed, or when no
pytest test ran at all.

Usage: python scripts/ci_summary.py [OUTPUT_DIR]
"""

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def junit_counts(path):
    """Return (passed, failed, skipped) of one JUnit XML report."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    tests = failed = skipped = 0
    for suite in suites:
        tests += int(suite.get("tests", 0))
        failed += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped += int(suite.get("skipped", 0))
    return tests - failed - skipped, failed, skipped


def read_timings(path):
    """Return [(stage, seconds, status)] in the order the stages ran."""
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) == 3:
                rows.append((parts[0], float(parts[1]), parts[2]))
    return rows


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else Path(__file__).resolve().parent.parent / "tests" / "output"
    timings = read_timings(out / "timings.tsv")
    reports = {p.stem: junit_counts(p) for p in sorted((out / "junit").glob("*.xml"))}

    print(f"{'stage':<24} {'seconds':>8}  {'status':<12} pytest")
    for stage, seconds, status in timings:
        counts = reports.get(stage)
        tests = f"{counts[0]} passed, {counts[1]} failed, {counts[2]} skipped" if counts else ""
        print(f"{stage:<24} {seconds:>8.1f}  {status:<12} {tests}")
    for stage in sorted(set(reports) - {t[0] for t in timings}):
        passed, failed, skipped = reports[stage]
        print(f"{stage:<24} {'':>8}  {'':<12} {passed} passed, {failed} failed, {skipped} skipped")

    passed = sum(c[0] for c in reports.values())
    failed = sum(c[1] for c in reports.values())
    skipped = sum(c[2] for c in reports.values())
    ran_pytest = passed + failed > 0
    for stage, _seconds, status in timings:
        if stage in reports and not (status != "ok" and reports[stage][1] == 0):
            continue
        if status == "ok":
            passed += 1
        else:
            failed += 1
    if not ran_pytest:
        print("ci: no pytest test ran: that is a failure of the build, not a pass")
    print(f"ci: {passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed or not ran_pytest else 0


if __name__ == "__main__":
    sys.exit(main())
