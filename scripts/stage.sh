#!/usr/bin/env bash
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Usage: scripts/stage.sh NAME COMMAND [ARGS...]
#
# Runs COMMAND as one named stage of the build: prints a banner, the command's output, and
# the stage's wall time and exit status, and appends "NAME<TAB>seconds<TAB>status" to
# tests/output/timings.tsv (read by scripts/ci_summary.py). Exits with COMMAND's status.
set -uo pipefail

name=${1:?usage: $0 NAME COMMAND [ARGS...]}
shift
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$root/tests/output"

echo "==== [$name] start $(date -u +%H:%M:%S) UTC"
start=$(date +%s.%N)
"$@"
rc=$?
elapsed=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
status=$([[ $rc -eq 0 ]] && echo ok || echo "FAILED($rc)")
printf '%s\t%s\t%s\n' "$name" "$elapsed" "$status" >> "$root/tests/output/timings.tsv"
echo "==== [$name] $status in ${elapsed} s"
exit $rc
