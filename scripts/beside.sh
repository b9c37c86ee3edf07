#!/usr/bin/env bash
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Usage: scripts/beside.sh NAME 'SIDE COMMAND' MAIN COMMAND [ARGS...]
#
# Runs MAIN COMMAND in the foreground and SIDE COMMAND (a shell string) beside it, the side's
# output kept in tests/output/NAME.log and printed whole once both have ended, so the two never
# interleave. make test runs the CPU-bound checks (sanity, the 2.21 smoke) beside the integration
# tests, which spend about three quarters of their time waiting on simulated boots and timeouts
# (docs/testing.md, "Time"). Exits non-zero when either failed.
set -uo pipefail

name=${1:?usage: $0 NAME 'SIDE COMMAND' MAIN COMMAND [ARGS...]}
side=${2:?usage: $0 NAME 'SIDE COMMAND' MAIN COMMAND [ARGS...]}
shift 2
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log="$root/tests/output/$name.log"
mkdir -p "$(dirname "$log")"

echo "==== [$name] beside the next stage: $side (output in $log, printed when it ends)"
# In a process group of its own, so that a stop of make (Ctrl-C, CI's timeout) stops all of it.
(cd "$root" && exec setsid bash -c "$side") >"$log" 2>&1 </dev/null &
side_pid=$!
trap 'kill -- "-$side_pid" 2>/dev/null; exit 130' INT TERM

main_rc=0
"$@" || main_rc=$?
side_rc=0
wait "$side_pid" || side_rc=$?
echo "==== [$name] output of: $side"
cat "$log"
echo "==== [$name] $([[ $side_rc -eq 0 ]] && echo ok || echo "FAILED($side_rc)")"
[[ $main_rc -eq 0 && $side_rc -eq 0 ]]
