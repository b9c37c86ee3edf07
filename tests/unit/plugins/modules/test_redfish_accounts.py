# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""redfish_accounts run as Ansible runs it: the file, idempotence with salted hashes, check mode, diff, no secrets."""

from __future__ import annotations

import json
import stat

from modrun import run_module

from ansible_collections.picluster.carrier.plugins.module_utils._redfish.accounts import (
    load_accounts,
    verify_password,
)

# Few rounds keep the tests fast; the module's default is 600,000.
ROUNDS = 1000
SECRETS = ("s3cret-admin", "s3cret-ironic", "n3w-pass")


def run(tmp_path, check=False, diff=True, **args):
    args.setdefault("iterations", ROUNDS)
    return run_module("redfish_accounts", args, tmp_path, check=check, diff=diff)


def accounts(admin="s3cret-admin", ironic_role="Operator"):
    return [{"name": "admin", "password": admin, "role": "Administrator"},
            {"name": "ironic", "password": "s3cret-ironic", "role": ironic_role}]


def assert_no_secret(result, path):
    text = result.stdout + json.dumps(dict(result))
    hashes = [spec["password_hash"] for spec in load_accounts(path).values()] if path.exists() else []
    for secret in list(SECRETS) + hashes:
        assert secret not in text


def test_create_then_idempotent(tmp_path):
    path = tmp_path / "etc" / "redfish-accounts.json"
    first = run(tmp_path, path=str(path), accounts=accounts())
    assert first["changed"] is True and first["created"] is True, first
    assert first["added"] == ["admin", "ironic"]
    assert first["accounts"] == [{"name": "admin", "role": "Administrator"}, {"name": "ironic", "role": "Operator"}]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = load_accounts(str(path))
    assert verify_password("s3cret-admin", stored["admin"]["password_hash"])
    assert stored["admin"]["password_hash"].startswith("pbkdf2_sha256$1000$")
    assert first["diff"]["after"] == "admin: Administrator (new account)\nironic: Operator (new account)\n"
    assert_no_secret(first, path)
    before = path.read_bytes()
    second = run(tmp_path, path=str(path), accounts=accounts())
    assert second["changed"] is False and "diff" not in second, second
    assert path.read_bytes() == before


def test_new_password_and_role_keep_other_hashes(tmp_path):
    path = tmp_path / "accounts.json"
    run(tmp_path, path=str(path), accounts=accounts())
    old = load_accounts(str(path))
    result = run(tmp_path, path=str(path), accounts=accounts(admin="n3w-pass", ironic_role="ReadOnly"))
    assert result["changed"] is True
    assert result["password_changed"] == ["admin"] and result["role_changed"] == ["ironic"]
    new = load_accounts(str(path))
    assert verify_password("n3w-pass", new["admin"]["password_hash"])
    assert new["ironic"] == {"password_hash": old["ironic"]["password_hash"], "role": "ReadOnly"}
    assert result["diff"]["before"] == "admin: Administrator\nironic: Operator\n"
    assert result["diff"]["after"] == "admin: Administrator (new password)\nironic: ReadOnly\n"
    assert_no_secret(result, path)


def test_exclusive_removes_others_and_absent_removes_named(tmp_path):
    path = tmp_path / "accounts.json"
    run(tmp_path, path=str(path), accounts=accounts())
    kept = run(tmp_path, path=str(path), accounts=accounts()[:1])
    assert kept["changed"] is False, "without exclusive the others stay"
    only_admin = run(tmp_path, path=str(path), accounts=accounts()[:1], exclusive=True)
    assert only_admin["changed"] is True and only_admin["removed"] == ["ironic"]
    assert sorted(load_accounts(str(path))) == ["admin"]
    gone = run(tmp_path, path=str(path), accounts=[{"name": "admin"}], state="absent")
    assert gone["changed"] is True and gone["removed"] == ["admin"] and gone["accounts"] == []
    assert load_accounts(str(path)) == {}
    again = run(tmp_path, path=str(path), accounts=[{"name": "admin"}], state="absent")
    assert again["changed"] is False


def test_check_mode_writes_nothing(tmp_path):
    path = tmp_path / "accounts.json"
    result = run(tmp_path, check=True, path=str(path), accounts=accounts())
    assert result["changed"] is True and result["created"] is True
    assert not path.exists()
    run(tmp_path, path=str(path), accounts=accounts())
    before = path.read_bytes()
    changed = run(tmp_path, check=True, path=str(path), accounts=accounts(admin="n3w-pass"), exclusive=True)
    assert changed["changed"] is True and changed["password_changed"] == ["admin"]
    assert path.read_bytes() == before


def test_wrong_mode_is_fixed(tmp_path):
    path = tmp_path / "accounts.json"
    run(tmp_path, path=str(path), accounts=accounts())
    path.chmod(0o644)
    result = run(tmp_path, path=str(path), accounts=accounts())
    assert result["changed"] is True and result["mode_fixed"] is True
    assert result["added"] == result["password_changed"] == []
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_bad_input_names_the_field_and_changes_nothing(tmp_path):
    path = tmp_path / "accounts.json"
    run(tmp_path, path=str(path), accounts=accounts())
    before = path.read_bytes()
    bad_name = run(tmp_path, path=str(path), accounts=[{"name": "../root", "password": "x", "role": "Operator"}])
    assert bad_name["failed"] is True and "accounts[0].name: '../root' is not a valid account name" in bad_name["msg"]
    bad_role = run(tmp_path, path=str(path), accounts=[{"name": "a", "password": "x", "role": "Root"}])
    assert bad_role["failed"] is True and "role" in bad_role["msg"] and "Root" in bad_role["msg"]
    no_password = run(tmp_path, path=str(path), accounts=[{"name": "a", "role": "Operator"}])
    assert no_password["failed"] is True and "accounts[0].password" in no_password["msg"]
    twice = run(tmp_path, path=str(path), accounts=accounts() + accounts()[:1])
    assert twice["failed"] is True and "accounts[2].name: 'admin' is given twice" in twice["msg"]
    assert path.read_bytes() == before
    for result in (bad_name, bad_role, no_password, twice):
        assert_no_secret(result, path)


def test_foreign_file_is_left_alone(tmp_path):
    path = tmp_path / "accounts.json"
    path.write_text('{"users": []}\n')
    result = run(tmp_path, path=str(path), accounts=accounts())
    assert result["failed"] is True and "nothing changed" in result["msg"], result
    assert path.read_text() == '{"users": []}\n'
    path.write_text("not json")
    result = run(tmp_path, path=str(path), accounts=accounts())
    assert result["failed"] is True and "not JSON" in result["msg"]
