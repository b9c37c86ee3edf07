# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_models: the one table of Pi models, and the one reading of serials and MAC addresses."""

from __future__ import annotations

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils import _models as M
from ansible_collections.picluster.carrier.plugins.module_utils._errors import InvalidValue


def test_eeprom_models_are_the_bcm2711_and_bcm2712_boards():
    assert set(M.eeprom_models()) == {"cm4", "pi4", "cm5", "pi5"}
    assert {M.MODELS[m].soc for m in M.eeprom_models()} == {"bcm2711", "bcm2712"}
    assert M.MODELS["cm4s"].bootloader == "rom"  # a BCM2711 without the SPI EEPROM


def test_get_model_names_the_field_and_the_choices():
    assert M.get_model("cm5").dtb == "bcm2712-rpi-cm5-cm5io.dtb"
    with pytest.raises(InvalidValue, match=r"nodes\[2\]\.model: unknown model 'cm6'; known: cm4, pi4"):
        M.get_model("cm6", "nodes[2].model", allowed=("cm4", "pi4"))


@pytest.mark.parametrize("value,expected", [
    ("10000000B7F44626", "10000000b7f44626"), ("b7f44626", "b7f44626"),
])
def test_serials(value, expected):
    assert M.normalize_serial(value) == expected
    assert M.serial_dirname(expected) == "b7f44626"


def test_0x_prefix_only_where_allowed():
    assert M.normalize_serial("0x10000000b7f44626", allow_0x=True) == "10000000b7f44626"
    with pytest.raises(InvalidValue, match="is not a serial number"):
        M.normalize_serial("0x10000000b7f44626")


@pytest.mark.parametrize("value,reason", [
    (12345678, "was read by YAML as a number: quote the serial number"),
    (None, "is not a serial number"), (" b7f44626", "is not a serial number"), ("b7f4462", "is not a serial number"),
])
def test_bad_serials(value, reason):
    with pytest.raises(InvalidValue, match=reason) as info:
        M.normalize_serial(value, "slots.3.serial")
    assert info.value.field == "slots.3.serial" and str(info.value).startswith("slots.3.serial: ")


def test_macs():
    assert M.normalize_mac("DC-A6-32-01-36-C2") == "dc:a6:32:01:36:c2"
    assert M.mac_dirname("dc:a6:32:01:36:c2") == "dc-a6-32-01-36-c2"
    assert M.is_node_dirname("dc-a6-32-01-36-c2") and M.is_node_dirname("b7f44626")
    assert not M.is_node_dirname("node01")


@pytest.mark.parametrize("value,reason", [
    ("ff:ff:ff:ff:ff:ff", "multicast"), ("dc:a6:32:01:36", "is not a MAC address"),
    ("dc:a6-32:01:36:c2", "is not a MAC address"), (3723480, "quote the MAC address"), (None, "is not a MAC address"),
])
def test_bad_macs(value, reason):
    with pytest.raises(InvalidValue, match=reason):
        M.normalize_mac(value)
