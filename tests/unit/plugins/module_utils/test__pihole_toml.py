# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_pihole_toml: value comparison, line edits that keep the rest of the file, atomic writes."""

from __future__ import annotations

import os
import stat
import tomllib

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils import _pihole_toml as P
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError

# The layout pihole-FTL v6 writes: a header, nested tables, two-space indents, comments above
# each key, multi-line arrays and "### CHANGED" markers after non-default values.
FTL_FILE = """\
# Pi-hole configuration file (v6.1)
# Encoding: UTF-8
# This file is managed by pihole-FTL

[dns]
  # Array of upstream DNS servers used by Pi-hole
  upstreams = [
    "8.8.8.8",
    "8.8.4.4"
  ] ### CHANGED, default = []

  # Should FTL try to detect CNAME inspection?
  CNAMEdeepInspect = true

  # Array of custom DNS records
  hosts = []

  # Port used by the DNS server
  port = 53

  [dns.cache]
    # Cache size of the DNS server
    size = 10000

[webserver]
  # Ports to be used by the webserver
  port = "80o,443os,[::]:80o,[::]:443os"

  [webserver.api]
    # Password hash
    pwhash = ""

    # Maximum number of sessions
    maxSessions = 16

[misc]
  # Delay startup (seconds)
  delay_startup = 0
  # load average factor
  loadFactor = 1.5
"""


@pytest.fixture
def toml_file(tmp_path):
    path = tmp_path / "pihole.toml"
    path.write_text(FTL_FILE)
    os.chmod(path, 0o640)
    return path


def read(path):
    return tomllib.loads(path.read_text())


def test_unchanged_values_are_not_rewritten(toml_file):
    before = toml_file.stat()
    result = P.apply(str(toml_file), {"dns.upstreams": ["8.8.8.8", "8.8.4.4"], "dns.port": 53,
                                      "webserver.port": "80o,443os,[::]:80o,[::]:443os"})
    assert result["changed"] is False
    assert result["changes"] == []
    assert toml_file.read_text() == FTL_FILE
    assert toml_file.stat().st_mtime_ns == before.st_mtime_ns


def test_value_comparison_ignores_layout(tmp_path):
    # The same settings in another layout (one-line arrays, other order, no comments): no change.
    path = tmp_path / "pihole.toml"
    path.write_text('[webserver]\nport = "8080o"\n[dns]\nport = 53\nupstreams = ["1.1.1.1"]\n')
    result = P.apply(str(path), {"dns.upstreams": ["1.1.1.1"], "webserver.port": "8080o"})
    assert result["changed"] is False


def test_changes_only_the_lines_of_the_key(toml_file):
    result = P.apply(str(toml_file), {"dns.upstreams": ["9.9.9.9"]})
    assert result["changed"] is True
    assert result["changes"] == [{"key": "dns.upstreams", "before": ["8.8.8.8", "8.8.4.4"], "after": ["9.9.9.9"]}]
    text = toml_file.read_text()
    assert '  upstreams = [\n    "9.9.9.9"\n  ]\n' in text
    # Every other line is still there, comments included.
    old = FTL_FILE.splitlines()
    replaced = ('    "8.8.8.8",', '    "8.8.4.4"', "  upstreams = [", "  ] ### CHANGED, default = []")
    kept = [line for line in old if line not in replaced]
    assert [line for line in text.splitlines() if line in kept] == kept
    assert read(toml_file)["dns"]["upstreams"] == ["9.9.9.9"]
    # Mode kept on an existing file.
    assert stat.S_IMODE(toml_file.stat().st_mode) == 0o640


def test_second_run_is_idempotent(toml_file):
    settings = {"dns.hosts": ["10.0.0.11 node01.cluster.lan node01", "10.0.0.12 node02.cluster.lan node02"],
                "dns.cache.size": 20000, "webserver.api.maxSessions": 32, "misc.loadFactor": 2.0}
    assert P.apply(str(toml_file), settings)["changed"] is True
    text = toml_file.read_text()
    assert P.apply(str(toml_file), settings)["changed"] is False
    assert toml_file.read_text() == text
    doc = read(toml_file)
    assert doc["dns"]["hosts"][1] == "10.0.0.12 node02.cluster.lan node02"
    assert doc["dns"]["cache"]["size"] == 20000
    assert doc["webserver"]["api"]["maxSessions"] == 32
    assert doc["misc"]["loadFactor"] == 2.0


def test_check_mode_reports_but_does_not_write(toml_file):
    result = P.apply(str(toml_file), {"dns.port": 5353}, check_mode=True)
    assert result["changed"] is True
    assert result["changes"] == [{"key": "dns.port", "before": 53, "after": 5353}]
    assert result["current"] == {"dns.port": 5353}
    assert toml_file.read_text() == FTL_FILE


def test_new_key_in_existing_table_and_new_table(toml_file):
    result = P.apply(str(toml_file), {"dns.domainNeeded": True, "ntp.ipv4.active": False})
    assert [c["key"] for c in result["changes"]] == ["dns.domainNeeded", "ntp.ipv4.active"]
    doc = read(toml_file)
    assert doc["dns"]["domainNeeded"] is True
    assert doc["ntp"]["ipv4"]["active"] is False
    # The new dns key went into [dns] itself, before [dns.cache].
    text = toml_file.read_text()
    assert text.index("domainNeeded") < text.index("[dns.cache]")


