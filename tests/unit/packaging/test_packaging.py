# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What ships: the artifact `ansible-galaxy collection build` makes, and the run-time requirements."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
GALAXY = Path(sys.executable).with_name("ansible-galaxy")
# Standard library, Ansible itself and the collection.
NOT_REQUIREMENTS = set(sys.stdlib_module_names) | {"ansible", "ansible_collections", "__future__"}
IMPORT_TO_PACKAGE = {"serial": "pyserial", "yaml": "pyyaml", "prometheus_client": "prometheus-client"}


def test_artifact_has_the_collection_and_no_caches(tmp_path):
    # What a developer's tree has beside the collection: caches that must never ship.
    made = []
    for junk in (".hypothesis/junk", ".ruff_cache/junk", ".pytest_cache/junk", "plugins/__pycache__/junk.pyc"):
        path = REPO / junk
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("junk")
            made.append(path)
    try:
        subprocess.run([str(GALAXY), "collection", "build", "--output-path", str(tmp_path), "--force", str(REPO)],
                       check=True, capture_output=True)
    finally:
        for path in made:
            path.unlink()
    (artifact,) = tmp_path.glob("picluster-carrier-*.tar.gz")
    with tarfile.open(artifact) as tar:
        names = tar.getnames()
    bad = [n for n in names if re.search(r"(^|/)(\.hypothesis|\.ruff_cache|\.pytest_cache|\.venv[^/]*|\.collections|"
                                         r"\.cache|__pycache__)(/|$)|\.pyc$|^tests/output(/|$)|^\.git(/|$)", n)]
    assert not bad, bad
    for needed in ("MANIFEST.json", "meta/runtime.yml", "plugins/modules/node_power.py",
                   "plugins/module_utils/_fileio.py", "plugins/inventory/boards.py", "roles/pihole/tasks/main.yml",
                   "playbooks/power.yml", "docs/internals.md", "requirements.txt", "bindep.txt"):
        assert needed in names, needed


def _third_party_imports():
    found = {}
    for path in sorted((REPO / "plugins").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                tops = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops = [node.module.split(".")[0]]
            else:
                continue
            for top in tops:
                if top not in NOT_REQUIREMENTS:
                    found.setdefault(top, str(path.relative_to(REPO)))
    return found


def test_every_third_party_import_is_in_requirements_txt():
    listed = set()
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            listed.add(re.split(r"[<>=!~\[ ]", line)[0].lower())
    imports = _third_party_imports()
    assert imports, "no third-party import found: the scan is broken"
    missing = {name: where for name, where in imports.items()
               if IMPORT_TO_PACKAGE.get(name, name).lower() not in listed}
    assert not missing, missing
