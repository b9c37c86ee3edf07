# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A client of the Turing Pi 2 BMC's HTTP API (docs/hardware.md section 3), the board backend of
profile ``turingpi2``.

The API: ``GET /api/bmc?opt=get|set&type=<power|reset|usb_boot|clear_usb_boot|uart|other|...>``.
Power ``set`` takes ``node1..node4=0|1`` and changes only the nodes named; ``reset``,
``usb_boot``, ``clear_usb_boot`` and ``uart`` take ``node=N`` counted from 0. Answers are wrapped
as ``{"response": [...]}``, the payload in ``response[0]`` (under ``result`` on newer firmware).
Newer firmware wants ``POST /api/bmc/authenticate`` (JSON username/password, answering
``{"id": <token>}``) and ``Authorization: Bearer <token>`` after; firmware without it answers
404 there, and then basic authentication is sent instead.

The token is obtained once and kept in a 0600 file next to the bus locks, keyed by BMC URL and
user, so every Ansible fork of a run reuses it; a 401 with a kept token fetches a new one once.

The BMC does not sense node power: it reports what it last switched (a saved state). Power state
read here is therefore the BMC's belief; a node turned off by its own ``poweroff`` still reads on.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._fileio import atomic_write

NODES = 4


class BmcError(CarrierError):
    """The BMC refused a request, could not be reached, or answered something unexpected."""


def parse_bmc_url(value):
    """``http(s)://host[:port]`` -> the normalised base URL (CarrierError naming the value)."""
    if not isinstance(value, str):
        raise CarrierError("bus: %r is not a BMC URL (a Turing Pi 2 board needs https://HOST or http://HOST:PORT)"
                           % (value,))
    parts = urllib.parse.urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CarrierError("bus: %r is not a BMC URL (a Turing Pi 2 board needs https://HOST or http://HOST:PORT)"
                           % (value,))
    return "%s://%s" % (parts.scheme, parts.netloc)


def _node_param(slot):
    if not 1 <= slot <= NODES:
        raise CarrierError("slot: %r is not a Turing Pi 2 node (1-%d)" % (slot, NODES))
    return str(slot - 1)


