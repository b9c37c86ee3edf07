#!/usr/bin/env bash
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Usage: scripts/build-twin-image.sh [--force]
#
# The twin nodes' image, localhost/bookworm-systemd-twin (sim/carrier_sim/twin.py runs one container
# of it per booted node; TWIN_IMAGE names another): the base image plus what a provisioned node
# runs, installed, since twin nodes have no way to the Debian archive: sshd, sudo and cloud-init
# (the first-boot seed); libnss-myhostname, so the node's own name always resolves (sudo looks it
# up, and a name missing from /etc/hosts would wait on a DNS server the rack cannot reach);
# python3-apt (Ansible's apt module); the Ceph daemons (ceph-osd, gdisk and lvm2 for ceph_node, a
# monitor and a manager for the tests' cluster); udev, masked as in ceph_node's image (in a
# privileged storage twin it would act on the host's devices); OpenMPI, libopenmpi-dev and gcc (the mpi
# role's C example, mpi_install_dev); dig. Offline (an APT
# repository, the image's only source): what node_base installs at converge time, its time sync and
# swap managers. sim/twin-image/ holds the settings: cloud-init from the NoCloud seed only, never
# the network, and SSH host keys each twin makes on its first boot.
# Cached: nothing is done when the image exists and was built from the same inputs (--force rebuilds).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
exec "$root/scripts/build-role-image.sh" --image "${TWIN_IMAGE:-localhost/bookworm-systemd-twin}" \
    --install "openssh-server sudo cloud-init libnss-myhostname python3-apt ceph-mon ceph-mgr ceph-osd gdisk udev openmpi-bin libopenmpi-dev gcc libc6-dev dnsutils" \
    --offline "systemd-timesyncd chrony dphys-swapfile zram-tools" \
    --mask-udev --copy "$root/sim/twin-image" "$@"
