# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_netboot.nodes: the node list, validated before anything is written (every refusal names nodes[i].field)."""

from __future__ import annotations

import pytest
from netboot_fixtures import build, make_boot_dir

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._netboot import nodes as N


@pytest.fixture
def boot(tmp_path):
    return make_boot_dir(tmp_path / "boot")


@pytest.mark.parametrize("serial,dirname", [("10000000B7F44626", "b7f44626"), ("b7f44626", "b7f44626"),
                                            ("0x10000000b7f44626", "b7f44626")])
def test_serial_forms(serial, dirname):
    assert N.parse_nodes([{"name": "a", "serial": serial}])[0].dirname == dirname


@pytest.mark.parametrize("nodes,match", [
    ([{"name": "a", "serial": "b7f4462"}], r"nodes\[0\]\.serial: 'b7f4462' is not a serial"),
    ([{"name": "a", "serial": "10000000b7f4462z"}], r"nodes\[0\]\.serial: '10000000b7f4462z'"),
    ([{"name": "a", "serial": "1000000b7f44626"}], r"nodes\[0\]\.serial"),
    ([{"name": "a", "serial": "b7f44626", "mac": "dc:a6:32:01:36"}], r"nodes\[0\]\.mac: 'dc:a6:32:01:36' is not a MAC"),
    ([{"name": "a", "serial": "b7f44626", "mac": "dc:a6-32:01:36:c2"}], r"nodes\[0\]\.mac"),
    ([{"name": "a", "serial": "10000000b7f44626"}, {"name": "b", "serial": "20000000b7f44626"}],
     r"nodes\[1\]\.serial: nodes a and b have the same serial \(TFTP directory b7f44626\) '20000000b7f44626'"),
    ([{"name": "a", "serial": "b7f44626"}, {"name": "a", "serial": "b7f44627"}], r"nodes\[1\]\.name: .*same name"),
    ([{"name": "a", "serial": "b7f44626", "mac": "dc:a6:32:01:36:c2"},
      {"name": "b", "serial": "b7f44627", "mac": "DC-A6-32-01-36-C2"}], r"nodes\[1\]\.mac: .*same MAC"),
    ([{"name": "a", "mac": "dc:a6:32:01:36:c2"}], r"nodes\[0\]\.serial: missing"),
    ([{"name": "a\ndtoverlay=x", "serial": "b7f44626"}], r"nodes\[0\]\.name: .* is not a valid node name"),
    ([{"name": "../a", "serial": "b7f44626"}], r"nodes\[0\]\.name: '\.\./a' is not a valid node name"),
    ([{"name": "a", "serial": "b7f44626", "tftp_prefix": "mac"}], r"nodes\[0\]\.mac: missing"),
    ([{"name": "a", "serial": "b7f44626", "model": "cm3"}], r"nodes\[0\]\.model: 'cm3'"),
    ([{"name": "a", "serial": "b7f44626", "nfs_root": "10.0.0.1/srv"}], r"nodes\[0\]\.nfs_root: '10.0.0.1/srv'"),
    ([{"name": "a", "serial": "b7f44626", "nfs_root": "h:/x", "root": "/dev/sda2"}], r"mutually exclusive"),
    ([{"name": "a", "serial": "b7f44626", "kernel": "x"}], r"nodes\[0\]: unknown key\(s\) kernel"),
    ([{"serial": "b7f44626"}], r"nodes\[0\]\.name"),
    # One list item is one config.txt line or one kernel argument: a line break would inject more.
    ([{"name": "a", "serial": "b7f44626", "root": "/dev/sda2", "config": ["gpu_mem=16", "x=1\n[cm5]\ny=2"]}],
     r"^nodes\[0\]\.config\[1\]: 'x=1\\n\[cm5\]\\ny=2' holds a line break or control character: each item is "
     r"one config.txt line"),
    ([{"name": "a", "serial": "b7f44626", "root": "/dev/sda2", "config": "gpu_mem=16\nbad\0line"}],
     r"^nodes\[0\]\.config: line 2 \('bad\\x00line'\) holds a control character"),
    ([{"name": "a", "serial": "b7f44626", "root": "/dev/sda2", "extra_kernel_args": ["quiet", "init=/bin/sh\r"]}],
     r"^nodes\[0\]\.extra_kernel_args\[1\]: 'init=/bin/sh\\r' holds a line break or control character: "
     r"each item is one kernel argument"),
])
def test_bad_nodes_fail_before_anything_is_written(tmp_path, boot, nodes, match):
    tftp = tmp_path / "tftp"
    with pytest.raises(CarrierError, match=match):
        build(boot, tftp, nodes)
    assert not tftp.exists()


def test_empty_node_list(tmp_path, boot):
    with pytest.raises(CarrierError, match="nodes: the list is empty"):
        build(boot, tmp_path / "tftp", [])
