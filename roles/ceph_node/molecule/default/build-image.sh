#!/usr/bin/env bash
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Usage: build-image.sh [--force]
#
# The ceph_node molecule scenario's image, localhost/bookworm-systemd-ceph: the base image
# (localhost/bookworm-systemd, scripts/build-base-image.sh) plus Debian 12's Ceph 16.2 daemons
# (ceph-mon, ceph-mgr, ceph-osd with ceph-volume), the disk tools the role uses (gdisk for
# sgdisk), udev (ceph-volume calls udevadm; the udev daemon is masked: in a privileged container
# it would see the host's devices) and python3-apt (Ansible's apt module; Raspberry Pi OS ships
# both). The scenario's containers run with network none, so packages cannot be installed at
# converge time: they are installed here once, from the Debian archive, in a build container on
# the host's network (package archive only), and the image is cached: the script does nothing
# when it exists (--force rebuilds). Molecule runs it as the scenario's `dependency` step.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../../.." && pwd)
base=${BASE_IMAGE:-localhost/bookworm-systemd}
image=${CEPH_IMAGE:-localhost/bookworm-systemd-ceph}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$root/tests/molecule/containers.conf}
packages="ceph-mon ceph-mgr ceph-osd gdisk udev python3-apt"

if [[ "${1:-}" != "--force" ]] && podman image exists "$image"; then
    echo "ceph image: $image exists; not rebuilding"
    exit 0
fi
podman image exists "$base" || "$root/scripts/build-base-image.sh"

start=$SECONDS
name=ceph-image-build-$$
trap 'podman rm -f "$name" >/dev/null 2>&1 || true' EXIT
# The apt sources of the base image are debootstrap's (the mirror it was built from).
podman run --name "$name" --network host "$base" /bin/sh -c "
    set -e
    export DEBIAN_FRONTEND=noninteractive
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    apt-get update -q
    apt-get install -y -q --no-install-recommends $packages
    rm -f /usr/sbin/policy-rc.d
    systemctl mask systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
        systemd-udev-trigger.service systemd-udev-settle.service
    apt-get clean
    rm -rf /var/lib/apt/lists/*
" >/dev/null
podman commit --quiet \
    --change 'CMD ["/sbin/init"]' --change 'ENV container=podman' --change 'STOPSIGNAL SIGRTMIN+3' \
    "$name" "$image" >/dev/null
echo "ceph image: $image built in $((SECONDS - start)) s"
