# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one exception type of the picluster.carrier library.

Every error the library raises on purpose is a CarrierError (or a subclass) whose message names
the field and the value at fault. Modules turn it into ``fail_json(msg=...)`` in one place.
"""

from __future__ import annotations

import traceback


class CarrierError(Exception):
    """An error a user can act on: the message says which field, which value, and why.

    ``result``: fields the failed task returns beside ``msg`` (what a console showed before it timed
    out, which file was at fault); set by the code that knows them, returned by :func:`run_module`.
    """

    result = None

    def with_result(self, **fields):
        """Attach result fields; a field attached earlier, nearer the fault, wins. Returns self to re-raise."""
        self.result = dict(fields, **(self.result or {}))
        return self


class BusError(CarrierError):
    """An I2C transaction failed after its retries (NACK, EIO, a line that did not follow)."""


class InvalidValue(CarrierError):
    """A value a user gave is refused. ``field`` and ``reason`` are kept apart so that a caller
    with more context (the topology loader, with its file name and field path) can say it its way."""

    def __init__(self, field, reason, value=None):
        super().__init__("%s: %s" % (field, reason))
        self.field = field
        self.reason = reason
        self.value = value


class ProtectedSlotError(CarrierError):
    """An operation would touch the controller's own slot without ``force``."""


def run_module(module, action):
    """Call ``action(module)``, which returns the result dict, and exit with it.

    The one place where a library error becomes ``fail_json``: a CarrierError fails the task
    with its message (which names the field and the value) and the result fields attached to it
    (:meth:`CarrierError.with_result`); anything else is a bug and keeps Ansible's own traceback.
    """
    try:
        result = action(module)
    except CarrierError as exc:
        fields = dict(exc.result or {})
        fields.pop("msg", None)
        fields.pop("failed", None)
        module.fail_json(msg=str(exc), exception=traceback.format_exc(), **fields)
    module.exit_json(**result)
