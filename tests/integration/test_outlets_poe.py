# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/power.yml and status.yml through PoE switch ports: one switch on SNMP v2c (a read-write
community) and one on SNMPv3 authPriv (SHA-256, AES-128), both played by the simulator's SNMP agent on
loopback UDP; 10 forks. The community and passphrases come from group_vars beside the inventory
(never the command line) and must not show in any output."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from carrier_sim.client import control
from test_playbooks import playbook, recap

V2 = ["pa01", "pa02", "pa03"]
V3 = ["pb01", "pb02"]
ALL = V2 + V3
SECRETS = {"v2": {"carrier_bmc_password": "rw-community-51"},
           "v3": {"carrier_bmc_password": "auth-phrase-52", "carrier_bmc_priv_password": "priv-phrase-53"}}
WRONG = "wrong-phrase-54"
REPO = Path(__file__).resolve().parents[2]


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def topology():
    return {
        "plugin": "picluster.carrier.boards",
        "controllers": {"ctrl0": {"vars": {"ansible_connection": "local"}}},
        "profiles": {
            "poe4v3": {"kind": "poe_switch", "slots": {n: {"port": n} for n in range(1, 5)},
                       "snmp": {"version": "3", "auth_protocol": "sha256", "priv_protocol": "aes"}},
        },
        "boards": {
            "v2": {"profile": "poe_switch8", "controller": "ctrl0", "bus": "snmp://127.0.0.1:%d" % free_udp_port(),
                   "sim": {"community": SECRETS["v2"]["carrier_bmc_password"]},
                   "slots": {n: {"host": "pa%02d" % n} for n in (1, 2, 3)}},
            "v3": {"profile": "poe4v3", "controller": "ctrl0", "bus": "snmp://127.0.0.1:%d" % free_udp_port(),
                   "bmc": {"user": "carrier"},
                   "sim": {"v3_user": "carrier", "v3_auth": SECRETS["v3"]["carrier_bmc_password"],
                           "v3_priv": SECRETS["v3"]["carrier_bmc_priv_password"]},
                   "slots": {n: {"host": "pb%02d" % n} for n in (1, 2)}},
        },
    }


@pytest.fixture
def cluster(sim_cluster_factory, tmp_path):
    sim = sim_cluster_factory(topology())
    group_vars = tmp_path / "group_vars"
    group_vars.mkdir()
    for board, secrets in SECRETS.items():
        path = group_vars / ("board_%s.yml" % board)
        path.write_text(yaml.safe_dump(secrets))
        path.chmod(0o600)
    wrong = tmp_path / "wrong.yml"
    wrong.write_text(yaml.safe_dump({"carrier_bmc_password": WRONG}))
    wrong.chmod(0o600)
    sim.wrong = str(wrong)
    return sim


def run(cluster, name, *args):
    proc = playbook(cluster, name, *args, forks=10)
    output = proc.stdout + proc.stderr
    secrets = [v for board in SECRETS.values() for v in board.values()] + [WRONG]
    assert not [s for s in secrets if s in output], "a secret is in the output"
    return proc, output


def power(cluster):
    return {host: cluster.node(host)["lines"]["power"] for host in ALL}


def test_on_idempotent_check_off_cycle_status(cluster):
    proc, output = run(cluster, "power.yml", "-e", "power_state=on", "-e", "power_stagger=0")
    assert proc.returncode == 0, output
    nodes = recap(proc.stdout)
    assert all(nodes[h]["changed"] == 1 and nodes[h]["failed"] == 0 for h in ALL), nodes
    assert power(cluster) == {h: True for h in ALL}

    again, output = run(cluster, "power.yml", "-e", "power_state=on")
    assert again.returncode == 0, output
    assert all(recap(again.stdout)[h]["changed"] == 0 for h in ALL)

    check, output = run(cluster, "power.yml", "-e", "power_state=off", "--check", "--diff", "-l", "board_v3,pa02")
    assert check.returncode == 0, output
    assert {h for h, v in recap(check.stdout).items() if v["changed"]} == set(V3) | {"pa02"}
    assert power(cluster) == {h: True for h in ALL}, "check mode switched a port"

    off, output = run(cluster, "power.yml", "-e", "power_state=off", "-l", "board_v3,pa02")
    assert off.returncode == 0, output
    assert power(cluster) == {h: h in ("pa01", "pa03") for h in ALL}

    boots = cluster.node("pa01")["boots"]
    cycle, output = run(cluster, "power.yml", "-e", "power_state=cycle", "-l", "pa01")
    assert cycle.returncode == 0, output
    assert recap(cycle.stdout)["pa01"]["changed"] == 1
    cluster.wait_state("pa01", ("booting", "login"))
    assert cluster.node("pa01")["boots"] == boots + 1, "pa01 was not power-cycled"

    status, output = run(cluster, "status.yml")
    assert status.returncode == 0, output
    table = [line for line in output.splitlines() if line.strip().startswith(("pa0", "pb0"))]
    assert len(table) >= len(ALL), output


