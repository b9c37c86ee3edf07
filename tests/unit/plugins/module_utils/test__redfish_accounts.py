# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_redfish.accounts: password hashes, the accounts file, authentication."""

import json

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._redfish import accounts


def test_hash_round_trip_and_format():
    stored = accounts.hash_password("s3cret", salt=b"0123456789abcdef", iterations=1000)
    scheme, iterations, salt, digest = stored.split("$")
    assert (scheme, iterations, salt) == ("pbkdf2_sha256", "1000", b"0123456789abcdef".hex())
    assert len(bytes.fromhex(digest)) == 32
    assert accounts.verify_password("s3cret", stored)
    assert not accounts.verify_password("s3cret ", stored)
    assert not accounts.verify_password("s3cret", "pbkdf2_sha256$x$y$z")


def test_random_salt_differs():
    assert accounts.hash_password("a", iterations=1000) != accounts.hash_password("a", iterations=1000)


@pytest.mark.parametrize("kwargs, field", [({"iterations": 10}, "iterations"), ({"salt": b"x"}, "salt")])
def test_hash_refuses_bad_parameters(kwargs, field):
    with pytest.raises(CarrierError, match=field):
        accounts.hash_password("a", **kwargs)


def test_load_accounts_checks_fields(tmp_path):
    path = tmp_path / "accounts.json"
    good = accounts.hash_password("pw", iterations=1000)
    path.write_text(json.dumps({"version": 1, "accounts": {"admin": {"password_hash": good, "role": "Administrator"}}}))
    loaded = accounts.load_accounts(str(path))
    assert accounts.authenticate(loaded, "admin", "pw") == "Administrator"
    assert accounts.authenticate(loaded, "admin", "nope") is None
    assert accounts.authenticate(loaded, "nobody", "pw") is None
    path.write_text(json.dumps({"version": 1, "accounts": {"admin": {"password_hash": good, "role": "Root"}}}))
    with pytest.raises(CarrierError, match=r"accounts_file.accounts.admin.role: 'Root'"):
        accounts.load_accounts(str(path))
    path.write_text(json.dumps({"version": 1, "accounts": {"admin": {"password_hash": "plain", "role": "ReadOnly"}}}))
    with pytest.raises(CarrierError, match=r"accounts.admin.password_hash") as info:
        accounts.load_accounts(str(path))
    assert "plain" not in str(info.value)
    path.write_text("{")
    with pytest.raises(CarrierError, match="not JSON"):
        accounts.load_accounts(str(path))
