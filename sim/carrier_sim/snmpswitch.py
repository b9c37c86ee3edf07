# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An emulated managed PoE switch: an SNMP agent (pysnmp) serving POWER-ETHERNET-MIB (RFC 3621;
docs/hardware.md section 13).

The agent listens on the board's ``snmp://HOST:PORT`` (a loopback address) in the simulator's
asyncio loop and serves, for the ports of the board's profile (``{port: N, group: G}`` per slot):

- ``pethPsePortAdminEnable`` (1.3.6.1.2.1.105.1.1.1.3.G.N, TruthValue 1 true / 2 false, read-write);
- ``pethPsePortDetectionStatus`` (.6.G.N: 1 disabled, 2 searching, 3 deliveringPower, ...);
- ``pethMainPseTable`` (1.3.6.1.2.1.105.1.3.1.1: power, oper status, consumption per group);
- ``sysDescr``, ``sysUpTime``, ``sysName`` of SNMPv2-MIB.

Enabling a port starts detection (``searching``); after ``sim.detect_time`` seconds (0.2, a PSE
classifies a powered device in well under a second) it delivers power and the node on it powers
on. A port with no node stays ``searching`` (nothing to detect). Disabling a port cuts the power at
once (``disabled``). Ports start disabled.

Simulator settings (the board's ``sim:`` mapping): ``community`` (``private``: the v2c community
with read-write access), ``v3_user`` (an SNMPv3 USM user, none by default), ``v3_auth`` (its
authentication passphrase, required with a user), ``v3_priv`` (its privacy passphrase: authPriv;
without it authNoPriv), the protocols from the profile's ``snmp`` settings, ``detect_time``.

Faults (``fault(request)``): ``{"timeout": true}`` drops every datagram (a switch that stopped
answering: a v2c agent that gets a wrong community looks just the same to a manager);
``{"port": N, "group": G, "stuck": "on"|"off"|null}`` a port that keeps delivering or never
delivers, whatever AdminEnable says (null: it follows again).
"""

from __future__ import annotations

import asyncio
import bisect
import socket
import time
import urllib.parse

from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity import config, engine
from pysnmp.entity.rfc3413 import cmdrsp, context
from pysnmp.proto import rfc1902, rfc1905
from pysnmp.smi import error as smi_error
from pysnmp.smi import instrum

from .devices import DeviceEmulator

PORT_TABLE = (1, 3, 6, 1, 2, 1, 105, 1, 1, 1)
MAIN_TABLE = (1, 3, 6, 1, 2, 1, 105, 1, 3, 1, 1)
ADMIN, DETECTION = 3, 6
SYS_DESCR, SYS_UPTIME, SYS_NAME = (1, 3, 6, 1, 2, 1, 1, 1, 0), (1, 3, 6, 1, 2, 1, 1, 3, 0), (1, 3, 6, 1, 2, 1, 1, 5, 0)
DISABLED, SEARCHING, DELIVERING = 1, 2, 3
DETECTION_WORDS = {1: "disabled", 2: "searching", 3: "deliveringPower", 4: "fault", 5: "test", 6: "otherFault"}
WATTS_PER_PORT = 15  # an 802.3af budget; a Pi with a PoE HAT draws about 5 W
DRAW = 5

AUTH = {"md5": config.USM_AUTH_HMAC96_MD5, "sha": config.USM_AUTH_HMAC96_SHA,
        "sha224": config.USM_AUTH_HMAC128_SHA224, "sha256": config.USM_AUTH_HMAC192_SHA256,
        "sha384": config.USM_AUTH_HMAC256_SHA384, "sha512": config.USM_AUTH_HMAC384_SHA512}
PRIV = {"none": config.USM_PRIV_NONE, "des": config.USM_PRIV_CBC56_DES, "aes": config.USM_PRIV_CFB128_AES,
        "aes192": config.USM_PRIV_CFB192_AES, "aes256": config.USM_PRIV_CFB256_AES}


class _Port:
    def __init__(self, slot):
        self.slot = slot
        self.admin = False
        self.detection = DISABLED
        self.stuck = None  # "on" | "off" | None
        self.timer = None


class _Transport(udp.UdpAsyncioTransport):
    """The agent's UDP socket; a switch in the timeout fault takes datagrams and never answers."""

    emulator = None

    def datagram_received(self, datagram, transportAddress):
        self.emulator.requests += 1
        if not self.emulator.timeout:
            super().datagram_received(datagram, transportAddress)


