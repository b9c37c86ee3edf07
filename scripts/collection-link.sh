#!/usr/bin/env bash
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Usage: scripts/collection-link.sh
#
# The shell callers' way to the collection link (scripts/collection_link.py, the one home of it;
# docs/internals.md, "Import path"): makes .collections/ansible_collections/picluster/carrier a
# symlink to the repo root when missing and prints the directory to use as
# ANSIBLE_COLLECTIONS_PATH:
#
#     export ANSIBLE_COLLECTIONS_PATH=$(scripts/collection-link.sh)
#
# Safe to run any number of times, also concurrently.
set -euo pipefail

exec python3 "$(dirname "${BASH_SOURCE[0]}")/collection_link.py"
