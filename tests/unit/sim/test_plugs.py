# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The simulator's smart plugs (plugs.py) over their real HTTP APIs, spoken by curl (the login in
curl's config on stdin, never on its command line): Tasmota, Shelly Gen1 and Shelly Gen2 with its
SHA-256 digest login; a node's power follows its relay; the faults; idle CPU."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time

import pytest

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def topology(ports, gen2_sim=None):
    url = {name: "http://127.0.0.1:%d" % port for name, port in ports.items()}
    plug1 = {"name": "one_tasmota", "kind": "smart_plug", "api": "tasmota", "slots": {1: 1}}
    gen1 = {"name": "gen1_pair", "kind": "smart_plug", "api": "shelly_gen1",
            "slots": {1: {"url": url["g1a"]}, 2: {"url": url["g1b"]}}}
    return {"controllers": {"c": {}}, "profiles": {"one_tasmota": plug1, "gen1_pair": gen1}, "boards": {
        "strip": {"profile": "tasmota_strip4", "bus": url["strip"], "sim": {"password": "tpw"},
                  "slots": {1: {"host": "t1"}, 4: {"host": "t4"}}},
        "single": {"profile": "one_tasmota", "bus": url["single"], "slots": {1: {"host": "s1"}}},
        "gen1": {"profile": "gen1_pair", "bus": url["g1"], "sim": {"user": "pi", "password": "g1pw"},
                 "slots": {1: {"host": "a1"}, 2: {"host": "a2"}}},
        "gen2": {"profile": "shelly_pro4", "bus": url["gen2"], "sim": gen2_sim or {"password": "g2pw"},
                 "slots": {2: {"host": "b2"}}},
    }}


@pytest.fixture
def plugs(run_sim):
    ports = {name: free_port() for name in ("strip", "single", "g1", "g1a", "g1b", "gen2")}
    sim = run_sim(topology(ports))
    sim.url = {name: "http://127.0.0.1:%d" % port for name, port in ports.items()}
    return sim


def curl(url, login=None, scheme="digest", timeout=5):
    """``(status, body)`` of ``GET url`` with curl (the login on stdin)."""
    config = 'user = "%s"\n' % login if login else ""
    command = ["curl", "-sS", "-g", "--max-time", str(timeout), "-K", "-", "-o", "-", "-w", "\n%{http_code}", url]
    if login:
        command.insert(1, "--" + scheme)
    proc = subprocess.run(command, input=config, capture_output=True, text=True, timeout=timeout + 5, check=False)
    body, _sep, code = proc.stdout.rpartition("\n")
    return int(code or 0), body


def as_json(body):
    return json.loads(body)


def test_tasmota_power_and_status(plugs):
    strip = plugs.url["strip"]
    assert curl(strip + "/cm?cmnd=Power1") == (401, '{"WARNING":"Need user=<username>&password=<password>"}')
    status, body = curl(strip + "/cm?user=admin&password=tpw&cmnd=Power4%20On")
    assert status == 200 and as_json(body) == {"POWER4": "ON"}
    plugs.wait_state("t4", "login")
    assert not plugs.node("t1")["lines"]["power"]
    assert as_json(curl(strip + "/cm?user=admin&password=tpw&cmnd=Power4")[1]) == {"POWER4": "ON"}
    assert as_json(curl(strip + "/cm?user=admin&password=tpw&cmnd=Power9")[1]) == {"Command": "Unknown"}
    assert as_json(curl(strip + "/cm?user=admin&password=tpw&cmnd=Power4%20Toggle")[1]) == {"POWER4": "OFF"}
    assert plugs.node("t4")["state"] == "off"
    facts = as_json(curl(strip + "/cm?user=admin&password=tpw&cmnd=Status%202")[1])
    assert facts["StatusFWR"]["Version"].endswith("(tasmota)")
    # a one-relay device names its relay POWER, and has no login unless one is set
    single = plugs.url["single"]
    assert as_json(curl(single + "/cm?cmnd=Power%20On")[1]) == {"POWER": "ON"}
    assert as_json(curl(single + "/cm?cmnd=Power1")[1]) == {"POWER": "ON"}
    assert plugs.node("s1")["lines"]["power"]