class _PoeMib(instrum.AbstractMibInstrumController):
    """The switch's objects, kept in OID order for GET, GETNEXT/GETBULK and SET."""

    def __init__(self, emulator):
        self.emulator = emulator

    def _objects(self):
        return self.emulator.objects()

    def read_variables(self, *varBinds, **context):
        objects = dict(self._objects())
        answer = []
        for name, _value in varBinds:
            oid = tuple(name)
            if oid in objects:
                answer.append((name, objects[oid]))
            elif oid[:len(PORT_TABLE)] == PORT_TABLE or oid[:len(MAIN_TABLE)] == MAIN_TABLE or oid[:8] == SYS_DESCR[:8]:
                answer.append((name, rfc1905.noSuchInstance))
            else:
                answer.append((name, rfc1905.noSuchObject))
        return answer

    def read_next_variables(self, *varBinds, **context):
        objects = self._objects()
        oids = [oid for oid, _v in objects]
        answer = []
        for name, _value in varBinds:
            at = bisect.bisect_right(oids, tuple(name))
            if at < len(oids):
                answer.append((rfc1902.ObjectName(oids[at]), objects[at][1]))
            else:
                answer.append((name, rfc1905.endOfMibView))
        return answer

    def write_variables(self, *varBinds, **context):
        """Every binding checked before any is applied (a SET is all or nothing)."""
        ports = self.emulator.by_index
        changes = []
        for idx, (name, value) in enumerate(varBinds):
            oid = tuple(name)
            index = oid[len(PORT_TABLE) + 1:]
            if oid[:len(PORT_TABLE)] != PORT_TABLE or oid[len(PORT_TABLE)] != ADMIN:
                raise smi_error.NotWritableError(name=name, idx=idx)
            if index not in ports:
                raise smi_error.NoCreationError(name=name, idx=idx)
            if value.tagSet != rfc1902.Integer32.tagSet:
                raise smi_error.WrongTypeError(name=name, idx=idx)
            if int(value) not in (1, 2):
                raise smi_error.WrongValueError(name=name, idx=idx)
            changes.append((index, int(value) == 1))
        for index, on in changes:
            self.emulator.set_admin(index, on)
        return list(varBinds)


