# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_values: checks of what users give, and range text."""

from __future__ import annotations

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._values import (
    check_name,
    check_number,
    format_ranges,
)


@pytest.mark.parametrize("value,expected", [(0, 0), (1.5, 1.5), ("2", 2.0), (600, 600), (None, None)])
def test_numbers_that_pass(value, expected):
    assert check_number(value, "stagger", 0, 600) == expected


@pytest.mark.parametrize("value,reason", [
    (float("nan"), "is not a finite number"), ("inf", "is not a finite number"), (float("-inf"), "not a finite"),
    (True, "is a boolean"), ("soon", "is not a number"), ([1], "is not a number"),
    (-1, "is below the minimum 0"), (601, "is above the maximum 600"),
])
def test_numbers_refused_name_field_and_value(value, reason):
    with pytest.raises(CarrierError, match=r"^stagger: .*%s" % reason):
        check_number(value, "stagger", 0, 600)


def test_integer_none_and_what():
    assert check_number(4.0, "size_mb", integer=True) == 4 and isinstance(check_number(4.0, "n", integer=True), int)
    with pytest.raises(CarrierError, match="size_mb: 4.5 is not a whole number"):
        check_number(4.5, "size_mb", integer=True)
    with pytest.raises(CarrierError, match="timeout: a number is required"):
        check_number(None, "timeout", allow_none=False)
    with pytest.raises(CarrierError, match=r"^timeout: nan is not a positive number$"):
        check_number(float("nan"), "timeout", what="a positive number")


@pytest.mark.parametrize("name", ["node01", "cm4", "b7f44626", "boot.img", "a_b-c+d"])
def test_names_that_pass(name):
    assert check_name(name, "name") == name


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "[all]", "a\nb", "-x", " a", None, 3])
def test_names_refused(name):
    with pytest.raises(CarrierError, match="^nodes.0.name: .* is not a valid node name"):
        check_name(name, "nodes.0.name", "node name")


def test_format_ranges():
    assert format_ranges([5, 1, 2, 3, 7, 8, 3]) == "1-3, 5, 7-8"
    assert format_ranges([]) == "none" and format_ranges([], empty="(none)") == "(none)"
    assert format_ranges(range(1, 11)) == "1-10"
