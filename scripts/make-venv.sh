#!/usr/bin/env bash
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Usage: scripts/make-venv.sh VENV PYTHON REQUIREMENTS
#
# Creates VENV with PYTHON if it does not exist and installs REQUIREMENTS (and the files it
# includes with -r) into it. A stamp inside VENV records a hash of the requirement files and the
# interpreter, so a second run with nothing changed takes well under a second. An existing venv
# is never deleted: a changed requirement file is installed on top of it.
set -euo pipefail

venv=${1:?usage: $0 VENV PYTHON REQUIREMENTS}
python=${2:?usage: $0 VENV PYTHON REQUIREMENTS}
req=${3:?usage: $0 VENV PYTHON REQUIREMENTS}

# The requirement file and every file it pulls in with `-r` (one level is all we use).
req_dir=$(dirname "$req")
files=("$req")
while read -r included; do
    files+=("$req_dir/$included")
done < <(sed -n 's/^-r[[:space:]]*//p' "$req")

# One make-venv at a time per venv: helpers running make targets in the same checkout at the
# same time must not pip-install into one venv concurrently.
lock="${TMPDIR:-/tmp}/make-venv-$(printf %s "$(realpath -m "$venv")" | sha256sum | cut -c1-16).lock"
exec 9>"$lock"
if ! flock -n 9; then
    echo "make-venv: waiting for another make-venv on $venv"
    flock 9
fi

digest=$( { cat "${files[@]}"; "$python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)
stamp="$venv/.requirements.sha256"

if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$digest" ]]; then
    echo "make-venv: $venv is up to date ($("$venv/bin/python" --version))"
    exit 0
fi

start=$SECONDS
if [[ ! -x "$venv/bin/python" ]]; then
    echo "make-venv: creating $venv with $python ($("$python" --version 2>&1))"
    "$python" -m venv "$venv"
fi
echo "make-venv: installing $req into $venv"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# (grep -v: this machine's pip configuration names local mirrors that lack some projects and
# pip says so once per project; the noise hides real messages.)
if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >"$log" 2>&1; then
    grep -v "is ignored: it is neither a file nor a directory" "$log" >&2 || true
    echo "make-venv: pip install -r $req failed" >&2
    exit 1
fi
grep -v "is ignored: it is neither a file nor a directory" "$log" || true
if ! "$venv/bin/python" -m pip check >"$log" 2>&1; then
    cat "$log" >&2
    echo "make-venv: WARNING: pip check reports conflicts in $venv (above)" >&2
fi
echo "$digest" > "$stamp"
echo "make-venv: $venv ready in $((SECONDS - start)) s: $("$venv/bin/python" -c \
    'import ansible.release as r, sys; print("ansible-core", r.__version__, "on Python", sys.version.split()[0])')"
