# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/power.yml through smart plugs: a Tasmota power strip and Shelly plugs (two Gen1 plugs on
one board, a URL per slot; a Gen2 plug), all behind their logins, played by the simulator over
loopback HTTP; 10 forks. The passwords come from group_vars beside the inventory (never the command
line) and must not show in any output."""

from __future__ import annotations

import socket
import time

import pytest
import yaml
from carrier_sim.client import control
from test_playbooks import playbook, recap

STRIP = ["tas01", "tas02", "tas03", "tas04"]
SHELLY = ["sha01", "sha02", "shb01"]
ALL = STRIP + SHELLY
PASSWORDS = {"strip": "strip-secret-41", "gen1": "gen1-secret-42", "gen2": "gen2-secret-43"}
WRONG = "wrong-secret-44"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def topology():
    url = {name: "http://127.0.0.1:%d" % free_port() for name in ("strip", "gen1", "gen1a", "gen1b", "gen2")}
    return {
        "plugin": "picluster.carrier.boards",
        "controllers": {"ctrl0": {"vars": {"ansible_connection": "local"}}},
        "profiles": {
            "shelly1_pair": {"kind": "smart_plug", "api": "shelly_gen1", "description": "two Shelly Plug S",
                             "slots": {1: {"url": url["gen1a"]}, 2: {"url": url["gen1b"]}}},
            "shelly_plus_plug": {"kind": "smart_plug", "api": "shelly_gen2", "slots": {1: 1}},
        },
        "boards": {
            "strip": {"profile": "tasmota_strip4", "controller": "ctrl0", "bus": url["strip"],
                      "bmc": {"user": "admin"}, "sim": {"password": PASSWORDS["strip"]},
                      "slots": {n: {"host": "tas%02d" % n} for n in (1, 2, 3, 4)}},
            "gen1": {"profile": "shelly1_pair", "controller": "ctrl0", "bus": url["gen1"], "bmc": {"user": "pi"},
                     "sim": {"user": "pi", "password": PASSWORDS["gen1"]},
                     "slots": {1: {"host": "sha01"}, 2: {"host": "sha02"}}},
            "gen2": {"profile": "shelly_plus_plug", "controller": "ctrl0", "bus": url["gen2"],
                     "sim": {"password": PASSWORDS["gen2"]}, "slots": {1: {"host": "shb01"}}},
        },
    }


@pytest.fixture
def cluster(sim_cluster_factory, tmp_path):
    sim = sim_cluster_factory(topology())
    group_vars = tmp_path / "group_vars"
    group_vars.mkdir()
    for board, password in PASSWORDS.items():
        path = group_vars / ("board_%s.yml" % board)
        path.write_text(yaml.safe_dump({"carrier_bmc_password": password}))
        path.chmod(0o600)
    wrong = tmp_path / "wrong.yml"
    wrong.write_text(yaml.safe_dump({"carrier_bmc_password": WRONG}))
    wrong.chmod(0o600)
    sim.wrong = str(wrong)
    return sim


def run(cluster, *args):
    proc = playbook(cluster, "power.yml", *args, forks=10)
    output = proc.stdout + proc.stderr
    leaked = [secret for secret in list(PASSWORDS.values()) + [WRONG] if secret in output]
    assert not leaked, "a password is in the output"
    return proc, output


def power(cluster):
    return {host: cluster.node(host)["lines"]["power"] for host in ALL}


def test_on_idempotent_check_off_cycle(cluster):
    proc, output = run(cluster, "-e", "power_state=on", "-e", "power_stagger=0")
    assert proc.returncode == 0, output
    nodes = recap(proc.stdout)
    assert all(nodes[h]["changed"] == 1 and nodes[h]["failed"] == 0 for h in ALL), nodes
    assert power(cluster) == {h: True for h in ALL}
    cluster.wait_state("shb01", "login")

    again, output = run(cluster, "-e", "power_state=on")
    assert again.returncode == 0, output
    assert all(recap(again.stdout)[h]["changed"] == 0 for h in ALL)

    check, output = run(cluster, "-e", "power_state=off", "--check", "--diff", "-l", "board_strip,sha02")
    assert check.returncode == 0, output
    assert {h for h, v in recap(check.stdout).items() if v["changed"]} == set(STRIP) | {"sha02"}
    assert power(cluster) == {h: True for h in ALL}, "check mode switched a relay"

    off, output = run(cluster, "-e", "power_state=off", "-l", "board_strip,sha02")
    assert off.returncode == 0, output
    assert power(cluster) == {h: h in ("sha01", "shb01") for h in ALL}

    boots = {h: cluster.node(h)["boots"] for h in ("sha01", "shb01")}
    cycle, output = run(cluster, "-e", "power_state=cycle", "-l", "sha01,shb01")
    assert cycle.returncode == 0, output
    assert all(recap(cycle.stdout)[h]["changed"] == 1 for h in ("sha01", "shb01"))
    for host in ("sha01", "shb01"):
        cluster.wait_state(host, ("booting", "login"))
        assert cluster.node(host)["boots"] == boots[host] + 1, "%s was not power-cycled" % host
        assert any(entry["state"] == "off" for entry in cluster.node(host)["history"])


def test_wrong_password_fails_each_node_naming_board_and_slot(cluster):
    proc, output = run(cluster, "-e", "power_state=on", "-e", "@" + cluster.wrong, "-l", "board_strip,sha02,shb01")
    assert proc.returncode != 0
    nodes = recap(proc.stdout)
    assert all(nodes[h]["failed"] == 1 for h in STRIP + ["sha02", "shb01"]), nodes
    url = {name: board["bus"] for name, board in cluster.data["boards"].items()}
    gen1b = cluster.data["profiles"]["shelly1_pair"]["slots"][2]["url"]
    assert "smart_plug board strip slot 1 (%s): the device refused the login (HTTP 401)" % url["strip"] in output
    assert "smart_plug board gen1 slot 2 (%s): the device refused the login (HTTP 401)" % gen1b in output
    assert "smart_plug board gen2 slot 1 (%s): the device refused the login (HTTP 401)" % url["gen2"] in output
    assert "check bmc_user and bmc_password" in output
    assert not any(power(cluster).values())


def test_a_plug_that_times_out_and_a_relay_that_sticks(cluster):
    control(cluster.state_dir, {"op": "fault", "board": "gen2", "timeout": True})
    control(cluster.state_dir, {"op": "fault", "board": "strip", "slot": 3, "stuck": "off"})
    started = time.monotonic()
    proc, output = run(cluster, "-e", "power_state=on", "-e", "power_stagger=0")
    elapsed = time.monotonic() - started
    assert proc.returncode != 0
    nodes = recap(proc.stdout)
    assert nodes["shb01"]["failed"] == 1 and nodes["tas03"]["failed"] == 1, nodes
    assert all(nodes[h]["failed"] == 0 and nodes[h]["changed"] == 1 for h in ALL if h not in ("shb01", "tas03"))
    url = cluster.data["boards"]["gen2"]["bus"]
    assert "smart_plug board gen2 slot 1 (%s): no answer in 5 s" % url in output
    assert "smart_plug board strip: slot(s) 3 did not follow: slot 3 reads off, wanted on" in output
    assert elapsed < 60, "a plug that does not answer held the run for %.0f s" % elapsed
    assert power(cluster) == {h: h not in ("shb01", "tas03") for h in ALL}