def test_shelly_gen1_relays_behind_basic_login(plugs):
    one, two = plugs.url["g1a"], plugs.url["g1b"]
    info = as_json(curl(one + "/shelly")[1])  # never behind the login
    assert info["auth"] is True and info["type"] == "SHPLG-S" and info["num_outputs"] == 1
    assert curl(one + "/relay/0")[0] == 401
    assert curl(one + "/relay/0", login="pi:wrong", scheme="basic")[0] == 401
    status, body = curl(two + "/relay/0?turn=on", login="pi:g1pw", scheme="basic")
    assert status == 200 and as_json(body)["ison"] is True
    assert plugs.node("a2")["lines"]["power"] and not plugs.node("a1")["lines"]["power"]
    assert curl(one + "/relay/1", login="pi:g1pw", scheme="basic")[0] == 404
    assert curl(plugs.url["g1"] + "/shelly")[0] == 0, "the board's own URL has no plug on it (each slot has one)"


def test_shelly_gen2_rpc_behind_sha256_digest(plugs):
    gen2 = plugs.url["gen2"]
    info = as_json(curl(gen2 + "/rpc/Shelly.GetDeviceInfo")[1])
    assert info["gen"] == 2 and info["auth_en"] is True and info["app"] == "Pro4PM"
    probe = subprocess.run(["curl", "-sS", "-i", gen2 + "/rpc/Switch.GetStatus?id=1"], capture_output=True, text=True,
                           timeout=10, check=False)
    assert "401 Unauthorized" in probe.stdout and "algorithm=SHA-256" in probe.stdout
    assert 'realm="%s"' % info["auth_domain"] in probe.stdout
    assert curl(gen2 + "/rpc/Switch.Set?id=1&on=true", login="admin:wrong")[0] == 401
    status, body = curl(gen2 + "/rpc/Switch.Set?id=1&on=true", login="admin:g2pw")
    assert status == 200 and as_json(body) == {"was_on": False}
    assert as_json(curl(gen2 + "/rpc/Switch.GetStatus?id=1", login="admin:g2pw")[1])["output"] is True
    plugs.wait_state("b2", "login")
    status, body = curl(gen2 + "/rpc/Switch.GetStatus?id=7", login="admin:g2pw")
    assert status == 500 and as_json(body)["code"] == -105


def test_faults_timeout_and_stuck(plugs):
    single = plugs.url["single"]
    done = plugs.control({"op": "fault", "board": "single", "timeout": True})["fault"]
    assert done == {"board": "single", "timeout": True, "stuck": {}}
    started = time.monotonic()
    assert curl(single + "/cm?cmnd=Power", timeout=1)[0] == 0  # connected, never answered
    assert 0.9 < time.monotonic() - started < 4
    plugs.control({"op": "fault", "board": "single", "timeout": False})
    plugs.control({"op": "fault", "board": "single", "port": 1, "stuck": "off"})
    assert as_json(curl(single + "/cm?cmnd=Power%20On")[1]) == {"POWER": "OFF"}
    assert not plugs.node("s1")["lines"]["power"]
    assert plugs.status()["boards"]["single"]["device"]["stuck"] == {"1": "off"}
    plugs.control({"op": "fault", "board": "single", "slot": 1, "stuck": None})
    assert as_json(curl(single + "/cm?cmnd=Power%20On")[1]) == {"POWER": "ON"}
    for request, message in (({"slot": 5, "stuck": "on"}, "slot 5 is not a slot of board single"),
                             ({"slot": 1, "stuck": 1}, "stuck 1: on, off or null"),
                             ({"timeout": "yes"}, "timeout 'yes': true or false"),
                             ({"hang": True}, "takes the faults timeout")):
        with pytest.raises(Exception, match=message):
            plugs.control(dict(request, op="fault", board="single"))


def test_idle_simulator_costs_no_cpu(plugs):
    time.sleep(0.3)
    before = time.process_time()
    time.sleep(2.0)
    used = time.process_time() - before
    assert used < 0.1, "the idle simulator used %.3f s of CPU in 2 s" % used


def test_gen2_login_name_checked(run_sim):
    ports = {name: free_port() for name in ("strip", "single", "g1", "g1a", "g1b", "gen2")}
    with pytest.raises(Exception, match=r"boards\.gen2\.sim\.user: 'root': a Shelly Gen2 device has the one user"):
        run_sim(topology(ports, gen2_sim={"user": "root", "password": "x"}))
