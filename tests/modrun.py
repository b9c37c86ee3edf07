# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a module of the collection the way Ansible runs it: a fresh interpreter, an arguments file.

The one helper for the unit and integration tests of modules (tests/ is on sys.path through the
root conftest.py): ``from modrun import run_module``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COLLECTIONS = REPO / ".collections"


class ModuleResult(dict):
    """The module's JSON result (the dict), with the process beside it: ``exit_status`` (0, or 1 after
    fail_json), ``stdout`` (the raw JSON text, to check what a secret would have leaked into) and ``stderr``.
    """

    def __init__(self, result, exit_status, stdout, stderr):
        super().__init__(result)
        self.exit_status = exit_status
        self.stdout = stdout
        self.stderr = stderr


def run_module(name, args, workdir, check=False, diff=True, tmpdir=False, env=None, while_running=None,
               timeout=300):
    """Run plugins/modules/<name>.py with ``args`` in ``workdir``; return a ModuleResult.

    ``tmpdir``: pass ``workdir`` as the module's ``_ansible_tmpdir``. ``env``: variables set over this
    process's environment (PYTHONPATH always points at the collection). ``while_running(proc)`` is called
    once the module has started (to play a node on a console while the module reads it).
    """
    workdir = Path(workdir)
    payload = dict(args, _ansible_check_mode=check, _ansible_diff=diff)
    if tmpdir:
        payload["_ansible_tmpdir"] = str(workdir)
    args_file = workdir / ("args-%s-%d.json" % (name, os.getpid()))
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": payload}))
    environment = dict(os.environ, **(env or {}))
    environment["PYTHONPATH"] = str(COLLECTIONS)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ansible_collections.picluster.carrier.plugins.modules.%s" % name, str(args_file)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment, cwd=str(workdir))
    try:
        if while_running is not None:
            while_running(proc)
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    try:
        result = json.loads(stdout)
    except ValueError:
        raise AssertionError("%s: module output is not JSON: exit status %d\n%s\n%s"
                             % (name, proc.returncode, stdout, stderr)) from None
    return ModuleResult(result, proc.returncode, stdout, stderr)
