#!/usr/bin/env bash
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Usage: build-image.sh [--force]
#
# The carrier_exporter molecule scenario's image, localhost/bookworm-systemd-exporter (molecule runs this as the
# dependency step): the base image plus Debian's prometheus_client (what the role's package task installs; present,
# so the task runs with network none) and python3-apt. Built once and cached by scripts/build-role-image.sh.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../../.." && pwd)
exec "$root/scripts/build-role-image.sh" --image localhost/bookworm-systemd-exporter \
    --install "python3-apt python3-prometheus-client" "$@"
