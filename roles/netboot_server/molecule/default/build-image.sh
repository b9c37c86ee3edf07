#!/usr/bin/env bash
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Usage: build-image.sh [--force]
#
# The netboot_server molecule scenario's image, localhost/bookworm-systemd-netboot (molecule runs this as the dependency step):
# the base image plus an offline APT repository with what the role installs (dnsmasq, nginx, nfs-kernel-server), so its
# real apt tasks run with network none; python3-apt, and the tftp-hpa client for verify.
# Built once and cached by scripts/build-role-image.sh.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../../.." && pwd)
exec "$root/scripts/build-role-image.sh" --image localhost/bookworm-systemd-netboot --install "python3-apt tftp-hpa" --offline "dnsmasq nginx nfs-kernel-server" "$@"
