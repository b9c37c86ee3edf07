# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Real ansible-playbook runs of power.yml and status.yml against the simulated cluster."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def playbook(cluster, name, *args, forks=14):
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"), ANSIBLE_FORKS=str(forks),
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               PATH="%s:%s" % (Path(sys.executable).parent, os.environ.get("PATH", "")))
    command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", cluster.inventory,
               str(REPO / "playbooks" / name), "-e", "ansible_python_interpreter=%s" % sys.executable,
               "-e", "carrier_lock_dir=%s" % os.path.join(cluster.dir, "locks")] + list(args)
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=str(REPO), timeout=600, check=False)
    return proc


def recap(output):
    """host -> {ok, changed, failed, ...} from the PLAY RECAP."""
    result = {}
    for line in output.splitlines():
        match = re.match(r"^(\S+)\s+:\s+(.*)$", line)
        if match and "changed=" in line:
            result[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return result


def test_power_all_nodes_with_14_forks_then_idempotent(sim_cluster):
    proc = playbook(sim_cluster, "power.yml", "-e", "power_state=on", "-e", "power_stagger=0.1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    nodes = recap(proc.stdout)
    hosts = sorted(sim_cluster.hosts)
    assert sorted(h for h in nodes if h in hosts) == hosts
    assert all(nodes[h]["changed"] == 1 and nodes[h]["failed"] == 0 for h in hosts), nodes
    status = sim_cluster.status()["boards"]
    powered = {slot["host"]: slot["lines"]["power"] for board in status.values() for slot in board["slots"].values()}
    assert powered == {h: True for h in hosts}

    again = playbook(sim_cluster, "power.yml", "-e", "power_state=on")
    assert again.returncode == 0, again.stdout + again.stderr
    assert all(recap(again.stdout)[h]["changed"] == 0 for h in hosts)

    check = playbook(sim_cluster, "power.yml", "-e", "power_state=off", "--check", "--diff", "-l", "board_rack1")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "-slot 3: on" in check.stdout and "+slot 3: off" in check.stdout
    assert all(sim_cluster.node(h)["lines"]["power"] for h in hosts), "check mode switched a node off"


def test_cycle_one_node_with_limit_and_status_table(sim_cluster):
    proc = playbook(sim_cluster, "power.yml", "-l", "node03", "-e", "power_state=on")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sim_cluster.wait_state("node03", "login")
    boots = sim_cluster.node("node03")["boots"]
    proc = playbook(sim_cluster, "power.yml", "-l", "node03", "-e", "power_state=cycle")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert recap(proc.stdout)["node03"]["changed"] == 1
    sim_cluster.wait_state("node03", "login")
    assert sim_cluster.node("node03")["boots"] == boots + 1
    assert sim_cluster.node("node02")["lines"]["power"] is False  # --limit kept the others out

    status = playbook(sim_cluster, "status.yml")
    assert status.returncode == 0, status.stdout + status.stderr
    rows = re.findall(r'"(\S+)\s+(\d+)\s+(node\d+)\s+(\S+)\s+(on|off|reset|usb_boot)\s', status.stdout)
    table = {row[2]: (row[0], int(row[1]), row[3], row[4]) for row in rows}
    assert len(table) == 14
    assert table["node03"] == ("carrier1", 3, "pihole", "on")
    assert table["node05"][0:2] == ("rack1", 1) and table["node05"][3] == "off"


def test_bad_power_state_is_refused(sim_cluster):
    proc = playbook(sim_cluster, "power.yml", "-e", "power_state=sleep")
    assert proc.returncode != 0
    assert "power_state must be one of on, off, cycle, reset (got sleep)" in proc.stdout
    assert not any(sim_cluster.node(h)["lines"]["power"] for h in sim_cluster.hosts)
