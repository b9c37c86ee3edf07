# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Redfish sessions (SessionService): a POST of user and password makes one, its X-Auth-Token
authenticates later requests, a DELETE or ``session_timeout`` seconds of silence end it.

Sessions are kept in ``state_dir`` (so a restarted service keeps its clients logged in) with the
SHA-256 of each token only: the file never holds a token that could be replayed.
"""

from __future__ import annotations

import hashlib
import secrets
import time

SESSIONS = "sessions"
# A session's last use is written back at most this often, so every request does not rewrite the file.
TOUCH_INTERVAL = 5.0


def _digest(token):
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Sessions(object):
    def __init__(self, store, timeout, clock=time.time):
        self.store = store
        self.timeout = timeout
        self.clock = clock

    def _expire(self, sessions, now):
        for key in [k for k, v in sessions.items() if now - v.get("last_used", 0) > self.timeout]:
            del sessions[key]

    def create(self, user, role):
        """``(session id, token)`` of a new session for ``user``."""
        token = secrets.token_urlsafe(32)
        session_id = secrets.token_hex(8)
        now = self.clock()
        with self.store.changing(SESSIONS) as sessions:
            self._expire(sessions, now)
            sessions[session_id] = {"user": user, "role": role, "token_sha256": _digest(token), "created": now,
                                    "last_used": now}
        return session_id, token

    def lookup(self, token):
        """``(session id, entry)`` of the live session of ``token``, or ``(None, None)``."""
        if not token:
            return None, None
        digest = _digest(token)
        now = self.clock()
        for session_id, entry in self.store.read(SESSIONS).items():
            if secrets.compare_digest(entry.get("token_sha256", ""), digest):
                if now - entry.get("last_used", 0) > self.timeout:
                    self.delete(session_id)
                    return None, None
                if now - entry.get("last_used", 0) > TOUCH_INTERVAL:
                    with self.store.changing(SESSIONS) as sessions:
                        if session_id in sessions:
                            sessions[session_id]["last_used"] = now
                return session_id, entry
        return None, None

    def list(self):
        now = self.clock()
        return {k: v for k, v in self.store.read(SESSIONS).items() if now - v.get("last_used", 0) <= self.timeout}

    def get(self, session_id):
        return self.list().get(session_id)

    def delete(self, session_id):
        """Whether the session existed."""
        with self.store.changing(SESSIONS) as sessions:
            return sessions.pop(session_id, None) is not None
