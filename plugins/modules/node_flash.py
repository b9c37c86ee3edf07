#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: node_flash
short_description: Write an OS image onto a node's eMMC or NVMe from the controller, verify it, customise its first boot
version_added: 0.2.0
description:
  - Holds the node in USB boot (nRPIBOOT) and powers it through its board, serves its boot ROM Raspberry Pi's
    mass-storage gadget with C(rpiboot) for the node's USB port, waits for the disk that appears on that port, and
    writes the image to it. Runs on the node's controller; delegate to it (the inventory sets C(carrier_controller)
    and C(carrier_usb_port)).
  - The image is a raw C(.img), or C(.img.xz), C(.img.gz), C(.img.zst) decompressed as a stream (memory stays flat
    whatever its size). With O(bmap) only the blocks the block map lists are written, each range checked against
    its checksum, as C(bmaptool copy) does.
  - Before anything is written the disk is vetted - on the node's USB port (by its sysfs path), not read-only,
    neither it nor a partition of it mounted or used as swap, not the controller's root disk, not smaller than
    the image. A O(sha256) mismatch writes nothing.
  - After writing, the device is fsynced and read back (its cached pages dropped first) and checked against the
    SHA-256 of what was written, or each bmap range's checksum. Then the first-boot files of O(customize) are
    written into the image's FAT boot partition (with mtools, never mounted) and read back.
  - "Idempotence: the proof is a record on the controller, O(state_dir)/<host>.json, removed before the first
    byte is written and written only once everything is verified (an interrupted or failed write leaves none). A
    re-run whose image (by SHA-256), bmap, customisation (by fingerprint), board, slot, USB port and storage match
    the record is RV(ignore:changed=false): the node is neither power-cycled nor read. Limits: the record cannot
    see what happened to the storage since (a node that booted changes its own file systems, another tool may
    have rewritten it, a module may have been swapped); use O(force) to rewrite. The image's SHA-256 is taken
    from the record when the file is the very one hashed then (same path, size, modification time and inode)."
  - Progress is written to O(state_dir)/<host>.progress, a line at most every O(progress_interval) seconds.
  - For the collection's simulator (a C(sim:) bus) the simulator's USB host stands in for rpiboot and its disk
    appears under the simulator's state directory; everything else is the same code.
  - One flash per node at a time (a lock per node host); several nodes of one controller may flash at once, one
    per USB port.
  - "A Turing Pi 2 node (O(profile=turingpi2)) is flashed by its BMC's OS install service, as C(tpi flash) does:
    the image is streamed to the BMC (raw or xz as it is, with its SHA-256 for the BMC to check; gzip and zstd
    decompressed on the way; with O(customize) decompressed into a sparse file under O(state_dir), customised,
    and uploaded raw), the BMC writes the eMMC, reads it back and compares, and the module waits for it to
    finish. The controller cannot read that eMMC itself: the BMC's read-back is the verification.
    O(usb_port) is not used."
author:
  - picluster.carrier contributors (@picluster)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - picluster.carrier.board
  - picluster.carrier.board.bmc
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
    details: Hashes the image and compares with the record; nothing is powered, served or written.
  diff_mode:
    support: full
    details: The recorded flash before and the one that would be made after.
