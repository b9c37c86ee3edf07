#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: netboot_assets
short_description: Build per-node TFTP directories for Raspberry Pi network boot
version_added: 0.1.0
description:
  - Runs on the netboot server (usually the cluster controller). Builds C(<tftp_root>/<serial>/) for each node, the
    directory a Pi 4/CM4/Pi 5/CM5 bootloader reads over TFTP with C(TFTP_PREFIX=0) (the last 8 hex digits of the
    serial), or a MAC-named directory such as C(dc-a6-32-01-36-c2) with O(tftp_prefix=mac) (C(TFTP_PREFIX=2)).
  - "The boot files come from O(source): a directory, or an OS image file (for example a Raspberry Pi OS C(.img))
    whose FAT boot partition is found from its MBR or GPT partition table and read with mtools, without mounting."
  - Every distinct file content is stored once under C(<tftp_root>/.store/sha256/) and hard-linked into each node
    directory, so a hundred nodes cost the disk space of one. Store objects no directory uses any more are removed.
  - C(config.txt) and C(cmdline.txt) are rendered per node from Jinja2 templates (O(config_template),
    O(cmdline_template), or built-in ones) with the node's variables (NFS root, local root, extra kernel arguments).
  - A node directory that must change is built beside it and swapped in with one atomic rename, so a node booting
    meanwhile reads the old tree or the new one, never a half-written one. A directory whose files already have the
    wanted content is not touched; the result says per node which files are added, modified and removed.
  - Files matching O(preserve) are kept in a node directory across rebuilds (by default the C(pieeprom.upd) and
    C(pieeprom.sig) of an EEPROM self-update staged by M(picluster.carrier.eeprom_image)).
  - Node directories (8 hex digits, or a MAC directory) of nodes not listed are reported in RV(unlisted) and removed
    only with O(prune=true).
  - Bad input (a malformed serial or MAC, two nodes with one serial, a source that cannot boot the nodes' models,
    an image without a FAT partition) fails before anything is written.
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
    details: Per changed node directory, each file with the start of its sha256, before and after.
