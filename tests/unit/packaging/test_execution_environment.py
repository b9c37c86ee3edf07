# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection in an execution environment (AWX, Automation Controller).

ansible-builder installs the collection from its artifact and collects the Python and system
requirements that the collection's meta/execution-environment.yml names. Checked with the real
ansible-builder: `create` writes the build context (no container engine), and the introspect
script of that context, the one the image build runs, is run over the collection installed from
the artifact.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

pytest.importorskip("ansible_builder", reason="ansible-builder is in requirements/test.txt")
from bindep.depends import Depends  # noqa: E402  (ansible-builder brings bindep)

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
# The external programs the FAT code runs, and the package of each (same name on dpkg and rpm).
TOOL_PACKAGE = {"mkfs.vfat": "dosfstools", "mcopy": "mtools", "mdir": "mtools", "mmd": "mtools"}


def _run(argv, cwd, env=None):
    done = subprocess.run([str(a) for a in argv], check=False, cwd=cwd, capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, "%s: %s%s" % (argv, done.stdout, done.stderr)
    return done.stdout


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    out = tmp_path_factory.mktemp("artifact")
    _run([BIN / "ansible-galaxy", "collection", "build", "--output-path", out, "--force", REPO], REPO)
    (path,) = out.glob("picluster-carrier-*.tar.gz")
    return path


def _requirement_names(text):
    names = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower())
    return names


def _bindep_rules(text):
    return [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]


def test_meta_names_the_root_requirement_files(artifact):
    meta = yaml.safe_load((REPO / "meta" / "execution-environment.yml").read_text())
    assert meta["dependencies"] == {"python": "requirements.txt", "system": "bindep.txt"}
    # ansible-builder reads them from the installed artifact, so they must ship.
    with tarfile.open(artifact) as tar:
        assert {"meta/execution-environment.yml", "requirements.txt", "bindep.txt"} <= set(tar.getnames())


def test_builder_context_collects_our_requirements(artifact, tmp_path):
    (tmp_path / "requirements.yml").write_text(yaml.safe_dump(
        {"collections": [{"name": str(artifact), "type": "file"}]}))
    (tmp_path / "execution-environment.yml").write_text(yaml.safe_dump({
        "version": 3,
        "images": {"base_image": {"name": "quay.io/ansible/awx-ee:latest"}},
        "dependencies": {"galaxy": "requirements.yml"},
    }))
    _run([BIN / "ansible-builder", "create", "--context", tmp_path / "ctx"], tmp_path)
    ctx = tmp_path / "ctx"
    galaxy = yaml.safe_load((ctx / "_build" / "requirements.yml").read_text())
    assert galaxy["collections"][0]["name"] == str(artifact)
    containerfile = (ctx / "Containerfile").read_text()
    assert "ansible-galaxy collection install" in containerfile
    assert "introspect.py introspect" in containerfile

    # What the image build does next: install the collection, then introspect it.
    cols = tmp_path / "collections"
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(cols))
    _run([BIN / "ansible-galaxy", "collection", "install", "--offline", "--force", "-p", cols, artifact], tmp_path, env)
    pip_out, bindep_out = tmp_path / "requirements.txt", tmp_path / "bindep.txt"
    _run([sys.executable, ctx / "_build" / "scripts" / "introspect.py", "introspect", cols,
          "--write-pip", pip_out, "--write-bindep", bindep_out], tmp_path)

    sys.path.insert(0, str(ctx / "_build" / "scripts"))
    try:
        from introspect import EXCLUDE_REQUIREMENTS  # what ansible-builder leaves to the base image
    finally:
        sys.path.pop(0)
    ours = [n for n in _requirement_names((REPO / "requirements.txt").read_text()) if n not in EXCLUDE_REQUIREMENTS]
    got = pip_out.read_text()
    assert _requirement_names(got) == ours
    assert all(line.endswith("# from collection picluster.carrier") for line in got.splitlines() if line)
    assert _bindep_rules(bindep_out.read_text()) == _bindep_rules((REPO / "bindep.txt").read_text())


@pytest.mark.parametrize("profiles", [["platform:dpkg", "platform:debian"], ["platform:rpm", "platform:redhat"]])
def test_bindep_installs_every_tool_the_fat_code_runs(profiles):
    source = (REPO / "plugins" / "module_utils" / "_fat.py").read_text()
    tools = set(re.findall(r"""(?:run|_call)\(\s*\[\s*"([\w.-]+)\"""", source))
    assert tools and tools <= set(TOOL_PACKAGE), "a new tool: add it to bindep.txt and TOOL_PACKAGE"
    active = {rule[0] for rule in Depends((REPO / "bindep.txt").read_text()).active_rules(profiles)}
    assert {TOOL_PACKAGE[t] for t in tools} <= active
