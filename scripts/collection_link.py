# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one home of the collection link (docs/internals.md, "Import path").

Outside an installed collection, ``ansible_collections.picluster.carrier`` imports from this
checkout, and ``ANSIBLE_COLLECTIONS_PATH`` finds it, through
``<repo>/.collections/ansible_collections/<namespace>/<name>``, a symlink to the repo root
(``../../..``). A checkout that already sits at ``.../ansible_collections/<namespace>/<name>``
(an installed collection, ansible-test's copy, a developer's clone there) needs no link: the
directory above ``ansible_collections`` is the path.

Python callers (tests/conftest.py, sim/carrier-sim, bench/) load this file and call
``collections_path()``, or ``activate()`` which also puts the path on ``sys.path``. Shell
callers (the Makefile, scripts/*.sh) run scripts/collection-link.sh, which runs this file: it
prints the path to use as ``ANSIBLE_COLLECTIONS_PATH``.

Safe to run any number of times, also concurrently (pytest-xdist workers): the link is made
under a temporary name and renamed over the final one.

Usage: python3 scripts/collection_link.py
"""

import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = os.path.join("..", "..", "..")


class LinkError(Exception):
    """The link cannot be made or does not lead to the repo root."""


def collection_name(root=ROOT):
    """``(namespace, name)`` from ``root``'s galaxy.yml (read without a YAML library: the system
    python3 that scripts/collection-link.sh runs may not have one)."""
    text = (Path(root) / "galaxy.yml").read_text()
    found = {}
    for key in ("namespace", "name"):
        match = re.search(r"^%s:[ \t]*['\"]?([a-z0-9_]+)['\"]?[ \t]*$" % key, text, re.M)
        if match is None:
            raise LinkError("%s/galaxy.yml: no valid %s" % (root, key))
        found[key] = match.group(1)
    return found["namespace"], found["name"]


def collections_path(root=ROOT):
    """The directory holding ``ansible_collections/`` for ``root``; makes the link when missing."""
    root = Path(root).resolve()
    namespace, name = collection_name(root)
    if root.name == name and root.parent.name == namespace and root.parent.parent.name == "ansible_collections":
        return root.parent.parent.parent
    collections = root / ".collections"
    link = collections / "ansible_collections" / namespace / name
    if not (link.is_symlink() and os.readlink(link) == TARGET):
        link.parent.mkdir(parents=True, exist_ok=True)
        temporary = link.with_name(".%s.%d.tmp" % (name, os.getpid()))
        try:
            if temporary.is_symlink():
                temporary.unlink()
            temporary.symlink_to(TARGET, target_is_directory=True)
            os.replace(temporary, link)
        except OSError as exc:
            if temporary.is_symlink():
                temporary.unlink()
            raise LinkError("cannot make %s a link to the repo root: %s" % (link, exc)) from exc
    if not (link / "galaxy.yml").is_file():
        raise LinkError("%s does not lead to the repo root" % link)
    return collections


def activate(root=ROOT):
    """``collections_path(root)``, put first on ``sys.path`` when not there yet; returns it."""
    path = collections_path(root)
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
    return path


def main():
    try:
        print(collections_path())
    except LinkError as exc:
        print("collection-link: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
