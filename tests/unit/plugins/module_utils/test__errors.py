# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""run_module: the one exit path of every module."""

from __future__ import annotations

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError, InvalidValue, run_module


class Exited(Exception):
    pass


class FakeModule:
    def __init__(self):
        self.exit = None

    def exit_json(self, **kwargs):
        self.exit = ("exit", kwargs)
        raise Exited()

    def fail_json(self, **kwargs):
        self.exit = ("fail", kwargs)
        raise Exited()


def _run(action):
    module = FakeModule()
    with pytest.raises(Exited):
        run_module(module, action)
    return module.exit


def test_result_is_exited_with():
    assert _run(lambda m: {"changed": True, "x": 1}) == ("exit", {"changed": True, "x": 1})


def test_carrier_error_fails_with_its_message_and_attached_fields():
    def action(module):
        try:
            raise CarrierError("timeout: 3 s without a login prompt")
        except CarrierError as exc:
            raise exc.with_result(lines=["a"], state="kernel", msg="not this", failed=False)

    kind, fields = _run(action)
    assert kind == "fail"
    assert fields["msg"] == "timeout: 3 s without a login prompt"
    assert fields["lines"] == ["a"] and fields["state"] == "kernel" and "failed" not in fields
    assert "CarrierError" in fields["exception"]


def test_inner_fields_win_over_outer_ones():
    exc = CarrierError("x").with_result(state="panic")
    exc.with_result(state="unknown", port="/dev/ttyAMA0")
    assert exc.result == {"state": "panic", "port": "/dev/ttyAMA0"}


def test_invalid_value_keeps_field_and_reason():
    exc = InvalidValue("nodes[0].mac", "'x' is not a MAC address", "x")
    assert str(exc) == "nodes[0].mac: 'x' is not a MAC address"
    assert (exc.field, exc.reason, exc.value) == ("nodes[0].mac", "'x' is not a MAC address", "x")


def test_other_exceptions_are_bugs_and_propagate():
    def action(module):
        raise ZeroDivisionError()

    with pytest.raises(ZeroDivisionError):
        run_module(FakeModule(), action)
