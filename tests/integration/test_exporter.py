# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The carrier_exporter in front of the simulator, scraped by a real Prometheus (Debian's, on loopback)
whose copy of the shipped alert rules (``for:`` shortened) fires for the nodes that hang, panic,
boot-loop and undervolt and for a sensor unplugged; the consoles are logged by a real ser2net (as
the terminal_server role sets it up). The exporter is the role's entry script, run as the unit runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from console_rig import free_port  # noqa: E402
from test_status_faults import LoggedConsoles  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ROLE_FILES = REPO / "roles" / "carrier_exporter" / "files"
FAULTS = {"node02": "--hang", "node03": "--panic", "node04": "--boot-loop", "node05": "--undervolt"}
WATCHED = ["node01", "node02", "node03", "node04", "node05"]
EXPECTED = {("CarrierNodeHung", "node02"), ("CarrierNodePanic", "node03"), ("CarrierNodeBootLoop", "node04"),
            ("CarrierNodeUndervoltage", "node05"), ("CarrierSensorMissing", "board_temp")}
MAX_AGE = 1.0

pytestmark = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("prometheus", "ser2net", "socat")),
    reason="prometheus, ser2net and socat are needed (.ci/run installs them)")


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def wait_for(predicate, what, timeout):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        assert time.monotonic() < deadline, "timed out after %.0f s waiting for %s" % (timeout, what)
        time.sleep(0.25)


def answers(url):
    try:
        get(url, timeout=1)
        return True
    except OSError:
        return False


def exporter_config(sim_cluster, logs, port):
    boards = []
    for name, board in sim_cluster.data["boards"].items():
        nodes = {str(slot): {"host": spec["host"], "model": spec.get("model", "cm4")}
                 for slot, spec in board["slots"].items()}
        boards.append({"name": name, "profile": board["profile"], "bus": board["bus"], "nodes": nodes})
    return {"listen": "127.0.0.1", "port": port, "max_age": MAX_AGE, "log_dir": str(logs), "boot_timeout": 3,
            "lock_dir": os.path.join(sim_cluster.dir, "locks"), "boards": boards}


def short_rules(path):
    """The shipped rules with every ``for:`` at 2 s: the same expressions, fired within a test's time."""
    rules = yaml.safe_load((ROLE_FILES / "carrier-alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["for"] = "2s"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return path


class Service:
    def __init__(self, command, log, env=None):
        self.log = open(log, "w")
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


def firing(prom):
    alerts = json.loads(get("%s/api/v1/alerts" % prom))["data"]["alerts"]
    return {(a["labels"]["alertname"], a["labels"].get("node") or a["labels"].get("sensor"))
            for a in alerts if a["state"] == "firing"}


def test_prometheus_scrapes_the_exporter_and_the_rules_fire(sim_cluster, tmp_path):
    started = time.monotonic()
    consoles = LoggedConsoles(tmp_path, {host: sim_cluster.consoles[host] for host in WATCHED})
    services = []
    try:
        for host, flag in FAULTS.items():
            sim_cluster.fault("--host", host, flag, "true")
        port, prom_port = free_port(), free_port()
        config = tmp_path / "exporter.json"
        config.write_text(json.dumps(exporter_config(sim_cluster, consoles.logs, port)))
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"))
        services.append(Service([sys.executable, str(ROLE_FILES / "carrier-exporter.py"), "--config", str(config)],
                                tmp_path / "exporter.log", env=env))
        exporter = "http://127.0.0.1:%d" % port
        wait_for(lambda: answers(exporter + "/metrics"), "the exporter", 20)

        prom_config = tmp_path / "prometheus.yml"
        prom_config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
            "rule_files": [str(short_rules(tmp_path / "rules.yml"))],
            "scrape_configs": [{"job_name": "carrier", "static_configs": [{"targets": ["127.0.0.1:%d" % port]}]}]}))
        prom = "http://127.0.0.1:%d" % prom_port
        services.append(Service(["prometheus", "--config.file=%s" % prom_config,
                                 "--storage.tsdb.path=%s" % (tmp_path / "tsdb"),
                                 "--web.listen-address=127.0.0.1:%d" % prom_port], tmp_path / "prometheus.log"))
        wait_for(lambda: answers(prom + "/-/ready"), "Prometheus", 30)

        sim_cluster.board("carrier1").set_lines({s: {"power": True} for s in (1, 2, 3, 4)})
        sim_cluster.board("rack1").set_lines({1: {"power": True}})
        sim_cluster.fault("--board", "carrier1", "--sensor", "board_temp", "--missing", "true")
        powered = time.monotonic()

        found = wait_for(lambda: EXPECTED <= firing(prom) and firing(prom), "the alerts %s" % sorted(EXPECTED), 60)
        print("firing after %.1f s: %s" % (time.monotonic() - powered, sorted(found)))
        assert not {alert for alert in found if alert[1] == "node01"}, found  # the healthy node
        assert not {alert for alert in found if alert[0] == "CarrierNodeHung" and alert[1] != "node02"}, found

        query = json.loads(get(prom + "/api/v1/query?query=" + urllib.request.quote(
            'carrier_node_state{carrier_node_state="login"} == 1')))["data"]["result"]
        assert {"node01", "node05"} <= {r["metric"]["node"] for r in query}, query

        # a burst of scrapes reads the boards no more often than max_age allows
        text = get(exporter + "/metrics")
        before = _counter(text, "carrier_board_refreshes_total", 'board="rack1"')
        burst = time.monotonic()
        for _scrape in range(20):
            text = get(exporter + "/metrics")
        elapsed = time.monotonic() - burst
        refreshes = _counter(text, "carrier_board_refreshes_total", 'board="rack1"') - before
        assert refreshes <= elapsed / MAX_AGE + 2, (refreshes, elapsed)
        assert _counter(text, "carrier_bus_transactions_total", 'board="rack1"') > 0
    finally:
        for service in reversed(services):
            service.stop()
        consoles.stop()
    assert time.monotonic() - started < 90


