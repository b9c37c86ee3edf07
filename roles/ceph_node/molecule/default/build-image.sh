#!/usr/bin/env bash
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Usage: build-image.sh [--force]
#
# The ceph_node molecule scenario's image, localhost/bookworm-systemd-ceph (molecule runs this as the dependency step):
# the base image plus Debian 12's Ceph 16.2 daemons (ceph-mon, ceph-mgr, ceph-osd with ceph-volume), gdisk (sgdisk),
# udev (ceph-volume calls udevadm; its daemon masked) and python3-apt, installed: the container has
# network none, and the scenario runs a real single-node Ceph.
# Built once and cached by scripts/build-role-image.sh.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../../.." && pwd)
exec "$root/scripts/build-role-image.sh" --image localhost/bookworm-systemd-ceph --install "ceph-mon ceph-mgr ceph-osd gdisk udev python3-apt" --mask-udev "$@"
