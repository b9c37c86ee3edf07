# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The board modules' shared options: the argument spec against its doc fragment, and the Board
they describe."""

from __future__ import annotations

import pytest
import yaml

from ansible_collections.picluster.carrier.plugins.doc_fragments.board import ModuleDocFragment
from ansible_collections.picluster.carrier.plugins.module_utils._common import (
    BMC_ARGUMENT_SPEC,
    BOARD_ARGUMENT_SPEC,
    bmc_from_params,
    board_argument_spec,
    board_from_params,
)
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError

PARAMS = {"board": "rack1", "profile": "backplane10", "bus": "1", "addresses": {"u2": 0x22},
          "protected_slots": [10], "lock_dir": None, "bmc_user": None, "bmc_password": None,
          "bmc_ca_path": None, "validate_certs": True}


def _fragment_options(text):
    return yaml.safe_load(text)["options"]


def test_argument_spec_matches_the_doc_fragment():
    board_doc = _fragment_options(ModuleDocFragment.DOCUMENTATION)
    bmc_doc = _fragment_options(ModuleDocFragment.BMC)
    assert set(board_doc) == set(BOARD_ARGUMENT_SPEC) - set(BMC_ARGUMENT_SPEC)
    assert set(bmc_doc) == set(BMC_ARGUMENT_SPEC)
    for name, doc in list(board_doc.items()) + list(bmc_doc.items()):
        spec = BOARD_ARGUMENT_SPEC[name]
        assert doc.get("type", "str") == spec["type"], name
        assert doc.get("default") == spec.get("default"), name
        assert bool(doc.get("required")) == bool(spec.get("required")), name
    assert BMC_ARGUMENT_SPEC["bmc_password"]["no_log"] is True


def test_board_argument_spec_adds_a_modules_own_options():
    spec = board_argument_spec(slot=dict(type="raw", required=True))
    assert spec["slot"] == {"type": "raw", "required": True} and "slot" not in BOARD_ARGUMENT_SPEC
    assert set(spec) - {"slot"} == set(BOARD_ARGUMENT_SPEC)


def test_board_from_params():
    board = board_from_params(PARAMS)
    assert (board.name, board.profile.name, board.bus_spec) == ("rack1", "backplane10", "1")
    assert board.chips["u2"] == ("pca9555", 0x22) and board.protected_slots == frozenset({10})
    assert board.bmc == {"user": None, "password": None, "ca_path": None, "validate_certs": True}


def test_bmc_from_params():
    params = dict(PARAMS, bmc_user="root", bmc_password="turing", bmc_ca_path="/ca.pem", validate_certs=False)
    assert bmc_from_params(params) == {"user": "root", "password": "turing", "ca_path": "/ca.pem",
                                       "validate_certs": False}


@pytest.mark.parametrize("change,message", [
    ({"profile": "itx5"}, r"^profile: 'itx5' is not a built-in profile"),
    ({"bus": "i2c1"}, r"^bus: 'i2c1' is not a bus"),
    ({"addresses": {"u1": "0x99"}}, r"^addresses.u1: 153 is out of range"),
    ({"protected_slots": [float("nan")]}, r"^protected_slots: nan is not an integer"),
    ({"profile": "turingpi2", "bus": "1"}, r"^bus: '1' is not a BMC URL"),
])
def test_bad_board_options_are_named(change, message):
    with pytest.raises(CarrierError, match=message):
        board_from_params(dict(PARAMS, **change))