def test_create_missing_file(tmp_path):
    path = tmp_path / "pihole.toml"
    result = P.apply(str(path), {"dns.upstreams": ["9.9.9.9"], "webserver.port": "8080o"}, mode=0o600)
    assert result["created"] is True and result["changed"] is True
    assert read(path) == {"dns": {"upstreams": ["9.9.9.9"]}, "webserver": {"port": "8080o"}}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(CarrierError, match=r"path: cannot write in .*/nodir: No such file or directory"):
        P.apply(str(tmp_path / "nodir" / "pihole.toml"), {"dns.port": 53})


def test_missing_file_without_create(tmp_path):
    with pytest.raises(CarrierError, match="does not exist and create is false"):
        P.apply(str(tmp_path / "pihole.toml"), {"dns.port": 53}, create=False)
    assert not (tmp_path / "pihole.toml").exists()


@pytest.mark.parametrize("key,value,written", [
    ("webserver.port", 8080, "8080"),       # number for a string setting: written as a string
    ("misc.loadFactor", 2, 2.0),            # int for a float setting
    ("dns.upstreams", ("1.1.1.1",), ["1.1.1.1"]),
])
def test_type_normalisation(toml_file, key, value, written):
    P.apply(str(toml_file), {key: value})
    table, name = key.rsplit(".", 1)
    node = read(toml_file)
    for part in table.split("."):
        node = node[part]
    assert node[name] == written and type(node[name]) is type(written)


@pytest.mark.parametrize("settings,message", [
    ({"dns.port": "53"}, r"'dns.port': the file holds a int \(53\), got a str \('53'\)"),
    ({"dns.CNAMEdeepInspect": 1}, r"'dns.CNAMEdeepInspect': the file holds a bool"),
    ({"dns.upstreams": "9.9.9.9"}, r"'dns.upstreams': the file holds a list"),
    ({"dns.cache": 5}, r"'dns.cache' is a table in the file"),
    ({"dns.hosts": [["nested"]]}, r"nested lists"),
    ({"dns.hosts": {"a": 1}}, r"is not a string, number, boolean or list"),
    ({"dns.port": None}, r"is not a string, number, boolean or list"),
    ({"port": 53}, r"must name a table and a key"),
    ({"dns..port": 53}, r"invalid part ''"),
    ({"dns.po rt": 53}, r"invalid part 'po rt'"),
    ({"misc.loadFactor": float("nan")}, r"cannot be written"),
])
def test_bad_settings_change_nothing(toml_file, settings, message):
    with pytest.raises(CarrierError, match=message):
        P.apply(str(toml_file), settings)
    assert toml_file.read_text() == FTL_FILE


def test_bool_and_int_are_different_values(tmp_path):
    path = tmp_path / "pihole.toml"
    path.write_text("[a]\n  l = [1, 2]\n")
    result = P.apply(str(path), {"a.l": [True, 2]})
    assert result["changed"] is True
    assert read(path)["a"]["l"] == [True, 2]


def test_invalid_toml_is_refused(tmp_path):
    path = tmp_path / "pihole.toml"
    path.write_text("[dns\nport = 53\n")
    with pytest.raises(CarrierError, match="not valid TOML"):
        P.apply(str(path), {"dns.port": 54})
    assert path.read_text() == "[dns\nport = 53\n"


def test_array_of_tables_refused(tmp_path):
    path = tmp_path / "pihole.toml"
    path.write_text("[[x]]\na = 1\n[dns]\nport = 53\n")
    with pytest.raises(CarrierError, match="arrays of tables"):
        P.apply(str(path), {"dns.port": 54})


@pytest.mark.parametrize("value", [
    'quote " and backslash \\ and tab \t',
    "newline\nand unicode é ✓",
    "control \x01 char",
    "",
])
def test_strings_round_trip(tmp_path, value):
    path = tmp_path / "pihole.toml"
    P.apply(str(path), {"webserver.api.pwhash": value, "dns.hosts": [value, "x"]})
    doc = read(path)
    assert doc["webserver"]["api"]["pwhash"] == value
    assert doc["dns"]["hosts"] == [value, "x"]
    assert P.apply(str(path), {"webserver.api.pwhash": value, "dns.hosts": [value, "x"]})["changed"] is False


def test_get_returns_values_without_setting(toml_file):
    result = P.apply(str(toml_file), {}, get=["webserver.api.maxSessions", "dns.nothere", "dns.upstreams"])
    assert result["changed"] is False
    assert result["current"] == {
        "webserver.api.maxSessions": 16, "dns.nothere": None, "dns.upstreams": ["8.8.8.8", "8.8.4.4"]}


def test_multiline_value_followed_by_key(tmp_path):
    path = tmp_path / "pihole.toml"
    path.write_text('[dns]\n  hosts = [\n    "1.2.3.4 a",\n    "1.2.3.5 b"\n  ]\n  port = 53\n')
    P.apply(str(path), {"dns.hosts": []})
    assert path.read_text() == "[dns]\n  hosts = []\n  port = 53\n"


def test_failed_write_leaves_no_temporary_file(toml_file, monkeypatch):
    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(P.os, "replace", boom)
    with pytest.raises(CarrierError, match=r"path: cannot write in .*: No space left on device"):
        P.apply(str(toml_file), {"dns.port": 54})
    assert sorted(p.name for p in toml_file.parent.iterdir()) == ["pihole.toml"]
    assert toml_file.read_text() == FTL_FILE
