#!/usr/bin/env bash
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Usage: scripts/pytest-stage.sh NAME VENV TESTDIR [PYTEST ARGS...]
#
# Runs pytest from VENV over TESTDIR with VENV/bin first on PATH (so ansible-playbook and
# friends started by the tests are that venv's), ANSIBLE_COLLECTIONS_PATH at .collections, and
# a JUnit report at tests/output/junit/NAME.xml for the CI summary. A TESTDIR that does not
# exist yet, or where pytest collects nothing (exit 5), is reported loudly and is not a
# failure: the pieces of this collection land at different times. A single test that runs longer
# than PYTEST_TIMEOUT seconds (default 600) fails, so one hang cannot use up CI's time.
set -euo pipefail

name=${1:?usage: $0 NAME VENV TESTDIR [PYTEST ARGS...]}
venv=${2:?}
testdir=${3:?}
shift 3
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
junit="$root/tests/output/junit/$name.xml"
mkdir -p "$(dirname "$junit")"
rm -f "$junit"

if [[ ! -d "$testdir" ]]; then
    echo "!!!! $name: $testdir does not exist: no tests to run here yet"
    exit 0
fi

venv=$(cd "$venv" && pwd)
export PATH="$venv/bin:$PATH"
ANSIBLE_COLLECTIONS_PATH=$("$root/scripts/collection-link.sh")
export ANSIBLE_COLLECTIONS_PATH
rc=0
(cd "$root" && python -m pytest "$testdir" -ra --durations=10 --timeout="${PYTEST_TIMEOUT:-600}" \
    --junitxml="$junit" "$@") || rc=$?
if [[ $rc -eq 5 ]]; then
    echo "!!!! $name: pytest collected no tests under $testdir"
    rm -f "$junit"
    exit 0
fi
exit $rc
