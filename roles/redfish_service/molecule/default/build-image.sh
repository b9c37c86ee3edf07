#!/usr/bin/env bash
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Usage: build-image.sh [--force]
#
# The redfish_service molecule scenario's image, localhost/bookworm-systemd-redfish (molecule runs this as the
# dependency step): the base image plus python3-apt, with Debian's Flask, cheroot and openssl in an offline APT
# repository, so the role's package task installs them for real with network none. Built once and cached by
# scripts/build-role-image.sh.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../../.." && pwd)
exec "$root/scripts/build-role-image.sh" --image localhost/bookworm-systemd-redfish \
    --install python3-apt --offline "python3-flask python3-cheroot openssl" "$@"
