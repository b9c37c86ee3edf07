# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_firstboot_check: every value of ``customize`` accepted or refused with the field and value named
(a password hash never shown)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from firstboot_fixtures import BCRYPT, SHA512, YESCRYPT, crypt_hash, sk_ecdsa_key, sk_ed25519_key, ssh_key

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError, InvalidValue
from ansible_collections.picluster.carrier.plugins.module_utils._firstboot_check import (
    TOP_KEYS, Customization, Network, check_customize)


def refused(value, field, *words):
    with pytest.raises(InvalidValue) as e:
        check_customize(value)
    assert e.value.field == field, str(e.value)
    for w in words:
        assert w in str(e.value), str(e.value)
    return e.value


def test_empty_is_nothing():
    assert check_customize({}) == Customization()
    assert check_customize(None) == Customization()


def test_full_customisation():
    key = ssh_key()
    c = check_customize({
        "hostname": "node03", "fqdn": "node03.cluster.lan",
        "users": [{"name": "admin", "ssh_authorized_keys": [key], "password_hash": SHA512,
                   "groups": ["adm", "sudo", "adm"], "sudo": True}],
        "ssh": {"enabled": True, "password_authentication": True},
        "timezone": "Europe/London", "locale": "en_GB.UTF-8",
        "keyboard": {"layout": "gb", "variant": "extd", "model": "pc105"},
        "network": {"address": "10.0.0.13/24", "gateway": "10.0.0.1", "nameservers": ["10.0.0.1", "1.1.1.1"]},
        "wifi": {"enabled": False, "country": "GB"}, "style": "firstrun"})
    assert c.hostname == "node03" and c.fqdn == "node03.cluster.lan"
    assert c.users[0].groups == ("adm", "sudo") and c.users[0].sudo is True
    assert c.users[0].ssh_authorized_keys == (key,)
    assert c.ssh_enabled is True and c.ssh_password_authentication is True
    assert c.keyboard == ("gb", "extd", "pc105")
    assert c.network == Network(dhcp=False, interface="eth0", address="10.0.0.13/24", gateway="10.0.0.1",
                                nameservers=("10.0.0.1", "1.1.1.1"))
    assert (c.wifi_enabled, c.wifi_country, c.style) == (False, "GB", "firstrun")
    assert SHA512 not in repr(c)
    assert c.has_secrets


def test_empty_lists():
    c = check_customize({"users": None})
    assert c.users == ()
    c = check_customize({"users": [{"name": "a", "ssh_authorized_keys": None, "groups": None}]})
    assert c.users[0].ssh_authorized_keys == () and c.users[0].groups == ()


def test_shorthands():
    c = check_customize({"keyboard": "us", "network": "dhcp", "wifi": False, "ssh": True})
    assert c.keyboard == ("us", None, None)
    assert c.network == Network(dhcp=True)
    assert (c.wifi_enabled, c.wifi_country) == (False, None)
    assert (c.ssh_enabled, c.ssh_password_authentication) == (True, False)
    assert check_customize({"wifi": "off"}).wifi_enabled is False
    assert check_customize({"network": {"dhcp": True, "interface": "end0"}}).network == Network(interface="end0")
    assert check_customize({"fqdn": "node04.lan"}).hostname == "node04"
    assert check_customize({"network": {"address": "fd00::13/64", "gateway": "fd00::1"}}).network.gateway == "fd00::1"


@pytest.mark.parametrize("name", ["node03", "a", "n" * 63, "0rack1-07", "k3s-server"])
def test_hostnames_accepted(name):
    assert check_customize({"hostname": name}).hostname == name


@pytest.mark.parametrize("name, words", [
    ("", ["RFC 1123"]), ("-node", ["RFC 1123"]), ("node-", ["RFC 1123"]), ("n" * 64, ["RFC 1123"]),
    ("node_3", ["RFC 1123"]), ("Node03", ["lowercase"]), ("node03.lan", ["customize.fqdn"]),
    ("node 3", ["RFC 1123"]), ("node\n3", ["RFC 1123"]), ("nöde", ["RFC 1123"]), ("$(reboot)", ["RFC 1123"]),
    ("node03\n", ["RFC 1123"]),
])
def test_hostnames_refused(name, words):
    e = refused({"hostname": name}, "customize.hostname", *words)
    assert repr(name) in str(e)


