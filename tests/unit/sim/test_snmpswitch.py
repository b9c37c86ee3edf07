# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The emulated PoE switch (snmpswitch.py) at its protocol: SNMP from Debian's net-snmp tools.

A real manager (``snmpget``/``snmpset``/``snmpwalk`` of the ``snmp`` package) against the agent the
simulator runs: the POWER-ETHERNET-MIB objects, v2c and v3 access, the node following its port,
and the faults of the control socket."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest

ADMIN = "1.3.6.1.2.1.105.1.1.1.3.1.%d"
DETECTION = "1.3.6.1.2.1.105.1.1.1.6.1.%d"
TOOLS = pytest.mark.skipif(not shutil.which("snmpget"), reason="Debian package snmp (net-snmp tools) not installed")


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def topology(port, **sim):
    return {"controllers": {"c": {}}, "boards": {"sw1": {
        "profile": "poe_switch8", "bus": "snmp://127.0.0.1:%d" % port,
        "sim": dict({"community": "s3cret", "v3_user": "carrier", "v3_auth": "auth-pass-1", "v3_priv": "priv-pass-1"},
                    **sim),
        "slots": {1: {"host": "poe01"}, 2: {"host": "poe02"}, 3: {"host": "poe03"}}}}}


@pytest.fixture
def switch(run_sim, tmp_path):
    port = free_udp_port()
    sim = run_sim(topology(port))
    sim.port = port
    sim.env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SNMP_PERSISTENT_DIR": str(tmp_path),
               "MIBS": "", "SNMPCONFPATH": str(tmp_path)}
    return sim


