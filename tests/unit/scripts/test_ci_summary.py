# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""scripts/ci_summary.py: the table and closing line .ci/run ends with, and its exit status."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "ci_summary.py"


def load():
    spec = importlib.util.spec_from_file_location("ci_summary", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ci_summary = load()


def real_junit(tmp_path, name, body):
    """Run pytest on a generated test file and return the JUnit report it writes."""
    tests = tmp_path / f"src_{name}"
    tests.mkdir()
    (tests / f"test_{name}.py").write_text(body)
    report = tmp_path / "out" / "junit" / f"{name}.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests), f"--junitxml={report}"],
        cwd=tests, capture_output=True, check=False,
    )
    return report


def fake_junit(out, name, tests, failures=0, errors=0, skipped=0):
    """A report shaped like pytest's (checked against a real one in the first test)."""
    report = out / "junit" / f"{name}.xml"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(
        '<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">'
        f'<testsuite name="pytest" errors="{errors}" failures="{failures}" skipped="{skipped}" tests="{tests}">'
        "</testsuite></testsuites>"
    )
    return report


def write_timings(out, rows):
    out.mkdir(parents=True, exist_ok=True)
    (out / "timings.tsv").write_text("".join(f"{n}\t{s}\t{st}\n" for n, s, st in rows))


def test_counts_from_a_real_pytest_report(tmp_path):
    body = (
        "import pytest\n"
        "def test_ok(): pass\n"
        "def test_ok2(): pass\n"
        "def test_bad(): assert 1 == 2\n"
        "@pytest.mark.skip(reason='x')\n"
        "def test_skipped(): pass\n"
        "@pytest.fixture\n"
        "def broken(): raise RuntimeError('setup')\n"
        "def test_error(broken): pass\n"
    )
    report = real_junit(tmp_path, "mixed", body)
    # errors (fixture setup) count as failures
    assert ci_summary.junit_counts(report) == (2, 2, 1)
    assert ci_summary.junit_counts(fake_junit(tmp_path / "fake", "mixed", 5, 1, 1, 1)) == (2, 2, 1)


def test_closing_line_and_status_all_green(tmp_path, capsys):
    out = tmp_path / "out"
    fake_junit(out, "units", 2)
    write_timings(out, [("lint", "0.5", "ok"), ("units", "3.0", "ok"), ("sanity", "60.0", "ok")])
    assert ci_summary.main([str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    # pytest's 2 tests plus one check each for lint and sanity
    assert lines[-1] == "ci: 4 passed, 0 failed, 0 skipped"
    assert any(line.startswith("units") and "2 passed, 0 failed" in line for line in lines)


def test_failed_stage_without_tests_counts_as_a_failure(tmp_path, capsys):
    out = tmp_path / "out"
    fake_junit(out, "units", 1)
    write_timings(out, [("units", "1.0", "ok"), ("sanity", "60.0", "FAILED(1)")])
    assert ci_summary.main([str(out)]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "ci: 1 passed, 1 failed, 0 skipped"


def test_pytest_stage_that_crashed_without_recording_a_failure(tmp_path, capsys):
    out = tmp_path / "out"
    fake_junit(out, "units", 1)
    # pytest passed its tests but the stage failed (e.g. a worker crashed after the report)
    write_timings(out, [("units", "1.0", "FAILED(2)")])
    assert ci_summary.main([str(out)]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "ci: 1 passed, 1 failed, 0 skipped"


def test_no_pytest_test_is_a_failure_even_when_every_stage_passed(tmp_path, capsys):
    out = tmp_path / "out"
    write_timings(out, [("lint", "0.5", "ok"), ("sanity", "60.0", "ok")])
    assert ci_summary.main([str(out)]) == 1
    text = capsys.readouterr().out
    assert "no pytest test ran" in text


@pytest.mark.parametrize("line", ["only two\tfields\n", "\n", "a\tb\tc\td\n"])
def test_malformed_timing_lines_are_ignored(tmp_path, line):
    (tmp_path / "timings.tsv").write_text(line + "units\t1.5\tok\n")
    assert ci_summary.read_timings(tmp_path / "timings.tsv") == [("units", 1.5, "ok")]
