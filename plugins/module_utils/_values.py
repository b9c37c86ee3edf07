# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checking the values users give, before anything is touched, and describing them in messages.

Every numeric option goes through :func:`check_number` (Ansible's ``float`` type accepts ``nan``
and ``inf``, which then make sleeps raise or comparisons lie half-way through an operation), and
every text that becomes structure (a file or directory name, an EEPROM or config.txt section, a
header) through :func:`check_name`, so that it cannot escape its place.
"""

from __future__ import annotations

import math
import re

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


def check_number(value, field, minimum=None, maximum=None, integer=False, allow_none=True, error=CarrierError,
                 what=None):
    """``value`` as an int or float, finite and within ``[minimum, maximum]``; else ``error`` naming ``field``.

    Strings of digits are accepted as Ansible's own types accept them; booleans are refused (a YAML
    ``yes`` is not a number of seconds). ``what`` (``"a number of seconds (0-600)"``) makes every
    refusal read ``field: value is not <what>`` instead of naming the particular fault.
    """
    if what is not None:
        try:
            return check_number(value, field, minimum, maximum, integer, allow_none, error)
        except error:
            raise error("%s: %r is not %s" % (field, value, what)) from None
    if value is None:
        if allow_none:
            return None
        raise error("%s: a number is required" % field)
    if isinstance(value, bool):
        raise error("%s: %r is a boolean, not a number" % (field, value))
    try:
        number = float(value) if not isinstance(value, int) else value
    except (TypeError, ValueError):
        raise error("%s: %r is not a number" % (field, value)) from None
    if isinstance(number, float) and not math.isfinite(number):
        raise error("%s: %r is not a finite number" % (field, value))
    if integer:
        if isinstance(number, float):
            if not number.is_integer():
                raise error("%s: %r is not a whole number" % (field, value))
            number = int(number)
    if minimum is not None and number < minimum:
        raise error("%s: %r is below the minimum %s" % (field, value, minimum))
    if maximum is not None and number > maximum:
        raise error("%s: %r is above the maximum %s" % (field, value, maximum))
    return number


def check_name(value, field, what="name", pattern=_NAME_RE, error=CarrierError):
    """A name that becomes a path component, a section or a header: letters, digits, ``. _ + -``,
    starting with a letter or digit (so no ``..``, no ``/``, no brackets, no line breaks)."""
    if not isinstance(value, str) or not pattern.match(value) or value in (".", ".."):
        raise error("%s: %r is not a valid %s (letters, digits and . _ + -, starting with a letter or digit)"
                    % (field, value, what))
    return value


def format_ranges(numbers, empty="none"):
    """``[1, 2, 3, 5, 7, 8]`` -> ``'1-3, 5, 7-8'`` (sorted, duplicates dropped)."""
    numbers = sorted(set(numbers))
    if not numbers:
        return empty
    parts = []
    start = prev = numbers[0]
    for n in numbers[1:] + [None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        parts.append(str(start) if start == prev else "%d-%d" % (start, prev))
        if n is not None:
            start = prev = n
    return ", ".join(parts)
