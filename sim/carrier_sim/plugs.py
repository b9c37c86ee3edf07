# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Emulated smart plugs and power strips (board kind ``smart_plug``): the HTTP APIs of Tasmota,
Shelly Gen1 and Shelly Gen2 (RPC) in front of the simulator's nodes (docs/hardware.md section 12).

The board's profile says the API (``api``); each distinct URL among the board's bus and its slots'
own ``url`` is one device with a listener of its own, and a slot is relay ``outlet`` of its device.
A device answers as the real one does:

- Tasmota ``GET /cm?cmnd=Power<n>[ On|Off|Toggle|1|0]`` -> ``{"POWER<n>": "ON"|"OFF"}`` (a one-relay
  device says ``POWER``); ``Status 0`` / ``Status 2`` the device and firmware; with a web password,
  ``user=`` and ``password=`` in the query, else HTTP 401 ``{"WARNING": "Need user=..."}``.
- Shelly Gen1 ``GET /relay/<id>[?turn=on|off|toggle]`` -> ``{"ison": bool, ...}``; ``/shelly``
  (never behind the login); HTTP Basic authentication when a password is set.
- Shelly Gen2 ``GET /rpc/Switch.GetStatus?id=<id>`` -> ``{"id", "source", "output", ...}``,
  ``/rpc/Switch.Set?id=<id>&on=true|false`` -> ``{"was_on": bool}``, ``/rpc/Shelly.GetDeviceInfo``
  (never behind the login); digest authentication, SHA-256, user ``admin``, when a password is set.

Simulator settings (the board's ``sim:``): ``user`` (admin) and ``password`` (none: no login) the
device expects. Faults (control socket op ``fault``, ``board``): ``{"timeout": true}`` - every
device of the board accepts connections and never answers; ``{"slot": N, "stuck": "on"|"off"|null}``
(``port`` is taken for ``slot``) - the slot's relay stays as it is whatever it is told.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import urllib.parse
import urllib.request

from .devices import DeviceEmulator

REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
           500: "Internal Server Error"}
TASMOTA_VERSION = "14.3.0(tasmota)"
GEN1_FIRMWARE = "20230913-114244/v1.14.0-gcb84623"
GEN2_FIRMWARE = "1.4.4"
NONCES = 64  # the Gen2 nonces a device remembers


