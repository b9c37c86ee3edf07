# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The gateway role with the real nftables in network namespaces made here: "worker" (the cluster subnet)
reaches "internet" (an HTTP server) through "controller" only while the role has the gateway enabled;
the controller's other nftables table stays byte for byte the same; bad input fails naming the variable
before anything is applied; the expiry script turns it off after the deadline. playbooks/internet.yml
runs inside the controller namespace (`ip netns exec controller ansible-playbook -c local`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.needs_root]

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
CLUSTER, UPLINK = "10.77.0", "192.0.2"
HOST_TABLE = """table inet hostfw {
\tchain input {
\t\ttype filter hook input priority filter; policy accept;
\t\ttcp dport 22 accept
\t\tiifname "lo" accept
\t}
}
"""


def sh(*args, check=True, **kw):
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, check=False, **kw)
    if check and proc.returncode != 0:
        raise AssertionError("%s: rc %d\n%s%s" % (" ".join(map(str, args)), proc.returncode, proc.stdout, proc.stderr))
    return proc


@pytest.fixture
def rig(tmp_path):
    tag = uuid.uuid4().hex[:6]
    ns = {name: "k1%s-%s" % (name[:4], tag) for name in ("worker", "controller", "internet")}
    server = None
    try:
        for name in ns.values():
            sh("ip", "netns", "add", name)
        # controller: cl0 to the worker, up0 to the internet
        for dev, peer in (("cl0", "worker"), ("up0", "internet")):
            sh("ip", "link", "add", dev, "netns", ns["controller"], "type", "veth", "peer", "eth0", "netns", ns[peer])
        for name, dev, addr in ((ns["controller"], "cl0", CLUSTER + ".1/24"), (ns["worker"], "eth0", CLUSTER + ".2/24"),
                                (ns["controller"], "up0", UPLINK + ".1/24"),
                                (ns["internet"], "eth0", UPLINK + ".2/24")):
            sh("ip", "-n", name, "addr", "add", addr, "dev", dev)
            sh("ip", "-n", name, "link", "set", dev, "up")
            sh("ip", "-n", name, "link", "set", "lo", "up")
        # the internet has no route back to the cluster subnet: only masquerading gets replies home
        sh("ip", "-n", ns["worker"], "route", "add", "default", "via", CLUSTER + ".1")
        # a new namespace copies the host's IPv4 forwarding (devconf_inherit_init_net 0): start from a
        # controller with it off, as a fresh install has
        sh("ip", "netns", "exec", ns["controller"], "sysctl", "-q", "-w", "net.ipv4.ip_forward=0")
        sh("ip", "netns", "exec", ns["controller"], "nft", "-f", "-", input=HOST_TABLE)
        (tmp_path / "www").mkdir()
        (tmp_path / "www" / "index.html").write_text("internet\n")
        server = subprocess.Popen(["ip", "netns", "exec", ns["internet"], sys.executable, "-m", "http.server", "--bind",
                                   UPLINK + ".2", "8080", "--directory", str(tmp_path / "www")],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while sh("ip", "netns", "exec", ns["controller"], "curl", "-s", "-m", "1", "http://%s.2:8080/" % UPLINK,
                 check=False).returncode != 0:
            assert time.monotonic() < deadline, "the HTTP server in the internet namespace did not start"
            time.sleep(0.2)
        inventory = tmp_path / "hosts.yml"
        inventory.write_text(
            "carrier_controllers:\n  hosts:\n    ctl:\n      ansible_connection: local\n"
            "      ansible_python_interpreter: %s\n      gateway_cluster_subnet: %s.0/24\n"
            "      gateway_cluster_interface: cl0\n      gateway_uplink_interface: up0\n"
            "      gateway_config_dir: %s/etc\n      gateway_state_dir: %s/state\n"
            "      gateway_off_script: %s/bin/picluster-gateway-off\n      gateway_manage_timer: false\n"
            % (sys.executable, CLUSTER, tmp_path, tmp_path, tmp_path))
        yield {"ns": ns, "tmp": tmp_path, "inventory": inventory}
    finally:
        if server is not None:
            server.kill()
            server.wait()
        for name in ns.values():
            sh("ip", "netns", "del", name, check=False)


def play(rig, *args):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_LOCAL_TEMP=str(rig["tmp"] / "ansible-tmp"),
               ANSIBLE_HOME=str(rig["tmp"] / "ansible-home"))
    proc = sh("ip", "netns", "exec", rig["ns"]["controller"], VENV_BIN / "ansible-playbook", "-i", rig["inventory"],
              "-c", "local", "-e", "internet_become=false", REPO / "playbooks" / "internet.yml", *args,
              check=False, env=env, timeout=120)
    recap = re.search(r"ctl\s*:\s*ok=(\d+)\s+changed=(\d+)", proc.stdout)
    return proc, int(recap.group(2)) if recap else None


