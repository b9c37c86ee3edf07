# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Install the collections the tests need without Ansible Galaxy.

Galaxy is not reachable from CI, but PyPI is, and the ``ansible`` community package on PyPI
bundles the collections. This script reads ``requirements/collections.txt`` (one line
``ansible==X.Y.Z`` naming the package release, then one ``namespace.name`` per line),
downloads that wheel once with pip, and extracts only the named collections into
``<dest>/ansible_collections/<namespace>/<name>``. A stamp file records what was extracted,
so a second run with the same list does nothing.

Usage: python scripts/install_collections.py [--requirements FILE] [--dest DIR] [--wheel-dir DIR] [--python PY]
"""

import argparse
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NAME_RE = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+$")
PIN_RE = re.compile(r"^ansible==(\d+\.\d+\.\d+)$")


def parse_requirements(path):
    """Return (ansible release, [collection names]) from a collections.txt file."""
    release = None
    names = []
    for number, raw in enumerate(Path(path).read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        pin = PIN_RE.match(line)
        if pin:
            release = pin.group(1)
        elif NAME_RE.match(line):
            names.append(line)
        else:
            raise SystemExit(f"{path}:{number}: expected 'ansible==X.Y.Z' or 'namespace.name', got {line!r}")
    if release is None:
        raise SystemExit(f"{path}: no 'ansible==X.Y.Z' line names the package to take collections from")
    return release, names


def fetch_wheel(python, release, wheel_dir):
    """Download the ansible wheel (pip reuses its cache) and return its path."""
    wheel_dir.mkdir(parents=True, exist_ok=True)
    wheel = wheel_dir / f"ansible-{release}-py3-none-any.whl"
    if not wheel.exists():
        subprocess.run(
            [python, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
             "--dest", str(wheel_dir), f"ansible=={release}"],
            check=True,
        )
    if not wheel.exists():
        raise SystemExit(f"pip did not leave {wheel.name} in {wheel_dir}")
    return wheel


def extract(wheel, names, dest):
    """Extract each named collection from the wheel into dest/ansible_collections."""
    root = dest / "ansible_collections"
    with zipfile.ZipFile(wheel) as archive:
        members = archive.namelist()
        for name in names:
            namespace, collection = name.split(".")
            prefix = f"ansible_collections/{namespace}/{collection}/"
            wanted = [m for m in members if m.startswith(prefix)]
            if not wanted:
                raise SystemExit(f"{wheel.name} does not contain the collection {name}")
            target = root / namespace / collection
            if target.is_symlink():
                raise SystemExit(f"{target} is a symlink (a development checkout?): not replacing it")
            shutil.rmtree(target, ignore_errors=True)
            for member in wanted:
                archive.extract(member, dest)
            print(f"installed {name} into {target}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requirements", default=str(REPO / "requirements" / "collections.txt"))
    parser.add_argument("--dest", default=str(REPO / ".collections"))
    parser.add_argument("--wheel-dir", default=str(REPO / ".cache" / "wheels"))
    parser.add_argument("--python", default=sys.executable, help="python whose pip downloads the wheel")
    args = parser.parse_args(argv)

    release, names = parse_requirements(args.requirements)
    dest = Path(args.dest)
    stamp = dest / ".installed-collections.json"
    wanted = {"ansible": release, "collections": sorted(names)}
    if stamp.exists() and json.loads(stamp.read_text()) == wanted and all(
        (dest / "ansible_collections" / Path(*n.split("."))).is_dir() for n in names
    ):
        print(f"collections up to date ({', '.join(names) or 'none'} from ansible {release})")
        return 0
    if names:
        wheel = fetch_wheel(args.python, release, Path(args.wheel_dir))
        extract(wheel, names, dest)
    dest.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(wanted) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
