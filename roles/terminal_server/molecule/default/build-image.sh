#!/usr/bin/env bash
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Usage: build-image.sh [--force]
#
# The terminal_server molecule scenario's image, localhost/bookworm-systemd-terminal: the base image
# (localhost/bookworm-systemd, scripts/build-base-image.sh) plus python3-apt (for Ansible's apt
# module) and an offline APT repository with the packages the role installs (ser2net, socat,
# logrotate and their dependencies), so the role's real apt task works in a container with network
# none. Built once in a build container on the host's network (the Debian archive only); does
# nothing when the image exists (--force rebuilds). Molecule runs it as the dependency step.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../../.." && pwd)
base=${BASE_IMAGE:-localhost/bookworm-systemd}
image=${TERMINAL_IMAGE:-localhost/bookworm-systemd-terminal}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$root/tests/molecule/containers.conf}
packages="ser2net socat logrotate"

if [[ "${1:-}" != "--force" ]] && podman image exists "$image"; then
    echo "terminal_server image: $image exists; not rebuilding"
    exit 0
fi
podman image exists "$base" || "$root/scripts/build-base-image.sh"

start=$SECONDS
name=terminal-image-build-$$
trap 'podman rm -f "$name" >/dev/null 2>&1 || true' EXIT
podman run --name "$name" --network host "$base" /bin/sh -c "
    set -e
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends python3-apt apt-utils >/dev/null
    mkdir -p /srv/picluster-debs
    apt-get install -y -q --no-install-recommends --download-only $packages >/dev/null
    mv /var/cache/apt/archives/*.deb /srv/picluster-debs/
    (cd /srv/picluster-debs && apt-ftparchive packages . > Packages)
    apt-get purge -y -q apt-utils >/dev/null
    apt-get clean
    rm -rf /var/lib/apt/lists/*
    mkdir -p /etc/apt/sources.list.d.offline
    mv /etc/apt/sources.list /etc/apt/sources.list.d.offline/ 2>/dev/null || true
    for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -e \"\$f\" ] && mv \"\$f\" /etc/apt/sources.list.d.offline/
    done
    echo 'deb [trusted=yes] file:/srv/picluster-debs ./' > /etc/apt/sources.list.d/picluster-debs.list
" >/dev/null
podman commit --quiet \
    --change 'CMD ["/sbin/init"]' --change 'ENV container=podman' --change 'STOPSIGNAL SIGRTMIN+3' \
    "$name" "$image" >/dev/null
echo "terminal_server image: $image built in $((SECONDS - start)) s"
