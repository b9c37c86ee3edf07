# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Turing Pi 2 backend over real HTTP(S), against the simulator's emulated BMC."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from modrun import run_module

REPO = Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def topology(tls=False, malformed=False):
    scheme = "https" if tls else "http"
    return {
        "plugin": "picluster.carrier.boards",
        "probe": True,
        "controllers": {"ctrl0": {"vars": {"ansible_connection": "local"}}},
        "boards": {
            "carrier1": {
                "profile": "itx4",
                "controller": "ctrl0",
                "bus": "sim:{dir}/bus1.sock",
                "console": "{dir}/state/console/{host}",
                "slots": {1: {"host": "itx01"}, 2: {"host": "itx02"}},
            },
            "tpi": {
                "profile": "turingpi2",
                "controller": "ctrl0",
                "bus": "%s://127.0.0.1:%d" % (scheme, free_port()),
                "bmc": {"user": "root"},
                "sim": {"tls": tls, "malformed": malformed, "bmc_password": "turing"},
                "slots": {1: {"host": "tp01"}, 2: {"host": "tp02"}, 3: {"host": "tp03"}, 4: {"host": "tp04"}},
            },
        },
    }


@pytest.fixture
def tpi(sim_cluster_factory, tmp_path):
    """Call a module on the Turing Pi 2 of a fresh simulated cluster: ``tpi(module, **args)``."""

    def make(tls=False, malformed=False):
        cluster = sim_cluster_factory(topology(tls=tls, malformed=malformed))
        base = {"board": "tpi", "profile": "turingpi2", "bus": cluster.data["boards"]["tpi"]["bus"],
                "bmc_user": "root", "bmc_password": "turing", "lock_dir": os.path.join(cluster.dir, "locks")}
        os.makedirs(base["lock_dir"], exist_ok=True)
        if tls:
            base["bmc_ca_path"] = os.path.join(cluster.state_dir, "bmc-tpi-ca.pem")

        def call(name, check=False, **args):
            merged = dict(base)
            merged.update(args)
            return run_module(name, merged, tmp_path, check=check)

        call.cluster = cluster
        call.base = base
        return call

    return make


def test_power_reset_and_usb_boot_over_http(tpi):
    call = tpi()
    cluster = call.cluster
    first = call("node_power", slot=[1, 3], state="on", stagger=0)
    assert first["changed"] is True and [s["after"]["state"] for s in first["slots"]] == ["on", "on"]
    cluster.wait_state("tp01", "login")
    assert cluster.node("tp02")["state"] == "off"  # the power set named only nodes 1 and 3
    again = call("node_power", slot=[1, 3], state="on")
    assert again["changed"] is False
    check = call("node_power", check=True, slot="all", state="off")
    assert check["changed"] is True and cluster.node("tp01")["lines"]["power"] is True

    boots = cluster.node("tp01")["boots"]
    reset = call("node_power", slot=1, state="reset")
    assert reset["slots"][0]["action"] == "reset"
    cluster.wait_state("tp01", "login")
    assert cluster.node("tp01")["boots"] == boots + 1

    usb = call("node_power", slot=3, state="on", usb_boot=True)
    assert usb["slots"][0]["action"] == "reboot"  # a running node: the BMC resets it into the boot ROM
    cluster.wait_state("tp03", "rpiboot")
    info = call("node_info", slot="all")
    assert [s["state"] for s in info["slots"]] == ["on", "off", "on", "off"]
    assert info["chips"]["bmc"]["power_source"].startswith("the BMC's saved state")
    off = call("node_power", slot="all", state="off")
    assert [s["action"] for s in off["slots"]] == ["off", "none", "off", "none"]
    assert cluster.node("tp01")["state"] == "off"


def test_token_is_obtained_once_and_shared_by_every_task(tpi):
    call = tpi()
    before = call.cluster.status()["boards"]["tpi"]["bmc"]["requests"]
    for slot in (1, 2, 3):
        call("node_power", slot=slot, state="on", stagger=0)
    token_files = [f for f in os.listdir(call.base["lock_dir"]) if f.startswith("bmc-token-")]
    assert len(token_files) == 1
    mode = os.stat(os.path.join(call.base["lock_dir"], token_files[0])).st_mode & 0o777
    assert mode == 0o600
    # 3 tasks: one authentication, then get power, set power, get power (verify) each
    assert call.cluster.status()["boards"]["tpi"]["bmc"]["requests"] - before == 1 + 3 * 3


