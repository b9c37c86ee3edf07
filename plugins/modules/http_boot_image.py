#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: http_boot_image
short_description: Build a signed boot.img and boot.sig for Raspberry Pi HTTP boot
version_added: 0.1.0
description:
  - Runs on the HTTP boot server (usually the cluster controller). Writes C(boot.img) and C(boot.sig) into O(dest),
    the two files the bootloader fetches from C(http://HTTP_HOST:HTTP_PORT/HTTP_PATH/) (C(boot.sig) first).
  - C(boot.img) is a raw FAT file system with the volume label C(BOOT) and no partition table, made with
    C(mkfs.vfat) and mtools (nothing is mounted), holding the boot files of O(source) (kernel, device trees,
    C(config.txt), C(cmdline.txt), initramfs). The bootloader refuses an image over 96 MB; so does this module.
  - "Reproducible: the same input gives the same bytes. The volume id is derived from the content (or set by
    O(volume_id)), the file times are O(timestamp), and the files are written in a fixed order."
  - "C(boot.sig) is the C(.sig) format of the EEPROM tools: the sha256 of C(boot.img), C(ts:) (O(timestamp)), and
    C(rsa2048:), a PKCS#1 v1.5 SHA-256 signature made with the customer private key. The bootloader accepts it when
    the matching public key is embedded in its EEPROM (M(picluster.carrier.eeprom_image) with the same key)."
  - After writing, both files are read back and the signature is verified with the key's public half.
  - Idempotent. An existing C(boot.sig) that is valid for the image and the key is kept.
author:
  - picluster.carrier contributors (@picluster)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  platform:
    platforms: posix
  check_mode:
    support: full
  diff_mode:
    support: full
    details: The sha256 of C(boot.img) and C(boot.sig) and the list of files in the image, before and after.
options:
  source:
    description:
      - A directory of boot files, or an OS image file whose FAT boot partition is read (MBR or GPT).
    type: path
    required: true
  dest:
    description:
      - The directory to write C(boot.img) and C(boot.sig) into (created when missing), for example the node's
        directory under the HTTP server's document root.
    type: path
    required: true
  model:
    description:
      - The model the image is for; the source must hold its boot files (C(start4.elf) for Pi 4/CM4, C(config.txt)
        and a C(bcm2712*.dtb) for Pi 5/CM5).
      - C(pi3) and C(pi3bplus) are refused with the reason (their bootloader is in boot ROM and C(bootcode.bin), with
        no HTTP boot); they are accepted here so that a play over a mixed cluster fails with that message.
    type: str
    choices: [cm4, pi4, cm5, pi5, pi3, pi3bplus]
    default: cm4
  config_txt:
    description: The C(config.txt) to put in the image instead of the source's.
    type: str
  cmdline_txt:
    description: The C(cmdline.txt) to put in the image instead of the source's.
    type: str
  exclude:
    description: Glob patterns of source paths to leave out of the image.
    type: list
    elements: str
    default: []
  timestamp:
    description:
      - Modification time (Unix seconds, UTC) of every file in the image, and the C(ts:) of C(boot.sig).
    type: int
    default: 1704067200
  volume_id:
    description:
      - The FAT volume id (up to 8 hex digits). Default derived from the names and contents of the files.
    type: str
  size_mb:
    description:
      - Size of C(boot.img) in MiB, from 3 (the smallest FAT16 file system) to 96. Default the smallest size that
        holds the files with some room.
    type: int
  signing_key:
    description:
      - Path of the customer RSA-2048 private key (PEM).
      - One of O(signing_key) and O(signing_key_content) is required.
    type: path
  signing_key_content:
    description: The private key itself (PEM text), instead of O(signing_key).
    type: str
  signing_key_passphrase:
    description: Passphrase of an encrypted private key.
    type: str
  generate_key:
    description:
      - When O(signing_key) does not exist, create a new RSA-2048 key there (mode 0600).
      - Embed its public key (RV(public_key)) in the nodes' EEPROM so that they accept the signed image.
    type: bool
    default: false
requirements:
  - mtools and dosfstools (mkfs.vfat) on the host
  - cryptography
notes:
  - HTTP boot facts are in the collection's docs/hardware.md section 7; the C(.sig) format in section 4.
seealso:
  - module: picluster.carrier.netboot_assets
  - module: picluster.carrier.eeprom_image
"""

EXAMPLES = r"""
- name: A signed HTTP boot image for the CM4 nodes, served by the netboot_server role's nginx
  picluster.carrier.http_boot_image:
    source: /srv/images/2024-11-19-raspios-bookworm-arm64-lite.img
    dest: /srv/http/netboot/cm4
    signing_key: /etc/picluster/keys/boot.pem
    generate_key: true
    cmdline_txt: "console=serial0,115200 root=/dev/nfs nfsroot=10.0.0.1:/srv/nfs/cm4,vers=4.1 rw ip=dhcp rootwait\n"

- name: Same image from a key held in a vault variable
  picluster.carrier.http_boot_image:
    source: /srv/boot/bookworm
    dest: /srv/http/netboot/cm4
    signing_key_content: "{{ vault_boot_signing_key }}"
    exclude: ["kernel.img", "kernel7*.img"]
