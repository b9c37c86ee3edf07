# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The service's state in ``state_dir``: one JSON document per concern (boot overrides, sessions,
subscriptions), each changed under its own lock file and replaced atomically, 0600 (sessions hold
tokens' hashes, subscriptions hold destinations' credentials)."""

from __future__ import annotations

import contextlib
import json
import os

from ansible_collections.picluster.carrier.plugins.module_utils._bus import file_lock
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._fileio import atomic_write, read_optional


class Store(object):
    def __init__(self, state_dir):
        self.state_dir = state_dir
        try:
            os.makedirs(state_dir, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise CarrierError("state_dir: %s: cannot create: %s" % (state_dir, exc.strerror or exc)) from None

    def _path(self, name):
        return os.path.join(self.state_dir, name + ".json")

    def read(self, name):
        """The document ``name`` (an empty mapping when it does not exist yet)."""
        data = read_optional(self._path(name))
        if data is None:
            return {}
        try:
            value = json.loads(data.decode("utf-8"))
        except ValueError as exc:
            raise CarrierError("state_dir: %s is not JSON: %s" % (self._path(name), exc)) from None
        return value if isinstance(value, dict) else {}

    @contextlib.contextmanager
    def changing(self, name):
        """Yield the document ``name`` under its lock; what the block leaves in it is written back."""
        with file_lock(os.path.join(self.state_dir, name + ".lock"), timeout=30.0):
            document = self.read(name)
            before = json.dumps(document, sort_keys=True)
            yield document
            text = json.dumps(document, sort_keys=True)
            if text != before:
                atomic_write(self._path(name), text + "\n", mode=0o600)
