# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The carrier_exporter: Prometheus metrics of a controller's boards, nodes and buses.

A scrape never storms a bus: each board has one :class:`BoardPoller` that keeps the last snapshot
(the slots' lines, the sensors and fans, every node's state) and reads the board again only when
that snapshot is older than ``max_age`` seconds. Concurrent scrapes wait on the poller's lock, so
the second one finds the snapshot the first one just made: one refresh for both. The reads are the
library's own (``Board.read_state`` under the board's bus lock, ``SensorReader`` with the bus lock
per chip), and the node states come from :func:`_nodestate.node_state` over the terminal_server
logs, with the history kept in memory between refreshes (so events are dated).

:class:`CarrierCollector` is a prometheus_client custom collector over the pollers; :func:`main`
is the service (``carrier-exporter --config FILE``, the role's entry script). The configuration
is a JSON mapping (:func:`load_config` checks it; docs/internals.md, "Exporter").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

from ansible_collections.picluster.carrier.plugins.module_utils._board import Board
from ansible_collections.picluster.carrier.plugins.module_utils._bus import open_bus
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._health import THROTTLED_BITS
from ansible_collections.picluster.carrier.plugins.module_utils._models import DEFAULT_MODEL, get_model
from ansible_collections.picluster.carrier.plugins.module_utils._nodestate import (
    LOG_DIR,
    LOOP_BOOTS,
    STATES,
    WARNINGS,
    log_path,
    node_state,
    read_log,
)
from ansible_collections.picluster.carrier.plugins.module_utils._sensors import SensorReader
from ansible_collections.picluster.carrier.plugins.module_utils._values import check_name, check_number

try:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, StateSetMetricFamily
    HAS_PROMETHEUS_CLIENT = True
except ImportError:  # the modules never need it; only the exporter service does
    HAS_PROMETHEUS_CLIENT = False

DEFAULT_PORT = 9842
DEFAULT_MAX_AGE = 10.0
DEFAULT_HEALTH_MAX_AGE = 300.0
BOARD_KEYS = {"name", "profile", "bus", "addresses", "protected_slots", "lock_dir", "nodes", "bmc"}
# The login of a device that switches nodes (a PoE switch, a smart plug): the board library's ``bmc``.
BMC_KEYS = {"user", "password", "priv_password", "ca_path", "validate_certs"}
CONFIG_KEYS = {"listen", "port", "max_age", "log_dir", "health_dir", "health_max_age", "lock_dir", "boot_timeout",
               "loop_boots", "boards"}


def _check_nodes(nodes, field, board):
    """slot -> {host, model} from ``{slot: host | {host, model}}``; every slot and name checked."""
    result = {}
    for key, value in (nodes or {}).items():
        slot = int(check_number(key, field, minimum=1, maximum=999, integer=True, what="a slot number"))
        spec = {"host": value} if isinstance(value, str) else value
        if not isinstance(spec, dict) or set(spec) - {"host", "model"} or not spec.get("host"):
            raise CarrierError("%s.%s: %r is not a host name or a mapping of host and model" % (field, key, value))
        check_name(spec["host"], "%s.%s.host" % (field, key))
        model = spec.get("model") or DEFAULT_MODEL
        get_model(model, field="%s.%s.model" % (field, key))
        board.profile.lines(slot)
        result[slot] = {"host": spec["host"], "model": model}
    return result


def _check_bmc(bmc, field):
    """A board's ``bmc`` login: a mapping of BMC_KEYS (its values are never put in a message)."""
    if bmc is None:
        return
    if not isinstance(bmc, dict):
        raise CarrierError("%s: a %s is not a mapping of %s" % (field, type(bmc).__name__, ", ".join(sorted(BMC_KEYS))))
    unknown = sorted(str(key) for key in set(bmc) - BMC_KEYS)
    if unknown:
        known = ", ".join(sorted(BMC_KEYS))
        raise CarrierError("%s: unknown key(s) %s (known: %s)" % (field, ", ".join(unknown), known))


def load_config(data):
    """The exporter's settings from a mapping, checked before anything is read or served."""
    if not isinstance(data, dict):
        raise CarrierError("config: %r is not a mapping" % (data,))
    unknown = sorted(set(data) - CONFIG_KEYS)
    if unknown:
        raise CarrierError("config: unknown key(s) %s (known: %s)"
                           % (", ".join(unknown), ", ".join(sorted(CONFIG_KEYS))))
    config = {
        "listen": data.get("listen") or "127.0.0.1",
        "port": int(check_number(data.get("port", DEFAULT_PORT), "port", minimum=0, maximum=65535, integer=True)),
        "max_age": float(check_number(data.get("max_age", DEFAULT_MAX_AGE), "max_age", minimum=0, maximum=3600)),
        "log_dir": data.get("log_dir", LOG_DIR),
        "health_dir": data.get("health_dir"),
        "health_max_age": float(check_number(data.get("health_max_age", DEFAULT_HEALTH_MAX_AGE), "health_max_age",
                                             minimum=0)),
        "lock_dir": data.get("lock_dir"),
        "boot_timeout": check_number(data.get("boot_timeout"), "boot_timeout", minimum=0),
        "loop_boots": int(check_number(data.get("loop_boots", LOOP_BOOTS), "loop_boots", minimum=1, integer=True)),
    }
    boards = data.get("boards")
    if not isinstance(boards, list) or not boards:
        raise CarrierError("boards: %r is not a non-empty list of boards ({name, profile, bus, nodes})" % (boards,))
    config["boards"] = []
    names = set()
    for index, spec in enumerate(boards):
        field = "boards.%d" % index
        # the keys, never the values, in the message: a board's bmc holds a password
        if not isinstance(spec, dict) or not {"name", "profile", "bus"} <= set(spec) or set(spec) - BOARD_KEYS:
            given = ", ".join(sorted(map(str, spec))) if isinstance(spec, dict) else type(spec).__name__
            raise CarrierError("%s: (%s) is not a mapping of name, profile, bus and optionally addresses, "
                               "protected_slots, lock_dir, nodes, bmc" % (field, given))
        _check_bmc(spec.get("bmc"), field + ".bmc")
        check_name(spec["name"], field + ".name")
        if spec["name"] in names:
            raise CarrierError("%s.name: board %r is given twice" % (field, spec["name"]))
        names.add(spec["name"])
        config["boards"].append(dict(spec, lock_dir=spec.get("lock_dir") or config["lock_dir"]))
    return config


class BusCounter(object):
    """smbus2's methods over a bus, counting transactions and the ones that failed (an OSError)."""

    OPS = ("read_byte", "write_byte", "read_byte_data", "write_byte_data", "read_word_data", "write_word_data")

    def __init__(self, inner, counts):
        self._inner = inner
        self._counts = counts

    def __getattr__(self, name):
        target = getattr(self._inner, name)
        if name not in self.OPS:
            return target
        counts = self._counts

        def counted(*args):
            counts["transactions"] += 1
            try:
                return target(*args)
            except OSError:
                counts["errors"] += 1
                raise
        return counted

    def close(self):
        self._inner.close()


class BoardPoller(object):
    """One board's cached snapshot, refreshed at most once per ``max_age`` seconds."""

    def __init__(self, spec, config, bus_opener=open_bus, clock=time.time):
        self.counts = {"transactions": 0, "errors": 0, "refreshes": 0, "failures": 0}
        self.bus_spec = spec["bus"]

        def opener(bus_spec):
            return BusCounter(bus_opener(bus_spec), self.counts)

        self.board = Board(spec["name"], spec["profile"], spec["bus"], addresses=spec.get("addresses"),
                           protected_slots=spec.get("protected_slots") or (), lock_dir=spec.get("lock_dir"),
                           bus_opener=opener, bmc=spec.get("bmc"))
        if self.board.profile.kind == "turingpi2":
            raise CarrierError("boards: %s is a Turing Pi 2 (its BMC has no I2C bus for the exporter to read)"
                               % spec["name"])
        self.nodes = _check_nodes(spec.get("nodes"), "boards.%s.nodes" % spec["name"], self.board)
        self.config = config
        self.clock = clock
        self.histories = {}
        self.snapshot = None
        self._lock = threading.Lock()

    @property
    def name(self):
        return self.board.name

    def get(self):
        """The snapshot, read again first when older than ``max_age`` (one refresh for concurrent callers)."""
        with self._lock:
            if self.snapshot is None or self.clock() - self.snapshot["time"] > self.config["max_age"]:
                self.snapshot = self._refresh()
            return self.snapshot

    def _refresh(self):
        started = time.monotonic()
        self.counts["refreshes"] += 1
        snap = {"lines": {}, "lines_error": None, "sensors": {"sensors": {}, "slots": {}, "fans": {}}, "nodes": {}}
        try:
            snap["lines"] = self.board.read_state()
        except CarrierError as exc:  # the bus or an expander failed: the sensors and consoles still tell something
            snap["lines_error"] = str(exc)
            self.counts["failures"] += 1
        try:
            snap["sensors"] = SensorReader(self.board).read()
        except CarrierError as exc:
            snap["sensors_error"] = str(exc)
            self.counts["failures"] += 1
        now = self.clock()
        for slot, spec in sorted(self.nodes.items()):
            snap["nodes"][slot] = self._node(slot, spec, snap["lines"].get(slot), now)
        snap["time"] = self.clock()
        snap["duration"] = time.monotonic() - started
        return snap

    def _node(self, slot, spec, lines, now):
        host = spec["host"]
        console = True
        try:
            text, partial, written, history = read_log(log_path(self.config["log_dir"], host), self.histories.get(host))
        except CarrierError:
            text, partial, written, history = None, "", None, self.histories.get(host)
        if text is None:
            console, text = False, ""
        state, history = node_state(lines, text, written=written, now=now, model=spec["model"], history=history,
                                    partial=partial, timeout=self.config["boot_timeout"],
                                    loop_boots=self.config["loop_boots"], console=console)
        if console:
            self.histories[host] = history
        return {"host": host, "state": state, "console": console, "health": self._health(host, now)}

    def _health(self, host, now):
        """What node_health last reported for ``host`` (``<health_dir>/<host>.json``), when fresh enough."""
        directory = self.config["health_dir"]
        if not directory:
            return None
        path = os.path.join(directory, "%s.json" % host)
        try:
            age = now - os.stat(path).st_mtime
            if age > self.config["health_max_age"]:
                return None
            with open(path) as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            return None
        return dict(data, age=max(age, 0.0)) if isinstance(data, dict) else None


def _family(kind, name, doc, labels, unit=""):
    if kind == "counter":
        return CounterMetricFamily(name, doc, labels=labels, unit=unit)
    return GaugeMetricFamily(name, doc, labels=labels, unit=unit)


def _families():
    node = ["board", "slot", "node"]
    specs = [
        ("node_powered", "gauge", "1 when the slot's power line is asserted", node),
        ("node_console_up", "gauge", "1 when the node's console log could be read", node),
        ("node_boots", "gauge", "Boots seen on the console since its log was last rotated", node),
        ("node_boots_without_login", "gauge", "Boots in a row, up to the current one, without a login", node),
        ("node_time_to_login_seconds", "gauge", "Seconds from the start of the last boot to its login prompt", node),
        ("node_last_power_on_timestamp_seconds", "gauge", "When the node was last seen powered on or booting", node),
        ("node_silent_seconds", "gauge", "Seconds since the node last printed on its console", node),
        ("node_warning", "gauge", "1 while a console warning of the current boot holds", node + ["warning"]),
        ("node_soc_temperature_celsius", "gauge", "SoC temperature node_health last read", node),
        ("node_throttled", "gauge", "vcgencmd get_throttled bits node_health last read", node + ["bit"]),
        ("node_health_age_seconds", "gauge", "Age of the node_health reading", node),
        ("slot_current_amperes", "gauge", "Slot current from its monitor", ["board", "slot", "sensor"]),
        ("slot_voltage_volts", "gauge", "Slot supply (bus) voltage from its monitor", ["board", "slot", "sensor"]),
        ("slot_power_watts", "gauge", "Slot power from its monitor", ["board", "slot", "sensor"]),
        ("sensor_up", "gauge", "1 when the sensor or fan controller answered", ["board", "sensor", "kind", "type"]),
        ("sensor_missing", "gauge", "1 when the chip did not acknowledge its address", ["board", "sensor", "kind",
                                                                                        "type"]),
        ("board_temperature_celsius", "gauge", "Board temperature sensor reading", ["board", "sensor"]),
        ("fan_rpm", "gauge", "Fan speed from its TACH reading (0 when stopped)", ["board", "fan"]),
        ("fan_duty_ratio", "gauge", "Fan drive setting, 0 to 1", ["board", "fan"]),
        ("board_lines_up", "gauge", "1 when the slots' lines were read", ["board"]),
        ("board_snapshot_age_seconds", "gauge", "Age of the board's cached snapshot at this scrape", ["board"]),
        ("board_refresh_duration_seconds", "gauge", "Seconds the last refresh of the board took", ["board"]),
        ("board_refreshes_total", "counter", "Refreshes of the board's snapshot", ["board"]),
        ("bus_transactions_total", "counter", "I2C transactions the exporter made on the board's bus",
         ["board", "bus"]),
        ("bus_errors_total", "counter", "I2C transactions that failed (after which the library retried)",
         ["board", "bus"]),
    ]
    return {name: _family(kind, "carrier_" + name, doc, labels) for name, kind, doc, labels in specs}


def _add_node(fam, board, slot, entry, powered):
    labels = [board, str(slot), entry["host"]]
    state = entry["state"]
    if powered is not None:
        fam["node_powered"].add_metric(labels, 1.0 if powered else 0.0)
    fam["node_console_up"].add_metric(labels, 1.0 if entry["console"] else 0.0)
    fam["node_boots"].add_metric(labels, state["boots"])
    fam["node_boots_without_login"].add_metric(labels, state["boots_without_login"])
    for key, name in (("time_to_login", "node_time_to_login_seconds"),
                      ("last_power_on", "node_last_power_on_timestamp_seconds"), ("silent_for", "node_silent_seconds")):
        if state[key] is not None:
            fam[name].add_metric(labels, state[key])
    for warning in WARNINGS:
        fam["node_warning"].add_metric(labels + [warning], 1.0 if warning in state["warnings"] else 0.0)
    health = entry["health"]
    if health:
        if health.get("temperature_c") is not None:
            fam["node_soc_temperature_celsius"].add_metric(labels, health["temperature_c"])
        throttled = health.get("throttled") or {}
        for bit in THROTTLED_BITS.values():
            if bit in throttled:
                fam["node_throttled"].add_metric(labels + [bit], 1.0 if throttled[bit] else 0.0)
        fam["node_health_age_seconds"].add_metric(labels, health["age"])


def _add_sensors(fam, board, readings):
    for slot, entry in sorted(readings["slots"].items()):
        if entry.get("ok"):
            labels = [board, str(slot), entry["sensor"]]
            fam["slot_current_amperes"].add_metric(labels, entry["current"])
            fam["slot_voltage_volts"].add_metric(labels, entry["bus_voltage"])
            fam["slot_power_watts"].add_metric(labels, entry["power"])
    for kind, group in (("sensor", "sensors"), ("fan", "fans")):
        for name, entry in sorted(readings[group].items()):
            labels = [board, name, kind, entry["type"]]
            fam["sensor_up"].add_metric(labels, 1.0 if entry["ok"] else 0.0)
            fam["sensor_missing"].add_metric(labels, 1.0 if entry.get("missing") else 0.0)
            if not entry["ok"]:
                continue
            if kind == "sensor" and entry.get("temperature") is not None:
                fam["board_temperature_celsius"].add_metric([board, name], entry["temperature"])
            if kind == "fan":
                fam["fan_rpm"].add_metric([board, name], entry.get("rpm") or 0.0)
                fam["fan_duty_ratio"].add_metric([board, name], entry["duty"] / 100.0)


class CarrierCollector(object):
    """The prometheus_client collector over a list of :class:`BoardPoller`."""

    def __init__(self, pollers, clock=time.time):
        if not HAS_PROMETHEUS_CLIENT:
            raise CarrierError("the exporter needs the Python package prometheus_client "
                               "(pip install prometheus-client; Debian: python3-prometheus-client)")
        self.pollers = pollers
        self.clock = clock

    def describe(self):
        return []  # no read at registration: the families depend on what the boards answer

    def collect(self):
        started = time.monotonic()
        fam = _families()
        states = StateSetMetricFamily("carrier_node_state", "What the node is doing (node_status's state)",
                                      labels=["board", "slot", "node"])
        for poller in self.pollers:
            snap = poller.get()
            board = poller.name
            for slot, entry in sorted(snap["nodes"].items()):
                current = entry["state"]["state"]
                states.add_metric([board, str(slot), entry["host"]], {name: name == current for name in STATES})
                _add_node(fam, board, slot, entry, (snap["lines"].get(slot) or {}).get("power"))
            _add_sensors(fam, board, snap["sensors"])
            fam["board_lines_up"].add_metric([board], 0.0 if snap["lines_error"] else 1.0)
            fam["board_snapshot_age_seconds"].add_metric([board], max(self.clock() - snap["time"], 0.0))
            fam["board_refresh_duration_seconds"].add_metric([board], snap["duration"])
            fam["board_refreshes_total"].add_metric([board], poller.counts["refreshes"])
            fam["bus_transactions_total"].add_metric([board, str(poller.bus_spec)], poller.counts["transactions"])
            fam["bus_errors_total"].add_metric([board, str(poller.bus_spec)], poller.counts["errors"])
        yield states
        yield from fam.values()
        duration = GaugeMetricFamily("carrier_scrape_duration_seconds", "Seconds this scrape took")
        duration.add_metric([], time.monotonic() - started)
        yield duration


def make_pollers(config, bus_opener=open_bus, clock=time.time):
    return [BoardPoller(spec, config, bus_opener=bus_opener, clock=clock) for spec in config["boards"]]


def make_registry(config, bus_opener=open_bus, clock=time.time):
    """A registry holding the carrier collector (and nothing else: no process or platform metrics)."""
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    collector = CarrierCollector(make_pollers(config, bus_opener=bus_opener, clock=clock), clock=clock)
    registry.register(collector)
    return registry, collector


def read_config_file(path):
    try:
        with open(path) as handle:
            data = json.load(handle)
    except OSError as exc:
        raise CarrierError("config: cannot read %s: %s" % (path, exc.strerror)) from None
    except ValueError as exc:
        raise CarrierError("config: %s is not JSON: %s" % (path, exc)) from None
    return load_config(data)


def main(argv=None):
    """``carrier-exporter --config FILE [--check]``: serve until stopped (0), or say why not (2)."""
    parser = argparse.ArgumentParser(prog="carrier-exporter", description="Prometheus exporter of carrier boards")
    parser.add_argument("--config", required=True, help="the JSON configuration (the role's exporter.json)")
    parser.add_argument("--check", action="store_true", help="check the configuration and exit")
    args = parser.parse_args(argv)
    try:
        config = read_config_file(args.config)
        registry, _collector = make_registry(config)
    except CarrierError as exc:
        parser.exit(2, "carrier-exporter: %s\n" % exc)
    if args.check:
        sys.stdout.write("carrier-exporter: %s: %d board(s) OK\n" % (args.config, len(config["boards"])))
        return 0
    from prometheus_client import start_http_server

    started = start_http_server(config["port"], addr=config["listen"], registry=registry)
    # prometheus_client 0.20+ returns the server and its thread; older ones (Debian 12's 0.16) nothing
    port = started[0].server_port if started else config["port"]
    sys.stdout.write("carrier-exporter: serving %d board(s) on %s:%d\n" % (len(config["boards"]), config["listen"],
                                                                           port))
    sys.stdout.flush()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    return 0
