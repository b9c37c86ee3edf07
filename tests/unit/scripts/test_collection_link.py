# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""scripts/collection_link.py and collection-link.sh: the one place the collection link is made."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

import collection_link

REPO = Path(__file__).resolve().parents[3]
SHELL = REPO / "scripts" / "collection-link.sh"
GALAXY = "namespace: picluster\nname: carrier\nversion: 0.1.0\n"


def checkout(tmp_path, galaxy=GALAXY):
    root = tmp_path / "checkout"
    root.mkdir()
    (root / "galaxy.yml").write_text(galaxy)
    return root


def link_of(root):
    return root / ".collections" / "ansible_collections" / "picluster" / "carrier"


def test_makes_the_link_to_the_repo_root(tmp_path):
    root = checkout(tmp_path)
    assert collection_link.collections_path(root) == root / ".collections"
    assert os.readlink(link_of(root)) == "../../.."
    assert link_of(root).resolve() == root.resolve()


def test_an_existing_link_is_left_as_it_is(tmp_path):
    root = checkout(tmp_path)
    collection_link.collections_path(root)
    before = os.lstat(link_of(root))
    collection_link.collections_path(root)
    assert os.lstat(link_of(root)).st_ino == before.st_ino


def test_a_link_elsewhere_is_replaced(tmp_path):
    root = checkout(tmp_path)
    link_of(root).parent.mkdir(parents=True)
    link_of(root).symlink_to(tmp_path)
    collection_link.collections_path(root)
    assert os.readlink(link_of(root)) == "../../.."
    assert not list(link_of(root).parent.glob(".*.tmp")), "the temporary link is left behind"


def test_a_directory_in_the_way_is_an_error_naming_it(tmp_path):
    root = checkout(tmp_path)
    (link_of(root) / "plugins").mkdir(parents=True)
    with pytest.raises(collection_link.LinkError, match=re.escape(str(link_of(root)))):
        collection_link.collections_path(root)
    assert not list(link_of(root).parent.glob(".*.tmp"))


def test_a_checkout_inside_ansible_collections_needs_no_link(tmp_path):
    root = tmp_path / "ansible_collections" / "picluster" / "carrier"
    root.mkdir(parents=True)
    (root / "galaxy.yml").write_text(GALAXY)
    assert collection_link.collections_path(root) == tmp_path
    assert not (root / ".collections").exists()


def test_the_name_comes_from_galaxy_yml(tmp_path):
    root = checkout(tmp_path, "namespace: 'acme'\nname: boards\n")
    collection_link.collections_path(root)
    assert os.readlink(root / ".collections" / "ansible_collections" / "acme" / "boards") == "../../.."


def test_galaxy_yml_without_a_namespace_is_an_error(tmp_path):
    root = checkout(tmp_path, "name: carrier\n")
    with pytest.raises(collection_link.LinkError, match="no valid namespace"):
        collection_link.collections_path(root)


def test_activate_puts_the_path_on_sys_path(tmp_path, monkeypatch):
    root = checkout(tmp_path)
    monkeypatch.setattr("sys.path", ["/nowhere"])
    assert collection_link.activate(root) == root / ".collections"
    import sys
    assert sys.path == [str(root / ".collections"), "/nowhere"]


def test_the_shell_script_prints_the_path_also_when_run_many_times_at_once():
    procs = [subprocess.Popen([str(SHELL)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for dummy in range(8)]
    results = [proc.communicate(timeout=60) + (proc.returncode,) for proc in procs]
    assert results == [(str(REPO / ".collections") + "\n", "", 0)] * 8
    assert os.readlink(link_of(REPO)) == "../../.."


# A link made by hand (os.symlink or ln -s to ../../..): every caller goes through collection_link instead.
MADE_BY_HAND = re.compile(r"symlink(_to)?\([^)]*\.\.[/\\\"', ]+\.\.|ln -s\S* +\.\./\.\./\.\.")


def test_no_other_file_makes_the_link():
    candidates = [REPO / "Makefile", REPO / "sim" / "carrier-sim"]
    for pattern in ("scripts/*", "bench/*.py", "sim/**/*.py", "tests/**/*.py"):
        candidates += REPO.glob(pattern)
    here = {Path(__file__).resolve(), (REPO / "scripts" / "collection_link.py").resolve()}
    found = [str(path.relative_to(REPO)) for path in candidates
             if path.is_file() and path.resolve() not in here and MADE_BY_HAND.search(path.read_text())]
    assert not found, found
