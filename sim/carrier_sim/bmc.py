# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An emulated Turing Pi 2 BMC: its HTTP API in front of the simulator's node state machines.

The API shape of docs/hardware.md section 3: ``GET /api/bmc?opt=get|set&type=...``, answers wrapped as
``{"response": [{"result": ...}]}``; ``POST /api/bmc/authenticate`` with a JSON username and
password answers ``{"id": <token>, "ttl": ...}``; every other request needs
``Authorization: Bearer <token>`` (401 otherwise). Power ``set`` takes ``node1..node4=0|1`` and
changes only the nodes named; ``reset``, ``usb_boot``, ``clear_usb_boot`` and ``uart`` take
``node=N`` counted from 0. The BMC buffers each node's console: ``get uart`` returns what came
since the last read; ``set uart`` types ``cmd`` and a carriage return.

Like the real BMC, its power state is what it last switched, not sensed: a node that halts by
itself still reads on.

Simulator settings (the board's ``sim:`` mapping): ``bmc_user`` (root), ``bmc_password``
(turing), ``auth`` (true), ``tls`` (false: plain HTTP; true: HTTPS with a self-signed
certificate written to ``<state dir>/bmc-<board>-ca.pem``), ``malformed`` (false: answer
non-JSON, for tests of a broken BMC), ``usb_write_mbps`` (30: the pace of the flash service's eMMC
writes) and ``gadget_time`` (2 s: its rpiboot); the flash API (``type=flash``, ``/api/bmc/upload/<handle>``)
is bmcflash.py's.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import os
import secrets
import ssl
import urllib.parse

from .bmcflash import BodyReader, FlashService
from .devices import DeviceEmulator

NODES = 4
UART_BUFFER = 64 * 1024
RESET_PULSE = 0.1
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
           411: "Length Required", 500: "Internal Server Error"}


