#!/usr/bin/env bash
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Usage: scripts/find-python.sh X.Y [PREFERRED_PATCH]
#
# Prints the path of a working Python X.Y that can create virtual environments, or exits 1.
# Order: pyenv's X.Y.PREFERRED_PATCH, any other pyenv X.Y.*, then pythonX.Y on PATH.
# pythonX.Y on PATH may be a pyenv shim for a version that is not selected: it is used only
# if it really runs and has venv + ensurepip (Debian's needs the python3-venv package).
set -euo pipefail

want=${1:?usage: $0 X.Y [PATCH]}
patch=${2:-}

works() {
    [[ -x "$1" ]] && "$1" - "$want" >/dev/null 2>&1 <<'PY'
import sys, venv, ensurepip
sys.exit(0 if "%d.%d" % sys.version_info[:2] == sys.argv[1] else 1)
PY
}

candidates=()
pyenv_root=${PYENV_ROOT:-}
if [[ -z "$pyenv_root" ]] && command -v pyenv >/dev/null 2>&1; then
    pyenv_root=$(pyenv root 2>/dev/null || true)
fi
pyenv_root=${pyenv_root:-$HOME/.pyenv}
if [[ -n "$patch" ]]; then
    candidates+=("$pyenv_root/versions/$want.$patch/bin/python$want")
fi
shopt -s nullglob
for dir in "$pyenv_root"/versions/"$want".*; do
    candidates+=("$dir/bin/python$want")
done
shopt -u nullglob
if path=$(command -v "python$want" 2>/dev/null); then
    candidates+=("$path")
fi
candidates+=("/usr/bin/python$want" "/usr/local/bin/python$want")

for candidate in "${candidates[@]}"; do
    if works "$candidate"; then
        echo "$candidate"
        exit 0
    fi
done
echo "find-python: no working Python $want (looked at: ${candidates[*]})" >&2
exit 1
