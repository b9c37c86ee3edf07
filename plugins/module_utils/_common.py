# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every board module shares: the board argument spec (paired with the ``board`` doc
fragment) with its Turing Pi 2 BMC options (paired with ``board.bmc``, which the console module
uses too), and building a Board from module parameters."""

from __future__ import annotations

from ansible_collections.picluster.carrier.plugins.module_utils._board import board_from_dict

# Keep in step with plugins/doc_fragments/board.py (BMC: its BMC fragment).
BMC_ARGUMENT_SPEC = dict(
    bmc_user=dict(type="str"),
    bmc_password=dict(type="str", no_log=True),
    bmc_priv_password=dict(type="str", no_log=True),
    bmc_ca_path=dict(type="path"),
    validate_certs=dict(type="bool", default=True),
)

BOARD_ARGUMENT_SPEC = dict(
    board=dict(type="str", required=True),
    profile=dict(type="raw", required=True),
    bus=dict(type="raw", required=True),
    addresses=dict(type="dict"),
    protected_slots=dict(type="list", elements="int", default=[]),
    lock_dir=dict(type="path"),
    **BMC_ARGUMENT_SPEC,
)


def bmc_from_params(params):
    """The device login options (``user``, ``password``, ``ca_path``, ``validate_certs``: BmcClient's keyword
    arguments; ``priv_password`` too when given, for a PoE switch's SNMPv3 privacy)."""
    login = {"user": params.get("bmc_user"), "password": params.get("bmc_password"),
             "ca_path": params.get("bmc_ca_path"), "validate_certs": params.get("validate_certs", True)}
    if params.get("bmc_priv_password") is not None:
        login["priv_password"] = params["bmc_priv_password"]
    return login


def board_argument_spec(**extra):
    """The board options plus a module's own."""
    spec = dict(BOARD_ARGUMENT_SPEC)
    spec.update(extra)
    return spec


def board_from_params(params):
    """The Board the board options describe (``board`` is its name)."""
    return board_from_dict({
        "name": params["board"],
        "profile": params["profile"],
        "bus": params["bus"],
        "addresses": params.get("addresses"),
        "protected_slots": params.get("protected_slots"),
        "lock_dir": params.get("lock_dir"),
        "bmc": bmc_from_params(params),
    })