"""

RETURN = r"""
image:
  description: Path of C(boot.img).
  returned: success
  type: str
  sample: /srv/http/netboot/cm4/boot.img
sig:
  description: Path of C(boot.sig).
  returned: success
  type: str
  sample: /srv/http/netboot/cm4/boot.sig
sha256:
  description: sha256 of C(boot.img).
  returned: success
  type: str
  sample: 848c91178797c080278b90a4d6390a7bdd2760f19a4612bab24e3a05f67e64be
size:
  description: Size of C(boot.img) in bytes.
  returned: success
  type: int
  sample: 50331648
volume_id:
  description: The FAT volume id of the image (8 hex digits).
  returned: success
  type: str
  sample: 0770fb94
files:
  description: The files in the image.
  returned: success
  type: list
  elements: str
  sample: [bcm2711-rpi-cm4.dtb, cmdline.txt, config.txt, kernel8.img, overlays/disable-wifi.dtbo, start4.elf]
public_key:
  description: The PEM public key of the signing key, to embed in the nodes' EEPROM.
  returned: success
  type: str
  sample: "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqh...\n-----END PUBLIC KEY-----\n"
key_generated:
  description: Whether O(generate_key) created O(signing_key) in this run (or would in check mode).
  returned: success
  type: bool
  sample: false
"""

import hashlib
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.picluster.carrier.plugins.module_utils._errors import run_module
from ansible_collections.picluster.carrier.plugins.module_utils._fat import module_runner, set_runner
from ansible_collections.picluster.carrier.plugins.module_utils._models import check_eeprom_model
from ansible_collections.picluster.carrier.plugins.module_utils._netboot.bootimg import (
    plan_boot_image,
    write_boot_image,
)
from ansible_collections.picluster.carrier.plugins.module_utils._keys import (
    generate_private_key,
    public_key_pem,
    read_private_key,
)


def _key(module):
    p = module.params
    if module.check_mode and p["generate_key"] and p["signing_key"] and not os.path.exists(p["signing_key"]):
        # Check mode writes nothing: a throwaway key stands in for the one that would be made.
        return generate_private_key(None), True
    return read_private_key(p["signing_key"], p["signing_key_content"], p["signing_key_passphrase"],
                            generate=p["generate_key"], warn=module.warn)


def _listing(image_sha, sig_bytes, files):
    if image_sha is None:
        return ""
    lines = ["boot.img sha256 %s" % image_sha,
             "boot.sig sha256 %s" % (hashlib.sha256(sig_bytes).hexdigest() if sig_bytes else "-")]
    return "\n".join(lines + ["  %s" % f for f in files]) + "\n"


def _plan(p, key):
    return plan_boot_image(
        p["source"], p["dest"], key, timestamp=p["timestamp"], volume_id=p["volume_id"], size_mb=p["size_mb"],
        config_txt=p["config_txt"], cmdline_txt=p["cmdline_txt"], exclude=p["exclude"], check_models=(p["model"],),
    )


def _run(module):
    set_runner(module_runner(module))  # mkfs.vfat and mtools
    p = module.params
    check_eeprom_model(p["model"], "model", purpose="HTTP boot (the EEPROM bootloader's boot mode)")
    if p["generate_key"] and p["signing_key"] and not os.path.exists(p["signing_key"]) and not module.check_mode:
        # The key file is the first thing this run would write: every other option is checked (a
        # whole plan with a throwaway key) before it is made, so a refused run leaves no key behind.
        _plan(p, generate_private_key(None))
    key, generated = _key(module)
    plan = _plan(p, key)
    if plan.changed and not module.check_mode:
        write_boot_image(plan, key)
    result = dict(
        changed=plan.changed or generated, image=plan.image_path, sig=plan.sig_path, sha256=plan.sha256,
        size=len(plan.image), volume_id=plan.volume_id, files=plan.files, public_key=public_key_pem(key),
        key_generated=generated,
    )
    if module._diff:
        result["diff"] = dict(before=_listing(plan.old_sha256, plan.old_sig, []),
                              after=_listing(plan.sha256, plan.sig, plan.files),
                              before_header=p["dest"], after_header=p["dest"])
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            source=dict(type="path", required=True),
            dest=dict(type="path", required=True),
            model=dict(type="str", default="cm4", choices=["cm4", "pi4", "cm5", "pi5", "pi3", "pi3bplus"]),
            config_txt=dict(type="str"),
            cmdline_txt=dict(type="str"),
            exclude=dict(type="list", elements="str", default=[]),
            timestamp=dict(type="int", default=1704067200),
            volume_id=dict(type="str"),
            size_mb=dict(type="int"),
            signing_key=dict(type="path", no_log=False),
            signing_key_content=dict(type="str", no_log=True),
            signing_key_passphrase=dict(type="str", no_log=True),
            generate_key=dict(type="bool", default=False),
        ),
        mutually_exclusive=[("signing_key", "signing_key_content"), ("generate_key", "signing_key_content")],
        required_one_of=[("signing_key", "signing_key_content")],
        supports_check_mode=True,
    )
    run_module(module, _run)


if __name__ == "__main__":
    main()
