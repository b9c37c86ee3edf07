# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""scripts/install_collections.py: collections taken out of the `ansible` wheel, without Galaxy."""

import importlib.util
import zipfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "install_collections.py"


def load():
    spec = importlib.util.spec_from_file_location("install_collections", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ic = load()


def make_wheel(wheel_dir, release="1.2.3"):
    """A wheel laid out like the `ansible` package's: ansible_collections/<ns>/<name>/..."""
    wheel_dir.mkdir(parents=True, exist_ok=True)
    wheel = wheel_dir / f"ansible-{release}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("ansible_collections/containers/podman/MANIFEST.json", '{"name": "podman"}')
        archive.writestr("ansible_collections/containers/podman/plugins/connection/podman.py", "# conn\n")
        archive.writestr("ansible_collections/community/general/MANIFEST.json", '{"name": "general"}')
        archive.writestr(f"ansible-{release}.dist-info/METADATA", "Name: ansible\n")
    return wheel


def test_parse_requirements(tmp_path):
    req = tmp_path / "collections.txt"
    req.write_text("# comment\nansible==12.3.0\n\ncontainers.podman  # the podman driver\nansible.posix\n")
    assert ic.parse_requirements(req) == ("12.3.0", ["containers.podman", "ansible.posix"])


@pytest.mark.parametrize(
    "text, message",
    [
        ("containers.podman\n", "no 'ansible==X.Y.Z' line"),
        ("ansible==12.3.0\ncontainers/podman\n", "collections.txt:2: expected"),
        ("ansible>=12\n", "collections.txt:1: expected"),
    ],
)
def test_parse_requirements_rejects_bad_lines(tmp_path, text, message):
    req = tmp_path / "collections.txt"
    req.write_text(text)
    with pytest.raises(SystemExit, match=message):
        ic.parse_requirements(req)


def test_extracts_only_the_named_collections_and_then_does_nothing(tmp_path, capsys):
    wheels = tmp_path / "wheels"
    make_wheel(wheels)
    req = tmp_path / "collections.txt"
    req.write_text("ansible==1.2.3\ncontainers.podman\n")
    dest = tmp_path / "collections"
    argv = ["--requirements", str(req), "--dest", str(dest), "--wheel-dir", str(wheels)]

    assert ic.main(argv) == 0
    root = dest / "ansible_collections"
    assert (root / "containers" / "podman" / "plugins" / "connection" / "podman.py").read_text() == "# conn\n"
    assert not (root / "community").exists()

    # A second run with the same list touches nothing (a file placed there survives).
    marker = root / "containers" / "podman" / "local-change"
    marker.write_text("x")
    assert ic.main(argv) == 0
    assert marker.exists()
    assert "up to date" in capsys.readouterr().out

    # Asking for another collection re-extracts the list.
    req.write_text("ansible==1.2.3\ncontainers.podman\ncommunity.general\n")
    assert ic.main(argv) == 0
    assert (root / "community" / "general" / "MANIFEST.json").exists()
    assert not marker.exists()


def test_a_collection_missing_from_the_wheel_is_an_error(tmp_path):
    wheels = tmp_path / "wheels"
    make_wheel(wheels)
    req = tmp_path / "collections.txt"
    req.write_text("ansible==1.2.3\nnosuch.thing\n")
    with pytest.raises(SystemExit, match="does not contain the collection nosuch.thing"):
        ic.main(["--requirements", str(req), "--dest", str(tmp_path / "c"), "--wheel-dir", str(wheels)])


def test_a_symlinked_collection_is_never_replaced(tmp_path):
    wheels = tmp_path / "wheels"
    make_wheel(wheels)
    req = tmp_path / "collections.txt"
    req.write_text("ansible==1.2.3\ncontainers.podman\n")
    dest = tmp_path / "c"
    checkout = tmp_path / "podman-checkout"
    checkout.mkdir()
    (dest / "ansible_collections" / "containers").mkdir(parents=True)
    (dest / "ansible_collections" / "containers" / "podman").symlink_to(checkout)
    with pytest.raises(SystemExit, match="is a symlink"):
        ic.main(["--requirements", str(req), "--dest", str(dest), "--wheel-dir", str(wheels)])
    assert checkout.is_dir()
