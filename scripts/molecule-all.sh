#!/usr/bin/env bash
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Usage: scripts/molecule-all.sh VENV [ROLE...]
#
# Runs `molecule test` (the default scenario) of every role that has
# roles/<role>/molecule/default/molecule.yml, or of the ROLEs named, in podman containers made
# from localhost/bookworm-systemd (built first when missing: scripts/build-base-image.sh).
# Each scenario inherits .config/molecule/config.yml. Runs every role even when one fails and
# exits non-zero if any failed. With no scenario in the repo it says so and does nothing.
set -euo pipefail

venv=$(cd "${1:?usage: $0 VENV [ROLE...]}" && pwd)
shift
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")

roles=()
if [[ $# -gt 0 ]]; then
    roles=("$@")
else
    shopt -s nullglob
    for scenario in "$root"/roles/*/molecule/default/molecule.yml; do
        role=${scenario#"$root/roles/"}
        roles+=("${role%%/*}")
    done
    shopt -u nullglob
fi
if [[ ${#roles[@]} -eq 0 ]]; then
    echo "molecule: no role has a molecule/default scenario yet: nothing to run"
    exit 0
fi

export CONTAINERS_CONF=${CONTAINERS_CONF:-$root/tests/molecule/containers.conf}
# molecule runs ansible-config, ansible-playbook ... from PATH.
export PATH="$venv/bin:$PATH"
ANSIBLE_COLLECTIONS_PATH=$("$here/collection-link.sh")
export ANSIBLE_COLLECTIONS_PATH
export ANSIBLE_FORCE_COLOR=false PY_COLORS=0 MOLECULE_NO_LOG=false
python "$here/install_collections.py"
"$here/build-base-image.sh"
# Podman keeps each container's and volume's lock number on disk but the locks themselves in
# shared memory, which a reboot clears: a volume left by an earlier run (the k3s scenario's) then
# shares its number with a new container and podman refuses to start it ("deadlock due to lock
# mismatch", containers/podman#9765). Renumbering before any scenario starts makes them agree; it
# is only safe with no container running, so a machine running others is left as it is.
if [[ -z $(podman ps -q) ]]; then
    podman system renumber
fi

# Scenarios of different roles use different containers and ephemeral directories, and spend
# much of their time waiting on systemd and package installs: MOLECULE_JOBS of them run at once
# (default 2). Each one's output goes to its log, printed whole when it ends.
jobs=${MOLECULE_JOBS:-2}
logs="$root/tests/output/molecule"
mkdir -p "$logs"

run_role() {
    local role=$1 start=$SECONDS
    # molecule names its working directory after the project directory's base name ("main" for
    # every role of every checkout), so scenarios running at the same time would share state:
    # give each role of each checkout its own.
    if (cd "$root/roles/$role" \
        && MOLECULE_ROLE=$role MOLECULE_EPHEMERAL_DIRECTORY="$root/.cache/molecule/$role/default" \
            molecule test --scenario-name default) >"$logs/$role.log" 2>&1 </dev/null; then
        echo "==== molecule: roles/$role passed in $((SECONDS - start)) s" >>"$logs/$role.log"
    else
        echo "==== molecule: roles/$role FAILED after $((SECONDS - start)) s" >>"$logs/$role.log"
        return 1
    fi
}

failed=()
declare -A running=()
finish_one() {
    local pid role
    wait -n -p pid "${!running[@]}" && rc=0 || rc=$?
    role=${running[$pid]}
    unset "running[$pid]"
    echo "==== molecule: roles/$role (default scenario), log $logs/$role.log"
    cat "$logs/$role.log"
    if [[ $rc -ne 0 ]]; then
        failed+=("$role")
    fi
}
for role in "${roles[@]}"; do
    if [[ ! -f "$root/roles/$role/molecule/default/molecule.yml" ]]; then
        echo "molecule: roles/$role has no molecule/default/molecule.yml" >&2
        failed+=("$role")
        continue
    fi
    while [[ ${#running[@]} -ge $jobs ]]; do
        finish_one
    done
    run_role "$role" &
    running[$!]=$role
done
while [[ ${#running[@]} -gt 0 ]]; do
    finish_one
done
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "molecule: failed: ${failed[*]}" >&2
    exit 1
fi
echo "molecule: all ${#roles[@]} scenario(s) passed: ${roles[*]}"
