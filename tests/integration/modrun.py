# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a module of the collection the way Ansible does: a fresh interpreter, an arguments file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / ".collections"


def run_module(name, args, workdir, check=False, diff=True):
    """Run plugins/modules/<name>.py with ``args``; return its JSON result (``rc`` added)."""
    payload = dict(args)
    payload["_ansible_check_mode"] = check
    payload["_ansible_diff"] = diff
    args_file = Path(workdir) / ("args-%s-%d.json" % (name, os.getpid()))
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": payload}))
    env = dict(os.environ, PYTHONPATH=str(COLLECTIONS))
    proc = subprocess.run(
        [sys.executable, "-m", "ansible_collections.picluster.carrier.plugins.modules.%s" % name, str(args_file)],
        capture_output=True, text=True, env=env, cwd=str(workdir), timeout=300, check=False,
    )
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("module output is not JSON: rc=%d\n%s\n%s"
                             % (proc.returncode, proc.stdout, proc.stderr)) from None
    result["rc"] = proc.returncode
    return result