def test_bad_credentials_unreachable_and_malformed(tpi, tmp_path):
    call = tpi()
    bad = call("node_power", slot=1, state="on", bmc_password="wrong")
    assert bad["failed"] is True
    assert "authentication failed for user 'root'" in bad["msg"] and "check bmc_user and bmc_password" in bad["msg"]
    assert call.cluster.node("tp01")["lines"]["power"] is False
    anonymous = call("node_power", slot=1, state="on", bmc_user=None, bmc_password=None)
    assert anonymous["failed"] is True and "HTTP 401" in anonymous["msg"]
    gone = call("node_info", bus="http://127.0.0.1:%d" % free_port())
    assert gone["failed"] is True and "bmc: cannot reach http://127.0.0.1:" in gone["msg"]
    assert '"turing"' not in json.dumps(gone) and "'turing'" not in json.dumps(gone)  # the password, nowhere

    broken = tpi(malformed=True)
    answer = broken("node_power", slot=1, state="on")
    assert answer["failed"] is True
    assert "bmc: unexpected answer to authentication at http://127.0.0.1:" in answer["msg"]
    assert "<html><body>BMC busy</body></html>" in answer["msg"]


def test_tls_with_the_bmcs_ca_and_refused_without(tpi):
    call = tpi(tls=True)
    assert call("node_power", slot=2, state="on")["changed"] is True
    call.cluster.wait_state("tp02", ("bootloader", "kernel", "login"))
    refused = call("node_info", bmc_ca_path=None)
    assert refused["failed"] is True and "TLS with https://127.0.0.1:" in refused["msg"]
    assert "set bmc_ca_path" in refused["msg"]
    assert call("node_info", bmc_ca_path=None, validate_certs=False)["slots"][1]["power"] is True


def test_one_power_run_over_a_mixed_inventory(sim_cluster_factory):
    """An I2C carrier and a Turing Pi 2 in one inventory, switched by one power.yml run."""
    cluster = sim_cluster_factory(topology())
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"), ANSIBLE_FORKS="6",
               ANSIBLE_NOCOLOR="1", PATH="%s:%s" % (Path(sys.executable).parent, os.environ["PATH"]))
    command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", cluster.inventory,
               str(REPO / "playbooks" / "power.yml"), "-e", "power_state=on", "-e", "power_stagger=0",
               "-e", "ansible_python_interpreter=%s" % sys.executable, "-e", "carrier_bmc_password=turing",
               "-e", "carrier_lock_dir=%s" % os.path.join(cluster.dir, "locks")]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=str(REPO), timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for host in ("itx01", "itx02", "tp01", "tp02", "tp03", "tp04"):
        assert cluster.node(host)["lines"]["power"] is True, host
    probe_env = dict(env, PICLUSTER_CARRIER_BMC_PASSWORD="turing")
    inventory = subprocess.run([str(Path(sys.executable).parent / "ansible-inventory"), "-i", cluster.inventory,
                                "--host", "tp02"], capture_output=True, text=True, env=probe_env, cwd=str(REPO),
                               timeout=120, check=False)
    assert inventory.returncode == 0, inventory.stderr
    assert '"carrier_bmc_user": "root"' in inventory.stdout and '"turing"' not in inventory.stdout
    assert '"carrier_power": "on"' in inventory.stdout  # probe: true read the BMC with the password from the env


def test_console_through_the_bmc(tpi, tmp_path):
    """The console module on a Turing Pi 2 node: the BMC's buffered UART, read by polling, written by lines."""
    call = tpi()
    cluster = call.cluster
    port = "turingpi2:%s#2" % call.base["bus"]
    creds = {"port": port, "bmc_user": "root", "bmc_password": "turing", "lock_dir": call.base["lock_dir"]}

    def console(**args):
        return run_module("console", dict(creds, **args), tmp_path)

    call("node_power", slot=2, state="on", stagger=0)
    boot = console(capture={"until": "tp02 login: ", "duration": 30})
    assert boot.get("failed") is not True, boot
    text = "\n".join(boot["lines"])
    assert "RPi: BOOTLOADER release" in text and "tp02 login:" in text
    ran = console(command="hostname", login_user="pi", login_password="raspberry", timeout=60)
    assert ran.get("failed") is not True, ran
    assert ran.exit_status == 0 and ran["rc"] == 0 and ran["stdout"].strip() == "tp02"
    assert '"turing"' not in json.dumps(ran)  # no_log: the BMC password appears nowhere in the result
    fresh = tmp_path / "no-token-yet"
    fresh.mkdir()
    wrong = console(wait_for="login", timeout=5, bmc_password="nope", lock_dir=str(fresh))
    assert wrong["failed"] is True and "authentication failed" in wrong["msg"]
    assert cluster.node("tp02")["state"] in ("shell", "login")
