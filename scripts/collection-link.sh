#!/usr/bin/env bash
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Usage: scripts/collection-link.sh
#
# Makes .collections/ansible_collections/picluster/carrier a symlink to the repo root (the
# layout ansible-test and the ansible_collections import path need; docs/internals.md).
# Prints the link's path. Safe to run any number of times, also concurrently.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ns=$(sed -n 's/^namespace:[[:space:]]*//p' "$root/galaxy.yml")
name=$(sed -n 's/^name:[[:space:]]*//p' "$root/galaxy.yml")
dir="$root/.collections/ansible_collections/$ns"
link="$dir/$name"
mkdir -p "$dir"
if [[ "$(readlink "$link" 2>/dev/null)" != "../../.." ]]; then
    ln -sfn ../../.. "$link"
fi
[[ -f "$link/galaxy.yml" ]] || { echo "collection-link: $link does not lead to the repo root" >&2; exit 1; }
echo "$link"