def test_wrong_credentials_and_a_port_that_never_delivers(cluster):
    proc, output = run(cluster, "power.yml", "-e", "power_state=on", "-e", "@" + cluster.wrong, "-l", "board_v3")
    assert proc.returncode != 0
    assert all(recap(proc.stdout)[h]["failed"] == 1 for h in V3)
    assert "SNMPv3 authentication of user 'carrier' failed: wrong digest" in output, output
    assert not any(power(cluster).values())

    # a v2c agent drops a request with a wrong community: the slots fail after the 5 s budget
    proc, output = run(cluster, "power.yml", "-e", "power_state=on", "-e", "@" + cluster.wrong, "-l", "board_v2")
    assert proc.returncode != 0
    assert all(recap(proc.stdout)[h]["failed"] == 1 for h in V2)
    assert "in 5 s (wrong community or credentials?)" in output and "poe_switch board v2 slot" in output, output

    control(cluster.state_dir, {"op": "fault", "board": "v2", "port": 2, "stuck": "off"})
    proc, output = run(cluster, "power.yml", "-e", "power_state=on", "-e", "power_stagger=0", "-l", "board_v2")
    assert proc.returncode != 0
    nodes = recap(proc.stdout)
    assert nodes["pa02"]["failed"] == 1 and nodes["pa01"]["failed"] == 0 and nodes["pa03"]["failed"] == 0, nodes
    assert "poe_switch board v2: slot(s) 2 did not follow: slot 2 reads off, wanted on" in output
    assert power(cluster) == {h: h in ("pa01", "pa03") for h in ALL}


def probe(cluster, password):
    """``ansible-inventory --list`` with ``probe: true``: the live power state of every node."""
    source = cluster.dir + "/probe.carrier.yml"
    with open(cluster.inventory) as handle:
        text = handle.read()
    with open(source, "w") as handle:
        handle.write("probe: true\n" + text)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_INVENTORY_UNPARSED_FAILED="true", PICLUSTER_CARRIER_BMC_PASSWORD=password)
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-inventory"), "-i", source, "--list"],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout + proc.stderr, json.loads(proc.stdout)["_meta"]["hostvars"]


def test_inventory_probe_reads_the_ports(cluster):
    community = SECRETS["v2"]["carrier_bmc_password"]
    proc, output = run(cluster, "power.yml", "-e", "power_state=on", "-l", "pa02")
    assert proc.returncode == 0, output
    output, hostvars = probe(cluster, community)
    assert community not in output
    assert {h: hostvars[h]["carrier_power"] for h in V2} == {"pa01": "off", "pa02": "on", "pa03": "off"}
    # the one probe password is the v2c community, not the v3 switch's passphrase (and the probe has no
    # privacy passphrase): the v3 switch does not answer, and each of its nodes says so
    for host in V3:
        assert hostvars[host]["carrier_power"] == "unknown"
        assert "poe_switch board v3 slot 1, 2" in hostvars[host]["carrier_power_error"], hostvars[host]


def test_the_exporter_and_its_role_over_the_switches(cluster, tmp_path):
    """The carrier_exporter role takes each switch's login from the nodes' host vars into a 0600 file, and the
    exporter it configures reads the ports through the same driver: a node on a delivering port is on."""
    from test_exporter import ansible_env, role_play  # the exporter role's own test rig

    proc, output = run(cluster, "power.yml", "-e", "power_state=on", "-l", "pa03,pb01")
    assert proc.returncode == 0, output
    (tmp_path / "units").mkdir()
    cmd = role_play(tmp_path, [], 9842)
    play = json.loads(Path(cmd[-1]).read_text())
    play[0]["hosts"] = "ctrl0"
    Path(cmd[-1]).write_text(json.dumps(play))
    cmd[2] = cluster.inventory
    env = dict(ansible_env(), ANSIBLE_INVENTORY_ENABLED="picluster.carrier.boards")
    role = subprocess.run(cmd + ["--diff"], check=False, capture_output=True, text=True, env=env, timeout=300)
    secrets = [v for board in SECRETS.values() for v in board.values()]
    assert role.returncode == 0, role.stdout + role.stderr
    assert not [s for s in secrets if s in role.stdout + role.stderr], "a secret is in the role's output"
    path = tmp_path / "etc" / "exporter.json"
    assert path.stat().st_mode & 0o777 == 0o600
    config = json.loads(path.read_text())
    boards = {board["name"]: board for board in config["boards"]}
    assert boards["v2"]["bmc"] == {"password": SECRETS["v2"]["carrier_bmc_password"]}
    assert boards["v3"]["bmc"] == {"user": "carrier", "password": SECRETS["v3"]["carrier_bmc_password"],
                                   "priv_password": SECRETS["v3"]["carrier_bmc_priv_password"]}

    prometheus_client = pytest.importorskip("prometheus_client")
    from ansible_collections.picluster.carrier.plugins.module_utils import _exporter

    config["lock_dir"] = cluster.dir + "/locks"
    registry, _collector = _exporter.make_registry(_exporter.load_config(config))
    text = prometheus_client.generate_latest(registry).decode()
    assert not [s for s in secrets if s in text]
    for host, state in (("pa01", "off"), ("pa03", "on"), ("pb01", "on"), ("pb02", "off")):
        line = [ln for ln in text.splitlines() if ln.startswith("carrier_node_powered{") and 'node="%s"' % host in ln]
        assert line and line[0].endswith(" %s" % ("1.0" if state == "on" else "0.0")), (host, line, text[-3000:])
