# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""power.yml and status.yml make one module run per controller for all its boards (the fleet action) and still
report per node."""

from __future__ import annotations

import json
import re
import time

from test_playbooks import playbook, recap

RACK = ["node%02d" % n for n in range(5, 15)]  # rack1 slots 1-10
CARRIER = ["node01", "node02", "node03", "node04"]  # carrier1 slots 1-4


def results(output, task):
    """host -> its result of the task whose name starts with ``task``, as printed by -v."""
    section = output.split("TASK [" + task, 1)[1].split("\nTASK [", 1)[0].split("\nPLAY ", 1)[0]
    found = {}
    for match in re.finditer(r"^(?:ok|changed|failed|fatal): \[([^\]\s]+)(?: -> [^\]]+)?\]:?[^{]*=> (\{.*\})$",
                             section, re.M):
        found[match.group(1)] = json.loads(match.group(2))
    return found


def calls_made(found):
    """([(the host whose fork made a module call, the boards that call covered)], board -> the slots of its
    part of the call)."""
    made = [(host, r["fleet"]["boards"]) for host, r in found.items() if r.get("fleet", {}).get("leader")]
    slots = {r["board"]: r["fleet"]["slots"] for r in found.values() if "fleet" in r}
    return made, slots


def test_whole_board_one_call_stagger_kept_then_idempotent(sim_cluster):
    started = time.monotonic()
    proc = playbook(sim_cluster, "power.yml", "-l", "board_rack1", "-e", "power_state=on", "-e", "power_stagger=0.3",
                    "-v")
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout + proc.stderr
    nodes = recap(proc.stdout)
    assert sorted(nodes) == RACK and all(nodes[h]["changed"] == 1 for h in RACK), nodes
    found = results(proc.stdout, "Set the node")
    made, slots = calls_made(found)
    assert [boards for _host, boards in made] == [["rack1"]] and slots == {"rack1": list(range(1, 11))}
    assert all(found[h]["slots"][0]["slot"] == n for n, h in enumerate(RACK, 1))
    assert elapsed >= 9 * 0.3, "the stagger between the 10 power-ons was not kept"
    assert all(sim_cluster.node(h)["lines"]["power"] for h in RACK)
    assert not any(sim_cluster.node(h)["lines"]["power"] for h in CARRIER)

    again = playbook(sim_cluster, "power.yml", "-l", "board_rack1", "-e", "power_state=on")
    assert again.returncode == 0, again.stdout + again.stderr
    assert all(recap(again.stdout)[h]["changed"] == 0 for h in RACK)


def test_limit_two_nodes_of_one_board_and_one_of_another_with_check_diff(sim_cluster):
    check = playbook(sim_cluster, "power.yml", "-l", "node01,node02,node07", "-e", "power_state=on", "--check",
                     "--diff", "-v")
    assert check.returncode == 0, check.stdout + check.stderr
    for slot, node in ((1, "node01"), (2, "node02"), (3, "node07")):
        assert "-slot %d: off" % slot in check.stdout and "+slot %d: on" % slot in check.stdout, node
    assert check.stdout.count("+slot ") == 3  # each node shows its own slot only
    assert not any(sim_cluster.node(h)["lines"]["power"] for h in sim_cluster.hosts), "check mode switched a node"

    proc = playbook(sim_cluster, "power.yml", "-l", "node01,node02,node07", "-e", "power_state=on", "-v")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {h: v["changed"] for h, v in recap(proc.stdout).items()} == {"node01": 1, "node02": 1, "node07": 1}
    made, slots = calls_made(results(proc.stdout, "Set the node"))
    # one module run for the controller's two boards, each board its own slots in it
    assert [boards for _host, boards in made] == [["carrier1", "rack1"]] and slots == {"carrier1": [1, 2], "rack1": [3]}
    on = {h for h in sim_cluster.hosts if sim_cluster.node(h)["lines"]["power"]}
    assert on == {"node01", "node02", "node07"}


def test_failing_slot_fails_its_node_only(sim_cluster):
    sim_cluster.fault("--board", "rack1", "--chip", "u1", "--bit", "12", "--stuck", "0")  # slot 5 (node09) power
    proc = playbook(sim_cluster, "power.yml", "-l", "board_rack1", "-e", "power_state=on", "-e", "power_stagger=0",
                    "-v")
    assert proc.returncode != 0
    nodes = recap(proc.stdout)
    assert nodes["node09"]["failed"] == 1
    assert all(nodes[h]["failed"] == 0 and nodes[h]["changed"] == 1 for h in RACK if h != "node09"), nodes
    assert "slot 5 of board rack1" in proc.stdout and "should be asserted but the pin reads 0" in proc.stdout
    powered = {h for h in RACK if sim_cluster.node(h)["lines"]["power"]}
    assert powered == set(RACK) - {"node09"}


def test_status_reads_each_board_once_in_one_run(sim_cluster):
    playbook(sim_cluster, "power.yml", "-l", "node03", "-e", "power_state=on")
    proc = playbook(sim_cluster, "status.yml", "-e", "status_health=false", "-v")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    made, slots = calls_made(results(proc.stdout, "Read the node's lines"))
    assert [boards for _host, boards in made] == [["carrier1", "rack1"]]
    assert slots == {"carrier1": [1, 2, 3, 4], "rack1": list(range(1, 11))}
    rows = re.findall(r'"(\S+)\s+(\d+)\s+(node\d+)\s+(\S+)\s+(on|off|reset|usb_boot)\s', proc.stdout)
    table = {row[2]: (row[0], int(row[1]), row[4]) for row in rows}
    assert len(table) == 14 and table["node03"] == ("carrier1", 3, "on") and table["node04"][2] == "off"
