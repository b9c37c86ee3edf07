#!/bin/sh
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Test scaffolding for the ceph_node scenario: a one-monitor, one-manager Ceph cluster on
# 127.0.0.1 inside the container (the manual deployment steps of Ceph's documentation), with
# pools of size 1 so one OSD is enough. Idempotent: does nothing when the monitor exists.
set -eu
host=$(hostname -s)
[ -d "/var/lib/ceph/mon/ceph-$host" ] && exit 0
fsid=$(python3 -c 'import uuid; print(uuid.uuid4())')
addr='[v2:127.0.0.1:3300,v1:127.0.0.1:6789]'
mkdir -p /etc/ceph
cat > /etc/ceph/ceph.conf <<CONF
[global]
fsid = $fsid
mon_initial_members = $host
mon_host = $addr
public_network = 127.0.0.0/8
CONF
tmp=$(mktemp -d)
ceph-authtool --create-keyring "$tmp/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool --create-keyring /etc/ceph/ceph.client.admin.keyring --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
chmod 600 /etc/ceph/ceph.client.admin.keyring
ceph-authtool --create-keyring "$tmp/bootstrap-osd.keyring" --gen-key -n client.bootstrap-osd \
    --cap mon 'profile bootstrap-osd' --cap mgr 'allow r' >/dev/null
ceph-authtool "$tmp/mon.keyring" --import-keyring /etc/ceph/ceph.client.admin.keyring >/dev/null
ceph-authtool "$tmp/mon.keyring" --import-keyring "$tmp/bootstrap-osd.keyring" >/dev/null
chown ceph:ceph "$tmp/mon.keyring"
chmod 755 "$tmp"
monmaptool --create --addv "$host" "$addr" --fsid "$fsid" "$tmp/monmap" >/dev/null
install -d -o ceph -g ceph "/var/lib/ceph/mon/ceph-$host"
runuser -u ceph -- ceph-mon --mkfs -i "$host" --monmap "$tmp/monmap" --keyring "$tmp/mon.keyring"
systemctl enable --now "ceph-mon@$host" 2>/dev/null
# Settings in the monitors' config database: the role replaces /etc/ceph/ceph.conf on this host
# (the admin host is the node itself here) by the minimal config, as on any OSD node.
ceph config set global public_network 127.0.0.0/8
ceph config set global osd_pool_default_size 1
ceph config set global osd_crush_chooseleaf_type 0
ceph config set mon mon_warn_on_insecure_global_id_reclaim_allowed false
install -d -o ceph -g ceph "/var/lib/ceph/mgr/ceph-$host"
ceph auth get-or-create "mgr.$host" mon 'allow profile mgr' osd 'allow *' mds 'allow *' \
    > "/var/lib/ceph/mgr/ceph-$host/keyring"
chown ceph:ceph "/var/lib/ceph/mgr/ceph-$host/keyring"
systemctl enable --now "ceph-mgr@$host" 2>/dev/null
rm -rf "$tmp"
ceph -s
