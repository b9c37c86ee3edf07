# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""node_power's identify: the slot's led line, alone or with a power change, check mode, idempotence,
refusals; the transactions it makes."""

from __future__ import annotations

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._power import PowerRequest, execute


def run(board, slot, state, check=False, **kwargs):
    return execute(PowerRequest(board, slot, state, stagger=0, **kwargs), check_mode=check, sleep=lambda s: None)


def test_identify_alone_lights_only_the_led(rig):
    r = rig("itx4_hwmon", nodes=(1, 2))
    result = run(r.board, [1, 2], None, identify=True)
    assert result["changed"] is True and result["state"] is None
    assert [s["action"] for s in result["slots"]] == ["none", "none"]
    assert [s["after"]["led"] for s in result["slots"]] == [True, True]
    assert r.levels(1)["led"] is True and r.levels(1)["power"] is False
    # the LEDs are on the TCA9554 at 0x21: no write went to the power expander
    assert {op[1] for op in r.writes()} == {0x21}
    del r.log[:]
    again = run(r.board, [1, 2], None, identify=True)
    assert again["changed"] is False and not r.writes()


def test_identify_with_a_power_change_and_the_diff(rig):
    r = rig("itx4_hwmon", nodes=(3,))
    result = run(r.board, 3, "on", identify=True)
    assert result["slots"][0]["action"] == "on" and result["slots"][0]["after"]["led"] is True
    assert result["diff"] == {"before": "slot 3: off, identify off\n", "after": "slot 3: on, identify on\n"}
    assert r.levels(3)["power"] is True and r.levels(3)["led"] is True
    off = run(r.board, 3, None, identify=False)
    assert off["changed"] is True and r.levels(3)["led"] is False and r.levels(3)["power"] is True


def test_identify_check_mode_predicts_and_writes_nothing(rig):
    r = rig("itx4_hwmon", nodes=(4,))
    result = run(r.board, 4, None, check=True, identify=True)
    assert result["changed"] is True and result["slots"][0]["after"]["led"] is True
    assert not r.writes() and r.levels(4)["led"] is False


@pytest.mark.parametrize("profile,kwargs,message", [
    ("itx4", {"state": None, "identify": True}, r"identify: slot\(s\) 1 of board b1 \(profile itx4\) have no led line"),
    ("itx4_hwmon", {"state": None}, r"state: required unless identify is given"),
    ("itx4_hwmon", {"state": None, "identify": "yes"}, r"identify: 'yes' is not true or false"),
    ("itx4_hwmon", {"state": None, "identify": True, "usb_boot": True}, r"usb_boot: needs a state"),
])
def test_identify_refusals(rig, profile, kwargs, message):
    r = rig(profile, nodes=(1,))
    state = kwargs.pop("state")
    with pytest.raises(CarrierError, match=message):
        PowerRequest(r.board, 1, state, **kwargs)
    assert not r.log
