#!/bin/sh
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Test scaffolding: the existing cluster the ceph_node role joins, made of one monitor and one
# manager on this host (the manual deployment steps of Ceph's documentation). Used by the
# ceph_node molecule scenario and the twin rack test. Idempotent: does nothing when the monitor
# exists. Settings, from the environment:
#   MON_ADDR        the monitor's IPv4 address (default 127.0.0.1)
#   PUBLIC_NETWORK  the network the daemons listen on (default 127.0.0.0/8)
#   POOL_SIZE       replicas per object (default 1). 1 puts every replica on one host, so one OSD
#                   is enough; more spreads them over that many hosts and tunes the cluster for a
#                   small rack where a dead storage node must be noticed within seconds.
set -eu
mon_addr=${MON_ADDR:-127.0.0.1}
public_network=${PUBLIC_NETWORK:-127.0.0.0/8}
pool_size=${POOL_SIZE:-1}
case $pool_size in
    '' | *[!0-9]* | 0*) echo "bootstrap-cluster: POOL_SIZE must be a positive integer, not '$pool_size'" >&2; exit 2 ;;
esac
host=$(hostname -s)
[ -d "/var/lib/ceph/mon/ceph-$host" ] && exit 0
fsid=$(python3 -c 'import uuid; print(uuid.uuid4())')
addr="[v2:$mon_addr:3300,v1:$mon_addr:6789]"
mkdir -p /etc/ceph
cat > /etc/ceph/ceph.conf <<CONF
[global]
fsid = $fsid
mon_initial_members = $host
mon_host = $addr
public_network = $public_network
CONF
tmp=$(mktemp -d)
ceph-authtool --create-keyring "$tmp/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
# umask: the admin keyring is never readable by others, not even until a chmod.
(umask 077 && ceph-authtool --create-keyring /etc/ceph/ceph.client.admin.keyring --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' >/dev/null)
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
# (the admin host is a node too) by the minimal config, as on any OSD node.
ceph config set global public_network "$public_network"
ceph config set global osd_pool_default_size "$pool_size"
if [ "$pool_size" -eq 1 ]; then
    # CRUSH may then place the replicas of a PG on OSDs of the same host: there is only one.
    ceph config set global osd_crush_chooseleaf_type 0
else
    # A PG keeps taking writes with one replica missing (a storage node down).
    ceph config set global osd_pool_default_min_size "$((pool_size - 1))"
    # Nodes with a few GiB of RAM: the smallest memory target the OSDs accept (896 MiB).
    ceph config set osd osd_memory_target 939524096
    # A dead node is reported by its peers after 8 s rather than 20, and one reporter suffices
    # (the default of 2 needs two other hosts to notice, which a three-node rack may not have).
    ceph config set osd osd_heartbeat_interval 2
    ceph config set global osd_heartbeat_grace 8
    ceph config set mon mon_osd_min_down_reporters 1
fi
ceph config set mon mon_warn_on_insecure_global_id_reclaim_allowed false
# Test hosts share one disk among many containers: warn below 5% free, not Ceph's 30%.
ceph config set mon mon_data_avail_warn 5
install -d -o ceph -g ceph "/var/lib/ceph/mgr/ceph-$host"
(umask 077 && ceph auth get-or-create "mgr.$host" mon 'allow profile mgr' osd 'allow *' mds 'allow *' \
    > "/var/lib/ceph/mgr/ceph-$host/keyring")
chown ceph:ceph "/var/lib/ceph/mgr/ceph-$host/keyring"
systemctl enable --now "ceph-mgr@$host" 2>/dev/null
rm -rf "$tmp"
ceph -s
