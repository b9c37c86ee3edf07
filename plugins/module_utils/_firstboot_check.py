# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checking a first-boot customisation (the ``customize`` option) before anything is touched.

:func:`check_customize` turns the user's mapping into a frozen :class:`Customization` or raises an
``InvalidValue`` naming ``customize.<key>[i].<sub>`` and the value (a password hash never: its
place shows ``<hidden>``). Every value that later lands in a YAML file or a shell script is
checked here to be exactly what it claims to be (a host name is a host name), so the renderers
never meet a line break, a quote or a ``$(...)`` they would have to neutralise.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import struct
import zoneinfo
from dataclasses import dataclass, field as dc_field

from ansible_collections.picluster.carrier.plugins.module_utils._errors import InvalidValue

HIDDEN = "<hidden>"
STYLES = ("cloud-init", "firstrun", "auto")
TOP_KEYS = ("hostname", "fqdn", "users", "ssh", "timezone", "locale", "keyboard", "network", "wifi", "style")
USER_KEYS = ("name", "ssh_authorized_keys", "password_hash", "groups", "sudo")

_LABEL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# POSIX portable user names as Debian's adduser accepts them by default (NAME_REGEX).
_POSIX_NAME_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_LOCALE_RE = re.compile(r"^(C|POSIX|C\.UTF-8|C\.utf8|[a-z]{2,3}_[A-Z]{2}(\.[A-Za-z0-9-]{1,20})?(@[a-z]{1,20})?)$")
_XKB_LAYOUT_RE = re.compile(r"^[a-z]{2,}$")
_XKB_WORD_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_IFNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")
_COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
_KEY_COMMENT_RE = re.compile(r"^[\x21-\x7e][\x20-\x7e]*$")

# crypt(5) hashes that current Debian, Raspberry Pi OS and Ubuntu verify: SHA-512, SHA-256, yescrypt, bcrypt.
_CRYPT_B64 = r"[./0-9A-Za-z]"
_HASH_RES = (
    re.compile(r"^\$6\$(rounds=[0-9]{4,9}\$)?%s{1,16}\$%s{86}$" % (_CRYPT_B64, _CRYPT_B64)),
    re.compile(r"^\$5\$(rounds=[0-9]{4,9}\$)?%s{1,16}\$%s{43}$" % (_CRYPT_B64, _CRYPT_B64)),
    re.compile(r"^\$y\$%s+\$%s+\$%s{43}$" % (_CRYPT_B64, _CRYPT_B64, _CRYPT_B64)),
    re.compile(r"^\$2b\$[0-9]{2}\$%s{53}$" % _CRYPT_B64),
)
_HASH_HINT = ("only a crypt hash is accepted ($6$, $5$, $y$ or $2b$): hash the password first, e.g. "
              "`mkpasswd -m sha-512` (Debian package whois) or `openssl passwd -6`")

# OpenSSH public key types accepted, with the key type named inside the key blob.
_SK_TYPES = ("sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com")
_ECDSA_TYPES = ("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521")
MIN_RSA_BITS = 2048


@dataclass(frozen=True)
class User:
    name: str
    ssh_authorized_keys: tuple = ()
    password_hash: str = dc_field(default=None, repr=False)
    groups: tuple = ()
    sudo: bool = False


@dataclass(frozen=True)
class Network:
    """``dhcp`` (then address, gateway and nameservers are empty) or a static address."""
    dhcp: bool = True
    interface: str = "eth0"
    address: str = None  # "10.0.0.13/24"
    gateway: str = None
    nameservers: tuple = ()


@dataclass(frozen=True)
class Customization:
    hostname: str = None
    fqdn: str = None
    users: tuple = ()
    ssh_enabled: bool = None  # None: the image's own default
    ssh_password_authentication: bool = False
    timezone: str = None
    locale: str = None
    keyboard: tuple = None  # (layout, variant or None, model or None)
    network: Network = None
    wifi_enabled: bool = None  # False: blocked with rfkill; None: left as the image has it
    wifi_country: str = None
    style: str = "auto"

    @property
    def has_secrets(self):
        return any(u.password_hash for u in self.users)


