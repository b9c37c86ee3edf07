#!/usr/bin/env bash
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Usage: scripts/prepare-ansible-test.sh VENV
#
# Makes `ansible-test sanity --venv` work offline for the ansible-core installed in VENV:
# ansible-test bootstraps pip in its environments with a get-pip script it downloads from a
# host CI cannot reach, unless ~/.ansible/test/cache/get_pip_<pip version>.py exists. This
# asks that ansible-test which pip version it wants and puts scripts/ansible-test-get-pip.py
# (ensurepip, then `pip install` of the pinned pip from the package index) in its place.
set -euo pipefail

venv=${1:?usage: $0 VENV}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

pip_version=$("$venv/bin/python" - <<'PY'
import types
from ansible_test._internal.python_requirements import get_venv_packages
import sys
# get_venv_packages only reads .version (to pick per-version overrides).
print(get_venv_packages(types.SimpleNamespace(version="%d.%d" % sys.version_info[:2]))["pip"])
PY
)
cache="${HOME}/.ansible/test/cache"
target="$cache/get_pip_${pip_version//./_}.py"
mkdir -p "$cache"
if ! cmp -s "$here/ansible-test-get-pip.py" "$target"; then
    install -m 0644 "$here/ansible-test-get-pip.py" "$target"
    echo "prepare-ansible-test: installed the offline get-pip stand-in as $target"
fi