class PoeEmulator(DeviceEmulator):
    """One PoE switch. ``nodes``: slot -> simulator Node."""

    def __init__(self, spec, nodes, state_dir, log=None):
        super().__init__(spec, nodes, state_dir, log)
        sim = dict(spec.sim or {})
        unknown = sorted(set(sim) - {"community", "v3_user", "v3_auth", "v3_priv", "detect_time"})
        if unknown:
            raise ValueError("boards.%s.sim: unknown key(s) %s (allowed: community, v3_user, v3_auth, v3_priv, "
                             "detect_time)" % (self.name, ", ".join(unknown)))
        self.community = str(sim.get("community", "private"))
        self.v3_user = sim.get("v3_user")
        self.v3_auth = sim.get("v3_auth")
        self.v3_priv = sim.get("v3_priv")
        if self.v3_user is not None and (not isinstance(self.v3_auth, str) or len(self.v3_auth) < 8):
            raise ValueError("boards.%s.sim.v3_auth: an SNMPv3 user needs an authentication passphrase of at "
                             "least 8 characters" % self.name)
        if self.v3_priv is not None and (not isinstance(self.v3_priv, str) or len(self.v3_priv) < 8):
            raise ValueError("boards.%s.sim.v3_priv: a privacy passphrase has at least 8 characters" % self.name)
        self.detect_time = float(sim.get("detect_time", 0.2))
        snmp = dict(spec.profile.outlet_options.get("snmp") or {})
        self.auth_protocol = snmp.get("auth_protocol", "sha")
        self.priv_protocol = snmp.get("priv_protocol", "aes")
        parts = urllib.parse.urlsplit(spec.bus)
        self.host, self.port = parts.hostname, parts.port or 161
        self.ports = {}
        self.by_index = {}
        for slot, outlet in sorted(spec.profile.outlets.items()):
            port = _Port(slot)
            self.ports[slot] = port
            self.by_index[(outlet["group"], outlet["port"])] = port
        self.timeout = False
        self.requests = 0
        self.sets = 0
        self.created = []
        self.started = time.monotonic()
        self._engine = None
        self._transport = None

    # --- the ports ---------------------------------------------------------------------------------
    def lines(self, slot):
        return {"power": self.ports[slot].detection == DELIVERING, "run": True, "rpiboot": False, "eeprom_wp": False}

    def _apply(self, port):
        node = self.nodes.get(port.slot)
        if node is not None:
            node.apply_lines(self.lines(port.slot))

    def _settle(self, port):
        """Where the port's detection goes now, from AdminEnable, the stuck fault and its node."""
        if port.timer is not None:
            port.timer.cancel()
            port.timer = None
        if port.stuck == "on":
            target = DELIVERING
        elif not port.admin:
            target = DISABLED
        elif port.stuck == "off" or port.slot not in self.nodes:
            target = SEARCHING
        else:
            target = DELIVERING
        if target == DELIVERING and port.detection != DELIVERING and port.stuck != "on" and self.detect_time > 0:
            port.detection = SEARCHING
            port.timer = asyncio.get_running_loop().call_later(self.detect_time, self._deliver, port)
        else:
            port.detection = target
        self._apply(port)

    def _deliver(self, port):
        port.timer = None
        if port.admin and port.stuck != "off":
            port.detection = DELIVERING
            self._apply(port)

    def set_admin(self, index, on):
        port = self.by_index[index]
        self.sets += 1
        if port.admin != on:
            word = "enabled" if on else "disabled"
            self.log("poe %s: port %d.%d (slot %d) admin %s" % (self.name, index[0], index[1], port.slot, word))
        port.admin = on
        if port.timer is None or not on:
            self._settle(port)

    def objects(self):
        """(oid, value) of every object the agent serves, in OID order."""
        found = [(SYS_DESCR, rfc1902.OctetString("carrier-sim PoE switch %s (%d ports, POWER-ETHERNET-MIB)"
                                                 % (self.name, len(self.ports)))),
                 (SYS_UPTIME, rfc1902.TimeTicks(int((time.monotonic() - self.started) * 100) % (2 ** 32))),
                 (SYS_NAME, rfc1902.OctetString(self.name))]
        for (group, number), port in self.by_index.items():
            found += [(PORT_TABLE + (ADMIN, group, number), rfc1902.Integer32(1 if port.admin else 2)),
                      (PORT_TABLE + (DETECTION, group, number), rfc1902.Integer32(port.detection))]
        for group in sorted({g for g, _n in self.by_index}):
            ports = [p for (g, _n), p in self.by_index.items() if g == group]
            found += [(MAIN_TABLE + (2, group), rfc1902.Gauge32(WATTS_PER_PORT * len(ports))),
                      (MAIN_TABLE + (3, group), rfc1902.Integer32(1)),
                      (MAIN_TABLE + (4, group), rfc1902.Gauge32(DRAW * sum(p.detection == DELIVERING for p in ports)))]
        return sorted(found)

    # --- the agent ---------------------------------------------------------------------------------
    async def start(self):
        snmp_engine = engine.SnmpEngine()
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise OSError("poe switch %s: cannot listen on %s: %s" % (self.name, self.spec.bus, exc)) from None
        transport = _Transport()
        transport.emulator = self
        config.add_transport(snmp_engine, udp.DOMAIN_NAME, transport.open_server_mode(sock=sock))
        config.add_v1_system(snmp_engine, "carrier-sim", self.community)
        if self.v3_user is not None:
            config.add_v3_user(snmp_engine, self.v3_user, AUTH[self.auth_protocol], self.v3_auth,
                               PRIV[self.priv_protocol] if self.v3_priv is not None else config.USM_PRIV_NONE,
                               self.v3_priv)
        snmp_context = context.SnmpContext(snmp_engine)
        snmp_context.unregister_context_name(b"")
        snmp_context.register_context_name(b"", _PoeMib(self))
        for responder in (cmdrsp.GetCommandResponder, cmdrsp.NextCommandResponder, cmdrsp.BulkCommandResponder,
                          cmdrsp.SetCommandResponder):
            responder(snmp_engine, snmp_context)
        self._engine, self._transport = snmp_engine, transport
        await asyncio.sleep(0)  # the datagram endpoint is made by a task of the loop
        for port in self.ports.values():
            self._apply(port)
        self.log("poe switch %s: SNMP agent on %s (%d ports)" % (self.name, self.spec.bus, len(self.ports)))

    def close(self):
        for port in self.ports.values():
            if port.timer is not None:
                port.timer.cancel()
                port.timer = None
        if self._engine is not None:
            self._engine.close_dispatcher()
            self._engine = None

    async def wait_closed(self):
        await asyncio.sleep(0)

    def snapshot(self):
        return {"address": self.spec.bus, "requests": self.requests, "sets": self.sets, "timeout": self.timeout,
                "v3_user": self.v3_user,
                "ports": {str(slot): {"admin": port.admin, "detection": DETECTION_WORDS[port.detection],
                                      "stuck": port.stuck} for slot, port in self.ports.items()}}

    def fault(self, request):
        """``timeout: bool``, or ``port: N`` (``group: G``, default 1) with ``stuck: on|off|null``."""
        done = {}
        if "timeout" in request:
            if not isinstance(request["timeout"], bool):
                raise ValueError("timeout %r: true or false" % (request["timeout"],))
            self.timeout = request["timeout"]
            done["timeout"] = self.timeout
        if "port" in request or "stuck" in request:
            index = (request.get("group", 1), request.get("port"))
            if index not in self.by_index:
                raise ValueError("board %s has no PoE port %r of group %r (ports: %s)"
                                 % (self.name, index[1], index[0],
                                    ", ".join("%d.%d" % i for i in sorted(self.by_index))))
            if request.get("stuck") not in ("on", "off", None):
                raise ValueError("stuck %r: on, off or null (follows AdminEnable)" % (request.get("stuck"),))
            port = self.by_index[index]
            port.stuck = request.get("stuck")
            self._settle(port)
            done.update(port=index[1], group=index[0], stuck=port.stuck)
        if not done:
            raise ValueError("a PoE switch fault is timeout: true|false, or port: N with stuck: on|off|null")
        return done