@pytest.mark.parametrize("value", [3, True, ["node"], {"a": 1}])
def test_non_strings_refused(value):
    refused({"hostname": value}, "customize.hostname", "not a host name", type(value).__name__)


@pytest.mark.parametrize("value, hostname, words", [
    ("node03", None, ["host.domain"]), ("node03..lan", None, ["label ''"]), ("node03.Lan", None, ["label 'Lan'"]),
    ("node04.lan", "node03", ["does not start with the host name"]), ("a." * 127 + "b", None, ["253"]),
])
def test_fqdn_refused(value, hostname, words):
    v = {"fqdn": value}
    if hostname:
        v["hostname"] = hostname
    refused(v, "customize.fqdn", *words)


def test_unknown_keys_refused():
    refused({"hostnme": "x"}, "customize.hostnme", "unknown key")
    refused({"users": [{"name": "a", "passwd": "x"}]}, "customize.users[0].passwd", "unknown key")
    refused({"network": {"adress": "10.0.0.1/24"}}, "customize.network.adress", "unknown key")
    refused("node03", "customize", "not a mapping")


@pytest.mark.parametrize("name, words", [
    ("root", ["'root' cannot"]), ("Admin", ["POSIX"]), ("1admin", ["POSIX"]), ("a" * 33, ["POSIX"]),
    ("ad min", ["POSIX"]), ("admin;reboot", ["POSIX"]), ("", ["POSIX"]),
])
def test_user_names_refused(name, words):
    refused({"users": [{"name": name}]}, "customize.users[0].name", *words)


def test_user_structure_refused():
    refused({"users": {"name": "a"}}, "customize.users", "not a list of users")
    refused({"users": ["admin"]}, "customize.users[0]", "not a mapping")
    refused({"users": [{"groups": ["adm"]}]}, "customize.users[0].name", "needs a name")
    refused({"users": [{"name": 7}]}, "customize.users[0].name", "int")
    refused({"users": [{"name": "a"}, {"name": "a"}]}, "customize.users[1].name", "twice")
    refused({"users": [{"name": "a", "sudo": "yes"}]}, "customize.users[0].sudo", "not a boolean")
    refused({"users": [{"name": "a", "groups": "adm"}]}, "customize.users[0].groups", "not a list")
    refused({"users": [{"name": "a", "groups": ["adm", "Wheel"]}]}, "customize.users[0].groups[1]", "POSIX")
    refused({"users": [{"name": "a", "groups": [5]}]}, "customize.users[0].groups[0]", "int")
    refused({"users": [{"name": "a", "ssh_authorized_keys": ssh_key()}]},
            "customize.users[0].ssh_authorized_keys", "not a list")


@pytest.mark.parametrize("make", [
    lambda: ssh_key("ed25519"), lambda: ssh_key("ecdsa", 256), lambda: ssh_key("ecdsa", 521),
    lambda: ssh_key("rsa", 2048), lambda: ssh_key("rsa", 3072, comment=None), sk_ed25519_key,
    sk_ecdsa_key,
])
def test_ssh_keys_accepted(make):
    key = make()
    c = check_customize({"users": [{"name": "a", "ssh_authorized_keys": ["  " + key + "\n"]}]})
    assert c.users[0].ssh_authorized_keys == (key,)


def _swap_type(key, new_type):
    return new_type + " " + key.split(" ", 1)[1]