class BmcEmulator(DeviceEmulator):
    """One Turing Pi 2 board. ``nodes``: slot -> simulator Node (with its ``uart``)."""

    def __init__(self, spec, nodes, state_dir, log=None):
        super().__init__(spec, nodes, state_dir, log)
        sim = dict(spec.sim or {})
        self.user = str(sim.get("bmc_user", "root"))
        self.password = str(sim.get("bmc_password", "turing"))
        self.auth = bool(sim.get("auth", True))
        self.tls = bool(sim.get("tls", False))
        self.malformed = bool(sim.get("malformed", False))
        parts = urllib.parse.urlsplit(spec.bus)
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        if (self.scheme == "https") != self.tls:
            raise ValueError("boards.%s: bus %s is %s but sim.tls is %s"
                             % (self.name, spec.bus, self.scheme, self.tls))
        self.power = {slot: False for slot in range(1, NODES + 1)}
        self.usb_boot = {slot: False for slot in range(1, NODES + 1)}
        self.buffers = {slot: bytearray() for slot in range(1, NODES + 1)}
        self.tokens = set()
        self.requests = 0
        self.created = []
        self.ca_path = None
        self._server = None
        self.flash = FlashService(self, sim)
        for slot, node in self.nodes.items():
            self._tee(slot, node)

    # --- the nodes ---------------------------------------------------------------------------------
    def _tee(self, slot, node):
        """Keep a copy of what the node prints, as the BMC's UART buffer does."""
        write = node.uart.write
        buffer = self.buffers[slot]

        def tee(data):
            raw = data.encode("utf-8", "replace") if isinstance(data, str) else bytes(data)
            buffer.extend(raw)
            del buffer[:-UART_BUFFER]
            return write(data)

        node.uart.write = tee

    def lines(self, slot):
        return {"power": self.power[slot], "run": True, "rpiboot": self.usb_boot[slot], "eeprom_wp": False}

    def apply(self, slot):
        node = self.nodes.get(slot)
        if node is not None:
            node.apply_lines(self.lines(slot))

    def apply_all(self):
        for slot in self.nodes:
            self.apply(slot)

    async def _reset(self, slot):
        node = self.nodes.get(slot)
        if node is None or not self.power[slot]:
            return
        node.apply_lines(dict(self.lines(slot), run=False))
        await asyncio.sleep(RESET_PULSE)
        node.apply_lines(self.lines(slot))

    # --- TLS ---------------------------------------------------------------------------------------
    def _certificate(self):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "turingpi-sim-%s" % self.name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        alt = [x509.DNSName("localhost")]
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(self.host)))
        except ValueError:
            alt.append(x509.DNSName(self.host))
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=2))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.SubjectAlternativeName(alt), critical=False)
                .sign(key, hashes.SHA256()))
        self.ca_path = os.path.join(self.state_dir, "bmc-%s-ca.pem" % self.name)
        key_path = os.path.join(self.state_dir, "bmc-%s-key.pem" % self.name)
        with open(self.ca_path, "wb") as handle:
            handle.write(cert.public_bytes(serialization.Encoding.PEM))
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        self.created += [self.ca_path, key_path]
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.ca_path, key_path)
        return context

    # --- the server --------------------------------------------------------------------------------
    async def start(self):
        context = self._certificate() if self.tls else None
        self._server = await asyncio.start_server(self._client, self.host, self.port, ssl=context)
        self.apply_all()
        self.log("bmc %s listening on %s" % (self.name, self.spec.bus))

    def close(self):
        self.flash.cancel("the BMC stopped")
        if self._server is not None:
            self._server.close()

    async def wait_closed(self):
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def snapshot(self):
        return {"url": self.spec.bus, "auth": self.auth, "tls": self.tls, "ca_path": self.ca_path,
                "power": {str(s): p for s, p in self.power.items()},
                "usb_boot": {str(s): u for s, u in self.usb_boot.items()},
                "requests": self.requests, "malformed": self.malformed,
                "flash": self.flash.status(), "flashes": self.flash.flashes}

    async def _client(self, reader, writer):
        try:
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
            path = urllib.parse.urlsplit(target).path
            if method == "POST" and path.startswith("/api/bmc/upload/"):  # an image: streamed, never held
                if headers.get("expect", "").lower() == "100-continue":  # curl -F asks before a big body
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    await writer.drain()
                status, payload = (await self.flash.upload(path.rsplit("/", 1)[1], headers, BodyReader(reader, headers))
                                   if self._authorized(headers) else (401, {"error": "unauthorized"}))
                if status != 200 and isinstance(payload, str):
                    payload = {"response": [{"result": payload}]}
            else:
                body = b""
                length = int(headers.get("content-length") or 0)
                if length:
                    body = await asyncio.wait_for(reader.readexactly(length), 10)
                status, payload = await self.handle(method, target, headers, body)
            if self.malformed and status == 200:
                data, ctype = b"<html><body>BMC busy</body></html>", "text/html"
            elif isinstance(payload, (dict, list)):
                data, ctype = json.dumps(payload).encode(), "application/json"
            else:
                data, ctype = str(payload).encode(), "text/plain"
            head = "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % (
                status, REASONS.get(status, "Error"), ctype, len(data))
            writer.write(head.encode("latin-1") + data)
            await writer.drain()
        except (ValueError, asyncio.TimeoutError, ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    def _authorized(self, headers):
        auth = headers.get("authorization", "")
        return not self.auth or (auth.startswith("Bearer ") and auth[7:] in self.tokens)

    async def handle(self, method, target, headers, body):
        """One request -> (status, payload)."""
        parts = urllib.parse.urlsplit(target)
        if parts.path == "/api/bmc/authenticate":
            if method != "POST":
                return 405, "POST only"
            try:
                credentials = json.loads(body or b"{}")
            except ValueError:
                return 400, "body is not JSON"
            if credentials.get("username") != self.user or credentials.get("password") != self.password:
                return 401, {"error": "unauthorized"}
            token = secrets.token_hex(32)
            self.tokens.add(token)
            return 200, {"id": token, "ttl": 10800}
        if parts.path != "/api/bmc":
            return 404, "not found"
        if not self._authorized(headers):
            return 401, {"error": "unauthorized"}
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parts.query).items()}
        opt, kind = query.get("opt"), query.get("type")
        if opt not in ("get", "set"):
            return 400, "Missing `opt` parameter"
        if not kind:
            return 400, "Missing `type` parameter"
        node = None
        if "node" in query:
            try:
                node = int(query["node"]) + 1  # the API counts nodes from 0
            except ValueError:
                return 400, "node is not a number"
            if not 1 <= node <= NODES:
                return 400, "node %s out of range" % query["node"]
        ok = {"response": [{"result": "ok"}]}
        if (opt, kind) == ("get", "power"):
            return 200, {"response": [{"result": [{"node%d" % s: int(p) for s, p in self.power.items()}]}]}
        if (opt, kind) == ("set", "power"):
            named = {}
            for slot in range(1, NODES + 1):
                value = query.get("node%d" % slot)
                if value is not None:
                    if value not in ("0", "1"):
                        return 400, "node%d must be 0 or 1" % slot
                    named[slot] = value == "1"
            for slot, on in named.items():
                self.power[slot] = on
                self.apply(slot)
            return 200, ok
        if (opt, kind) == ("get", "flash"):
            return 200, json.dumps(self.flash.status())  # bmcd answers the state itself, not wrapped
        if (opt, kind) == ("set", "flash"):
            status, text = self.flash.start(node, query)
            return (status, text) if status == 200 else (status, {"response": [{"result": text}]})
        if node is None and kind in ("reset", "usb_boot", "clear_usb_boot", "uart"):
            return 400, "Missing `node` parameter"
        if (opt, kind) == ("set", "reset"):
            await self._reset(node)
            return 200, ok
        if (opt, kind) in (("set", "usb_boot"), ("set", "clear_usb_boot")):
            self.usb_boot[node] = kind == "usb_boot"
            self.apply(node)
            return 200, ok
        if (opt, kind) == ("get", "uart"):
            data = bytes(self.buffers[node])
            self.buffers[node].clear()
            return 200, {"response": [{"uart": data.decode("utf-8", "replace")}]}
        if (opt, kind) == ("set", "uart"):
            target_node = self.nodes.get(node)
            if target_node is not None:
                target_node.feed((query.get("cmd", "") + "\r").encode())
            return 200, ok
        if (opt, kind) == ("get", "other"):
            return 200, {"response": [{"result": {"version": "2.0.5-sim", "api": "1.1",
                                                  "buildroot": "carrier-sim", "name": self.name}}]}
        return 400, "Invalid `type` parameter"