def net_snmp(sim, tool, *args, v3=None, community="s3cret"):
    """Run a net-snmp tool; the credentials go in a 0600 config file, never on the command line."""
    conf = "%s/snmp.conf" % sim.env["SNMPCONFPATH"]
    if v3 is None:
        lines = ["defVersion 2c", "defCommunity %s" % community]
    else:
        lines = ["defVersion 3", "defSecurityName carrier", "defAuthType SHA", "defPrivType AES",
                 "defAuthPassphrase %s" % v3[0], "defPrivPassphrase %s" % v3[1], "defSecurityLevel authPriv"]
    with open(conf, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return subprocess.run([tool, "-On", "-t", "1", "-r", "0", "127.0.0.1:%d" % sim.port] + list(args),
                          capture_output=True, text=True, env=sim.env, timeout=20, check=False)


@TOOLS
def test_v2c_get_set_and_the_node_follows_after_detection(switch):
    got = net_snmp(switch, "snmpget", ADMIN % 1, DETECTION % 1, "1.3.6.1.2.1.1.5.0")
    assert got.returncode == 0, got.stderr
    assert ".1.3.6.1.2.1.105.1.1.1.3.1.1 = INTEGER: 2" in got.stdout  # false: ports start disabled
    assert ".1.3.6.1.2.1.105.1.1.1.6.1.1 = INTEGER: 1" in got.stdout  # disabled
    assert 'STRING: "sw1"' in got.stdout
    started = time.monotonic()
    done = net_snmp(switch, "snmpset", ADMIN % 2, "i", "1")
    assert done.returncode == 0, done.stderr
    assert net_snmp(switch, "snmpget", DETECTION % 2).stdout.strip().endswith("INTEGER: 2")  # searching
    switch.wait_state("poe02", ("bootloader", "kernel", "login"))
    assert time.monotonic() - started >= 0.15  # detection took its time before the node got power
    assert net_snmp(switch, "snmpget", DETECTION % 2).stdout.strip().endswith("INTEGER: 3")  # deliveringPower
    assert switch.node("poe01")["state"] == "off"
    off = net_snmp(switch, "snmpset", ADMIN % 2, "i", "2")
    assert off.returncode == 0 and net_snmp(switch, "snmpget", DETECTION % 2).stdout.strip().endswith("INTEGER: 1")
    assert switch.node("poe02")["state"] == "off"


@TOOLS
def test_v3_walk_and_refusals(switch):
    walk = net_snmp(switch, "snmpwalk", "1.3.6.1.2.1.105", v3=("auth-pass-1", "priv-pass-1"))
    assert walk.returncode == 0, walk.stderr
    assert walk.stdout.count(".1.3.6.1.2.1.105.1.1.1.3.1.") == 8  # every port of the 8-port profile
    assert ".1.3.6.1.2.1.105.1.3.1.1.3.1 = INTEGER: 1" in walk.stdout  # pethMainPseOperStatus on
    wrong_key = net_snmp(switch, "snmpget", "1.3.6.1.2.1.1.1.0", v3=("wrong-pass-1", "priv-pass-1"))
    assert wrong_key.returncode != 0 and "Authentication failure" in wrong_key.stderr
    wrong_community = net_snmp(switch, "snmpget", "1.3.6.1.2.1.1.1.0", community="public")
    assert wrong_community.returncode != 0 and "Timeout" in wrong_community.stderr  # dropped silently
    bad_value = net_snmp(switch, "snmpset", ADMIN % 1, "i", "3")
    assert "wrongValue" in bad_value.stdout + bad_value.stderr
    read_only = net_snmp(switch, "snmpset", DETECTION % 1, "i", "3")
    assert "notWritable" in read_only.stdout + read_only.stderr
    no_port = net_snmp(switch, "snmpget", ADMIN % 9)
    assert "No Such Instance" in no_port.stdout
    assert switch.status()["boards"]["sw1"]["device"]["sets"] == 0  # refused SETs changed nothing


@TOOLS
def test_faults_timeout_and_a_stuck_port(switch):
    assert switch.control({"op": "fault", "board": "sw1", "timeout": True})["fault"] == {"board": "sw1",
                                                                                         "timeout": True}
    assert "Timeout" in net_snmp(switch, "snmpget", ADMIN % 1).stderr
    switch.control({"op": "fault", "board": "sw1", "timeout": False})
    stuck = switch.control({"op": "fault", "board": "sw1", "port": 3, "stuck": "off"})["fault"]
    assert stuck == {"board": "sw1", "port": 3, "group": 1, "stuck": "off"}
    assert net_snmp(switch, "snmpset", ADMIN % 3, "i", "1").returncode == 0
    time.sleep(0.4)
    assert net_snmp(switch, "snmpget", DETECTION % 3).stdout.strip().endswith("INTEGER: 2")  # never delivers
    assert switch.node("poe03")["state"] == "off"
    switch.control({"op": "fault", "board": "sw1", "port": 3, "stuck": None})
    switch.wait_state("poe03", ("bootloader", "kernel", "login"))
    switch.control({"op": "fault", "board": "sw1", "port": 1, "stuck": "on"})
    switch.wait_state("poe01", ("bootloader", "kernel", "login"))  # delivers though AdminEnable is false
    with pytest.raises(Exception, match="has no PoE port 9 of group 1"):
        switch.control({"op": "fault", "board": "sw1", "port": 9, "stuck": "on"})
    with pytest.raises(Exception, match="stuck 'sideways'"):
        switch.control({"op": "fault", "board": "sw1", "port": 1, "stuck": "sideways"})
    device = switch.status()["boards"]["sw1"]["device"]
    assert device["ports"]["1"] == {"admin": False, "detection": "deliveringPower", "stuck": "on"}
    assert "s3cret" not in str(device) and "auth-pass-1" not in str(device)


def test_bad_sim_settings_are_refused(run_sim):
    from carrier_sim.server import SimError

    with pytest.raises(SimError, match=r"boards\.sw1\.sim\.v3_auth: an SNMPv3 user needs"):
        run_sim(topology(free_udp_port(), v3_auth="short"))
    with pytest.raises(SimError, match=r"boards\.sw1\.sim: unknown key\(s\) colour"):
        run_sim(topology(free_udp_port(), colour="red"))