@pytest.mark.parametrize("make, words", [
    (lambda: ssh_key("rsa", 1024), ["1024 bits", "2048"]),
    (lambda: "ssh-dss AAAAB3NzaC1kc3MAAACBAP1 x", ["'ssh-dss' is not accepted"]),
    (lambda: 'from="10.0.0.0/8" ' + ssh_key(), ["options are not accepted"]),
    (lambda: "ssh-ed25519", ["not an OpenSSH public key line"]),
    (lambda: "ssh-ed25519 not*base64", ["not base64"]),
    (lambda: _swap_type(ssh_key("ed25519"), "ssh-rsa"), ["'ssh-ed25519' key, not 'ssh-rsa'"]),
    (lambda: ssh_key()[:60], ["not a valid ssh-ed25519 key"]),
    (lambda: ssh_key() + "\nssh-ed25519 AAAA", ["line break"]),
    (lambda: ssh_key(comment="a\x07b"), ["control characters"]),
    (lambda: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA== x", ["not a valid ssh-ed25519 key"]),
    (lambda: sk_ed25519_key(pub=b"\x01" * 31), ["32 bytes"]),
    (lambda: sk_ed25519_key(application=b"https://x"), ["malformed security-key"]),
    (lambda: 12, ["int", "not an SSH public key"]),
])
def test_ssh_keys_refused(make, words):
    refused({"users": [{"name": "a", "ssh_authorized_keys": [ssh_key(), make()]}]},
            "customize.users[0].ssh_authorized_keys[1]", *words)


@pytest.mark.parametrize("value", [SHA512, YESCRYPT, BCRYPT, "$6$salt$" + "c" * 86, "$5$salt$" + "d" * 43])
def test_password_hashes_accepted(value):
    assert check_customize({"users": [{"name": "a", "password_hash": value}]}).users[0].password_hash == value


def test_real_tool_hashes_accepted():
    for method in ("-6", "-5"):
        h = crypt_hash(method)
        assert check_customize({"users": [{"name": "a", "password_hash": h}]}).users[0].password_hash == h


@pytest.mark.parametrize("value", [
    "correct horse battery staple", "$1$salt$abcdefghijklmnopqrstuv", "$6$salt$short", "$6$salt$" + "c" * 85 + "!",
    "!", "*", "", "$6$salt$" + "c" * 86 + "\n", 12345678,
])
def test_password_hashes_refused_and_hidden(value):
    e = refused({"users": [{"name": "a", "password_hash": value}]}, "customize.users[0].password_hash", "<hidden>")
    if isinstance(value, str):
        assert "hash" in str(e)
        if value:
            assert value not in str(e) and e.value == "<hidden>"
    if value == "correct horse battery staple":
        assert "mkpasswd" in str(e)


def test_ssh_refused():
    refused({"ssh": "yes"}, "customize.ssh", "not a mapping")
    refused({"ssh": {"enabled": 1}}, "customize.ssh.enabled", "not a boolean")
    refused({"ssh": {"password_authentication": "no"}}, "customize.ssh.password_authentication", "not a boolean")
    refused({"ssh": {"password_authentication": True}}, "customize.ssh.password_authentication", "no user has")


@pytest.mark.parametrize("value, words", [
    ("Europe/Londn", ["IANA"]), ("GMT+1", ["IANA"]), ("../etc/passwd", ["IANA"]), ("", ["IANA"]), (1, ["int"]),
])
def test_timezones_refused(value, words):
    refused({"timezone": value}, "customize.timezone", *words)


def test_timezone_without_database(monkeypatch):
    import zoneinfo
    monkeypatch.setattr(zoneinfo, "available_timezones", set)
    refused({"timezone": "UTC"}, "customize.timezone", "tzdata")


@pytest.mark.parametrize("value", ["en_GB.UTF-8", "de_DE.utf8", "C.UTF-8", "C", "sr_RS@latin", "ast_ES.UTF-8"])
def test_locales_accepted(value):
    assert check_customize({"locale": value}).locale == value


@pytest.mark.parametrize("value", ["english", "en-GB", "en_gb.UTF-8", "en_GB.UTF-8 UTF-8", "en_GB.UTF-8\n", 5])
def test_locales_refused(value):
    refused({"locale": value}, "customize.locale")


@pytest.mark.parametrize("value, field, words", [
    ("g", "customize.keyboard.layout", ["XKB layout"]), ("GB", "customize.keyboard.layout", ["XKB layout"]),
    ({"variant": "intl"}, "customize.keyboard.layout", ["needs a layout"]),
    ({"layout": "us", "variant": "in tl"}, "customize.keyboard.variant", ["XKB variant"]),
    ({"layout": "us", "model": "PC105"}, "customize.keyboard.model", ["XKB model"]),
    ({"layout": "us", "options": "x"}, "customize.keyboard.options", ["unknown key"]),
    (7, "customize.keyboard", ["not a mapping"]),
])
def test_keyboards_refused(value, field, words):
    refused({"keyboard": value}, field, *words)


@pytest.mark.parametrize("value, field, words", [
    ("static", "customize.network", ["neither 'dhcp'"]),
    ({"address": "10.0.0.13"}, "customize.network.address", ["CIDR"]),
    ({"address": "10.0.0.300/24"}, "customize.network.address", ["CIDR"]),
    ({"address": "10.0.0.0/24"}, "customize.network.address", ["network's own or broadcast"]),
    ({"address": "10.0.0.255/24"}, "customize.network.address", ["broadcast"]),
    ({"address": "10.0.0.13/24", "gateway": "10.0.1.1"}, "customize.network.gateway", ["not in the network"]),
    ({"address": "10.0.0.13/24", "gateway": "fd00::1"}, "customize.network.gateway", ["IPv6, the address IPv4"]),
    ({"address": "10.0.0.13/24", "gateway": "gw"}, "customize.network.gateway", ["not an IP address"]),
    ({"address": "10.0.0.13/24", "nameservers": "1.1.1.1"}, "customize.network.nameservers", ["not a list"]),
    ({"address": "10.0.0.13/24", "nameservers": ["1.1.1"]}, "customize.network.nameservers[0]", ["not an IP"]),
    ({"dhcp": False}, "customize.network.address", ["needs an address"]),
    ({"dhcp": True, "address": "10.0.0.13/24"}, "customize.network.address", ["dhcp: true"]),
    ({"dhcp": "yes"}, "customize.network.dhcp", ["not a boolean"]),
    ({"interface": "eth0; reboot"}, "customize.network.interface", ["not a network interface name"]),
    ({"interface": "a" * 16}, "customize.network.interface", ["not a network interface name"]),
])
def test_networks_refused(value, field, words):
    refused({"network": value}, field, *words)


@pytest.mark.parametrize("value, field, words", [
    ("maybe", "customize.wifi", ["neither off"]), ({"country": "gb"}, "customize.wifi.country", ["ISO 3166"]),
    ({"country": "GBR"}, "customize.wifi.country", ["ISO 3166"]), ({"enabled": "no"}, "customize.wifi.enabled", []),
    ({"ssid": "x"}, "customize.wifi.ssid", ["unknown key"]),
])
def test_wifi_refused(value, field, words):
    refused({"wifi": value}, field, *words)


def test_style_refused():
    refused({"style": "systemd"}, "customize.style", "cloud-init, firstrun, auto")


def test_field_prefix_and_type():
    with pytest.raises(CarrierError) as e:
        check_customize({"hostname": "Bad"}, field="nodes[2].customize")
    assert str(e.value).startswith("nodes[2].customize.hostname: ")


# --- Whatever arrives, the answer is a Customization or an InvalidValue --------------------------

_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=40),
                  st.sampled_from(["node03", "admin", "UTC", "en_GB.UTF-8", "gb", "dhcp", "off", "10.0.0.13/24",
                                   "10.0.0.1", SHA512, "cloud-init", ssh_key()]))
