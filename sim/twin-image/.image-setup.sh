#!/bin/sh
# Run once in the twin image when it is built (scripts/build-role-image.sh --copy), as root.
# The host keys openssh-server's installation made would be every twin's: each makes its own.
rm -f /etc/ssh/ssh_host_*
systemctl enable carrier-twin-hostkeys.service ssh.service
# No NVMe over fabrics in a container (no /dev/nvme-fabrics): the unit would fail at every boot.
systemctl mask nvmf-autoconnect.service
