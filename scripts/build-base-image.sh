#!/usr/bin/env bash
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Usage: scripts/build-base-image.sh [--force]
#
# Builds the podman image the molecule scenarios run in, localhost/bookworm-systemd: a minimal
# Debian bookworm with systemd (as PID 1), python3, dbus and iproute2, made with debootstrap
# from the Debian archive (no container registry is reachable from CI) and imported with
# `podman import`. Skips the build when the image already exists (--force rebuilds it).
# Needs root (debootstrap). Env: BASE_IMAGE (name), DEBIAN_MIRROR (default: the first Debian
# mirror of this machine's apt sources, else deb.debian.org), CONTAINERS_CONF (defaults to
# tests/molecule/containers.conf: runc, cgroupfs, file events).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
image=${BASE_IMAGE:-localhost/bookworm-systemd}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$root/tests/molecule/containers.conf}
packages=systemd,systemd-sysv,python3,dbus,iproute2
# One build of an image at a time: make test runs the twin rack (which builds on this image) beside
# the integration tests (which build it too); the second waits, then finds the image made.
exec 8>"${TMPDIR:-/tmp}/picluster-image-$(printf %s "$image" | tr -c 'A-Za-z0-9._-' _).lock"
flock 8

if [[ "${1:-}" != "--force" ]] && podman image exists "$image"; then
    echo "build-base-image: $image exists ($(podman image inspect --format '{{.Created}}' "$image")); not rebuilding"
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "build-base-image: debootstrap needs root" >&2
    exit 1
fi

mirror=${DEBIAN_MIRROR:-}
if [[ -z "$mirror" ]]; then
    # deb822 (URIs:) or one-line (deb URL suite ...) sources; the security archive has no bookworm suite.
    mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | sed -n -e 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' -e 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]*\).*/\2/p' \
        | grep -v -- '-security' | head -n1 || true)
    mirror=${mirror:-http://deb.debian.org/debian}
fi

rootfs=$(mktemp -d /var/tmp/bookworm-systemd.XXXXXX)
trap 'rm -rf "$rootfs"; flock -u 8' EXIT  # unlocked even if a child of podman still holds the file
start=$SECONDS
echo "build-base-image: debootstrap bookworm from $mirror into $rootfs"
debootstrap --variant=minbase --include="$packages" bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
    tail -n 40 "$rootfs.log" >&2
    rm -f "$rootfs.log"
    echo "build-base-image: debootstrap failed" >&2
    exit 1
}
rm -f "$rootfs.log"
echo "build-base-image: debootstrap took $((SECONDS - start)) s"

# Slim and settle the tree for a container: no apt lists or caches, a machine id made at boot,
# no getty on a console the container does not have.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb
: > "$rootfs/etc/machine-id"
echo bookworm-systemd > "$rootfs/etc/hostname"
ln -sf /dev/null "$rootfs/etc/systemd/system/getty.target"

step=$SECONDS
tar -C "$rootfs" --numeric-owner -cf - . | podman import \
    --change 'CMD ["/sbin/init"]' --change 'ENV container=podman' --change 'STOPSIGNAL SIGRTMIN+3' \
    --quiet - "$image" >/dev/null
echo "build-base-image: podman import took $((SECONDS - step)) s; $image built in $((SECONDS - start)) s"
podman image ls "$image"
