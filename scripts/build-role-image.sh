#!/usr/bin/env bash
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Usage: scripts/build-role-image.sh --image NAME [--install "PKG..."] [--offline "PKG..."]
#                                    [--mask-udev] [--copy DIR] [--force]
#
# A role's molecule image: the base image (localhost/bookworm-systemd, scripts/build-base-image.sh)
# plus
#   --install PKG...  packages installed in the image (python3-apt for Ansible's apt module, test
#                     clients, or what a role needs but cannot install offline);
#   --offline PKG...  packages downloaded, NOT installed, with their dependencies, into an APT
#                     repository file:/srv/picluster-debs that becomes the image's only source: the
#                     scenarios' containers run with network none, so the role's real `apt` tasks
#                     install from it. Downloaded one at a time, since some of them conflict
#                     (chrony and systemd-timesyncd) and apt would not plan them together;
#   --mask-udev       mask the udev daemon and its triggers: in a privileged container it would see
#                     (and act on) the host's devices;
#   --copy DIR        copy DIR's tree over the image's root after the packages are installed (owned
#                     by root, never group- or world-writable, existing directories kept as they
#                     are), then run DIR/.image-setup.sh (if present) in the image and remove it.
# Built in a build container on the host's network (the Debian archive only), with services kept
# from starting (policy-rc.d), and cached: nothing is done when the image exists and was built from
# the same inputs (label picluster.carrier.inputs; --force rebuilds).
# Each role's molecule/default/build-image.sh calls this as the scenario's `dependency` step.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
base=${BASE_IMAGE:-localhost/bookworm-systemd}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$root/tests/molecule/containers.conf}

image="" install="" offline="" mask_udev=0 force=0 copy=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --image) image=${2:?--image needs a name}; shift 2 ;;
        --install) install=${2?--install needs a package list}; shift 2 ;;
        --offline) offline=${2?--offline needs a package list}; shift 2 ;;
        --mask-udev) mask_udev=1; shift ;;
        --copy) copy=$(cd "${2:?--copy needs a directory}" && pwd); shift 2 ;;
        --force) force=1; shift ;;
        *) echo "build-role-image.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
[[ -n "$image" ]] || { echo "build-role-image.sh: --image is required" >&2; exit 2; }
for pkg in $install $offline; do  # the lists go into a shell script in the container: names only
    [[ "$pkg" =~ ^[a-z0-9][a-z0-9+.-]+$ ]] || { echo "build-role-image.sh: '$pkg' is not a package name" >&2; exit 2; }
done

# One build of an image at a time (two stages of make test may want the same one at once).
exec 7>"${TMPDIR:-/tmp}/picluster-image-$(printf %s "$image" | tr -c 'A-Za-z0-9._-' _).lock"
flock 7
podman image exists "$base" || "$root/scripts/build-base-image.sh"

script='set -e
export DEBIAN_FRONTEND=noninteractive
'
if [[ -n "$copy" ]]; then
    # stdin carries the --copy tree: kept aside (fd 3), so no package's script reads from it
    script+='exec 3<&0 </dev/null
'
fi
script+='printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d
apt-get update -q
'
if [[ -n "$install" ]]; then
    script+="apt-get install -y -q --no-install-recommends $install >/dev/null
"
fi
if [[ $mask_udev -eq 1 ]]; then
    script+='systemctl mask systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
    systemd-udev-trigger.service systemd-udev-settle.service
'
fi
if [[ -n "$offline" ]]; then
    # apt-utils (apt-ftparchive) only while the repository is made; the image's sources are moved
    # aside, so the repository is the only place apt can install from
    script+="apt-get install -y -q --no-install-recommends apt-utils >/dev/null
apt-get clean
mkdir -p /srv/picluster-debs
for p in $offline; do apt-get install -y -q --no-install-recommends --download-only \$p >/dev/null; done
mv /var/cache/apt/archives/*.deb /srv/picluster-debs/
(cd /srv/picluster-debs && apt-ftparchive packages . > Packages)
apt-get purge -y -q apt-utils >/dev/null
mkdir -p /etc/apt/sources.list.d.offline
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    if [ -e \"\$f\" ]; then mv \"\$f\" /etc/apt/sources.list.d.offline/; fi
done
echo 'deb [trusted=yes] file:/srv/picluster-debs ./' > /etc/apt/sources.list.d/picluster-debs.list
"
fi
if [[ -n "$copy" ]]; then
    script+='tar -x -C / --no-overwrite-dir -f - <&3
if [ -f /.image-setup.sh ]; then sh -e /.image-setup.sh; rm -f /.image-setup.sh; fi
'
fi
script+='rm -f /usr/sbin/policy-rc.d
apt-get clean
rm -rf /var/lib/apt/lists/*
'
if [[ -n "$offline" ]]; then
    # An emptied lists directory dated now would tell apt's cache_valid_time (node_base's) that the
    # lists are fresh, and nothing could be installed; a shipped image's lists are as old as the image.
    script+='touch -d 2000-01-01 /var/lib/apt/lists
'
fi

# The cache key: the build script, the base image and the --copy tree's files. An image built from
# other inputs (a package added to the list, a changed settings file) is rebuilt.
inputs() {
    printf '%s\n' "$script" "$(podman image inspect --format '{{.Id}}' "$base")"
    if [[ -n "$copy" ]]; then
        (cd "$copy" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum)
    fi
}
digest=$(inputs | sha256sum | cut -c1-16)
if [[ $force -eq 0 ]] && podman image exists "$image"; then
    have=$(podman image inspect --format '{{index .Labels "picluster.carrier.inputs"}}' "$image" 2>/dev/null || true)
    if [[ "$have" == "$digest" ]]; then
        echo "role image: $image is up to date; not rebuilding"
        exit 0
    fi
    echo "role image: $image was built from other inputs (${have:-unlabelled}, now $digest): rebuilding"
fi

start=$SECONDS
name=role-image-build-$$
trap 'podman rm -f "$name" >/dev/null 2>&1 || true; flock -u 7' EXIT  # unlocked even if a child of podman still holds the file
if [[ -n "$copy" ]]; then
    # Streamed in rather than mounted: a mount point would stay behind in the committed image.
    tar -C "$copy" --owner=0 --group=0 --numeric-owner --mode=go-w -cf - . \
        | podman run -i --name "$name" --network host "$base" /bin/sh -c "$script" >/dev/null
else
    podman run --name "$name" --network host "$base" /bin/sh -c "$script" >/dev/null
fi
podman commit --quiet \
    --change 'CMD ["/sbin/init"]' --change 'ENV container=podman' --change 'STOPSIGNAL SIGRTMIN+3' \
    --change "LABEL picluster.carrier.inputs=$digest" "$name" "$image" >/dev/null
echo "role image: $image built in $((SECONDS - start)) s"
