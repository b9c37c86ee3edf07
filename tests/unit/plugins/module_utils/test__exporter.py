# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The carrier_exporter's collector on emulated boards: metrics, the cache (bus transactions per scrape),
one refresh for concurrent scrapes, node states from console logs, health files; the alert rules with
the real promtool; the Grafana dashboard's expressions against the metrics exported."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from ansible_collections.picluster.carrier.plugins.module_utils import _exporter  # noqa: E402
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError  # noqa: E402
from ansible_collections.picluster.carrier.plugins.module_utils._sensors import SensorReader  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[3]
ROLE_FILES = REPO / "roles" / "carrier_exporter" / "files"
BOOT = ("  0.96 RPi: BOOTLOADER release VERSION:5f18ffb6 DATE: 2024/07/30 TIME: 14:02:35\r\n"
        "[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x410fd083]\r\n"
        "\r\nDebian GNU/Linux 12 node01 ttyS0\r\n\r\nnode01 login: ")


class Clock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


def config(tmp_path, nodes=None, **extra):
    data = {"boards": [{"name": "b1", "profile": "itx4_hwmon", "bus": "sim:/nonexistent/inproc.sock",
                        "nodes": nodes if nodes is not None else {1: "node01", 2: {"host": "node02", "model": "cm5"}}}],
            "log_dir": str(tmp_path / "logs"), "lock_dir": str(tmp_path)}
    data.update(extra)
    return _exporter.load_config(data)


def scrape(registry):
    """{(name, frozenset(labels)): value} of one scrape, by sample name."""
    text = prometheus_client.generate_latest(registry).decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples[(name, frozenset((k, str(v)) for k, v in labels.items()))]


@pytest.fixture
def exporter(rig, tmp_path):
    def make(nodes=None, clock=None, **extra):
        r = rig("itx4_hwmon", nodes=(1, 2, 3, 4))
        clock = clock or Clock()
        registry, collector = _exporter.make_registry(config(tmp_path, nodes, **extra),
                                                      bus_opener=r.board._bus_opener, clock=clock)
        return r, registry, collector, clock
    return make


@pytest.mark.parametrize("data, message", [
    ({"boards": []}, r"^boards: \[\] is not a non-empty list"),
    ({"boards": [{"name": "b", "profile": "itx4", "bus": 1}], "max_age": -1}, r"^max_age: "),
    ({"boards": [{"name": "b", "profile": "itx4", "bus": 1}], "port": 70000}, r"^port: "),
    ({"boards": [{"name": "b", "profile": "itx4", "bus": 1}], "colour": 1}, r"^config: unknown key\(s\) colour"),
    ({"boards": [{"name": "b", "profile": "itx4", "bus": 1}, {"name": "b", "profile": "itx4", "bus": 2}]},
     r"^boards.1.name: board 'b' is given twice"),
    ({"boards": [{"name": "../b", "profile": "itx4", "bus": 1}]}, r"^boards.0.name: '../b' is not a valid name"),
    ({"boards": [{"name": "b", "profile": "itx4"}]}, r"^boards.0: .* is not a mapping of name, profile, bus"),
    ({"boards": [{"name": "b", "profile": "poe_switch8", "bus": "snmp://127.0.0.1", "bmc": "s3cret"}]},
     r"^boards.0.bmc: a str is not a mapping of ca_path, password, priv_password, user, validate_certs$"),
    ({"boards": [{"name": "b", "profile": "poe_switch8", "bus": "snmp://127.0.0.1", "bmc": {"pasword": "s3cret"}}]},
     r"^boards.0.bmc: unknown key\(s\) pasword \(known: "),
    ({"boards": [{"name": "b", "profile": "itx4", "bmc": {"password": "s3cret"}}]},
     r"^boards.0: \(bmc, name, profile\) is not a mapping of name, profile, bus"),
])
def test_bad_configuration_is_refused_naming_the_field(data, message):
    with pytest.raises(CarrierError, match=message) as caught:
        _exporter.load_config(data)
    assert "s3cret" not in str(caught.value)


