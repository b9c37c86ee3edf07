# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The service's parts held together, and who is asking: accounts (re-read when the file changes),
Basic and session authentication, and the privilege each method needs (Redfish's predefined roles)."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import threading
import time

from ansible_collections.picluster.carrier.plugins.module_utils._redfish import resources
from ansible_collections.picluster.carrier.plugins.module_utils._redfish.accounts import (
    PRIVILEGES,
    authenticate,
    load_accounts,
)
from ansible_collections.picluster.carrier.plugins.module_utils._redfish.errors import RedfishError
from ansible_collections.picluster.carrier.plugins.module_utils._redfish.events import Events
from ansible_collections.picluster.carrier.plugins.module_utils._redfish.nodes import Nodes
from ansible_collections.picluster.carrier.plugins.module_utils._redfish.sessions import Sessions
from ansible_collections.picluster.carrier.plugins.module_utils._redfish.store import Store
from ansible_collections.picluster.carrier.plugins.module_utils._redfish.tasks import Tasks

# A verified Basic login is remembered this long, so a client that sends Basic with every request does
# not pay PBKDF2's 600000 rounds each time (the remembered key is a keyed hash, never the password).
BASIC_CACHE_SECONDS = 60.0


class Caller(object):
    def __init__(self, user, role, session_id=None):
        self.user = user
        self.role = role
        self.session_id = session_id

    def can(self, privilege):
        return privilege in PRIVILEGES.get(self.role, ())


class Service(object):
    """Everything a request needs: config, state, nodes, sessions, events, tasks and the accounts."""

    def __init__(self, config, bus_opener=None, sleep=time.sleep, task_threshold=2.0, clock=time.time):
        self.config = config
        self.store = Store(config["state_dir"])
        self.events = Events(self.store, clock=clock)
        self.nodes = Nodes(config, self.store, bus_opener=bus_opener, sleep=sleep, on_power_change=self._power_event)
        self.sessions = Sessions(self.store, config["session_timeout"], clock=clock)
        self.tasks = Tasks(threshold=task_threshold)
        self.clock = clock
        self._accounts = None
        self._accounts_stamp = None
        self._basic = {}
        self._basic_key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self.accounts()  # a bad accounts file stops the service at start, not at the first login

    @property
    def manager(self):
        return self.config["manager"]

    def accounts(self):
        """The accounts file's accounts, read again when its size or modification time changed."""
        path = self.config["accounts_file"]
        try:
            st = os.stat(path)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            stamp = None
        with self._lock:
            if self._accounts is None or stamp != self._accounts_stamp:
                self._accounts = load_accounts(path)
                self._accounts_stamp = stamp
                self._basic.clear()
            return self._accounts

    def _power_event(self, node, reset_type, entry):
        path = "%s/Systems/%s" % (resources.ROOT, node.host)
        message = "ResourcePoweredOff" if entry["after"]["state"] == "off" else "ResourcePoweredOn"
        self.events.publish(path, message, [path])

    def login(self, user, password):
        """The role of a user and password, or None."""
        accounts = self.accounts()
        if not isinstance(user, str) or not isinstance(password, str):
            return None
        key = hashlib.sha256(self._basic_key + user.encode() + b"\0" + password.encode()).digest()
        now = self.clock()
        with self._lock:
            cached = self._basic.get(key)
            if cached and cached[1] > now and user in accounts and accounts[user]["role"] == cached[0]:
                return cached[0]
        role = authenticate(accounts, user, password)
        if role is not None:
            with self._lock:
                self._basic = {k: v for k, v in self._basic.items() if v[1] > now}
                self._basic[key] = (role, now + BASIC_CACHE_SECONDS)
        return role

    def caller(self, headers):
        """The Caller of a request's headers (X-Auth-Token, else Basic); RedfishError 401 when neither is valid."""
        token = headers.get("X-Auth-Token")
        if token:
            session_id, entry = self.sessions.lookup(token)
            if entry is not None and entry["user"] in self.accounts():
                return Caller(entry["user"], self.accounts()[entry["user"]]["role"], session_id)
            raise unauthorized("the session token is not valid or has expired")
        auth = headers.get("Authorization") or ""
        if auth[:6].lower() == "basic ":
            try:
                user, _sep, password = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                raise unauthorized("the Authorization header is not valid Basic credentials") from None
            role = self.login(user, password)
            if role is not None:
                return Caller(user, role)
            raise unauthorized("wrong user name or password")
        raise unauthorized("credentials are required (Basic, or X-Auth-Token of a session)")


def unauthorized(detail):
    return RedfishError("NoValidSession", status=401, detail=detail,
                        headers={"WWW-Authenticate": 'Basic realm="carrier-redfish"'})
