# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""power.yml and status.yml make one module call per board (the fleet action) and still report per node."""

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


def leaders(found):
    """board -> (the hosts whose fork made the board call, the slots of that call)."""
    boards = {}
    for host, result in found.items():
        if result.get("fleet", {}).get("leader"):
            boards.setdefault(result["board"], []).append((host, result["fleet"]["slots"]))
    return boards


def test_whole_board_one_call_stagger_kept_then_idempotent(sim_cluster):
    started = time.monotonic()
    proc = playbook(sim_cluster, "power.yml", "-l", "board_rack1", "-e", "power_state=on", "-e", "power_stagger=0.3",
                    "-v")
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout + proc.stderr
    nodes = recap(proc.stdout)
    assert sorted(nodes) == RACK and all(nodes[h]["changed"] == 1 for h in RACK), nodes
    found = results(proc.stdout, "Set the node")
    assert [slots for _host, slots in leaders(found)["rack1"]] == [list(range(1, 11))]
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
    calls = leaders(results(proc.stdout, "Set the node"))
    assert [slots for _host, slots in calls["carrier1"]] == [[1, 2]] and [s for _host, s in calls["rack1"]] == [[3]]
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


def test_status_reads_each_board_once_per_board(sim_cluster):
    playbook(sim_cluster, "power.yml", "-l", "node03", "-e", "power_state=on")
    proc = playbook(sim_cluster, "status.yml", "-e", "status_health=false", "-v")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    calls = leaders(results(proc.stdout, "Read the node's lines"))
    assert sorted(calls) == ["carrier1", "rack1"]
    assert [s for _host, s in calls["carrier1"]] == [[1, 2, 3, 4]]
    assert [s for _host, s in calls["rack1"]] == [list(range(1, 11))]
    rows = re.findall(r'"(\S+)\s+(\d+)\s+(node\d+)\s+(\S+)\s+(on|off|reset|usb_boot)\s', proc.stdout)
    table = {row[2]: (row[0], int(row[1]), row[4]) for row in rows}
    assert len(table) == 14 and table["node03"] == ("carrier1", 3, "on") and table["node04"][2] == "off"