class BmcClient(object):
    """One BMC. ``token_dir`` holds the shared token file (created 0600)."""

    def __init__(self, url, user=None, password=None, ca_path=None, validate_certs=True, timeout=10.0,
                 token_dir=None, opener=None):
        self.url = parse_bmc_url(url)
        self.user = user
        self.password = password
        self.timeout = timeout
        self.token_dir = token_dir
        self.requests = 0
        self._token = None
        self._basic = False
        context = None
        if self.url.startswith("https://"):
            if not validate_certs:
                context = ssl._create_unverified_context()  # the user asked for it (validate_certs=false)
            else:
                try:
                    context = ssl.create_default_context(cafile=ca_path)
                except (OSError, ssl.SSLError) as exc:
                    raise CarrierError("bmc_ca_path: cannot load %r: %s" % (ca_path, exc)) from None
        self._context = context
        self._opener = opener or urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))

    # --- transport ---------------------------------------------------------------------------------
    def _send(self, method, path, query=None, body=None, auth=True):
        url = self.url + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None
        headers = {"Accept": "application/json"}
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if auth and self._token:
            headers["Authorization"] = "Bearer %s" % self._token
        elif auth and self._basic:
            raw = ("%s:%s" % (self.user or "", self.password or "")).encode("utf-8")
            headers["Authorization"] = "Basic %s" % base64.b64encode(raw).decode("ascii")
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        self.requests += 1
        try:
            with self._opener.open(request, timeout=self.timeout) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, ssl.SSLError):
                raise BmcError("bmc: TLS with %s failed: %s (set bmc_ca_path to the BMC's CA certificate, or "
                               "validate_certs=false)" % (self.url, reason)) from None
            raise BmcError("bmc: cannot reach %s: %s" % (self.url, reason)) from None
        except OSError as exc:
            raise BmcError("bmc: cannot reach %s: %s" % (self.url, exc)) from None

    # --- authentication ----------------------------------------------------------------------------
    def _token_file(self):
        if not self.token_dir or not self.user:
            return None
        key = hashlib.sha256(("%s\n%s" % (self.url, self.user)).encode("utf-8")).hexdigest()[:24]
        return os.path.join(self.token_dir, "bmc-token-%s" % key)

    def _load_token(self):
        path = self._token_file()
        if path and os.path.exists(path):
            try:
                with open(path) as handle:
                    return handle.read().strip() or None
            except OSError:
                return None
        return None

    def _save_token(self, token):
        path = self._token_file()
        if path:
            atomic_write(path, token + "\n", mode=0o600, makedirs=False, error=BmcError)

    def _forget_token(self):
        self._token = None
        path = self._token_file()
        if path:
            with contextlib.suppress(FileNotFoundError):  # another fork forgot it first
                os.unlink(path)

    def authenticate(self, fresh=False):
        """Get a token (from the shared file unless ``fresh``)."""
        if self.user is None:
            return
        if not fresh:
            self._token = self._load_token()
            if self._token:
                return
        status, body = self._send("POST", "/api/bmc/authenticate",
                                  body={"username": self.user, "password": self.password or ""}, auth=False)
        if status == 404:
            self._basic = True  # firmware without token authentication
            return
        if status in (401, 403):
            raise BmcError("bmc: authentication failed for user %r at %s (HTTP %d): check bmc_user and bmc_password"
                           % (self.user, self.url, status))
        if status != 200:
            raise BmcError("bmc: authentication at %s answered HTTP %d: %s" % (self.url, status, _snippet(body)))
        try:
            token = json.loads(body)["id"]
        except (ValueError, KeyError, TypeError):
            raise BmcError("bmc: unexpected answer to authentication at %s: %s" % (self.url, _snippet(body))) from None
        if not isinstance(token, str) or not token:
            raise BmcError("bmc: unexpected answer to authentication at %s: %s" % (self.url, _snippet(body)))
        self._token = token
        self._save_token(token)

    # --- the API -----------------------------------------------------------------------------------
    def call(self, opt, kind, **params):
        """One API call; returns the payload of ``response[0]`` (``result`` unwrapped)."""
        if self._token is None and not self._basic:
            self.authenticate()
        query = dict(opt=opt, type=kind, **params)
        status, body = self._send("GET", "/api/bmc", query)
        if status == 401 and self.user is not None and not self._basic:
            self._forget_token()
            self.authenticate(fresh=True)
            status, body = self._send("GET", "/api/bmc", query)
        if status in (401, 403):
            hint = "give bmc_user and bmc_password" if self.user is None else "check the credentials"
            raise BmcError("bmc: %s refused %s %s (HTTP %d): %s" % (self.url, opt, kind, status, hint))
        if status != 200:
            raise BmcError("bmc: %s answered HTTP %d to %s %s: %s" % (self.url, status, opt, kind, _snippet(body)))
        try:
            payload = json.loads(body)["response"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            raise BmcError("bmc: unexpected answer to %s %s from %s: %s"
                           % (opt, kind, self.url, _snippet(body))) from None
        if isinstance(payload, dict) and "result" in payload:
            payload = payload["result"]
        return payload

    def _expect_ok(self, payload, what):
        if isinstance(payload, str) and payload.lower() == "ok":
            return
        if isinstance(payload, dict) and str(payload.get("result", "")).lower() == "ok":
            return
        raise BmcError("bmc: %s at %s did not answer ok: %s" % (what, self.url, _snippet(json.dumps(payload))))

    def power(self):
        """{slot: bool} as the BMC reports it."""
        payload = self.call("get", "power")
        if isinstance(payload, list) and payload and isinstance(payload[0], dict):
            payload = payload[0]
        if not isinstance(payload, dict):
            raise BmcError("bmc: unexpected answer to get power from %s: %s"
                           % (self.url, _snippet(json.dumps(payload))))
        result = {}
        for slot in range(1, NODES + 1):
            value = payload.get("node%d" % slot)
            if value is None:
                raise BmcError("bmc: the answer to get power from %s lacks node%d: %s"
                               % (self.url, slot, _snippet(json.dumps(payload))))
            try:
                result[slot] = bool(int(value))
            except (TypeError, ValueError):
                raise BmcError("bmc: node%d power from %s is %r, not 0 or 1" % (slot, self.url, value)) from None
        return result

    def set_power(self, wanted):
        """Switch the named slots (``{slot: bool}``); the others are not named, so not touched."""
        params = {"node%d" % slot: "1" if on else "0" for slot, on in sorted(wanted.items())}
        for slot in wanted:
            _node_param(slot)
        self._expect_ok(self.call("set", "power", **params), "set power")

    def reset(self, slot):
        self._expect_ok(self.call("set", "reset", node=_node_param(slot)), "reset of node %d" % slot)

    def usb_boot(self, slot, enabled):
        kind = "usb_boot" if enabled else "clear_usb_boot"
        self._expect_ok(self.call("set", kind, node=_node_param(slot)), "%s of node %d" % (kind, slot))

    def uart_read(self, slot):
        """What the BMC has buffered of the node's console since the last read."""
        payload = self.call("get", "uart", node=_node_param(slot))
        if isinstance(payload, dict) and "uart" in payload:
            payload = payload["uart"]
        if not isinstance(payload, str):
            raise BmcError("bmc: unexpected answer to get uart from %s: %s" % (self.url, _snippet(json.dumps(payload))))
        return payload

    def uart_write(self, slot, text):
        self._expect_ok(self.call("set", "uart", node=_node_param(slot), cmd=text), "uart write to node %d" % slot)

    def info(self):
        return self.call("get", "other")


def _snippet(body):
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    body = " ".join(str(body).split())
    return body[:200] + ("..." if len(body) > 200 else "")


CONSOLE_PREFIX = "turingpi2:"


def console_port(url, slot):
    """The console port of a Turing Pi 2 node, as the console module takes it: ``turingpi2:<BMC URL>#<node>``."""
    return "%s%s#%d" % (CONSOLE_PREFIX, parse_bmc_url(url), slot)


def parse_console_port(port):
    """``turingpi2:<BMC URL>#<node>`` -> (url, slot); CarrierError naming the value."""
    if not isinstance(port, str) or not port.startswith(CONSOLE_PREFIX) or "#" not in port:
        raise CarrierError("port: %r is not a Turing Pi 2 console (turingpi2:https://BMC#NODE)" % (port,))
    url, _sep, node = port[len(CONSOLE_PREFIX):].rpartition("#")
    try:
        slot = int(node)
    except ValueError:
        raise CarrierError("port: %r: the node after '#' is not a number" % (port,)) from None
    _node_param(slot)
    return parse_bmc_url(url), slot


class BmcUart(object):
    """A node's console through the BMC, with the part of pyserial's interface a console session uses.

    What the BMC allows, and so what this can do: reading polls the BMC's buffer of the node's
    output (``get uart``, which empties it: another reader of the same buffer takes lines from
    this one; a new reader gets what was buffered since the last read); writing sends whole lines
    (``set uart``): text is held until a line end, and each
    line goes out as one command the BMC types followed by Enter. It cannot send a character
    alone (Ctrl-C, a lone Enter is an empty line), detect another client, or change the line
    speed.
    """

    def __init__(self, client, slot, timeout=0.2, poll=0.2):
        self.client = client
        self.slot = slot
        self.timeout = timeout
        self.poll = poll
        self.is_open = False
        self._buffer = bytearray()
        self._pending = ""
        self._last_poll = 0.0

    def open(self):
        # Checks credentials and reachability now. What the BMC buffered since its last read is kept: a
        # serial line would have lost it, but it is what a capture of a boot that already began wants.
        text = self.client.uart_read(self.slot)
        self._buffer.extend(text.encode("utf-8", "replace"))
        self.is_open = True

    def close(self):
        self.is_open = False

    def _fill(self):
        now = time.monotonic()
        if now - self._last_poll < self.poll:
            time.sleep(self.poll - (now - self._last_poll))
        self._last_poll = time.monotonic()
        text = self.client.uart_read(self.slot)
        if text:
            self._buffer.extend(text.encode("utf-8", "replace"))

    @property
    def in_waiting(self):
        return len(self._buffer)

    def read(self, size=1):
        deadline = time.monotonic() + (self.timeout or 0)
        while not self._buffer:
            self._fill()
            if self._buffer or time.monotonic() >= deadline:
                break
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def write(self, data):
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
        self._pending += text.replace("\r\n", "\n").replace("\r", "\n")
        while "\n" in self._pending:
            line, self._pending = self._pending.split("\n", 1)
            self.client.uart_write(self.slot, line)
        return len(data)

    def flush(self):
        pass