options:
  host:
    description: The node's host name (its inventory name); names the record, the progress file and the lock.
    type: str
    required: true
  slot:
    description: The node's slot on the board.
    type: int
    required: true
  image:
    description:
      - Path of the image on the controller. Compression is recognised by the file's first bytes (xz, gzip, zstd;
        a C(.lzma) name for the old lzma format); anything else is written as it is.
      - C(.zst) needs the C(zstandard) Python package on the controller.
    type: path
    required: true
  sha256:
    description:
      - The SHA-256 of the image file as it is (compressed), 64 hex digits (a C(sha256sum) line is accepted).
        Checked before the node is touched; a mismatch writes nothing.
    type: str
  bmap:
    description:
      - A block map made by C(bmaptool create) for the uncompressed image. Only mapped ranges are written; each is
        checked against the map's checksum, and read back after.
      - The map's own checksum is verified before anything is done.
    type: path
  usb_port:
    description:
      - The controller's USB port the node's USB-boot port is cabled to, as the kernel names it under
        C(/sys/bus/usb/devices) (for example V(1-1.3)); the inventory sets C(carrier_usb_port) from the
        topology's C(usb_port).
      - Required for every board but a Turing Pi 2.
    type: str
  device:
    description:
      - The disk expected on that port (for example V(/dev/sda)). Refused when it is not the one there. Needed only
        when a port shows more than one disk.
    type: path
  storage:
    description:
      - Which of the node's storages the image is for; recorded, so a change rewrites.
    type: str
    choices: [emmc, nvme]
    default: emmc
  customize:
    description:
      - First-boot customisation written into the image's FAT boot partition after the image is verified -
        C(hostname), C(fqdn), C(users) (C(name), C(ssh_authorized_keys), C(password_hash) - a crypt hash only -,
        C(groups), C(sudo)), C(ssh), C(timezone), C(locale), C(keyboard), C(network), C(wifi), C(style)
        (V(cloud-init) NoCloud seed files, V(firstrun) for rpi-imager's firstrun.sh, V(auto)).
      - Every value is checked before anything is touched. Secrets are never returned.
    type: dict
  boot:
    description:
      - V(true) starts the node from its storage after a flash (nRPIBOOT released, powered on); V(false) leaves it
        off with nRPIBOOT released.
    type: bool
    default: false
  force:
    description: Write even when the record says this image and customisation are on the node already.
    type: bool
    default: false
  power_control:
    description:
      - V(true) drives the node's power and nRPIBOOT lines through the board. V(false) when the node is already held
        in USB boot and powered another way (a jumper); the module then only serves it and writes.
    type: bool
    default: true
  rpiboot_command:
    description: The rpiboot program of Raspberry Pi's usbboot on the controller.
    type: str
    default: rpiboot
  gadget_dir:
    description: The directory of usbboot's mass-storage gadget that rpiboot serves (C(-d)).
    type: path
    default: /usr/share/rpiboot/mass-storage-gadget64
  timeout:
    description: Seconds to wait for rpiboot to serve the node, and again for its disk to appear.
    type: float
    default: 120
  state_dir:
    description: Directory of the flash records and progress files on the controller.
    type: path
    default: /var/lib/picluster-carrier/flash
  progress_interval:
    description: Seconds between two progress lines.
    type: float
    default: 10
  max_parallel:
    description:
      - At most this many flashes at once on this controller (by lock files beside the bus locks); a task beyond
        waits for one to end. V(0) sets no limit. A USB 2.0 hub shares its bandwidth between its ports.
    type: int
    default: 0
notes:
  - rpiboot is not packaged in Debian 12; build it from U(https://github.com/raspberrypi/usbboot) (it installs
    C(rpiboot) and C(/usr/share/rpiboot/mass-storage-gadget64)) or install Raspberry Pi OS's C(rpiboot) package.
"""

EXAMPLES = r"""
- name: Flash Raspberry Pi OS onto node03's eMMC and boot it with its own host name
  picluster.carrier.node_flash:
    board: "{{ carrier_board }}"
    profile: "{{ carrier_profile_data | default(carrier_profile) }}"
    bus: "{{ carrier_bus }}"
    slot: "{{ carrier_slot }}"
    usb_port: "{{ carrier_usb_port }}"
    host: "{{ inventory_hostname }}"
    image: /srv/images/raspios-bookworm-arm64-lite.img.xz
    sha256: 5b0bb7e2b4d7a2b5e2c5f8b3f0f4f8fe7a7b0c1c4f2d4c8f9e1a2b3c4d5e6f70
    customize:
      hostname: "{{ inventory_hostname }}"
      users:
        - name: admin
          ssh_authorized_keys: ["{{ lookup('file', '~/.ssh/id_ed25519.pub') }}"]
      ssh: true
      timezone: Europe/Berlin
    boot: true
  delegate_to: "{{ carrier_controller }}"

- name: Write only the mapped blocks, as bmaptool does
  picluster.carrier.node_flash:
    board: rack1
    profile: backplane10
    bus: 1
    slot: 4
    usb_port: 1-2.1.4
    host: node08
    image: /srv/images/os.img.zst
    bmap: /srv/images/os.img.bmap
"""

RETURN = r"""
host:
  description: The node host.
  returned: always
  type: str
  sample: node03
image:
  description: The image path.
  returned: always
  type: str
image_sha256:
  description: The SHA-256 of the image file.
  returned: always
  type: str
compression:
  description: The image's compression as recognised.
  returned: always
  type: str
  sample: xz
bmap:
  description: Whether a block map was used.
  returned: always
  type: bool
storage:
  description: The storage flashed.
  returned: always
  type: str
image_size:
  description: The uncompressed image size in bytes (null in check mode when only a full pass could tell).
  returned: always
  type: int
written:
  description: Bytes written to the device (0 when unchanged or in check mode).
  returned: always
  type: int
record:
  description: The path of the flash record.
  returned: always
  type: str
device:
  description: The disk written (from the record when unchanged).
  returned: when written, or recorded
  type: str
  sample: /dev/sda
device_size:
  description: The disk's size in bytes.
  returned: when written
  type: int
usb_port:
  description: The USB port the disk was found on.
  returned: when written
  type: str
verified:
  description: How the write was verified (C(sha256 <digest>) or C(bmap ranges)).
  returned: when written
  type: str
ranges:
  description: Bmap ranges written and verified.
  returned: when written
  type: int
seconds:
  description: Seconds spent writing and verifying.
  returned: when written
  type: float
customized:
  description: The first-boot files written (C(style), C(files), C(removed), C(sha256) of each), or null.
  returned: when written
  type: dict
node:
  description: The node's state after the task (V(off), V(on)).
  returned: when written
  type: str
progress_file:
  description: Where progress lines were written.
  returned: when written
  type: str
uploaded:
  description: Bytes uploaded to a Turing Pi 2's BMC.
  returned: when written through a BMC
  type: int
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.picluster.carrier.plugins.module_utils import _command, _fat  # noqa: E402
from ansible_collections.picluster.carrier.plugins.module_utils._common import (  # noqa: E402
    board_argument_spec,
    board_from_params,
)
from ansible_collections.picluster.carrier.plugins.module_utils._errors import run_module  # noqa: E402
from ansible_collections.picluster.carrier.plugins.module_utils._flash import flash as _flash  # noqa: E402
from ansible_collections.picluster.carrier.plugins.module_utils._flash import usb as _usb  # noqa: E402


def _run(module):
    params = module.params
    _fat.set_runner(_fat.module_runner(module))
    board = board_from_params(params)
    request = _flash.FlashRequest(
        params["host"], params["image"], params["slot"], usb_port=params["usb_port"], sha256=params["sha256"],
        bmap=params["bmap"], customize=params["customize"], device=params["device"], storage=params["storage"],
        boot=params["boot"], force=params["force"], power_control=params["power_control"],
        timeout=params["timeout"], state_dir=params["state_dir"], progress_interval=params["progress_interval"],
        is_bmc=board.profile.kind == "turingpi2", max_parallel=params["max_parallel"])
    access = _usb.Access(board.bus_spec, rpiboot_command=params["rpiboot_command"], gadget_dir=params["gadget_dir"],
                         runner=_command.module_timed_runner(module))
    result = _flash.run(request, board, access, check_mode=module.check_mode)
    if not module._diff:
        result.pop("diff", None)
    return result


def main():
    module = AnsibleModule(
        argument_spec=board_argument_spec(
            host=dict(type="str", required=True),
            slot=dict(type="int", required=True),
            image=dict(type="path", required=True),
            sha256=dict(type="str"),
            bmap=dict(type="path"),
            usb_port=dict(type="str"),
            device=dict(type="path"),
            storage=dict(type="str", default="emmc", choices=["emmc", "nvme"]),
            customize=dict(type="dict", no_log=True),
            boot=dict(type="bool", default=False),
            force=dict(type="bool", default=False),
            power_control=dict(type="bool", default=True),
            rpiboot_command=dict(type="str", default="rpiboot"),
            gadget_dir=dict(type="path", default="/usr/share/rpiboot/mass-storage-gadget64"),
            timeout=dict(type="float", default=120.0),
            state_dir=dict(type="path", default="/var/lib/picluster-carrier/flash"),
            progress_interval=dict(type="float", default=10.0),
            max_parallel=dict(type="int", default=0),
        ),
        supports_check_mode=True,
    )
    run_module(module, _run)


if __name__ == "__main__":
    main()
