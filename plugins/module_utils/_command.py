# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running a program from a module with a time limit.

``AnsibleModule.run_command`` has no time limit, and module code starts processes only through it
(ansible-test's pylint refuses ``subprocess`` in modules and module_utils). So the program runs
under coreutils' ``timeout(1)``, which every controller and Raspberry Pi OS has: at the limit it
sends SIGTERM, SIGKILL ``KILL_AFTER`` seconds later, and exits 124; it exits 126 when the program
cannot be run and 127 when it does not exist.
"""

from __future__ import annotations

TIMED_OUT = 124
CANNOT_RUN = 126
NOT_FOUND = 127
KILL_AFTER = 5


def timed_runner(run_command, timeout_program="timeout"):
    """``run(argv, timeout) -> (rc, stdout, stderr)`` from a ``run_command(argv)`` such as
    ``AnsibleModule.run_command``; ``rc`` is :data:`TIMED_OUT` when ``argv`` ran past ``timeout``
    seconds, :data:`NOT_FOUND` or :data:`CANNOT_RUN` when it could not start."""

    def run(argv, timeout):
        limit = "%.3f" % max(0.001, float(timeout))
        return run_command([timeout_program, "--kill-after=%d" % KILL_AFTER, limit] + list(argv))

    return run


def module_timed_runner(module):
    """:func:`timed_runner` of an AnsibleModule: timeout(1) found on its PATH (a clear failure if not)."""
    program = module.get_bin_path("timeout", required=True)
    return timed_runner(lambda argv: module.run_command(argv, errors="surrogate_or_replace"), program)
