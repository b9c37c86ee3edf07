# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: the inventory plugin on a 1,000-board / 10,000-node topology vs a static YAML inventory.

Generates a topology of BOARDS backplane10 boards (10 slots each, every node with a serial, a MAC,
a model, specializations and a console pattern), then the same hosts, host variables and groups
as a static YAML inventory (what the plugin produces, written out by ``ansible-inventory --list
--yaml`` from the topology), and times ``ansible-inventory --list`` on each (best of RUNS). Prints
both times and the ratio; no pass/fail.

    .venv/bin/python bench/bench_inventory.py [--boards 1000] [--runs 3] [--profile]

``--profile`` also runs the plugin once under cProfile and prints the top functions.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))
import collection_link  # noqa: E402

COLLECTIONS = str(collection_link.collections_path())
BIN = os.path.dirname(sys.executable)
SPECS = (["ceph_storage", "k3s_agent"], ["k3s_agent"], ["k3s_agent"], ["k3s_server"], ["pihole"])


def generate_topology(path, boards):
    """Write the topology as YAML text directly (fast, and the same shape a user would write)."""
    lines = [
        "plugin: picluster.carrier.boards",
        "controllers:",
        "  ctrl0:",
        "    vars: {ansible_connection: local}",
        "boards:",
    ]
    node = 0
    for b in range(boards):
        lines += [
            "  rack%04d:" % b,
            "    profile: backplane10",
            "    controller: ctrl0",
            "    bus: sim:/tmp/picluster-bench/bus%04d.sock" % b,
            "    console: /dev/serial/by-id/{board}-slot{slot:02d}",
            "    vars: {rack_row: %d}" % (b // 20),
            "    slots:",
        ]
        for slot in range(1, 11):
            node += 1
            model = "cm5" if node % 4 == 0 else "cm4"
            oui = "2c:cf:67" if model == "cm5" else "dc:a6:32"
            mac = "%s:%02x:%02x:%02x" % (oui, (node >> 16) & 0xFF, (node >> 8) & 0xFF, node & 0xFF)
            specs = ", ".join(SPECS[node % len(SPECS)])
            lines.append(
                '      %d: {host: n%05d, model: %s, serial: "10000000%08x", mac: "%s", specializations: [%s]}'
                % (slot, node, model, 0xB7000000 + node, mac, specs)
            )
    with open(path, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    return node


def env():
    e = dict(os.environ)
    e.update(
        ANSIBLE_COLLECTIONS_PATH=COLLECTIONS,
        ANSIBLE_INVENTORY_ENABLED="picluster.carrier.boards,yaml",
        ANSIBLE_INVENTORY_UNPARSED_FAILED="true",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_DEPRECATION_WARNINGS="false",
    )
    return e


def inventory_cmd(source, *extra):
    return [os.path.join(BIN, "ansible-inventory"), "-i", source, *extra]


def static_from(source, dest_yaml, dest_json):
    """The plugin's output for `source` rewritten as static inventories (same hosts, vars, groups).

    Written twice: as block-style YAML (what a person writes) and as JSON (YAML's subset that
    ansible-core parses on a faster path: the stricter baseline).
    """
    out = subprocess.run(inventory_cmd(source, "--list"), env=env(), check=True, capture_output=True, text=True)
    data = json.loads(out.stdout)
    hostvars = data["_meta"]["hostvars"]
    groups = {}
    for name, group in data.items():
        if name in ("_meta", "all"):
            continue
        entry = {}
        if group.get("hosts"):
            entry["hosts"] = {h: (hostvars.get(h) or None) if name in ("carrier_nodes", "carrier_controllers") else None
                              for h in group["hosts"]}
        if group.get("children"):
            entry["children"] = {c: None for c in group["children"]}
        groups[name] = entry
    import yaml

    inventory = {"all": {"children": groups}}
    with open(dest_yaml, "w") as fh:
        yaml.dump(inventory, fh, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), default_flow_style=False)
    with open(dest_json, "w") as fh:
        json.dump(inventory, fh)
    return len(hostvars)


def best_times(cmds, runs):
    """Best (wall, CPU) seconds of each command over `runs` rounds, the commands interleaved in
    each round so a load spike from elsewhere on the machine hits all of them alike. CPU is the
    child's user + system time: on a shared machine it moves less than the wall time."""
    best = [(float("inf"), float("inf"))] * len(cmds)
    for _run in range(runs):
        for i, cmd in enumerate(cmds):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run(cmd, env=env(), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            wall = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            best[i] = (min(best[i][0], wall), min(best[i][1], cpu))
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boards", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one plugin run")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-inventory-") as tmp:
        topo = os.path.join(tmp, "big.carrier.yml")
        static_yaml = os.path.join(tmp, "static.yml")
        static_json = os.path.join(tmp, "static-json.yml")
        t0 = time.perf_counter()
        nodes = generate_topology(topo, args.boards)
        hosts = static_from(topo, static_yaml, static_json)
        print("generated %d boards, %d nodes (%d hosts with the controller) in %.1f s"
              % (args.boards, nodes, hosts, time.perf_counter() - t0))
        print("sizes: topology %.1f MiB, static YAML %.1f MiB, static JSON %.1f MiB"
              % tuple(os.path.getsize(p) / 2**20 for p in (topo, static_yaml, static_json)))

        # The same topology with the inventory cache on (jsonfile): after a first run fills it,
        # each timed run is a cache hit (the file is still parsed for the plugin's options).
        cached = os.path.join(tmp, "cached.carrier.yml")
        with open(cached, "w") as out, open(topo) as src:
            out.write("cache: true\ncache_plugin: ansible.builtin.jsonfile\ncache_connection: %s\n"
                      % os.path.join(tmp, "cache"))
            out.write(src.read())
        subprocess.run(inventory_cmd(cached, "--list"), env=env(), check=True, stdout=subprocess.DEVNULL)

        rows = [("picluster.carrier.boards (topology)", topo), ("  the same, inventory cache hit", cached),
                ("static inventory, YAML", static_yaml), ("static inventory, JSON-in-YAML", static_json)]
        times = best_times([inventory_cmd(path, "--list") for _name, path in rows], args.runs)
        plugin_wall, plugin_cpu = times[0]
        print("ansible-inventory --list, best of %d (wall / CPU seconds; ratio = plugin / this row):" % args.runs)
        for (name, _path), (wall, cpu) in zip(rows, times):
            print("  %-38s %7.2f s / %6.2f s   ratio %5.2f / %5.2f"
                  % (name, wall, cpu, plugin_wall / wall, plugin_cpu / cpu))

        if args.profile:
            prof = os.path.join(tmp, "plugin.prof")
            subprocess.run([sys.executable, "-m", "cProfile", "-o", prof, *inventory_cmd(topo, "--list")],
                           env=env(), check=True, stdout=subprocess.DEVNULL)
            import pstats

            print("\ncProfile of one plugin run (top 25 by cumulative time):")
            pstats.Stats(prof).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