options:
  source:
    description:
      - A directory of boot files, or an OS image file with a FAT boot partition (MBR or GPT), or a bare FAT image.
      - For Pi 4/CM4 nodes it must hold C(start4.elf); for Pi 5/CM5 nodes C(config.txt) and a C(bcm2712*.dtb).
      - For Pi 3/3B+ nodes C(bootcode.bin) and C(start.elf).
      - Its C(config.txt) and C(cmdline.txt) are not copied as they are; the templates can include them (see
        O(config_template)).
    type: path
    required: true
  tftp_root:
    description:
      - The TFTP root directory (dnsmasq's C(tftp-root)). Created when missing.
    type: path
    required: true
  nodes:
    description:
      - The nodes to build directories for. In a playbook, build the list from the inventory's host variables
        C(carrier_serial), C(carrier_mac) and C(carrier_model) (see the examples).
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The node's name (its inventory host name); used in results and templates.
        type: str
        required: true
      serial:
        description:
          - The serial number, 16 hex digits as in C(/proc/cpuinfo) or the 8 of the TFTP directory.
          - Required with O(tftp_prefix=serial).
        type: str
      mac:
        description: The Ethernet MAC address. Required with O(tftp_prefix=mac).
        type: str
      model:
        description:
          - The node's model; chooses which boot files the source must have.
          - C(pi3bplus) (Raspberry Pi 3 Model B+) and C(pi3) (3 Model B, once its OTP has USB host boot set with
            C(program_usb_boot_mode=1)) boot from their boot ROM, which reads C(bootcode.bin) from the root of
            O(tftp_root); the module puts the source's there, and the node's serial directory holds the rest.
            They need O(nodes[].tftp_prefix=serial). A Zero 2 W has no Ethernet and is refused.
        type: str
        choices: [cm4, pi4, cm5, pi5, pi3, pi3bplus]
        default: cm4
      tftp_prefix:
        description: Overrides O(tftp_prefix) for this node.
        type: str
        choices: [serial, mac]
      nfs_root:
        description:
          - C(SERVER:/PATH) of an NFS root file system. The default cmdline then has C(root=/dev/nfs nfsroot=...).
          - Mutually exclusive with O(nodes[].root).
        type: str
      root:
        description: A local root device, for example C(PARTUUID=4e639091-02) or C(/dev/nvme0n1p2).
        type: str
      rootfstype:
        description: File system type of O(nodes[].root).
        type: str
        default: ext4
      extra_kernel_args:
        description:
          - Kernel arguments appended to the cmdline (a list, or a space-separated string).
          - A list item holding a line break or another control character is refused.
        type: raw
      config:
        description:
          - Lines appended to C(config.txt) under C([all]) by the default template (a list or text).
          - Each list item is one line; one holding a line break or another control character is refused.
        type: raw
      vars:
        description: Any other variables for your templates, as C(vars.<name>).
        type: dict
      customize:
        description:
          - First-boot customisation of this node's OS, written into its directory as the OS reads it from its
            boot partition - cloud-init NoCloud seed files (C(user-data), C(meta-data), C(network-config)) and
            C(ds=nocloud) in C(cmdline.txt), or rpi-imager's C(firstrun.sh) hooked into C(cmdline.txt).
          - Its keys replace the same keys of O(customize); the host name defaults to O(nodes[].name).
          - Every value is checked before anything is written; a refusal names C(nodes[i].customize.<key>).
          - A file holding a password hash is mode 0600; the hash never appears in a result or a diff.
        type: dict
        suboptions:
          hostname:
            description: The host name (one RFC 1123 label). Default the node's O(nodes[].name).
            type: str
          fqdn:
            description: The full domain name; its first label is the host name unless that is set.
            type: str
          users:
            description: Users to create, the first one as the image's default user.
            type: list
            elements: dict
            suboptions:
              name:
                description: The user name (POSIX, as adduser takes it).
                type: str
                required: true
              ssh_authorized_keys:
                description: OpenSSH public key lines.
                type: list
                elements: str
              password_hash:
                description: A crypt hash (C($6$), C($5$), C($y$), C($2b$)), never a password. Never returned.
                type: str
              groups:
                description: Supplementary groups.
                type: list
                elements: str
              sudo:
                description: Password-less sudo.
                type: bool
          ssh:
            description: V(true) or V(false), or C(enabled) and C(password_authentication).
            type: raw
          timezone:
            description: An IANA time zone such as C(Europe/Berlin).
            type: str
          locale:
            description: A locale such as C(en_GB.UTF-8).
            type: str
          keyboard:
            description: An XKB layout (C(gb)), or C(layout), C(variant), C(model).
            type: raw
          network:
            description: V(dhcp), or C(interface), C(address) (CIDR), C(gateway), C(nameservers).
            type: raw
          wifi:
            description: C(enabled) and C(country) (regulatory domain).
            type: raw
          style:
            description:
              - V(cloud-init) (NoCloud seed files), V(firstrun) (rpi-imager's C(firstrun.sh) and its
                C(cmdline.txt) hook) or V(auto) (cloud-init when the source has C(user-data), C(meta-data) or
                C(network-config), else firstrun).
            type: str
            choices: [cloud-init, firstrun, auto]
  customize:
    description:
      - The first-boot customisation every node gets (see O(nodes[].customize)), each node's own keys over it,
        each node's host name its O(nodes[].name) unless set. Without it and O(nodes[].customize), nothing of
        the kind is written.
    type: dict
    suboptions:
      hostname:
        description: The host name (one RFC 1123 label). Default the node's O(nodes[].name).
        type: str
      fqdn:
        description: The full domain name; its first label is the host name unless that is set.
        type: str
      users:
        description: Users to create, the first one as the image's default user.
        type: list
        elements: dict
        suboptions:
          name:
            description: The user name (POSIX, as adduser takes it).
            type: str
            required: true
          ssh_authorized_keys:
            description: OpenSSH public key lines.
            type: list
            elements: str
          password_hash:
            description: A crypt hash (C($6$), C($5$), C($y$), C($2b$)), never a password. Never returned.
            type: str
          groups:
            description: Supplementary groups.
            type: list
            elements: str
          sudo:
            description: Password-less sudo.
            type: bool
      ssh:
        description: V(true) or V(false), or C(enabled) and C(password_authentication).
        type: raw
      timezone:
        description: An IANA time zone such as C(Europe/Berlin).
        type: str
      locale:
        description: A locale such as C(en_GB.UTF-8).
        type: str
      keyboard:
        description: An XKB layout (C(gb)), or C(layout), C(variant), C(model).
        type: raw
      network:
        description: V(dhcp), or C(interface), C(address) (CIDR), C(gateway), C(nameservers).
        type: raw
      wifi:
        description: C(enabled) and C(country) (regulatory domain).
        type: raw
      style:
        description:
          - V(cloud-init) (NoCloud seed files), V(firstrun) (rpi-imager's C(firstrun.sh) and its
            C(cmdline.txt) hook) or V(auto) (cloud-init when the source has C(user-data), C(meta-data) or
            C(network-config), else firstrun).
        type: str
        choices: [cloud-init, firstrun, auto]
  tftp_prefix:
    description:
      - How node directories are named, matching the bootloader's C(TFTP_PREFIX) setting.
      - V(serial) (C(TFTP_PREFIX=0)) the last 8 hex digits of the serial; V(mac) (C(TFTP_PREFIX=2)) the MAC with
        dashes.
    type: str
    choices: [serial, mac]
    default: serial
  config_template:
    description:
      - A Jinja2 template file for each node's C(config.txt). Variables C(node) (C(name), C(serial), C(serial8),
        C(mac), C(model), C(soc), C(dtb), C(dirname)), C(nfs_root), C(root), C(rootfstype), C(extra_kernel_args),
        C(config), C(source_config) (the source's C(config.txt)), C(source_cmdline) and C(vars).
      - The default writes the source's C(config.txt), then a C([all]) section with O(nodes[].config).
    type: path
  cmdline_template:
    description:
      - A Jinja2 template file for each node's C(cmdline.txt) (one line), with the variables of O(config_template).
      - The default uses O(nodes[].nfs_root), else O(nodes[].root), else the source's C(cmdline.txt), and appends
        O(nodes[].extra_kernel_args). The result must contain C(root=).
    type: path
  exclude:
    description: Glob patterns of source paths not to copy (for example C(kernel.img) or C(overlays/*-pi3*)).
    type: list
    elements: str
    default: []
  preserve:
    description: Glob patterns of files kept in a node directory although the source does not have them.
    type: list
    elements: str
    default: [pieeprom.upd, pieeprom.sig]
  prune:
    description: Remove the node directories under O(tftp_root) of nodes not in O(nodes).
    type: bool
    default: false
requirements:
  - jinja2 (the Python package; ansible-core brings it on a controller)
  - mtools (only for an image file as O(source))
notes:
  - The files are hard links into a shared store; do not edit a file of a node directory in place (it would change
    it for every node). Run the module again instead.
  - Network boot facts are in the collection's docs/hardware.md sections 6 and 9.
  - The customisation files are in the node's directory, the node's boot partition when the node mounts it (an NFS
    export of the directory at C(/boot/firmware)). A file holding a password hash is 0600 and owned by the user
    the module runs as, so dnsmasq does not serve it over TFTP (as root it serves world-readable files only) and an
    NFS export must not squash root for the node to read it. With SSH keys and no password every file is 0644.
seealso:
  - module: picluster.carrier.http_boot_image
  - module: picluster.carrier.eeprom_image
"""

EXAMPLES = r"""
- name: Collect the nodes of the inventory (host vars of the picluster.carrier.boards inventory plugin)
  ansible.builtin.set_fact:
    netboot_nodes: >-
      {{ netboot_nodes | default([]) + [{'name': item, 'serial': hostvars[item].carrier_serial,
         'mac': hostvars[item].carrier_mac, 'model': hostvars[item].carrier_model | default('cm4'),
         'nfs_root': '10.0.0.1:/srv/nfs/' ~ item}] }}
  loop: "{{ groups['carrier_nodes'] }}"

- name: TFTP directories for every node of the inventory, NFS roots from the controller
  picluster.carrier.netboot_assets:
    source: /srv/images/2024-11-19-raspios-bookworm-arm64-lite.img
    tftp_root: /srv/tftp
    nodes: "{{ netboot_nodes }}"

- name: Two nodes, one on NFS, one with its root on NVMe, from an unpacked boot directory
  picluster.carrier.netboot_assets:
    source: /srv/boot/bookworm
    tftp_root: /srv/tftp
    nodes:
      - name: node01
        serial: "10000000b7f44626"
        nfs_root: 10.0.0.1:/srv/nfs/node01
      - name: node02
        serial: "100000008306d03b"
        root: PARTUUID=4e639091-02
        extra_kernel_args: [quiet, cgroup_enable=memory]
        config: [dtoverlay=disable-wifi]
    prune: true

- name: First-boot customisation, the same for every node, each named after its inventory host
  picluster.carrier.netboot_assets:
    source: /srv/boot/trixie
    tftp_root: /srv/tftp
    nodes: "{{ netboot_nodes }}"
    customize:
      users:
        - name: admin
          ssh_authorized_keys: ["{{ lookup('file', '~/.ssh/id_ed25519.pub') }}"]
          sudo: true
      ssh: true
      timezone: Europe/Berlin
      locale: en_GB.UTF-8
      style: auto

- name: One node with its own name and a static address, rpi-imager's firstrun.sh
  picluster.carrier.netboot_assets:
    source: /srv/boot/bookworm
    tftp_root: /srv/tftp
    nodes:
      - name: node01
        serial: "10000000b7f44626"
        nfs_root: 10.0.0.1:/srv/nfs/node01
        customize:
          hostname: worker01
          network: {address: 10.0.0.11/24, gateway: 10.0.0.1, nameservers: [10.0.0.1]}
          style: firstrun

- name: MAC-named directories (bootloader TFTP_PREFIX=2)
  picluster.carrier.netboot_assets:
    source: /srv/boot/bookworm
    tftp_root: /srv/tftp
    tftp_prefix: mac
    nodes:
      - {name: node03, mac: "dc:a6:32:01:36:c2", model: cm4, root: /dev/mmcblk0p2}
"""

RETURN = r"""
tftp_root:
  description: The TFTP root, absolute.
  returned: success
  type: str
  sample: /srv/tftp
nodes:
  description:
    - Per node (by name), its directory and what changes in it.
    - C(customize) (with O(nodes[].customize) or O(customize)) the style written and the names of the files it
      sets.
  returned: success
  type: dict
  sample:
    node01:
      name: node01
      dir: /srv/tftp/b7f44626
      dirname: b7f44626
      changed: true
      added: []
      modified: [cmdline.txt]
      removed: []
      unchanged: 311
      preserved: [pieeprom.sig, pieeprom.upd]
      customize: {style: cloud-init, files: [cmdline.txt, meta-data, user-data]}
changed_nodes:
  description: Names of the nodes whose directory changed (or would change in check mode).
  returned: success
  type: list
  elements: str
  sample: [node01]
pruned:
  description: Directories removed (or that would be removed) by O(prune).
  returned: success
  type: list
  elements: str
  sample: [c0ffee01]
unlisted:
  description: Node directories under O(tftp_root) of nodes not listed, left in place.
  returned: success
  type: list
  elements: str
  sample: [dc-a6-32-01-36-c2]
source:
  description: What was read from O(source).
  returned: success
  type: dict
  sample: {path: /srv/images/raspios.img, kind: image, partition: MBR partition 1 (type 0x0c), files: 312}
root_files:
  description:
    - Files of O(tftp_root) itself and what happens to each (C(added), C(modified), C(unchanged)); C(bootcode.bin)
      when a node is a Pi 3/3B+ (its boot ROM reads it from there), else empty.
  returned: success
  type: dict
  sample: {bootcode.bin: added}
store:
  description:
    - The shared store after the run, C(objects) and C(bytes); C(bytes_written) to it by this run and
      C(objects_removed) (no longer used).
  returned: success
  type: dict
  sample: {objects: 318, bytes: 61234567, bytes_written: 1543, objects_removed: 1}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.picluster.carrier.plugins.module_utils._errors import run_module
from ansible_collections.picluster.carrier.plugins.module_utils._fat import module_runner, set_runner
from ansible_collections.picluster.carrier.plugins.module_utils._netboot.render import load_template
from ansible_collections.picluster.carrier.plugins.module_utils._netboot.trees import build_tftp_trees


def _customize_spec():
    return dict(
        hostname=dict(type="str"),
        fqdn=dict(type="str"),
        users=dict(type="list", elements="dict", options=dict(
            name=dict(type="str", required=True),
            ssh_authorized_keys=dict(type="list", elements="str", no_log=False),
            password_hash=dict(type="str", no_log=True),
            groups=dict(type="list", elements="str"),
            sudo=dict(type="bool"),
        )),
        ssh=dict(type="raw"),
        timezone=dict(type="str"),
        locale=dict(type="str"),
        keyboard=dict(type="raw"),
        network=dict(type="raw"),
        wifi=dict(type="raw"),
        style=dict(type="str", choices=["cloud-init", "firstrun", "auto"]),
    )


def _given(value):
    """The keys the user set: the argument spec fills every missing suboption with None, which would
    replace a top-level customize key by nothing and read as a value to check."""
    if isinstance(value, dict):
        return {k: _given(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_given(v) for v in value]
    return value


def _run(module):
    set_runner(module_runner(module))  # mtools for OS image sources
    p = module.params
    nodes = [{k: _given(v) if k == "customize" else v for k, v in node.items() if v is not None} for node in p["nodes"]]
    changed, result, diff = build_tftp_trees(
        p["source"], nodes, p["tftp_root"], prune=p["prune"], preserve=p["preserve"], tftp_prefix=p["tftp_prefix"],
        config_template=load_template(p["config_template"], "config_template"),
        cmdline_template=load_template(p["cmdline_template"], "cmdline_template"),
        exclude=p["exclude"], check_mode=module.check_mode, warn=module.warn, customize=_given(p["customize"]),
    )
    result["changed"] = changed
    if module._diff:
        result["diff"] = diff
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            source=dict(type="path", required=True),
            tftp_root=dict(type="path", required=True),
            nodes=dict(type="list", elements="dict", required=True, options=dict(
                name=dict(type="str", required=True),
                serial=dict(type="str"),
                mac=dict(type="str"),
                model=dict(type="str", default="cm4", choices=["cm4", "pi4", "cm5", "pi5", "pi3", "pi3bplus"]),
                tftp_prefix=dict(type="str", choices=["serial", "mac"]),
                nfs_root=dict(type="str"),
                root=dict(type="str"),
                rootfstype=dict(type="str", default="ext4"),
                extra_kernel_args=dict(type="raw"),
                config=dict(type="raw"),
                vars=dict(type="dict"),
                customize=dict(type="dict", options=_customize_spec()),
            )),
            customize=dict(type="dict", options=_customize_spec()),
            tftp_prefix=dict(type="str", default="serial", choices=["serial", "mac"]),
            config_template=dict(type="path"),
            cmdline_template=dict(type="path"),
            exclude=dict(type="list", elements="str", default=[]),
            preserve=dict(type="list", elements="str", default=["pieeprom.upd", "pieeprom.sig"]),
            prune=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    run_module(module, _run)


if __name__ == "__main__":
    main()