_values = st.recursive(_leaf, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                      st.dictionaries(st.sampled_from(
                                                          ["name", "layout", "address", "enabled", "country",
                                                           "dhcp", "gateway", "sudo", "groups", "x"]),
                                                          inner, max_size=3)), max_leaves=8)
_top = st.dictionaries(st.sampled_from(list(TOP_KEYS)), _values, max_size=5)


@given(_top)
@settings(deadline=None, max_examples=300)
def test_any_input_is_checked_or_refused(value):
    try:
        c = check_customize(value)
    except InvalidValue as e:
        assert e.field.startswith("customize"), e.field
        return
    assert isinstance(c, Customization)


@given(st.one_of(st.text(min_size=12, max_size=120), st.just(SHA512 + "x"), st.just("$6$" + SHA512)))
@settings(deadline=None, max_examples=300)
def test_any_password_hash_never_echoed(text):
    try:
        check_customize({"users": [{"name": "admin", "password_hash": text}]})
    except InvalidValue as e:
        assert e.value == "<hidden>"
        message = str(e).replace("<hidden>", "")
        assert text not in message


@given(st.text(max_size=70))
@settings(deadline=None, max_examples=300)
def test_any_text_as_hostname(text):
    try:
        name = check_customize({"hostname": text}).hostname
    except InvalidValue:
        return
    assert re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", name) and len(name) <= 63