@pytest.mark.parametrize("nodes, message", [
    ({1: "no/de"}, r"^boards.b1.nodes.1.host: 'no/de' is not a valid name"),
    ({1: {"host": "n1", "model": "pi9"}}, r"model"),
    ({9: "n9"}, r"9"),
    ({"x": "n1"}, r"^boards.b1.nodes: 'x' is not a slot number"),
])
def test_bad_nodes_are_refused_before_anything_is_read(tmp_path, nodes, message):
    with pytest.raises(CarrierError, match=message):
        _exporter.make_pollers(config(tmp_path, nodes), bus_opener=lambda spec: pytest.fail("bus opened"))


def test_metrics_of_an_emulated_board(exporter, tmp_path):
    r, registry, _collector, _clock = exporter()
    r.board.set_lines({1: {"power": True}})
    SensorReader(r.board).set_fans({"fan": 50})
    del r.log[:]
    s = scrape(registry)
    node01 = {"board": "b1", "slot": 1, "node": "node01"}
    assert value(s, "carrier_node_state", carrier_node_state="on", **node01) == 1
    assert value(s, "carrier_node_state", carrier_node_state="login", **node01) == 0
    assert value(s, "carrier_node_state", board="b1", slot=2, node="node02", carrier_node_state="off") == 1
    assert value(s, "carrier_node_powered", **node01) == 1
    assert value(s, "carrier_node_console_up", **node01) == 0  # no log yet
    assert 0.5 < value(s, "carrier_slot_current_amperes", board="b1", slot=1, sensor="ina3221_1") < 0.7  # a cm4
    assert value(s, "carrier_slot_current_amperes", board="b1", slot=2, sensor="ina3221_1") == 0
    assert 5.0 < value(s, "carrier_slot_voltage_volts", board="b1", slot=1, sensor="ina3221_1") < 5.1
    assert value(s, "carrier_slot_power_watts", board="b1", slot=1, sensor="ina3221_1") > 2.5
    assert 20 < value(s, "carrier_board_temperature_celsius", board="b1", sensor="board_temp") < 40
    assert value(s, "carrier_sensor_up", board="b1", sensor="fan", kind="fan", type="emc2301") == 1
    assert value(s, "carrier_fan_duty_ratio", board="b1", fan="fan") == pytest.approx(0.5, abs=0.01)
    assert 2000 < value(s, "carrier_fan_rpm", board="b1", fan="fan") < 3000  # 5000 rpm at full duty
    assert value(s, "carrier_board_lines_up", board="b1") == 1
    bus = {"board": "b1", "bus": "sim:/nonexistent/inproc.sock"}
    assert value(s, "carrier_bus_transactions_total", **bus) == len(r.log)
    assert value(s, "carrier_bus_errors_total", **bus) == 0
    assert value(s, "carrier_scrape_duration_seconds") > 0
    assert not [entry for entry in r.log if entry[0].startswith("write")]  # a scrape writes nothing


def test_reads_are_cached_for_max_age(exporter):
    r, registry, collector, clock = exporter(max_age=10)
    scrape(registry)
    first = len(r.log)
    assert first > 0
    for _scrape in range(5):
        clock.now += 1
        scrape(registry)
    assert len(r.log) == first  # five scrapes within max_age: not one transaction
    clock.now += 10
    s = scrape(registry)
    assert len(r.log) == 2 * first
    assert value(s, "carrier_board_refreshes_total", board="b1") == 2
    assert value(s, "carrier_board_snapshot_age_seconds", board="b1") == 0
    clock.now += 4
    assert value(scrape(registry), "carrier_board_snapshot_age_seconds", board="b1") == 4


def test_transactions_per_refresh_are_the_minimum_per_chip(exporter):
    """Lines: polarity and input of the PCA9555 (u1) and the TCA9554 (u2, the identify LEDs); sensors: the
    internals' table: two words per wired INA3221 channel (4 channels), one word for the TMP102, four
    bytes for the EMC2301."""
    r, registry, _collector, _clock = exporter()
    scrape(registry)
    by_addr = {}
    for entry in r.log:
        by_addr[entry[1]] = by_addr.get(entry[1], 0) + 1
    assert by_addr[0x40] == 3 * 2 and by_addr[0x41] == 1 * 2 and by_addr[0x48] == 1 and by_addr[0x2f] == 4
    assert by_addr[0x20] <= 2 and by_addr[0x21] <= 2


