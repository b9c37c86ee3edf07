# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_netboot.render: per-node config.txt and cmdline.txt from Jinja2 templates."""

from __future__ import annotations

import pytest
from netboot_fixtures import NODES, build, make_boot_dir

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError


@pytest.fixture
def boot(tmp_path):
    return make_boot_dir(tmp_path / "boot")


def test_custom_templates_and_errors(tmp_path, boot):
    tftp = tmp_path / "tftp"
    nodes = [dict(NODES[0], vars={"gpu_mem": 16})]
    build(boot, tftp, nodes, config_template="gpu_mem={{ vars.gpu_mem }}\n# {{ node.dtb }} {{ node.serial8 }}\n",
          cmdline_template="root=/dev/nfs nfsroot={{ nfs_root }} {{ extra_kernel_args | join(' ') }}\n")
    assert (tftp / "b7f44626" / "config.txt").read_text() == "gpu_mem=16\n# bcm2711-rpi-cm4.dtb b7f44626\n"
    with pytest.raises(CarrierError, match="config_template: not a valid Jinja2 template"):
        build(boot, tftp, nodes, config_template="{% if %}")
    with pytest.raises(CarrierError, match="config_template: rendering it for node node01 failed: .*nope"):
        build(boot, tftp, nodes, config_template="{{ vars.nope }}")
    with pytest.raises(CarrierError, match="cmdline.txt of node node01 is more than one line"):
        build(boot, tftp, nodes, cmdline_template="root=x\nsecond\n")


def test_no_root_anywhere(tmp_path):
    source = make_boot_dir(tmp_path / "boot", cmdline=False)
    with pytest.raises(CarrierError, match="node a has no root file system in its cmdline.txt"):
        build(source, tmp_path / "tftp", [{"name": "a", "serial": "b7f44626"}])
    assert not (tmp_path / "tftp").exists()