def reaches(rig):
    return sh("ip", "netns", "exec", rig["ns"]["worker"], "curl", "-s", "-m", "2", "http://%s.2:8080/" % UPLINK,
              check=False).stdout == "internet\n"


def ctl(rig, *args, check=True):
    return sh("ip", "netns", "exec", rig["ns"]["controller"], *args, check=check)


def forwarding(rig):
    return ctl(rig, "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip()


def host_table(rig):
    return ctl(rig, "nft", "list", "table", "inet", "hostfw").stdout


def gateway_table(rig):
    return ctl(rig, "nft", "list", "table", "inet", "picluster_gateway", check=False).returncode == 0


def ok(proc):
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_gateway_on_off_expiry_and_bad_input(rig):
    """One rig for every case: each ansible-playbook run costs seconds."""
    before = host_table(rig)
    assert forwarding(rig) == "0" and not reaches(rig)
    script = rig["tmp"] / "bin" / "picluster-gateway-off"

    proc, changed = play(rig, "-e", "internet=on", "--check")
    ok(proc)
    assert changed > 0 and not gateway_table(rig) and forwarding(rig) == "0" and not reaches(rig)

    proc, changed = play(rig, "-e", "internet=on")
    ok(proc)
    assert changed > 0 and gateway_table(rig) and forwarding(rig) == "1"
    assert reaches(rig)
    proc, changed = play(rig, "-e", "internet=on")
    ok(proc)
    assert changed == 0, proc.stdout
    # enabled without expiry: a stale timer's script leaves it on
    ctl(rig, script)
    assert reaches(rig)

    proc, changed = play(rig, "-e", "internet=off")
    ok(proc)
    assert changed > 0 and not gateway_table(rig)
    assert forwarding(rig) == "0" and not reaches(rig)
    assert host_table(rig) == before

    proc, _changed = play(rig, "-e", "internet=on", "-e", "internet_expiry=4s")
    ok(proc)
    started = time.time()
    deadline = int((rig["tmp"] / "state" / "deadline").read_text())
    assert started - 30 < deadline - 4 <= started
    # before the deadline the timer's script leaves it on
    ctl(rig, script)
    assert reaches(rig) and forwarding(rig) == "1"
    time.sleep(max(0.0, deadline + 1 - time.time()))
    ctl(rig, script)
    assert not gateway_table(rig) and forwarding(rig) == "0" and not reaches(rig)
    assert host_table(rig) == before

    ruleset = ctl(rig, "nft", "list", "ruleset").stdout
    proc, _changed = play(rig, "-e", "internet=on", "-e", "gateway_cluster_subnet=10.77.0.0/33")
    assert proc.returncode != 0
    assert "gateway_cluster_subnet" in proc.stdout and "10.77.0.0/33" in proc.stdout
    assert ctl(rig, "nft", "list", "ruleset").stdout == ruleset
    assert forwarding(rig) == "0" and not (rig["tmp"] / "etc" / "gateway.nft").exists()