# --- Small checks ---------------------------------------------------------------------------------


def _type_name(value):
    return type(value).__name__


def _string(value, field, what):
    if not isinstance(value, str):
        raise InvalidValue(field, "%r is a %s, not %s" % (value, _type_name(value), what), value)
    return value


def _bool(value, field):
    if not isinstance(value, bool):
        raise InvalidValue(field, "%r is a %s, not a boolean (true or false)" % (value, _type_name(value)), value)
    return value


def _list(value, field, what):
    """A list; None (a key given empty in YAML) is an empty one."""
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise InvalidValue(field, "%r is a %s, not a list of %s" % (value, _type_name(value), what), value)
    return list(value)


def _mapping(value, field, keys):
    if not isinstance(value, dict):
        raise InvalidValue(field, "%r is a %s, not a mapping" % (value, _type_name(value)), value)
    for key in value:
        if key not in keys:
            raise InvalidValue("%s.%s" % (field, key), "unknown key (known: %s)" % ", ".join(keys), key)
    return value


def check_hostname(value, field):
    """An RFC 1123 host name label: 1-63 of [a-z0-9-], not starting or ending with '-'."""
    _string(value, field, "a host name")
    if "." in value:
        raise InvalidValue(field, "%r is not a host name: a dot makes it a domain name (give the full name as "
                           "customize.fqdn and the first label as customize.hostname)" % value, value)
    if value != value.lower():
        raise InvalidValue(field, "%r is not a host name: use lowercase letters" % value, value)
    if not _LABEL_RE.fullmatch(value):
        raise InvalidValue(field, "%r is not a host name (RFC 1123: 1 to 63 letters a-z, digits and '-', not "
                           "starting or ending with '-')" % value, value)
    return value


def check_fqdn(value, field, hostname):
    _string(value, field, "a fully qualified domain name")
    labels = value.rstrip(".").split(".") if value else [""]
    if len(labels) < 2 or len(value) > 253:
        raise InvalidValue(field, "%r is not a fully qualified domain name (host.domain, at most 253 characters)"
                           % value, value)
    for label in labels:
        if not _LABEL_RE.fullmatch(label):
            raise InvalidValue(field, "%r is not a fully qualified domain name: label %r is not an RFC 1123 label "
                               "(lowercase a-z, digits, '-')" % (value, label), value)
    if hostname is not None and labels[0] != hostname:
        raise InvalidValue(field, "%r does not start with the host name %r" % (value, hostname), value)
    return value.rstrip(".")


def check_password_hash(value, field):
    """A crypt(5) hash; a plain password is refused, and no message shows the value."""
    if not isinstance(value, str):
        raise InvalidValue(field, "%s is a %s, not a crypt hash string" % (HIDDEN, _type_name(value)), HIDDEN)
    if not any(r.fullmatch(value) for r in _HASH_RES):
        raise InvalidValue(field, "%s is not a crypt hash: %s" % (HIDDEN, _HASH_HINT), HIDDEN)
    return value


def _ssh_string(blob, pos, field, line):
    if pos + 4 > len(blob):
        raise InvalidValue(field, "%r: the key data is truncated" % line, line)
    (n,) = struct.unpack_from(">I", blob, pos)
    if pos + 4 + n > len(blob):
        raise InvalidValue(field, "%r: the key data is truncated" % line, line)
    return blob[pos + 4:pos + 4 + n], pos + 4 + n


