#!/usr/bin/env bash
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Usage: scripts/sanity.sh VENV [ANSIBLE-TEST SANITY ARGS...]
#
# Runs `ansible-test sanity` of the ansible-core in VENV over the collection, on that venv's
# Python, with no ignore file.
#
# ansible-test must run inside a real .../ansible_collections/<namespace>/<name>/ directory (it
# resolves the working directory, so the .collections symlink does not do), and one that is not
# inside another git work tree (it would take the enclosing repo's file list). So the files git
# sees here (tracked, and untracked but not ignored: what a commit would hold) are copied to
# $SANITY_WORKDIR/<ansible-core>/ansible_collections/<namespace>/<name>/ (default
# ~/.cache/picluster-carrier/sanity-<hash of this checkout's path>) and tested there. That
# copy's tests/output/ is kept between runs: ansible-test caches its per-test virtual
# environments there (--venv: exact tool versions pinned by ansible-core, bootstrapped offline
# by scripts/prepare-ansible-test.sh). Failures name paths relative to the collection root,
# the same as in the repo.
set -euo pipefail

venv=$(cd "${1:?usage: $0 VENV [ARGS...]}" && pwd)
shift
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")

shopt -s nullglob
ignores=("$root"/tests/sanity/ignore-*.txt)
shopt -u nullglob
if [[ ${#ignores[@]} -gt 0 ]]; then
    echo "sanity: ignore files are not allowed in this collection: ${ignores[*]}" >&2
    exit 1
fi

"$here/prepare-ansible-test.sh" "$venv"
export PATH="$venv/bin:$PATH"
core=$(python -c 'import ansible.release as r; print(r.__version__)')
pyver=$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
ns=$(sed -n 's/^namespace:[[:space:]]*//p' "$root/galaxy.yml")
name=$(sed -n 's/^name:[[:space:]]*//p' "$root/galaxy.yml")
workdir=${SANITY_WORKDIR:-${XDG_CACHE_HOME:-$HOME/.cache}/picluster-carrier/sanity-$(printf %s "$root" | sha256sum | cut -c1-10)}
dest="$workdir/ansible-core-$core/ansible_collections/$ns/$name"

# One run at a time per copy: helpers running sanity in the same checkout share the copy, and a
# refresh under a running ansible-test makes it fail on files that vanish.
mkdir -p "$workdir"
exec 9>"$workdir/ansible-core-$core.lock"
if ! flock -n 9; then
    echo "sanity: waiting for another sanity run on $dest"
    flock 9
fi

# Refresh the copy, keeping tests/output (ansible-test's caches and results).
mkdir -p "$dest/tests"
find "$dest" -mindepth 1 -maxdepth 1 ! -name tests -exec rm -rf {} +
find "$dest/tests" -mindepth 1 -maxdepth 1 ! -name output -exec rm -rf {} +
if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # Files deleted from the work tree but not yet from the index are left out.
    (cd "$root" && git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do [[ -e "$f" || -L "$f" ]] && printf '%s\0' "$f"; done \
        | tar --null -T - -cf -) | tar -xf - -C "$dest"
else
    (cd "$root" && tar --exclude='./.venv*' --exclude=./.collections --exclude=./.cache \
        --exclude=./tests/output --exclude=./.git -cf - .) | tar -xf - -C "$dest"
fi

# ansible-test sets its own collection path; an inherited one would only confuse it.
unset ANSIBLE_COLLECTIONS_PATH ANSIBLE_COLLECTIONS_PATHS
cd "$dest"
echo "sanity: ansible-core $core on Python $pyver, over a copy of the collection in $dest"
# (grep -v: pip, run by ansible-test, names this machine's local mirrors that lack a project once
# per project; the noise buries the findings. ansible-test's status is kept.)
rc=0
ansible-test sanity --venv --python "$pyver" --color no "$@" 2>&1 \
    | grep --line-buffered -v "is ignored: it is neither a file nor a directory" || rc=${PIPESTATUS[0]}
exit "$rc"
