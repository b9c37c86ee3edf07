#!/usr/bin/env bash
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Usage: build-image.sh [--force]
#
# The node_base molecule scenario's image, localhost/bookworm-systemd-nodebase: the base image
# (localhost/bookworm-systemd, scripts/build-base-image.sh) plus a local APT repository,
# file:/srv/picluster-debs, holding the Debian packages the role may install (time sync, swap
# managers) and their dependencies, NOT installed. The scenario's containers run with network
# none: with this repository (and no other source) the role's real `apt` install path runs
# offline. The packages are downloaded once from the Debian archive in a build container on the
# host's network (package archive only); the image is cached (--force rebuilds). python3-apt,
# which Ansible's apt module needs and Raspberry Pi OS ships, is installed. Molecule runs
# this script as the scenario's `dependency` step (molecule.yml).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../../.." && pwd)
base=${BASE_IMAGE:-localhost/bookworm-systemd}
image=${NODEBASE_IMAGE:-localhost/bookworm-systemd-nodebase}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$root/tests/molecule/containers.conf}
packages="systemd-timesyncd chrony dphys-swapfile zram-tools"

if [[ "${1:-}" != "--force" ]] && podman image exists "$image"; then
    echo "node_base image: $image exists; not rebuilding"
    exit 0
fi
podman image exists "$base" || "$root/scripts/build-base-image.sh"

start=$SECONDS
name=nodebase-image-build-$$
trap 'podman rm -f "$name" >/dev/null 2>&1 || true' EXIT
podman run --name "$name" --network host "$base" /bin/sh -c "
    set -e
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends python3-apt >/dev/null
    apt-get install -y -q --no-install-recommends apt-utils >/dev/null
    apt-get clean
    mkdir -p /srv/picluster-debs
    # one at a time: chrony and systemd-timesyncd conflict, so apt will not plan both at once
    for p in $packages; do apt-get install -y -q --no-install-recommends --download-only \$p >/dev/null; done
    mv /var/cache/apt/archives/*.deb /srv/picluster-debs/
    (cd /srv/picluster-debs && apt-ftparchive packages . > Packages)
    apt-get purge -y -q apt-utils >/dev/null
    apt-get clean
    rm -rf /var/lib/apt/lists/*
    mkdir -p /etc/apt/sources.list.d.offline
    mv /etc/apt/sources.list /etc/apt/sources.list.d.offline/ 2>/dev/null || true
    echo 'deb [trusted=yes] file:/srv/picluster-debs ./' > /etc/apt/sources.list.d/picluster-debs.list
" >/dev/null
podman commit --quiet \
    --change 'CMD ["/sbin/init"]' --change 'ENV container=podman' --change 'STOPSIGNAL SIGRTMIN+3' \
    "$name" "$image" >/dev/null
echo "node_base image: $image built in $((SECONDS - start)) s"
