# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Turing Pi 2 BMC client on a stand-in HTTP opener: URLs and console ports, authentication
(token, the shared 0600 token file, basic authentication on old firmware), answers it refuses."""

from __future__ import annotations

import io
import json
import os
import stat
import urllib.error
import urllib.parse

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._turingpi import (
    BmcClient,
    BmcError,
    BmcUart,
    console_port,
    parse_bmc_url,
    parse_console_port,
)


@pytest.mark.parametrize("value,url", [
    ("https://tpi.local", "https://tpi.local"), ("https://tpi.local:8443/api/", "https://tpi.local:8443"),
    (" http://10.0.0.9:80 ", "http://10.0.0.9:80"),
])
def test_parse_bmc_url(value, url):
    assert parse_bmc_url(value) == url


@pytest.mark.parametrize("value", [1, None, "tpi.local", "ftp://tpi.local", "https://"])
def test_bad_bmc_urls_are_named(value):
    with pytest.raises(CarrierError, match=r"^bus: %s is not a BMC URL" % repr(value).replace("(", r"\(")):
        parse_bmc_url(value)


def test_console_ports():
    assert console_port("https://tpi.local/", 3) == "turingpi2:https://tpi.local#3"
    assert parse_console_port("turingpi2:https://tpi.local#3") == ("https://tpi.local", 3)
    with pytest.raises(CarrierError, match=r"^port: '/dev/ttyUSB0' is not a Turing Pi 2 console"):
        parse_console_port("/dev/ttyUSB0")
    with pytest.raises(CarrierError, match=r"^port: 'turingpi2:https://tpi.local#x': the node after '#' is not"):
        parse_console_port("turingpi2:https://tpi.local#x")
    with pytest.raises(CarrierError, match=r"^slot: 5 is not a Turing Pi 2 node \(1-4\)"):
        parse_console_port("turingpi2:https://tpi.local#5")


class Answer:
    def __init__(self, status, body):
        self.status = status
        self._body = body

    def read(self):
        return self._body

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class FakeBmc:
    """An opener answering like the BMC: ``tokens`` it accepts, ``auth`` False for old firmware (404)."""

    def __init__(self, auth=True, password="turing"):
        self.auth = auth
        self.password = password
        self.tokens = set()
        self.issued = 0
        self.log = []
        self.power = {"node1": 1, "node2": 0, "node3": 0, "node4": 1}

    def _json(self, status, payload):
        return status, json.dumps(payload).encode()

    def _handle(self, request):
        parts = urllib.parse.urlsplit(request.full_url)
        header = request.get_header("Authorization") or ""
        self.log.append((request.get_method(), parts.path, header.split(" ")[0]))
        if parts.path == "/api/bmc/authenticate":
            if not self.auth:
                return 404, b"not found"
            if json.loads(request.data)["password"] != self.password:
                return 401, b"unauthorized"
            self.issued += 1
            token = "t%d" % self.issued
            self.tokens.add(token)
            return self._json(200, {"id": token})
        if self.auth and header[len("Bearer "):] not in self.tokens:
            return 401, b"unauthorized"
        query = dict(urllib.parse.parse_qsl(parts.query))
        if query["type"] == "power" and query["opt"] == "get":
            return self._json(200, {"response": [{"result": [self.power]}]})
        if query["type"] == "power":
            self.power.update({k: int(v) for k, v in query.items() if k.startswith("node")})
            return self._json(200, {"response": [{"result": "ok"}]})
        if query["type"] == "uart" and query["opt"] == "get":
            return self._json(200, {"response": [{"uart": "login: "}]})
        return self._json(200, {"response": ["garbage"]})

    def open(self, request, timeout=None):
        status, body = self._handle(request)
        if status >= 400:
            raise urllib.error.HTTPError(request.full_url, status, "error", {}, io.BytesIO(body))
        return Answer(status, body)


def client(opener, tmp_path=None, **kwargs):
    kwargs.setdefault("user", "root")
    kwargs.setdefault("password", "turing")
    return BmcClient("http://tpi.example", token_dir=str(tmp_path) if tmp_path else None, opener=opener, **kwargs)


def test_power_with_a_token_shared_through_a_0600_file(tmp_path):
    bmc = FakeBmc()
    old = os.umask(0)  # the file is private whatever the umask
    try:
        first = client(bmc, tmp_path)
        assert first.power() == {1: True, 2: False, 3: False, 4: True}
    finally:
        os.umask(old)
    files = os.listdir(tmp_path)
    assert len(files) == 1 and files[0].startswith("bmc-token-")
    assert stat.S_IMODE(os.stat(tmp_path / files[0]).st_mode) == 0o600
    assert (tmp_path / files[0]).read_text() == "t1\n"
    second = client(bmc, tmp_path)
    second.set_power({2: True})
    assert bmc.issued == 1 and bmc.power["node2"] == 1  # the second client reused the first one's token


def test_a_stale_token_is_replaced_once(tmp_path):
    bmc = FakeBmc()
    client(bmc, tmp_path).power()
    bmc.tokens.clear()  # the BMC restarted
    again = client(bmc, tmp_path)
    assert again.power()[1] is True
    assert bmc.issued == 2
    assert (tmp_path / os.listdir(tmp_path)[0]).read_text() == "t2\n"


def test_old_firmware_gets_basic_authentication():
    bmc = FakeBmc(auth=False)
    c = client(bmc)
    assert c.power()[4] is True
    assert bmc.log[-1] == ("GET", "/api/bmc", "Basic")


def test_refusals_name_the_bmc_and_what_to_check():
    with pytest.raises(BmcError, match=r"authentication failed for user 'root' at http://tpi.example \(HTTP 401\)"):
        client(FakeBmc(password="other")).power()
    with pytest.raises(BmcError, match=r"refused get power \(HTTP 401\): give bmc_user and bmc_password"):
        client(FakeBmc(), user=None).power()
    with pytest.raises(BmcError, match=r"reset of node 2 at http://tpi.example did not answer ok: \"garbage\""):
        client(FakeBmc()).reset(2)
    with pytest.raises(CarrierError, match=r"^slot: 0 is not a Turing Pi 2 node"):
        client(FakeBmc()).set_power({0: True})


def test_uart_reads_the_buffer():
    uart = BmcUart(client(FakeBmc()), 1, poll=0)
    uart.open()
    assert uart.in_waiting == len("login: ") and uart.read(6) == b"login:"
