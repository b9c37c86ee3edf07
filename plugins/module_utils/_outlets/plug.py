# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``smart_plug`` driver: a relay of a Tasmota or Shelly plug or power strip over its HTTP API
(docs/hardware.md section 12).

- ``tasmota``: ``GET /cm?cmnd=Power<n>`` answers ``{"POWER<n>": "ON"|"OFF"}`` (``{"POWER": ...}`` on a
  one-relay device); ``cmnd=Power<n> On|Off`` switches. A web password goes in the query as
  ``user=`` and ``password=`` (the only way Tasmota's HTTP API takes it), so the URL of a request is
  never put in an error. ``Status 0`` gives the facts.
- ``shelly_gen1``: ``GET /relay/<n-1>`` answers ``{"ison": bool, ...}``, ``?turn=on|off`` switches;
  HTTP Basic authentication when the device has a login; ``/shelly`` gives the facts.
- ``shelly_gen2`` (Plus/Pro, RPC over HTTP): ``GET /rpc/Switch.GetStatus?id=<n-1>`` answers
  ``{"output": bool, ...}``, ``/rpc/Switch.Set?id=<n-1>&on=true|false`` switches; digest
  authentication (RFC 7616, SHA-256, user ``admin``) when enabled; ``/rpc/Shelly.GetDeviceInfo``
  gives the facts.

A slot's ``url`` (a plug of its own) overrides the board's bus. Every request has a timeout
(:data:`TIMEOUT`): a device that does not answer fails the slot, naming board, slot and address.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request

from ansible_collections.picluster.carrier.plugins.module_utils._errors import BusError, CarrierError

TIMEOUT = 5.0
GEN2_USER = "admin"  # a Gen2 device has this one login name


class _Plug(object):
    """One device at ``url``: its transport and login."""

    def __init__(self, driver, url):
        self.driver = driver
        self.url = url
        self.challenge = None  # a Gen2 digest challenge, reused with a growing nonce count
        self.count = 0

    def where(self, slot):
        return "smart_plug board %s slot %s (%s)" % (self.driver.board.name, slot, self.url)

    def get(self, slot, path, query=None, auth=True):
        """``(status, payload)`` of ``GET path?query`` (the payload parsed from JSON)."""
        target = path + ("?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote) if query else "")
        headers = {"Accept": "application/json"}
        api = self.driver.api
        if auth and api == "shelly_gen1" and self.driver.password is not None:
            raw = ("%s:%s" % (self.driver.user or "admin", self.driver.password)).encode("utf-8")
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode("ascii")
        if auth and api == "shelly_gen2" and self.challenge is not None:
            headers["Authorization"] = self._digest(target)
        status, answer_headers, body = self._send(slot, target, headers)
        if status == 401 and auth and api == "shelly_gen2" and self.driver.password is not None:
            challenge = _parse_challenge(answer_headers.get("WWW-Authenticate", ""))
            if challenge is not None:  # a first request, or a nonce the device has let go
                self.challenge, self.count = challenge, 0
                headers["Authorization"] = self._digest(target)
                status, answer_headers, body = self._send(slot, target, headers)
        if status in (401, 403):
            raise BusError("%s: the device refused the login (HTTP %d): %s" % (self.where(slot), status, self._hint()))
        try:
            payload = json.loads(body.decode("utf-8")) if body else None
        except ValueError:
            payload = None
        if isinstance(payload, dict) and str(payload.get("WARNING", "")).startswith("Need user="):
            # Tasmota before 8.2.3 says so with HTTP 200
            raise BusError("%s: the device refused the login: %s" % (self.where(slot), self._hint()))
        if status != 200:
            raise BusError("%s: %s answered HTTP %d: %s" % (self.where(slot), path, status, _snippet(body)))
        if not isinstance(payload, dict):
            raise BusError("%s: %s answered what is not a JSON object: %s" % (self.where(slot), path, _snippet(body)))
        return payload

    def _hint(self):
        if self.driver.password is None:
            return "the device has a password: give bmc_password (and bmc_user)"
        return "check bmc_user and bmc_password"

    def _send(self, slot, target, headers):
        request = urllib.request.Request(self.url + target, headers=headers, method="GET")
        try:
            with self.driver.opener.open(request, timeout=self.driver.timeout) as answer:
                return answer.status, answer.headers, answer.read()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.headers, exc.read()
        except urllib.error.URLError as exc:
            raise BusError("%s: %s" % (self.where(slot), self._reason(exc.reason))) from None
        except (OSError, ValueError) as exc:  # a timeout while reading, a connection reset, a bad status line
            raise BusError("%s: %s" % (self.where(slot), self._reason(exc))) from None

    def _reason(self, reason):
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return "no answer in %g s" % self.driver.timeout
        if isinstance(reason, ssl.SSLError):
            return ("TLS failed: %s (set bmc_ca_path to the device's CA certificate, or validate_certs=false)"
                    % (getattr(reason, "reason", None) or reason))
        if isinstance(reason, ConnectionRefusedError):
            return "connection refused (is the plug on this address?)"
        return "cannot reach the device: %s" % (getattr(reason, "strerror", None) or reason)

    def _digest(self, target):
        """An ``Authorization: Digest`` header (RFC 7616, SHA-256, qop auth) for ``GET target``."""
        realm, nonce = self.challenge["realm"], self.challenge["nonce"]
        self.count += 1
        count = "%08x" % self.count
        cnonce = os.urandom(8).hex()
        ha1 = _sha256("%s:%s:%s" % (GEN2_USER, realm, self.driver.password or ""))
        ha2 = _sha256("GET:%s" % target)
        response = _sha256("%s:%s:%s:%s:auth:%s" % (ha1, nonce, count, cnonce, ha2))
        fields = [("username", GEN2_USER), ("realm", realm), ("nonce", nonce), ("uri", target),
                  ("algorithm", "SHA-256"), ("response", response), ("cnonce", cnonce)]
        if self.challenge.get("opaque"):
            fields.append(("opaque", self.challenge["opaque"]))
        quoted = ", ".join('%s="%s"' % (key, value) for key, value in fields)
        return "Digest %s, qop=auth, nc=%s" % (quoted, count)


def _sha256(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _parse_challenge(header):
    """The fields of a ``WWW-Authenticate: Digest ...`` SHA-256 challenge, or None."""
    scheme, _sep, rest = header.strip().partition(" ")
    if scheme.lower() != "digest":
        return None
    fields = urllib.request.parse_keqv_list(urllib.request.parse_http_list(rest))
    if "realm" not in fields or "nonce" not in fields or fields.get("algorithm", "MD5").upper() != "SHA-256":
        return None
    return fields


def _snippet(body):
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    text = " ".join(text.split())
    return (text[:120] + "...") if len(text) > 120 else (text or "(empty)")


class PlugDriver(object):
    """The relays of a ``smart_plug`` board (``_outlets`` driver protocol)."""

    settle = 1.0  # a relay reads as switched at once; a second covers a device that reports late

    def __init__(self, board, timeout=None):
        self.board = board
        self.api = board.profile.outlet_options["api"]
        self.timeout = TIMEOUT if timeout is None else timeout
        login = board.bmc or {}
        self.user = login.get("user")
        self.password = login.get("password")
        if self.api == "shelly_gen2" and self.user not in (None, GEN2_USER):
            raise CarrierError("bmc_user: %r: a Shelly Gen2 device has the one user %r" % (self.user, GEN2_USER))
        self.opener = self._opener(login)
        self.plugs = {}

    def _opener(self, login):
        handlers = []
        urls = [self.board.bus_spec] + [o.get("url") or "" for o in self.board.profile.outlets.values()]
        if any(url.startswith("https://") for url in urls):
            if login.get("validate_certs") is False:
                context = ssl._create_unverified_context()  # the user asked for it (validate_certs=false)
            else:
                try:
                    context = ssl.create_default_context(cafile=login.get("ca_path"))
                except (OSError, ssl.SSLError) as exc:
                    raise CarrierError("bmc_ca_path: cannot load %r: %s" % (login.get("ca_path"), exc)) from None
            handlers.append(urllib.request.HTTPSHandler(context=context))
        # No proxy: a plug is on the local network, and the proxy would see a Tasmota password.
        handlers.append(urllib.request.ProxyHandler({}))
        return urllib.request.build_opener(*handlers)

    def _outlet(self, slot):
        outlet = self.board.profile.outlets.get(slot)
        if outlet is None:
            raise CarrierError("slot %s of board %s: not a slot of profile %s" % (slot, self.board.name,
                                                                                  self.board.profile.name))
        url = outlet.get("url") or self.board.bus_spec
        plug = self.plugs.get(url)
        if plug is None:
            plug = self.plugs[url] = _Plug(self, url)
        return plug, outlet["outlet"]

    # --- the three APIs ----------------------------------------------------------------------------
    def _tasmota(self, plug, slot, command):
        query = {"cmnd": command}
        if self.password is not None:
            query = {"user": self.user or "admin", "password": self.password, "cmnd": command}
        return plug.get(slot, "/cm", query, auth=False)

    def _read_one(self, slot):
        plug, number = self._outlet(slot)
        if self.api == "tasmota":
            payload = self._tasmota(plug, slot, "Power%d" % number)
            value = payload.get("POWER%d" % number, payload.get("POWER") if number == 1 else None)
            if value in ("ON", "OFF"):
                return value == "ON"
            raise BusError("%s: Power%d answered no POWER%d of ON or OFF: %s (a relay the device does not have?)"
                           % (plug.where(slot), number, number, _snippet(json.dumps(payload))))
        if self.api == "shelly_gen1":
            payload = plug.get(slot, "/relay/%d" % (number - 1))
            key = "ison"
        else:
            payload = plug.get(slot, "/rpc/Switch.GetStatus", {"id": number - 1})
            key = "output"
        if not isinstance(payload.get(key), bool):
            raise BusError("%s: relay %d answered no %s: %s"
                           % (plug.where(slot), number - 1, key, _snippet(json.dumps(payload))))
        return payload[key]

    def read(self, slots):
        return {slot: self._read_one(slot) for slot in slots}

    def write(self, slot, on):
        plug, number = self._outlet(slot)
        if self.api == "tasmota":
            self._tasmota(plug, slot, "Power%d %s" % (number, "On" if on else "Off"))
        elif self.api == "shelly_gen1":
            plug.get(slot, "/relay/%d" % (number - 1), {"turn": "on" if on else "off"})
        else:
            plug.get(slot, "/rpc/Switch.Set", {"id": number - 1, "on": "true" if on else "false"})

    def _facts_of(self, plug, slot):
        if self.api == "tasmota":
            payload = self._tasmota(plug, slot, "Status 0")
            status, firmware = payload.get("Status") or {}, payload.get("StatusFWR") or {}
            return {"model": status.get("DeviceName"), "firmware": firmware.get("Version"),
                    "hardware": firmware.get("Hardware")}
        if self.api == "shelly_gen1":
            payload = plug.get(slot, "/shelly")
            return {"model": payload.get("type"), "firmware": payload.get("fw"), "mac": payload.get("mac")}
        payload = plug.get(slot, "/rpc/Shelly.GetDeviceInfo", auth=False)
        return {"model": payload.get("model"), "firmware": payload.get("ver"), "mac": payload.get("mac"),
                "app": payload.get("app")}

    def facts(self):
        """Model and firmware as the device says them (each plug's, when slots have their own)."""
        first = {}
        for slot in sorted(self.board.profile.outlets):
            plug, _number = self._outlet(slot)
            first.setdefault(plug.url, slot)
        devices = {url: self._facts_of(self.plugs[url], slot) for url, slot in first.items()}
        facts = {"api": self.api}
        if len(devices) == 1:
            facts.update(next(iter(devices.values())))
        else:
            facts["plugs"] = devices
        return {key: value for key, value in facts.items() if value is not None}

    def close(self):
        self.plugs.clear()