def _counter(text, name, label):
    for line in text.splitlines():
        if line.startswith(name + "{") and label in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("%s{%s} not in the scrape" % (name, label))


BIN = Path(sys.executable).parent


def ansible_env():
    out = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    out.update(ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_INVENTORY_UNPARSED_WARNING="False")
    return out


def role_play(tmp_path, boards, port):
    play = tmp_path / "play.yml"
    play.write_text(json.dumps([{
        "hosts": "localhost", "connection": "local", "gather_facts": False,
        "vars": {"ansible_python_interpreter": sys.executable},
        "roles": [{"role": "picluster.carrier.carrier_exporter", "carrier_exporter_boards": boards,
                   "carrier_exporter_listen": "127.0.0.1", "carrier_exporter_port": port,
                   "carrier_exporter_max_age": 2, "carrier_exporter_log_dir": str(tmp_path / "logs"),
                   "carrier_exporter_config_dir": str(tmp_path / "etc"),
                   "carrier_exporter_install_dir": str(tmp_path / "lib"),
                   "carrier_exporter_share_dir": str(tmp_path / "share"),
                   "carrier_exporter_unit_dir": str(tmp_path / "units"),
                   "carrier_exporter_python": sys.executable,
                   "carrier_exporter_collections_path": str(REPO / ".collections"),
                   "carrier_exporter_packages": [], "carrier_exporter_manage_service": False}]}]))
    return [str(BIN / "ansible-playbook"), "-i", "localhost,", str(play)]


def test_the_role_installs_a_service_that_serves(sim_cluster, tmp_path):
    (tmp_path / "units").mkdir()
    port = free_port()
    spec = sim_cluster.data["boards"]["carrier1"]
    boards = [{"name": "carrier1", "profile": spec["profile"], "bus": spec["bus"],
               "nodes": {"1": "node01", "2": {"host": "node02", "model": "cm4"}}}]
    cmd = role_play(tmp_path, boards, port)
    first = subprocess.run(cmd, check=False, capture_output=True, text=True, env=ansible_env(), timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    again = subprocess.run(cmd, check=False, capture_output=True, text=True, env=ansible_env(), timeout=300)
    assert again.returncode == 0 and "changed=0 " in again.stdout, again.stdout
    for name in ("carrier-alerts.yml", "carrier-dashboard.json"):
        assert (tmp_path / "share" / name).read_bytes() == (ROLE_FILES / name).read_bytes()
    unit = (tmp_path / "units" / "picluster-carrier-exporter.service").read_text()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    for line in unit.splitlines():
        if line.startswith("Environment="):
            key, _sep, val = line[len("Environment="):].partition("=")
            environment[key] = val
    start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))[len("ExecStart="):]
    service = Service(start.split(), tmp_path / "service.log", env=environment)
    try:
        wait_for(lambda: answers("http://127.0.0.1:%d/metrics" % port), "the installed exporter", 20)
        text = get("http://127.0.0.1:%d/metrics" % port)
    finally:
        service.stop()
    assert 'carrier_node_state{board="carrier1",carrier_node_state="off",node="node01",slot="1"} 1.0' in text, text
    assert 'carrier_sensor_up{board="carrier1",kind="fan",sensor="fan",type="emc2301"} 1.0' in text


def test_the_role_refuses_a_bad_board_before_installing_its_configuration(tmp_path):
    (tmp_path / "units").mkdir()
    boards = [{"name": "b1", "profile": "itx4", "bus": 1, "nodes": {"9": "n9"}}]
    run = subprocess.run(role_play(tmp_path, boards, free_port()), check=False, capture_output=True, text=True,
                         env=ansible_env(), timeout=300)
    assert run.returncode != 0 and "slot" in run.stdout and "9" in run.stdout, run.stdout
    assert not (tmp_path / "etc" / "exporter.json").exists()


def test_the_role_takes_the_controllers_boards_and_nodes_from_the_inventory(sim_cluster_factory, tmp_path):
    sim_cluster = sim_cluster_factory(start=False)  # its topology file is the inventory: nothing is read
    (tmp_path / "units").mkdir()
    cmd = role_play(tmp_path, [], free_port())
    play = json.loads(Path(cmd[-1]).read_text())
    play[0]["hosts"] = "ctrl0"
    Path(cmd[-1]).write_text(json.dumps(play))
    cmd[2] = sim_cluster.inventory
    env = dict(ansible_env(), ANSIBLE_INVENTORY_ENABLED="picluster.carrier.boards")
    run = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    config = json.loads((tmp_path / "etc" / "exporter.json").read_text())
    boards = {board["name"]: board for board in config["boards"]}
    assert sorted(boards) == ["carrier1", "rack1"]
    assert boards["carrier1"]["bus"] == sim_cluster.data["boards"]["carrier1"]["bus"]
    assert boards["carrier1"]["nodes"]["4"] == {"host": "node04", "model": "cm5"}
    assert len(boards["rack1"]["nodes"]) == 10 and boards["rack1"]["nodes"]["1"]["host"] == "node05"
    assert config["max_age"] == 2.0 and config["port"] > 0 and config["health_dir"] is None
