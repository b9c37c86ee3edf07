# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``poe_switch`` boards: per-port PoE of a managed switch over SNMP (POWER-ETHERNET-MIB, RFC 3621;
docs/hardware.md section 13).

A slot is a row of ``pethPsePortTable`` (1.3.6.1.2.1.105.1.1.1), indexed by the slot's
``group.port``. A write sets ``pethPsePortAdminEnable`` (column 3, TruthValue: 1 true, 2 false);
a read takes AdminEnable and ``pethPsePortDetectionStatus`` (column 6: 1 disabled, 2 searching,
3 deliveringPower, 4 fault, 5 test, 6 otherFault) in one GET. A slot reads on only while the port
delivers power: an enabled port that is still ``searching`` (no powered device found, or not yet
classified) gives the node no power, so it reads off; ``facts()`` shows each port's detection
status and AdminEnable. ``settle`` covers detection and classification (well under a second on a
PSE, a few seconds at most).

Credentials (the board's ``bmc`` options): SNMP v2c with the community ``password``; SNMPv3 when
``user`` is set (or the profile's ``snmp.version`` is ``"3"``): the USM user ``user`` with the
authentication passphrase ``password`` and, when ``priv_password`` is given, the privacy
passphrase (authPriv; authNoPriv otherwise), protocols from the profile's ``snmp`` settings. Every
request has a 5 s budget (two tries of 2.5 s). No secret is ever part of a message.

The SNMP engine is pysnmp's (``pysnmp.hlapi.v3arch.asyncio``), driven by an event loop of the
driver's own for the few requests of a session.
"""

from __future__ import annotations

import asyncio
import urllib.parse

from ansible_collections.picluster.carrier.plugins.module_utils._errors import BusError, CarrierError

try:
    from pysnmp.hlapi.v3arch import asyncio as hlapi
    from pysnmp.proto import errind
    from pysnmp.proto import rfc1902, rfc1905
    HAS_PYSNMP, PYSNMP_ERROR = True, None
except ImportError as exc:  # reported when a poe_switch board is used, not when the collection loads
    HAS_PYSNMP, PYSNMP_ERROR = False, exc

PORT_TABLE = (1, 3, 6, 1, 2, 1, 105, 1, 1, 1)
MAIN_TABLE = (1, 3, 6, 1, 2, 1, 105, 1, 3, 1, 1)
ADMIN, DETECTION = 3, 6
SYS_DESCR, SYS_NAME = (1, 3, 6, 1, 2, 1, 1, 1, 0), (1, 3, 6, 1, 2, 1, 1, 5, 0)
DELIVERING = 3
DETECTION_WORDS = {1: "disabled", 2: "searching", 3: "deliveringPower", 4: "fault", 5: "test", 6: "otherFault"}
MAIN_WORDS = {1: "on", 2: "off", 3: "faulty"}
TIMEOUT, RETRIES = 2.5, 1
MIN_PASSPHRASE = 8  # RFC 3414 A.1: a USM passphrase has at least 8 octets

_AUTH = {"md5": "usmHMACMD5AuthProtocol", "sha": "usmHMACSHAAuthProtocol",
         "sha224": "usmHMAC128SHA224AuthProtocol", "sha256": "usmHMAC192SHA256AuthProtocol",
         "sha384": "usmHMAC256SHA384AuthProtocol", "sha512": "usmHMAC384SHA512AuthProtocol"}
_PRIV = {"des": "usmDESPrivProtocol", "aes": "usmAesCfb128Protocol", "aes192": "usmAesCfb192Protocol",
         "aes256": "usmAesCfb256Protocol"}


def _name(oid):
    """A readable name of one of our OIDs, for messages."""
    oid = tuple(oid)
    if oid[:len(PORT_TABLE)] == PORT_TABLE and len(oid) == len(PORT_TABLE) + 3:
        column = {ADMIN: "pethPsePortAdminEnable", DETECTION: "pethPsePortDetectionStatus"}.get(oid[len(PORT_TABLE)])
        if column:
            return "%s.%d.%d" % ((column,) + oid[-2:])
    return ".".join(map(str, oid))


class PoeDriver(object):
    """The driver of one ``poe_switch`` board (``_outlets`` driver protocol)."""

    settle = 3.0

    def __init__(self, board):
        if not HAS_PYSNMP:
            raise CarrierError("poe_switch board %s: the Python package pysnmp (7.x) is needed on the controller "
                               "to reach %s (pip install pysnmp): %s" % (board.name, board.bus_spec, PYSNMP_ERROR))
        self.board = board
        self.address = board.bus_spec
        parts = urllib.parse.urlsplit(self.address)
        self.host, self.port = parts.hostname, parts.port or 161
        self.snmp = dict(board.profile.outlet_options.get("snmp") or {})
        self.login = dict(board.bmc or {})
        self.v3 = self.login.get("user") is not None or str(self.snmp.get("version", "2c")) == "3"
        self._auth = self._auth_data()
        self._loop = None
        self._engine = None
        self._target = None

    # --- credentials -------------------------------------------------------------------------------
    def _fail(self, slots, text):
        where = ("slot %s" % ", ".join(map(str, slots))) if slots else "device"
        return BusError("poe_switch board %s %s (%s): %s" % (self.board.name, where, self.address, text))

    def _auth_data(self):
        user, password, priv = self.login.get("user"), self.login.get("password"), self.login.get("priv_password")
        name = self.board.name
        if not self.v3:
            if not password:
                raise CarrierError("poe_switch board %s: bmc_password (the SNMP v2c community) is required" % name)
            return hlapi.CommunityData(str(password), mpModel=1)
        if user is None:
            raise CarrierError("poe_switch board %s: snmp.version 3 needs bmc_user (the SNMPv3 user)" % name)
        if not password or len(str(password)) < MIN_PASSPHRASE:
            raise CarrierError("poe_switch board %s: bmc_password (the SNMPv3 authentication passphrase of user %r) "
                               "must have at least %d characters" % (name, user, MIN_PASSPHRASE))
        auth = getattr(hlapi, _AUTH[self.snmp.get("auth_protocol", "sha")])
        if priv is None:
            return hlapi.UsmUserData(str(user), authKey=str(password), authProtocol=auth)
        if self.snmp.get("priv_protocol", "aes") == "none":
            raise CarrierError("poe_switch board %s: bmc_priv_password is given but the profile's snmp.priv_protocol "
                               "is none (set aes, aes192, aes256 or des, or drop the privacy passphrase)" % name)
        if len(str(priv)) < MIN_PASSPHRASE:
            raise CarrierError("poe_switch board %s: bmc_priv_password (the SNMPv3 privacy passphrase of user %r) "
                               "must have at least %d characters" % (name, user, MIN_PASSPHRASE))
        return hlapi.UsmUserData(str(user), authKey=str(password), privKey=str(priv), authProtocol=auth,
                                 privProtocol=getattr(hlapi, _PRIV[self.snmp.get("priv_protocol", "aes")]))

    def _indication(self, indication):
        """What an SNMP engine's error indication means, in words (no secret in them)."""
        user = self.login.get("user")
        budget = TIMEOUT * (RETRIES + 1)
        if isinstance(indication, errind.RequestTimedOut):
            return "no answer from %s in %g s (wrong community or credentials?)" % (self.address, budget)
        if isinstance(indication, errind.UnknownUserName):
            return "the switch does not know SNMPv3 user %r (unknown user name; check bmc_user)" % user
        if isinstance(indication, (errind.WrongDigest, errind.AuthenticationFailure)):
            return ("SNMPv3 authentication of user %r failed: wrong digest (check bmc_password and the profile's "
                    "snmp.auth_protocol, %s)" % (user, self.snmp.get("auth_protocol", "sha")))
        if isinstance(indication, errind.DecryptionError):
            return ("SNMPv3 privacy of user %r failed: the switch could not decrypt the request (check "
                    "bmc_priv_password and the profile's snmp.priv_protocol, %s)"
                    % (user, self.snmp.get("priv_protocol", "aes")))
        if isinstance(indication, errind.UnsupportedSecurityLevel):
            return ("the switch does not accept this security level for SNMPv3 user %r (%s; give or drop "
                    "bmc_priv_password)" % (user, "authPriv" if self.login.get("priv_password") else "authNoPriv"))
        if isinstance(indication, errind.NotInTimeWindow):
            return "SNMPv3 user %r: the request was not in the switch's time window (notInTimeWindow)" % user
        return "SNMP error: %s" % indication

    # --- requests ----------------------------------------------------------------------------------
    def _run(self, slots, make):
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        try:
            return self._loop.run_until_complete(self._request(make))
        except BusError as exc:
            raise self._fail(slots, str(exc)) from None
        except Exception as exc:  # pysnmp reports a bad address, a closed socket, ... as its own exceptions
            raise self._fail(slots, "SNMP request failed: %s: %s" % (type(exc).__name__, exc)) from None

    async def _request(self, make):
        if self._engine is None:
            self._engine = hlapi.SnmpEngine()
            factory = hlapi.Udp6TransportTarget if ":" in self.host else hlapi.UdpTransportTarget
            self._target = await factory.create((self.host, self.port), timeout=TIMEOUT, retries=RETRIES)
        indication, status, index, var_binds = await make(self._engine, self._auth, self._target,
                                                          hlapi.ContextData())
        if indication:
            raise BusError(self._indication(indication))
        if status:
            at = var_binds[int(index) - 1][0] if index and int(index) <= len(var_binds) else None
            where = " at %s" % _name(at) if at is not None else ""
            raise BusError("the switch refused the request: %s%s" % (status.prettyPrint(), where))
        return [(tuple(name), value) for name, value in var_binds]

    def _get(self, slots, oids):
        objects = [hlapi.ObjectType(hlapi.ObjectIdentity(oid)) for oid in oids]
        return self._run(slots, lambda *a: hlapi.get_cmd(*a, *objects))

    def _index(self, slot):
        outlet = self.board.profile.outlets[slot]
        return (outlet.get("group", 1), outlet["port"])

    def _ports(self, slots):
        """slot -> (AdminEnable, DetectionStatus) as integers, from one GET."""
        oids = []
        for slot in slots:
            index = self._index(slot)
            oids += [PORT_TABLE + (ADMIN,) + index, PORT_TABLE + (DETECTION,) + index]
        found = dict(self._get(slots, oids)) if oids else {}
        ports = {}
        for slot in slots:
            index = self._index(slot)
            admin, detection = found.get(PORT_TABLE + (ADMIN,) + index), found.get(PORT_TABLE + (DETECTION,) + index)
            for oid, value in ((PORT_TABLE + (ADMIN,) + index, admin), (PORT_TABLE + (DETECTION,) + index, detection)):
                if value is None or isinstance(value, (rfc1905.NoSuchInstance, rfc1905.NoSuchObject,
                                                       rfc1905.EndOfMibView)):
                    raise self._fail([slot], "the switch has no PoE port %d.%d (%s: %s)"
                                     % (index + (_name(oid), "no such object" if value is None
                                                 else value.__class__.__name__)))
            ports[slot] = (int(admin), int(detection))
        return ports

    def read(self, slots):
        return {slot: detection == DELIVERING for slot, (_admin, detection) in self._ports(list(slots)).items()}

    def write(self, slot, on):
        oid = PORT_TABLE + (ADMIN,) + self._index(slot)
        value = hlapi.ObjectType(hlapi.ObjectIdentity(oid), rfc1902.Integer32(1 if on else 2))
        self._run([slot], lambda *a: hlapi.set_cmd(*a, value))

    def facts(self):
        slots = sorted(self.board.profile.outlets)
        groups = sorted({self._index(slot)[0] for slot in slots})
        system = dict(self._get([], [SYS_DESCR, SYS_NAME]))
        main = dict(self._get([], [MAIN_TABLE + (column, group) for group in groups for column in (2, 3, 4)]))
        ports = self._ports(slots)

        def number(oid):
            value = main.get(oid)
            return int(value) if value is not None and value.tagSet in (rfc1902.Gauge32.tagSet,
                                                                        rfc1902.Integer32.tagSet) else None

        def text(oid):
            value = system.get(oid)
            return value.prettyPrint() if value is not None and value.tagSet == rfc1902.OctetString.tagSet else None

        return {
            "model": text(SYS_DESCR), "name": text(SYS_NAME), "address": self.address,
            "snmp_version": "3" if self.v3 else "2c",
            "pse": {str(group): {"power_w": number(MAIN_TABLE + (2, group)),
                                 "status": MAIN_WORDS.get(number(MAIN_TABLE + (3, group))),
                                 "consumption_w": number(MAIN_TABLE + (4, group))} for group in groups},
            "ports": {str(slot): {"port": "%d.%d" % self._index(slot), "admin_enable": admin == 1,
                                  "detection": DETECTION_WORDS.get(detection, str(detection))}
                      for slot, (admin, detection) in ports.items()},
        }

    def close(self):
        if self._loop is None:
            return
        try:
            if self._engine is not None:
                self._engine.close_dispatcher()
            self._loop.run_until_complete(asyncio.sleep(0))
        finally:
            self._loop.close()
            self._loop = self._engine = self._target = None
