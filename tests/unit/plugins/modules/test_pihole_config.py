# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pihole_config run as Ansible runs it (a process reading its arguments file): results, diff, check mode."""

from __future__ import annotations

import hashlib
import tomllib

from modrun import run_module

TOML = ('[dns]\n  upstreams = [\n    "8.8.8.8"\n  ] ### CHANGED, default = []\n  port = 53\n\n'
        '[webserver]\n  port = "80o"\n')


def run(tmp_path, check=False, diff=True, **args):
    return run_module("pihole_config", args, tmp_path, check=check, diff=diff)


def test_set_then_idempotent(tmp_path):
    path = tmp_path / "pihole.toml"
    path.write_text(TOML)
    settings = {"dns.upstreams": ["9.9.9.9", "149.112.112.112"], "webserver.port": 8080}
    first = run(tmp_path, path=str(path), settings=settings)
    assert first["changed"] is True, first
    assert first["changes"] == [
        {"key": "dns.upstreams", "before": ["8.8.8.8"], "after": ["9.9.9.9", "149.112.112.112"]},
        {"key": "webserver.port", "before": "80o", "after": "8080"},
    ]
    assert first["current"] == {"dns.upstreams": ["9.9.9.9", "149.112.112.112"], "webserver.port": "8080"}
    assert first["diff"]["before"] == 'dns.upstreams = [\n  "8.8.8.8"\n]\nwebserver.port = "80o"\n'
    assert 'webserver.port = "8080"' in first["diff"]["after"]
    assert tomllib.loads(path.read_text())["webserver"]["port"] == "8080"
    second = run(tmp_path, path=str(path), settings=settings)
    assert second["changed"] is False and "diff" not in second


def test_check_mode_writes_nothing(tmp_path):
    path = tmp_path / "pihole.toml"
    path.write_text(TOML)
    result = run(tmp_path, check=True, path=str(path), settings={"dns.port": 5353})
    assert result["changed"] is True
    assert result["changes"] == [{"key": "dns.port", "before": 53, "after": 5353}]
    assert path.read_text() == TOML


def test_create_with_mode(tmp_path):
    path = tmp_path / "pihole.toml"
    result = run(tmp_path, path=str(path), settings={"dns.port": 53}, mode="0600")
    assert result["changed"] is True and result["created"] is True
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_errors_name_the_key_and_change_nothing(tmp_path):
    path = tmp_path / "pihole.toml"
    path.write_text(TOML)
    result = run(tmp_path, path=str(path), settings={"dns.port": "fifty-three"})
    assert result["failed"] is True
    assert "'dns.port': the file holds a int (53), got a str ('fifty-three')" in result["msg"]
    assert path.read_text() == TOML
    bad_mode = run(tmp_path, path=str(path), settings={}, mode="rw-r")
    assert bad_mode["failed"] is True and "mode: 'rw-r'" in bad_mode["msg"]


def test_get_only(tmp_path):
    path = tmp_path / "pihole.toml"
    path.write_text(TOML)
    result = run(tmp_path, path=str(path), get=["webserver.port", "webserver.api.pwhash"])
    assert result["changed"] is False
    assert result["current"] == {"webserver.port": "80o", "webserver.api.pwhash": None}


def test_secret_settings_are_masked_even_without_no_log(tmp_path):
    path = tmp_path / "pihole.toml"
    path.write_text('[webserver]\n  [webserver.api]\n    pwhash = "$BALLOON-SHA256$v=1$s=1024,t=32$old$old"\n')
    secret = "$BALLOON-SHA256$v=1$s=1024,t=32$c2FsdA==$aGFzaA=="
    settings = {"webserver.api.pwhash": secret, "webserver.api.app_pwhash": "app-secret"}
    result = run(tmp_path, path=str(path), settings=settings, get=["webserver.api.totp_secret"])
    assert result["changed"] is True, result
    text = repr(dict(result))
    assert secret not in text and "app-secret" not in text and "$old$old" not in text
    assert sorted(result["changes"], key=lambda c: c["key"]) == [
        {"key": "webserver.api.app_pwhash", "before": None, "after": "********"},
        {"key": "webserver.api.pwhash", "before": "********", "after": "********"},
    ]
    assert result["current"]["webserver.api.pwhash"] == "********"
    assert result["current"]["webserver.api.totp_secret"] is None
    assert result["fingerprints"] == {"webserver.api.pwhash": hashlib.sha256(secret.encode()).hexdigest(),
                                      "webserver.api.app_pwhash": hashlib.sha256(b"app-secret").hexdigest()}
    assert tomllib.loads(path.read_text())["webserver"]["api"]["pwhash"] == secret
