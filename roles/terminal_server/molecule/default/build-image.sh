#!/usr/bin/env bash
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Usage: build-image.sh [--force]
#
# The terminal_server molecule scenario's image, localhost/bookworm-systemd-terminal (molecule runs this as the dependency step):
# the base image plus an offline APT repository with what the role installs (ser2net, socat, logrotate), so its real
# apt task runs with network none; python3-apt.
# Built once and cached by scripts/build-role-image.sh.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../../.." && pwd)
exec "$root/scripts/build-role-image.sh" --image localhost/bookworm-systemd-terminal --install python3-apt --offline "ser2net socat logrotate" "$@"
