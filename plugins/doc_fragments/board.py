# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # Keep in step with BOARD_ARGUMENT_SPEC in plugins/module_utils/_common.py. Board modules take BMC too.
    DOCUMENTATION = r"""
options:
  board:
    description:
      - Name of the board, as in the topology file (the inventory sets it as host var C(carrier_board)).
      - Used in messages and to name the stagger gate of the board.
    type: str
    required: true
  profile:
    description:
      - The board profile, either the name of a built-in profile (V(itx4), V(backplane10), V(clusterhat_v2),
        V(clusterhat_v3), V(clusterctrl), V(turingpi1), V(turingpi2)) or a mapping that defines one
        (C(name), C(kind), C(chips), C(slots), C(timing); see the collection README).
      - Boards without a carrier are profiles too, their nodes powered through the ports of a device (V(usb_hub4),
        V(usb_hub7) (C(kind=usb_hub)), V(poe_switch8) (C(kind=poe_switch)), V(tasmota_strip4), V(shelly_pro4)
        (C(kind=smart_plug))); such a slot has only a power line, and a reset is a power cycle.
      - The inventory sets it as host vars C(carrier_profile) and, for a user profile, C(carrier_profile_data).
    type: raw
    required: true
  bus:
    description:
      - The I2C bus of the board on the controller, V(1) or V(/dev/i2c-1), or V(sim:/path/to/bus.sock) for a bus of
        the collection's simulator.
      - For a Turing Pi 2 (O(profile=turingpi2)), the URL of its BMC, for example V(https://turingpi.local).
      - For a smart plug or power strip, its URL (V(http://10.0.0.31)); for a PoE switch, its SNMP agent
        (V(snmp://switch.lan) or V(snmp://HOST:PORT)); for a USB hub, V(usb:1-1) or its sysfs directory
        (V(/sys/bus/usb/devices/1-1)).
    type: raw
    required: true
  addresses:
    description:
      - Chip addresses that differ from the profile's, by chip name (for instance chip V(u1) moved to V(0x24) by
        its address jumpers).
    type: dict
  protected_slots:
    description:
      - Slots that host the controller itself. Acting on one needs C(force=true) where the module has that option;
        with C(slot=all) they are skipped.
    type: list
    elements: int
    default: []
  lock_dir:
    description:
      - Directory of the inter-process lock files (one per bus) that serialise bus access across Ansible forks.
      - Defaults to C(/run/lock/picluster-carrier), or a directory under the system temporary directory when that
        is not writable.
    type: path
notes:
  - Every read-modify-write of an expander is done under an exclusive lock of its bus, and every write is verified
    by reading the pins back.
  - Transient I2C errors (NACK, EIO) are retried with exponential backoff before the task fails.
  - A Turing Pi 2's BMC does not sense node power; it reports what it last switched. The USB boot mode cannot be
    read back from it, so O(ignore:usb_boot) always acts on such a board.
"""

    # The Turing Pi 2 BMC's options: BMC_ARGUMENT_SPEC in plugins/module_utils/_common.py.
    BMC = r"""
options:
  bmc_user:
    description:
      - User for a Turing Pi 2 BMC's API (V(root) on stock firmware). Without it no authentication is sent.
      - The token the BMC gives is kept in a 0600 file in O(lock_dir) and reused by every task of the run.
      - For a smart plug, its web user (Tasmota V(admin), Shelly V(admin)); for a PoE switch, the SNMPv3 user (without
        it, SNMP v2c is spoken).
    type: str
  bmc_password:
    description:
      - Password of O(bmc_user).
      - For a PoE switch, the SNMP v2c community, or the SNMPv3 user's authentication passphrase.
    type: str
  bmc_priv_password:
    description:
      - For a PoE switch spoken to with SNMPv3, the user's privacy (encryption) passphrase. Without it, SNMPv3 is spoken
        with authentication and no privacy.
    type: str
  bmc_ca_path:
    description:
      - A CA certificate (PEM) to verify the BMC's TLS certificate with, for a BMC with a self-signed certificate.
    type: path
  validate_certs:
    description:
      - Verify the BMC's TLS certificate. Turn off only on a network you trust.
    type: bool
    default: true
"""