def test_concurrent_scrapes_share_one_refresh(exporter):
    r, registry, collector, clock = exporter()
    inner = collector.pollers[0].board._bus_opener
    gate = threading.Event()

    def slow(spec):
        gate.wait(5)  # every scrape is in flight before the first read answers
        return inner(spec)

    collector.pollers[0].board._bus_opener = slow
    results = []
    threads = [threading.Thread(target=lambda: results.append(scrape(registry))) for _thread in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    gate.set()
    for thread in threads:
        thread.join(10)
    assert len(results) == 4
    assert {value(s, "carrier_board_refreshes_total", board="b1") for s in results} == {1}


def test_node_states_from_console_logs(exporter, tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    r, registry, _collector, clock = exporter(boot_timeout=30)
    r.board.set_lines({1: {"power": True}, 2: {"power": True}})
    scrape(registry)  # the first read of a log: its events are not dated
    (logs / "node01.log").write_text(BOOT)
    (logs / "node02.log").write_text(BOOT.replace("login: ", "")[:120])
    os.utime(logs / "node02.log", (clock.now, clock.now))
    clock.now += 11
    os.utime(logs / "node01.log", (clock.now, clock.now))
    s = scrape(registry)
    assert value(s, "carrier_node_state", board="b1", slot=1, node="node01", carrier_node_state="login") == 1
    assert value(s, "carrier_node_console_up", board="b1", slot=1, node="node01") == 1
    assert value(s, "carrier_node_boots", board="b1", slot=1, node="node01") == 1
    assert value(s, "carrier_node_state", board="b1", slot=2, node="node02", carrier_node_state="bootloader") == 1
    clock.now += 40  # node02 silent for longer than the boot timeout
    with open(logs / "node01.log", "a") as handle:
        handle.write("\r\n[  100.1] Under-voltage detected! (0x00050005)\r\n")
    s = scrape(registry)
    assert value(s, "carrier_node_state", board="b1", slot=2, node="node02", carrier_node_state="hung") == 1
    assert value(s, "carrier_node_warning", board="b1", slot=1, node="node01", warning="undervoltage") == 1
    assert value(s, "carrier_node_silent_seconds", board="b1", slot=2, node="node02") == pytest.approx(51, abs=1)


def test_health_files_give_soc_temperature_and_throttling(exporter, tmp_path):
    health = tmp_path / "health"
    health.mkdir()
    r, registry, _collector, clock = exporter(health_dir=str(health), health_max_age=60)
    clock.now = time.time()
    (health / "node01.json").write_text(json.dumps({"temperature_c": 61.5, "throttled": {
        "raw": "0x50005", "undervoltage": True, "throttled": True, "arm_frequency_capped": False,
        "soft_temperature_limit": False, "undervoltage_occurred": True, "throttled_occurred": True,
        "arm_frequency_capped_occurred": False, "soft_temperature_limit_occurred": False, "other_bits": "0x0"}}))
    (health / "node02.json").write_text(json.dumps({"temperature_c": 40.0}))
    old = clock.now - 120
    os.utime(health / "node02.json", (old, old))  # older than health_max_age: not exported
    s = scrape(registry)
    node01 = {"board": "b1", "slot": 1, "node": "node01"}
    assert value(s, "carrier_node_soc_temperature_celsius", **node01) == 61.5
    assert value(s, "carrier_node_throttled", bit="undervoltage", **node01) == 1
    assert value(s, "carrier_node_throttled", bit="arm_frequency_capped", **node01) == 0
    assert ("carrier_node_soc_temperature_celsius", frozenset({"board": "b1", "slot": "2", "node": "node02"}.items())) \
        not in s


def test_a_missing_sensor_and_a_failing_bus(exporter):
    r, registry, _collector, clock = exporter(max_age=0)
    r.chip("board_temp").missing = True
    s = scrape(registry)
    labels = {"board": "b1", "sensor": "board_temp", "kind": "sensor", "type": "tmp102"}
    assert value(s, "carrier_sensor_up", **labels) == 0 and value(s, "carrier_sensor_missing", **labels) == 1
    assert value(s, "carrier_sensor_up", board="b1", sensor="ina3221_1", kind="sensor", type="ina3221") == 1
    assert value(s, "carrier_bus_errors_total", board="b1", bus="sim:/nonexistent/inproc.sock") == 5  # its retries
    r.sim_board.error_rate = 1.0  # every transaction fails with EIO
    clock.now += 1
    s = scrape(registry)
    assert value(s, "carrier_board_lines_up", board="b1") == 0
    assert value(s, "carrier_node_state", board="b1", slot=1, node="node01", carrier_node_state="unknown") == 1


def test_promtool_checks_and_tests_the_alert_rules():
    if shutil.which("promtool") is None:
        pytest.skip("promtool (Debian's prometheus package) is needed")
    check = subprocess.run(["promtool", "check", "rules", str(ROLE_FILES / "carrier-alerts.yml")],
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0 and "SUCCESS: 8 rules found" in check.stdout, check.stdout + check.stderr
    tested = subprocess.run(["promtool", "test", "rules", "exporter_alerts_test.yml"], cwd=HERE,
                            capture_output=True, text=True, check=False)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def _exported_names(exporter, tmp_path):
    health = tmp_path / "health"
    health.mkdir()
    (health / "node01.json").write_text(json.dumps({"temperature_c": 50.0, "throttled": {"undervoltage": False}}))
    log = tmp_path / "logs" / "node01.log"
    log.parent.mkdir()
    log.write_text("")
    r, registry, _collector, clock = exporter(health_dir=str(health), max_age=0)
    r.board.set_lines({1: {"power": True}})
    clock.now = time.time()
    names = {name for name, _labels in scrape(registry)}
    cut = BOOT.index("\r\nDebian")
    for piece, later in ((BOOT[:cut], 1), (BOOT[cut:], 12)):  # a boot seen, then its login
        with open(log, "a") as handle:
            handle.write(piece)
        clock.now += later
        os.utime(log, (clock.now, clock.now))
        names |= {name for name, _labels in scrape(registry)}
    return names


def test_every_expression_of_the_dashboard_and_the_rules_names_exported_metrics(exporter, tmp_path):
    exported = _exported_names(exporter, tmp_path)
    dashboard = json.loads((ROLE_FILES / "carrier-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    exprs.append(dashboard["templating"]["list"][1]["query"]["query"])
    import yaml

    rules = yaml.safe_load((ROLE_FILES / "carrier-alerts.yml").read_text())
    exprs += [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert len(exprs) > 20
    for expr in exprs:
        names = set(re.findall(r"\bcarrier_[a-z_]+\b", expr)) - {"carrier_node_state"} | (
            {"carrier_node_state"} if "carrier_node_state{" in expr or "carrier_node_state " in expr else set())
        assert names, expr
        assert names <= exported, (expr, names - exported)
    panel_metrics = {n for e in exprs for n in re.findall(r"\bcarrier_[a-z_]+\b", e)}
    for family in ("carrier_node_state", "carrier_node_powered", "carrier_slot_power_watts", "carrier_fan_rpm",
                   "carrier_board_temperature_celsius", "carrier_node_throttled", "carrier_bus_errors_total"):
        assert family in panel_metrics


def test_the_entry_script_checks_a_configuration(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"boards": [{"name": "b1", "profile": "itx4", "bus": 1, "nodes": {"1": "n1"}}]}))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"boards": [{"name": "b1", "profile": "itx4", "bus": 1, "nodes": {"7": "n7"}}]}))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"))
    script = str(ROLE_FILES / "carrier-exporter.py")
    ok = subprocess.run([sys.executable, script, "--check", "--config", str(good)], env=env, capture_output=True,
                        text=True, check=False)
    assert ok.returncode == 0 and "1 board(s) OK" in ok.stdout, ok.stderr
    refused = subprocess.run([sys.executable, script, "--check", "--config", str(bad)], env=env, capture_output=True,
                             text=True, check=False)
    assert refused.returncode == 2 and "slot" in refused.stderr and "7" in refused.stderr, refused.stderr
