#!/usr/bin/env bash
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# A stand-in for Pi-hole v6's `automated install/basic-install.sh`, for the pihole role's
# molecule scenario only (the real installer clones from GitHub and downloads FTL: impossible
# here). Run from a directory that also holds the `pihole` and `pihole-FTL` stand-ins, `dnsmasq`
# and the libraries it lacks in the container (lib/), and VERSIONS (CORE/WEB/FTL_VERSION=...).
# Like the real installer it refuses to run as non-root, and without a terminal it only runs
# unattended on an existing configuration (/etc/pihole/pihole.toml or setupVars.conf present:
# otherwise the real one shows dialogs). It creates the pihole user, the gravity database with
# its adlist table, /etc/pihole/versions, the pihole-FTL unit, and (re)starts pihole-FTL.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
unattended=false
for arg in "$@"; do
    [[ "$arg" == "--unattended" ]] && unattended=true
done

if [[ $EUID -ne 0 ]]; then
    echo "  [✗] Script called with non-root privileges" >&2
    exit 1
fi
if [[ ! -f /etc/pihole/pihole.toml && ! -f /etc/pihole/setupVars.conf ]] || [[ "$unattended" != true ]]; then
    echo "  [✗] A fresh install (no /etc/pihole/pihole.toml) or a run without --unattended needs dialogs" >&2
    exit 1
fi
echo "  [i] Performing unattended setup, no dialogs will be displayed"

getent group pihole >/dev/null || groupadd -r pihole
id -u pihole >/dev/null 2>&1 || useradd -r -g pihole -s /usr/sbin/nologin -d /etc/pihole pihole

install -d -m 0755 /opt/pihole-standin /opt/pihole-standin/lib /etc/pihole/hosts /var/log/pihole
install -m 0755 "$here/dnsmasq" /opt/pihole-standin/dnsmasq
if compgen -G "$here/lib/*" >/dev/null; then
    install -m 0644 "$here"/lib/* /opt/pihole-standin/lib/
fi
install -m 0755 "$here/pihole-FTL" /usr/bin/pihole-FTL
install -m 0755 "$here/pihole" /usr/local/bin/pihole
install -m 0644 "$here/VERSIONS" /etc/pihole/versions
chown pihole:pihole /etc/pihole /var/log/pihole

if [[ ! -f /etc/pihole/gravity.db ]]; then
    pihole-FTL sqlite3 -ni /etc/pihole/gravity.db "
        CREATE TABLE adlist (id INTEGER PRIMARY KEY AUTOINCREMENT, address TEXT UNIQUE NOT NULL,
            enabled BOOLEAN NOT NULL DEFAULT 1, date_added INTEGER NOT NULL DEFAULT (cast(strftime('%s', 'now') as int)),
            comment TEXT);
        CREATE TABLE info (property TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO info (property, value) VALUES ('version', '19')"
    chown pihole:pihole /etc/pihole/gravity.db
fi

cat > /etc/systemd/system/pihole-FTL.service <<UNIT
[Unit]
Description=Pi-hole FTL (stand-in)
After=network.target

[Service]
Type=simple
ExecStart=/usr/bin/pihole-FTL no-daemon
Restart=on-failure
RestartSec=5s

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl -q enable pihole-FTL
systemctl restart pihole-FTL
echo "  [✓] Installation complete!"
