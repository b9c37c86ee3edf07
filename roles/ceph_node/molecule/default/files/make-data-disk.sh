#!/bin/sh
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Usage: make-data-disk.sh IMAGE SIZE LINK
# Test scaffolding: attach a sparse file as a loop device (making its node when the container's
# /dev lacks it: a privileged container gets the host's device nodes as they were at its start),
# put an old ext4 file system on it (the role must wipe it, with the opt-in), and name it by LINK
# in /dev/disk/by-id. Idempotent: an existing LINK is kept.
set -eu
image=$1 size=$2 link=$3
[ -L "$link" ] && exit 0
truncate -s "$size" "$image"
dev=$(losetup --find)
[ -b "$dev" ] || mknod "$dev" b 7 "${dev#/dev/loop}"
losetup "$dev" "$image"
mkfs.ext4 -q -L olddata "$dev"
mkdir -p "$(dirname "$link")"
ln -s "$dev" "$link"
echo "$dev"
