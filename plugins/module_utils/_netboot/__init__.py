# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Network-boot assets: per-node TFTP trees and signed HTTP boot images.

TFTP trees (docs/hardware.md section 6): ``tftp_root/<serial8>/`` per node (or a MAC-named
directory ``dc-a6-32-01-36-c2`` for ``TFTP_PREFIX=2``, section 5). The boot files come from a
*source*: a directory, or an OS image file whose FAT boot partition is read with mtools (never
mounted; ``_fat``). Each distinct file content is stored once in a content-addressed store
(``tftp_root/.store/sha256/ab/abcdef...``) and hard-linked into every node directory that uses
it; ``config.txt`` and ``cmdline.txt`` are rendered per node from Jinja2 templates and node vars.
A node directory that has to change is built beside it and swapped in with one
``renameat2(RENAME_EXCHANGE)``: a booting node sees the old tree or the new one, never half of one.

HTTP boot (section 7): ``boot.img`` is a raw FAT file system (no partition table, label BOOT,
at most 96 MB) made with ``mkfs.vfat`` and ``mcopy``, byte-for-byte reproducible (fixed volume id,
fixed timestamps); ``boot.sig`` is the ``.sig`` format of section 4, made by ``_eeprom.sig``.

Callers import each name from the submodule that owns it:

- ``nodes``: the node list (``NodeSpec``, ``parse_nodes``);
- ``sources``: boot files from a directory or an image (``BootSource``, ``walk_files``, ``file_sha256``);
- ``render``: per-node ``config.txt`` and ``cmdline.txt`` (``Renderer``, ``load_template``);
- ``store``: the content-addressed store (``Store``);
- ``trees``: planning, building and swapping in TFTP trees (``build_tftp_trees``, ``replace_dir``, ``tree_lock``);
- ``bootimg``: ``boot.img`` and ``boot.sig`` (``plan_boot_image``, ``write_boot_image``).

The commands (mtools, mkfs.vfat) run through ``_fat.set_runner``.
"""
