# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""carrier_exporter benchmark (make bench): scrape time and bus transactions per scrape for 14, 100 and
1,000 simulated nodes, against the minimum reads per chip. Prints a table; asserts nothing about speed.

Each size is a simulator daemon (sim/carrier-sim) of itx4_hwmon boards (4 nodes, two INA3221, a TMP102,
an EMC2301, expanders u1 and u2) and backplane10 boards (10 nodes, two PCA9555), one bus each, every
node with a console log of one boot to login. The exporter's collector runs in this process on the
simulator's sockets, as the service does. Per size: the cold scrape (every board read), a warm scrape
(within max_age: served from the snapshots), and the transactions of one refresh, counted by the
exporter and by the simulator, against the minimum: one input read per expander, and the internals'
"Sensors" table (a thermometer 1 word, 2 words per wired monitor channel, a fan 4 bytes).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import collection_link  # noqa: E402

COLLECTIONS = collection_link.activate()

from prometheus_client import generate_latest  # noqa: E402

from ansible_collections.picluster.carrier.plugins.module_utils import _exporter  # noqa: E402
from ansible_collections.picluster.carrier.plugins.module_utils._board import get_profile  # noqa: E402

SIM = [sys.executable, str(REPO / "sim" / "carrier-sim")]
SIZES = {14: (1, 1), 100: (10, 6), 1000: (50, 80)}  # nodes: (itx4_hwmon boards, backplane10 boards)
BOOT = ("  0.96 RPi: BOOTLOADER release VERSION:5f18ffb6 DATE: 2024/07/30 TIME: 14:02:35\r\n"
        "[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x410fd083]\r\n"
        "\r\nDebian GNU/Linux 12 {host} ttyS0\r\n\r\n{host} login: ")


def minimum_reads(profile_name):
    """The fewest transactions that read a board of this profile: an input read per expander, then the
    sensors table of docs/internals.md."""
    profile = get_profile(profile_name)
    total = len(profile.chips)
    wired = {}
    for mon in profile.monitors.values():
        wired.setdefault(mon["chip"], set()).add(mon["channel"])
    for name, spec in profile.sensors.items():
        if spec["type"] in ("lm75", "lm75a", "tmp102"):
            total += 1
        else:
            total += 2 * (len(wired.get(name, ())) or (1 if "shunt_ohms" in spec else 0))
    return total + 4 * len(profile.fans)


def topology(directory, hwmon, backplanes):
    boards, number = {}, 0
    for index in range(hwmon + backplanes):
        profile, slots = ("itx4_hwmon", 4) if index < hwmon else ("backplane10", 10)
        nodes = {}
        for slot in range(1, slots + 1):
            number += 1
            nodes[slot] = {"host": "n%04d" % number, "model": "cm4",
                           "serial": "1%015x" % number, "mac": "dc:a6:32:%02x:%02x:%02x" % (
                               number >> 16 & 0xFF, number >> 8 & 0xFF, number & 0xFF)}
        boards["b%03d" % index] = {"profile": profile, "controller": "ctrl0", "bus": "sim:%s/b%03d.sock"
                                   % (directory, index), "console": "%s/state/console/{host}" % directory,
                                   "slots": nodes}
    return {"plugin": "picluster.carrier.boards", "controllers": {"ctrl0": {"vars": {}}}, "boards": boards}


def sim_counters(state_dir):
    out = subprocess.run(SIM + ["status", "--json", "--state-dir", state_dir], check=True, capture_output=True,
                         text=True).stdout
    return sum(bus["transactions"] for bus in json.loads(out)["buses"].values())


def run_size(nodes, hwmon, backplanes):
    directory = tempfile.mkdtemp(prefix="pcb-", dir="/tmp")
    state_dir = os.path.join(directory, "state")
    try:
        data = topology(directory, hwmon, backplanes)
        path = Path(directory) / "cluster.carrier.yml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        subprocess.run(SIM + ["start", "--topology", str(path), "--state-dir", state_dir], check=True,
                       capture_output=True, timeout=600)
        logs = Path(directory) / "logs"
        logs.mkdir()
        boards = []
        for name, board in data["boards"].items():
            for spec in board["slots"].values():
                (logs / ("%s.log" % spec["host"])).write_text(BOOT.format(host=spec["host"]))
            boards.append({"name": name, "profile": board["profile"], "bus": board["bus"],
                           "nodes": {s: spec["host"] for s, spec in board["slots"].items()}})
        config = _exporter.load_config({"boards": boards, "max_age": 3600, "log_dir": str(logs),
                                        "lock_dir": os.path.join(directory, "locks")})
        registry, collector = _exporter.make_registry(config)
        minimum = hwmon * minimum_reads("itx4_hwmon") + backplanes * minimum_reads("backplane10")
        sim_before = sim_counters(state_dir)
        started = time.monotonic()
        text = generate_latest(registry)
        cold = time.monotonic() - started
        counted = sum(p.counts["transactions"] for p in collector.pollers)
        sim_cold = sim_counters(state_dir) - sim_before
        started = time.monotonic()
        generate_latest(registry)
        warm = time.monotonic() - started
        sim_warm = sim_counters(state_dir) - sim_before - sim_cold
        samples = sum(1 for line in text.decode().splitlines() if line and not line.startswith("#"))
        return {"nodes": nodes, "boards": hwmon + backplanes, "cold": cold, "warm": warm, "counted": counted,
                "sim": sim_cold, "sim_warm": sim_warm, "minimum": minimum, "samples": samples}
    finally:
        subprocess.run(SIM + ["stop", "--state-dir", state_dir], capture_output=True, check=False, timeout=120)
        shutil.rmtree(directory, ignore_errors=True)


def main():
    sizes = [int(arg) for arg in sys.argv[1:]] or list(SIZES)
    rows = [run_size(n, *SIZES[n]) for n in sizes]
    print("carrier_exporter: one scrape of every board (cold) and one within max_age (warm)")
    print("%6s %6s %8s %10s %10s %9s %9s %9s %7s %10s" % ("nodes", "boards", "samples", "cold ms", "warm ms",
                                                          "bus txns", "sim txns", "minimum", "ratio",
                                                          "warm txns"))
    for r in rows:
        print("%6d %6d %8d %10.1f %10.1f %9d %9d %9d %6.2fx %10d" % (
            r["nodes"], r["boards"], r["samples"], r["cold"] * 1000, r["warm"] * 1000, r["counted"], r["sim"],
            r["minimum"], r["counted"] / r["minimum"], r["sim_warm"]))


if __name__ == "__main__":
    main()
