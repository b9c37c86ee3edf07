# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Root pytest configuration for picluster.carrier.

- Makes the collection importable as ``ansible_collections.picluster.carrier``:
  scripts/collection_link.py puts ``<repo>/.collections`` on sys.path, creating the
  ``.collections/ansible_collections/picluster/carrier -> ../../..`` symlink when it is missing
  (docs/internals.md, "Import path"), and ANSIBLE_COLLECTIONS_PATH points there. ``scripts/``
  stays on sys.path, so a test file takes the path from ``collection_link.collections_path()``.
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
sys.path.insert(0, str(REPO / "scripts"))
import collection_link  # noqa: E402

COLLECTIONS = collection_link.activate()
SHARED_FIXTURES = REPO.parent / "shared" / "fixtures"

MARKERS = {
    "integration": "runs real programs (ansible-playbook, the simulator, ser2net, dnsmasq ...) end to end",
    "slow": "takes more than a few seconds; deselect with -m 'not slow'",
    "needs_root": "needs root (network namespaces, loop devices, podman); skipped otherwise",
}


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
