# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Root pytest configuration for picluster.carrier.

- Makes the collection importable as ``ansible_collections.picluster.carrier`` by putting
  ``<repo>/.collections`` on sys.path, creating the
  ``.collections/ansible_collections/picluster/carrier -> ../../..`` symlink when it is missing
  (docs/internals.md, "Import path").
- ``shared_fixtures``: the project's shared fixture files (real EEPROM images ...) at
  ``<repo>/../shared/fixtures``; tests that use it are skipped, with the reason, where that
  directory is absent.
- Registers the markers used across the suite; ``needs_root`` tests are skipped for non-root users.

Other conftest files (tests/integration/, tests/unit/sim/ ...) belong to their pieces.
"""

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
COLLECTIONS = REPO / ".collections"
SHARED_FIXTURES = REPO.parent / "shared" / "fixtures"

MARKERS = {
    "integration": "runs real programs (ansible-playbook, the simulator, ser2net, dnsmasq ...) end to end",
    "slow": "takes more than a few seconds; deselect with -m 'not slow'",
    "needs_root": "needs root (network namespaces, loop devices, podman); skipped otherwise",
}


def _link_collection():
    """Create .collections/ansible_collections/picluster/carrier -> repo root if missing."""
    link = COLLECTIONS / "ansible_collections" / "picluster" / "carrier"
    if link.is_symlink() or link.exists():
        return link
    link.parent.mkdir(parents=True, exist_ok=True)
    try:
        link.symlink_to(Path("..", "..", ".."), target_is_directory=True)
    except FileExistsError:  # another process (an xdist worker) made it first
        pass
    return link


_link_collection()
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
# Subprocesses (ansible-playbook, ansible-inventory, the simulator) find the collection the same way.
os.environ.setdefault("ANSIBLE_COLLECTIONS_PATH", str(COLLECTIONS))


def pytest_configure(config):
    for name, description in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {description}")


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (run as root, as CI does)")
    for item in items:
        if "needs_root" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def repo_root():
    """The repository (= collection) root."""
    return REPO


@pytest.fixture(scope="session")
def shared_fixtures():
    """Path of the shared fixture files (../shared/fixtures beside the repo); skips when absent."""
    if not SHARED_FIXTURES.is_dir():
        pytest.skip(f"shared fixtures not found at {SHARED_FIXTURES} (the shared/ directory beside the repo)")
    return SHARED_FIXTURES
