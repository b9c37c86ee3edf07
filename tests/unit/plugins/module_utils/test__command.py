# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_command.timed_runner with the real timeout(1): the exit codes it maps a hang and a missing program to."""

from __future__ import annotations

import subprocess
import time

from ansible_collections.picluster.carrier.plugins.module_utils import _command


def _run_command(argv):
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout, done.stderr


def test_output_of_a_program_that_ends_in_time():
    run = _command.timed_runner(_run_command)
    assert run(["sh", "-c", "echo out; echo err >&2; exit 3"], 10) == (3, "out\n", "err\n")


def test_a_hang_is_timed_out_and_killed():
    run = _command.timed_runner(_run_command)
    started = time.monotonic()
    rc, _out, _err = run(["sleep", "30"], 0.2)
    assert rc == _command.TIMED_OUT and time.monotonic() - started < 10


def test_a_missing_and_a_non_executable_program(tmp_path):
    run = _command.timed_runner(_run_command)
    assert run([str(tmp_path / "absent")], 5)[0] == _command.NOT_FOUND
    plain = tmp_path / "plain"
    plain.write_text("#!/bin/sh\n")
    assert run([str(plain)], 5)[0] == _command.CANNOT_RUN