def check_ssh_key(value, field):
    """One OpenSSH public key line ``type base64 [comment]``: ssh-ed25519, ecdsa-sha2-*, ssh-rsa of
    at least 2048 bits, or a security-key type (sk-*); parsed, not matched by its look."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import load_ssh_public_key

    _string(value, field, "an SSH public key")
    line = value.strip()
    if "\n" in line or "\r" in line or "\0" in line:
        raise InvalidValue(field, "%r holds a line break: give one key per list item" % value, value)
    parts = line.split(None, 2)
    if len(parts) < 2:
        raise InvalidValue(field, "%r is not an OpenSSH public key line (type, base64 key, optional comment)"
                           % value, value)
    key_type, data = parts[0], parts[1]
    if key_type not in ("ssh-ed25519", "ssh-rsa") + _ECDSA_TYPES + _SK_TYPES:
        raise InvalidValue(field, "%r: key type %r is not accepted (ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa "
                           "of %d bits or more, sk-ssh-ed25519@openssh.com, sk-ecdsa-sha2-nistp256@openssh.com; "
                           "authorized_keys options are not accepted)" % (value, key_type, MIN_RSA_BITS), value)
    if len(parts) == 3 and not _KEY_COMMENT_RE.fullmatch(parts[2]):
        raise InvalidValue(field, "%r: the comment holds control characters" % value, value)
    try:
        blob = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidValue(field, "%r: the key data is not base64" % value, value) from None
    inner, pos = _ssh_string(blob, 0, field, value)
    if inner != key_type.encode():
        found = inner.decode("ascii", "replace")
        raise InvalidValue(field, "%r: the key data is a %r key, not %r" % (value, found, key_type), value)
    if key_type in _SK_TYPES:
        _check_sk_key(blob, pos, key_type, field, value)
    else:
        try:
            key = load_ssh_public_key(("%s %s" % (key_type, data)).encode())
        except (ValueError, TypeError) as e:
            raise InvalidValue(field, "%r is not a valid %s key: %s" % (value, key_type, e), value) from None
        if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
            raise InvalidValue(field, "%r is an RSA key of %d bits: at least %d are needed"
                               % (value, key.key_size, MIN_RSA_BITS), value)
    return " ".join(parts)


def _check_sk_key(blob, pos, key_type, field, value):
    """A FIDO security-key public key (OpenSSH PROTOCOL.u2f): the key fields, then the application."""
    if key_type.startswith("sk-ssh-ed25519"):
        pub, pos = _ssh_string(blob, pos, field, value)
        if len(pub) != 32:
            raise InvalidValue(field, "%r: an Ed25519 key is 32 bytes, this one %d" % (value, len(pub)), value)
    else:
        curve, pos = _ssh_string(blob, pos, field, value)
        point, pos = _ssh_string(blob, pos, field, value)
        if curve != b"nistp256" or len(point) != 65 or point[0] != 4:
            raise InvalidValue(field, "%r: not a NIST P-256 point" % value, value)
    application, pos = _ssh_string(blob, pos, field, value)
    if not application.startswith(b"ssh:") or pos != len(blob):
        raise InvalidValue(field, "%r: malformed security-key data (application %r)" % (value, application), value)


def check_timezone(value, field):
    _string(value, field, "a time zone name")
    zones = zoneinfo.available_timezones()
    if not zones:
        raise InvalidValue(field, "%r cannot be checked: this controller has no time zone database (install the "
                           "Debian package tzdata or the PyPI package tzdata)" % value, value)
    if value not in zones:
        raise InvalidValue(field, "%r is not an IANA time zone name (like Europe/London, UTC)" % value, value)
    return value


def check_locale(value, field):
    _string(value, field, "a locale name")
    if not _LOCALE_RE.fullmatch(value):
        raise InvalidValue(field, "%r is not a locale name (language_COUNTRY.charset, like en_GB.UTF-8)" % value, value)
    return value


# --- Structured keys ------------------------------------------------------------------------------


def check_user(value, field):
    _mapping(value, field, USER_KEYS)
    if "name" not in value:
        raise InvalidValue(field + ".name", "a user needs a name", None)
    name = _string(value["name"], field + ".name", "a user name")
    if not _POSIX_NAME_RE.fullmatch(name):
        raise InvalidValue(field + ".name", "%r is not a POSIX user name ([a-z_][a-z0-9_-]{0,31})" % name, name)
    if name == "root":
        raise InvalidValue(field + ".name", "'root' cannot be customised: give a user of your own (sudo: true "
                           "gives it root rights)", name)
    keys = []
    for i, key in enumerate(_list(value.get("ssh_authorized_keys"), field + ".ssh_authorized_keys", "keys")):
        keys.append(check_ssh_key(key, "%s.ssh_authorized_keys[%d]" % (field, i)))
    password_hash = value.get("password_hash")
    if password_hash is not None:
        check_password_hash(password_hash, field + ".password_hash")
    groups = []
    for i, group in enumerate(_list(value.get("groups"), field + ".groups", "group names")):
        gfield = "%s.groups[%d]" % (field, i)
        _string(group, gfield, "a group name")
        if not _POSIX_NAME_RE.fullmatch(group):
            raise InvalidValue(gfield, "%r is not a POSIX group name ([a-z_][a-z0-9_-]{0,31})" % group, group)
        if group not in groups:
            groups.append(group)
    sudo = _bool(value.get("sudo", False), field + ".sudo")
    return User(name=name, ssh_authorized_keys=tuple(keys), password_hash=password_hash, groups=tuple(groups),
                sudo=sudo)


def check_keyboard(value, field):
    """``gb`` or ``{layout: gb, variant: ..., model: pc105}`` -> (layout, variant, model)."""
    if isinstance(value, str):
        value = {"layout": value}
    _mapping(value, field, ("layout", "variant", "model"))
    if "layout" not in value:
        raise InvalidValue(field + ".layout", "a keyboard needs a layout (an XKB layout name like gb, us, de)", None)
    layout = _string(value["layout"], field + ".layout", "an XKB layout name")
    if not _XKB_LAYOUT_RE.fullmatch(layout):
        raise InvalidValue(field + ".layout", "%r is not an XKB layout name (lowercase letters, like gb)" % layout,
                           layout)
    out = [layout]
    for sub in ("variant", "model"):
        v = value.get(sub)
        if v is not None:
            _string(v, "%s.%s" % (field, sub), "an XKB %s name" % sub)
            if not _XKB_WORD_RE.fullmatch(v):
                raise InvalidValue("%s.%s" % (field, sub), "%r is not an XKB %s name (lowercase letters, digits, "
                                   "'_', '-')" % (v, sub), v)
        out.append(v)
    return tuple(out)


def check_network(value, field):
    """``dhcp``, ``{dhcp: true}`` or a static address (``address`` CIDR, ``gateway``, ``nameservers``)."""
    if value == "dhcp":
        return Network()
    if isinstance(value, str):
        raise InvalidValue(field, "%r is neither 'dhcp' nor a mapping (dhcp, or address, gateway, nameservers, "
                           "interface)" % value, value)
    _mapping(value, field, ("dhcp", "interface", "address", "gateway", "nameservers"))
    interface = _string(value.get("interface", "eth0"), field + ".interface", "an interface name")
    if not _IFNAME_RE.fullmatch(interface):
        raise InvalidValue(field + ".interface", "%r is not a network interface name" % interface, interface)
    dhcp = _bool(value.get("dhcp", "address" not in value), field + ".dhcp")
    if dhcp:
        for key in ("address", "gateway", "nameservers"):
            if key in value:
                raise InvalidValue("%s.%s" % (field, key), "is set with dhcp: true (give either dhcp or a static "
                                   "address)", value[key])
        return Network(dhcp=True, interface=interface)
    if "address" not in value:
        raise InvalidValue(field + ".address", "a static network needs an address (CIDR, like 10.0.0.13/24)", None)
    address = _string(value["address"], field + ".address", "an address in CIDR form")
    try:
        iface = ipaddress.ip_interface(address)
    except ValueError:
        iface = None
    if iface is None or "/" not in address:
        raise InvalidValue(field + ".address", "%r is not an address in CIDR form (like 10.0.0.13/24)" % address,
                           address)
    net = iface.network
    if net.num_addresses > 2 and iface.ip in (net.network_address, getattr(net, "broadcast_address", None)):
        raise InvalidValue(field + ".address", "%r is the network's own or broadcast address" % address, address)
    gateway = None
    if value.get("gateway") is not None:
        gateway = _ip(value["gateway"], field + ".gateway", iface.version)
        if ipaddress.ip_address(gateway) not in net:
            raise InvalidValue(field + ".gateway", "%r is not in the network %s of the address" % (gateway, net),
                               gateway)
    nameservers = tuple(_ip(ns, "%s.nameservers[%d]" % (field, i), None)
                        for i, ns in enumerate(_list(value.get("nameservers"), field + ".nameservers",
                                                     "addresses")))
    return Network(dhcp=False, interface=interface, address=str(iface), gateway=gateway, nameservers=nameservers)


def _ip(value, field, version):
    _string(value, field, "an IP address")
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        raise InvalidValue(field, "%r is not an IP address" % value, value) from None
    if version is not None and ip.version != version:
        raise InvalidValue(field, "%r is IPv%d, the address IPv%d" % (value, ip.version, version), value)
    return str(ip)


def check_wifi(value, field):
    """``off`` (YAML reads it as false), ``{enabled: false, country: GB}``; -> (enabled, country)."""
    if value is False or value == "off":
        return False, None
    if value is True or value == "on":
        return True, None
    if not isinstance(value, dict):
        raise InvalidValue(field, "%r is neither off nor a mapping (enabled, country)" % (value,), value)
    _mapping(value, field, ("enabled", "country"))
    enabled = _bool(value.get("enabled", True), field + ".enabled")
    country = value.get("country")
    if country is not None:
        _string(country, field + ".country", "an ISO 3166 country code")
        if not _COUNTRY_RE.fullmatch(country):
            raise InvalidValue(field + ".country", "%r is not a two-letter ISO 3166 country code in capitals "
                               "(like GB)" % country, country)
    return enabled, country


def check_ssh(value, field):
    if isinstance(value, bool):
        return value, False
    _mapping(value, field, ("enabled", "password_authentication"))
    enabled = _bool(value.get("enabled", True), field + ".enabled")
    return enabled, _bool(value.get("password_authentication", False), field + ".password_authentication")


def check_customize(value, field="customize"):
    """The ``customize`` option -> :class:`Customization`; InvalidValue naming ``field.<key>``."""
    if value is None:
        value = {}
    _mapping(value, field, TOP_KEYS)
    hostname = value.get("hostname")
    if hostname is not None:
        check_hostname(hostname, field + ".hostname")
    fqdn = value.get("fqdn")
    if fqdn is not None:
        fqdn = check_fqdn(fqdn, field + ".fqdn", hostname)
        hostname = hostname or fqdn.split(".")[0]
    users = [check_user(u, "%s.users[%d]" % (field, i))
             for i, u in enumerate(_list(value.get("users"), field + ".users", "users"))]
    names = [u.name for u in users]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise InvalidValue("%s.users[%d].name" % (field, i), "%r is given twice" % name, name)
    ssh_enabled, password_auth = None, False
    if value.get("ssh") is not None:
        ssh_enabled, password_auth = check_ssh(value["ssh"], field + ".ssh")
    if password_auth and not any(u.password_hash for u in users):
        raise InvalidValue(field + ".ssh.password_authentication", "true, but no user has a password_hash", True)
    timezone = check_timezone(value["timezone"], field + ".timezone") if value.get("timezone") is not None else None
    locale = check_locale(value["locale"], field + ".locale") if value.get("locale") is not None else None
    keyboard = check_keyboard(value["keyboard"], field + ".keyboard") if value.get("keyboard") is not None else None
    network = check_network(value["network"], field + ".network") if value.get("network") is not None else None
    wifi_enabled, wifi_country = None, None
    if "wifi" in value and value["wifi"] is not None:
        wifi_enabled, wifi_country = check_wifi(value["wifi"], field + ".wifi")
    style = value.get("style", "auto")
    if style not in STYLES:
        raise InvalidValue(field + ".style", "%r is not one of %s" % (style, ", ".join(STYLES)), style)
    return Customization(hostname=hostname, fqdn=fqdn, users=tuple(users), ssh_enabled=ssh_enabled,
                         ssh_password_authentication=password_auth, timezone=timezone, locale=locale,
                         keyboard=keyboard, network=network, wifi_enabled=wifi_enabled, wifi_country=wifi_country,
                         style=style)