def _sha256(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _Device:
    """One plug or strip at one URL: the slots it switches, by relay number."""

    def __init__(self, emulator, url, index):
        self.emulator = emulator
        self.url = url
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname, parts.port or 80
        self.relays = {}  # outlet number -> slot
        self.mac = "C8C9A3%06X" % (0x100000 + index * 0x111 + (self.port & 0xFFF))
        self.nonces = []
        self.server = None

    @property
    def count(self):
        return max(self.relays)

    def relay_state(self, outlet):
        slot = self.relays.get(outlet)
        return self.emulator.power.get(slot, False) if slot is not None else False

    # --- the three APIs ----------------------------------------------------------------------------
    def tasmota(self, query):
        emu = self.emulator
        if emu.password is not None and (query.get("user") != emu.user or query.get("password") != emu.password):
            return 401, {"WARNING": "Need user=<username>&password=<password>"}, {}
        command, _sep, value = query.get("cmnd", "").strip().partition(" ")
        name = command.lower()
        if name == "status":
            return 200, self._tasmota_status(value.strip()), {}
        if not name.startswith("power") or not (name[5:] == "" or name[5:].isdigit()):
            return 200, {"Command": "Unknown"}, {}
        outlet = int(name[5:] or 1)
        if not 1 <= outlet <= self.count:
            return 200, {"Command": "Unknown"}, {}
        word = value.strip().lower()
        wanted = {"on": True, "1": True, "true": True, "off": False, "0": False, "false": False}.get(word)
        if word in ("toggle", "2"):
            wanted = not self.relay_state(outlet)
        if word and wanted is None:
            return 200, {"Command": "Error"}, {}
        if wanted is not None:
            emu.switch(self.relays.get(outlet), wanted)
        key = "POWER" if self.count == 1 else "POWER%d" % outlet
        return 200, {key: "ON" if self.relay_state(outlet) else "OFF"}, {}

    def _tasmota_status(self, which):
        fwr = {"Version": TASMOTA_VERSION, "BuildDateTime": "2024-12-15T10:00:00", "Core": "2_7_8",
               "Hardware": "ESP8266EX", "CR": "371/699"}
        if which == "2":
            return {"StatusFWR": fwr}
        names = ["%s relay %d" % (self.emulator.name, n) for n in range(1, self.count + 1)]
        status = {"Module": 0, "DeviceName": "Tasmota %s" % self.emulator.name, "FriendlyName": names,
                  "Power": "".join("1" if self.relay_state(n) else "0" for n in range(self.count, 0, -1))}
        return {"Status": status, "StatusFWR": fwr,
                "StatusNET": {"Hostname": "tasmota-%s" % self.mac[-6:], "Mac": self.mac}}

    def gen1(self, path, query, headers):
        if path == "/shelly":
            return 200, {"type": "SHPLG-S" if self.count == 1 else "SHSW-25", "mac": self.mac,
                         "auth": self.emulator.password is not None, "fw": GEN1_FIRMWARE,
                         "num_outputs": self.count}, {}
        if not self._basic_ok(headers):
            return 401, "401 Unauthorized", {"WWW-Authenticate": 'Basic realm="shelly"'}
        relay = path[len("/relay/"):] if path.startswith("/relay/") else None
        if relay is None or not relay.isdigit() or not 0 <= int(relay) < self.count:
            return 404, "Not Found", {}
        outlet = int(relay) + 1
        turn = query.get("turn")
        if turn is not None:
            if turn not in ("on", "off", "toggle"):
                return 400, "Bad turn!", {}
            on = (not self.relay_state(outlet)) if turn == "toggle" else turn == "on"
            self.emulator.switch(self.relays.get(outlet), on)
        return 200, {"ison": self.relay_state(outlet), "has_timer": False, "timer_started": 0,
                     "timer_duration": 0, "timer_remaining": 0, "overpower": False, "source": "http"}, {}

    def _basic_ok(self, headers):
        emu = self.emulator
        if emu.password is None:
            return True
        scheme, _sep, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _sep, password = base64.b64decode(value.strip()).decode("utf-8").partition(":")
        except ValueError:
            return False
        return secrets.compare_digest(user, emu.user) and secrets.compare_digest(password, emu.password)

    def gen2(self, path, target, query, headers):
        realm = "shellyplus%s-%s" % ("pro4pm" if self.count > 1 else "plugs", self.mac.lower())
        method = path[len("/rpc/"):] if path.startswith("/rpc/") else None
        if method == "Shelly.GetDeviceInfo":
            return 200, {"name": None, "id": realm[len("shelly"):], "mac": self.mac,
                         "model": "SPSW-004PE16EU" if self.count > 1 else "SNPL-00112EU", "gen": 2,
                         "fw_id": "20241011-114455/%s-g8e4f7d4" % GEN2_FIRMWARE, "ver": GEN2_FIRMWARE,
                         "app": "Pro4PM" if self.count > 1 else "PlusPlugS",
                         "auth_en": self.emulator.password is not None, "auth_domain": realm}, {}
        if not self._digest_ok(target, headers, realm):
            nonce = secrets.token_hex(8)
            self.nonces = (self.nonces + [nonce])[-NONCES:]
            challenge = 'Digest qop="auth", realm="%s", nonce="%s", algorithm=SHA-256' % (realm, nonce)
            return 401, {"code": 401, "message": "Unauthorized"}, {"WWW-Authenticate": challenge}
        if method not in ("Switch.GetStatus", "Switch.Set"):
            return 404, {"code": 404, "message": "No handler for %s" % method}, {}
        ident = query.get("id", "")
        if not ident.isdigit() or not 0 <= int(ident) < self.count:
            return 500, {"code": -105, "message": "Argument 'id', value %s not found!" % ident}, {}
        outlet = int(ident) + 1
        was_on = self.relay_state(outlet)
        if method == "Switch.Set":
            if query.get("on") not in ("true", "false"):
                return 500, {"code": -103, "message": "Invalid argument 'on'!"}, {}
            self.emulator.switch(self.relays.get(outlet), query["on"] == "true")
            return 200, {"was_on": was_on}, {}
        return 200, {"id": outlet - 1, "source": "HTTP_in", "output": was_on, "apower": 2.5 if was_on else 0.0,
                     "voltage": 230.1, "current": 0.012 if was_on else 0.0}, {}

    def _digest_ok(self, target, headers, realm):
        emu = self.emulator
        if emu.password is None:
            return True
        scheme, _sep, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "digest":
            return False
        fields = urllib.request.parse_keqv_list(urllib.request.parse_http_list(value))
        if (fields.get("username") != "admin" or fields.get("realm") != realm or fields.get("nonce") not in self.nonces
                or fields.get("uri") != target or fields.get("qop") != "auth"):
            return False
        ha1 = _sha256("admin:%s:%s" % (realm, emu.password))
        ha2 = _sha256("GET:%s" % target)
        expected = _sha256("%s:%s:%s:%s:auth:%s"
                           % (ha1, fields["nonce"], fields.get("nc", ""), fields.get("cnonce", ""), ha2))
        return secrets.compare_digest(expected, fields.get("response", ""))

    def answer(self, method, target, headers):
        if method != "GET":
            return 405, "Method Not Allowed", {}
        parts = urllib.parse.urlsplit(target)
        query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        api = self.emulator.api
        if api == "tasmota":
            return self.tasmota(query) if parts.path == "/cm" else (404, "Not Found", {})
        if api == "shelly_gen1":
            return self.gen1(parts.path, query, headers)
        return self.gen2(parts.path, target, query, headers)


class PlugEmulator(DeviceEmulator):
    """The devices of one ``smart_plug`` board. ``nodes``: slot -> simulator Node."""

    def __init__(self, spec, nodes, state_dir, log=None):
        super().__init__(spec, nodes, state_dir, log)
        self.api = spec.profile.outlet_options["api"]
        sim = dict(spec.sim or {})
        self.user = str(sim.get("user", "admin"))
        self.password = None if sim.get("password") is None else str(sim["password"])
        if self.api == "shelly_gen2" and self.user != "admin":
            raise ValueError("boards.%s.sim.user: %r: a Shelly Gen2 device has the one user admin"
                             % (self.name, self.user))
        self.devices = {}
        self.slot_device = {}
        for slot, outlet in sorted(spec.profile.outlets.items()):
            url = outlet.get("url") or spec.bus
            if urllib.parse.urlsplit(url).scheme != "http":
                raise ValueError("boards.%s: %s: the simulator serves plugs over plain http only" % (self.name, url))
            device = self.devices.get(url)
            if device is None:
                device = self.devices[url] = _Device(self, url, len(self.devices))
            device.relays[outlet["outlet"]] = slot
            self.slot_device[slot] = device
        self.power = {slot: False for slot in spec.profile.outlets}
        self.stuck = {}  # slot -> the level its relay is held at
        self.timeout = False
        self.requests = 0
        self.created = []
        self._held = set()  # the writers of connections a timing-out device keeps open

    # --- the relays --------------------------------------------------------------------------------
    def lines(self, slot):
        return {"power": self.power.get(slot, False), "run": True, "rpiboot": False, "eeprom_wp": False}

    def switch(self, slot, on):
        if slot is None or slot in self.stuck or self.power.get(slot) == on:
            return
        self.power[slot] = on
        self.log("plug %s slot %d: relay %s" % (self.name, slot, "on" if on else "off"))
        node = self.nodes.get(slot)
        if node is not None:
            node.apply_lines(self.lines(slot))

    def fault(self, request):
        changes = {}
        if "timeout" in request:
            if not isinstance(request["timeout"], bool):
                raise ValueError("timeout %r: true or false" % (request["timeout"],))
            changes["timeout"] = request["timeout"]
        if "stuck" in request:
            slot = request.get("slot", request.get("port"))
            if isinstance(slot, bool) or slot not in self.power:
                raise ValueError("slot %r is not a slot of board %s (slots: %s)"
                                 % (slot, self.name, ", ".join(map(str, sorted(self.power)))))
            if request["stuck"] not in ("on", "off", None):
                raise ValueError("stuck %r: on, off or null (none)" % (request["stuck"],))
            changes["stuck"] = (slot, request["stuck"])
        if not changes:
            raise ValueError("a smart_plug board takes the faults timeout (true|false) and slot N with "
                             "stuck on|off|null")
        if "timeout" in changes:
            self.timeout = changes["timeout"]
            if not self.timeout:
                self._release()
        if "stuck" in changes:
            slot, level = changes["stuck"]
            self.stuck.pop(slot, None)
            if level is not None:
                self.switch(slot, level == "on")
                self.stuck[slot] = level == "on"
        return {"timeout": self.timeout, "stuck": {str(s): "on" if v else "off" for s, v in sorted(self.stuck.items())}}

    # --- the servers -------------------------------------------------------------------------------
    async def start(self):
        for device in self.devices.values():
            device.server = await asyncio.start_server(lambda r, w, d=device: self._client(d, r, w),
                                                       device.host, device.port)
            self.log("plug %s (%s) listening on %s" % (self.name, self.api, device.url))
        for slot, node in self.nodes.items():
            node.apply_lines(self.lines(slot))

    def _release(self):
        for writer in list(self._held):
            writer.close()
        self._held.clear()

    def close(self):
        for device in self.devices.values():
            if device.server is not None:
                device.server.close()
        self._release()

    async def wait_closed(self):
        for device in self.devices.values():
            if device.server is not None:
                await device.server.wait_closed()
                device.server = None

    def snapshot(self):
        return {"api": self.api, "urls": sorted(self.devices), "auth": self.password is not None,
                "power": {str(s): p for s, p in sorted(self.power.items())}, "requests": self.requests,
                "timeout": self.timeout, "stuck": {str(s): "on" if v else "off" for s, v in sorted(self.stuck.items())}}

    async def _client(self, device, reader, writer):
        try:
            if self.timeout:  # a device that accepts and never answers, until the client gives up
                self._held.add(writer)
                await reader.read()
                return
            request_line = await asyncio.wait_for(reader.readline(), 10)
            if not request_line:
                return
            method, target, _version = request_line.decode("latin-1").split(" ", 2)
            headers = {}
            while True:
                line = await asyncio.wait_for(reader.readline(), 10)
                if line in (b"\r\n", b"\n", b""):
                    break
                key, _sep, value = line.decode("latin-1").partition(":")
                headers[key.strip().lower()] = value.strip()
            self.requests += 1
            status, payload, extra = device.answer(method, target, headers)
            structured = isinstance(payload, (dict, list))
            body = (json.dumps(payload, separators=(",", ":")) if structured else str(payload)).encode("utf-8")
            kind = "application/json" if structured else "text/plain"
            head = ["HTTP/1.1 %d %s" % (status, REASONS.get(status, "Error")), "Content-Type: %s" % kind,
                    "Content-Length: %d" % len(body), "Connection: close"]
            head += ["%s: %s" % item for item in extra.items()]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError, ValueError, asyncio.IncompleteReadError):
            pass
        finally:
            self._held.discard(writer)
            writer.close()
