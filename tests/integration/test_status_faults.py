# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""status.yml against the simulator with a node in each fault state, its consoles logged by a real
ser2net (trace-read, trace-timestamp, one always-connected socat logger per console: what the
terminal_server role sets up), and node_health run (locally) on a fake tree for the nodes at login."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from console_rig import free_port  # noqa: E402
from test_playbooks import playbook  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "plugins" / "module_utils"))
from test__health import fake_tree  # noqa: E402

FAULTS = {"node02": "--hang", "node03": "--panic", "node04": "--boot-loop", "node05": "--undervolt"}
WATCHED = ["node01", "node02", "node03", "node04", "node05"]
ROW = re.compile(r'"(\S+)\s+(\d+)\s+(node\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+([^"]*?)"')


class LoggedConsoles:
    """ser2net with a trace-read log per console, and a socat client per console keeping it open."""

    def __init__(self, directory, consoles):
        self.logs = Path(directory) / "logs"
        self.logs.mkdir()
        ports = {host: free_port() for host in consoles}
        config = ["%YAML 1.1", "---"]
        for host, device in consoles.items():
            config += ["connection: &%s" % host, "  accepter: telnet(rfc2217),tcp,127.0.0.1,%d" % ports[host],
                       "  connector: serialdev,%s,115200n81,local" % device, "  options:",
                       "    kickolduser: false", "    max-connections: 2",
                       "    trace-read: %s/%s.log" % (self.logs, host), "    trace-timestamp: true"]
        path = Path(directory) / "ser2net.yaml"
        path.write_text("\n".join(config) + "\n")
        self.procs = [subprocess.Popen(["ser2net", "-n", "-u", "-c", str(path), "-P", str(Path(directory) / "s.pid")],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        for host, port in ports.items():
            self._wait(lambda port=port: self._listening(port), "ser2net on %d" % port)
            self.procs.append(subprocess.Popen(["socat", "-u", "TCP:127.0.0.1:%d" % port, "OPEN:/dev/null"],
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            log = self.logs / ("%s.log" % host)
            self._wait(lambda log=log: log.exists() and b" OPEN (" in log.read_bytes(), "the logger of %s" % host)

    @staticmethod
    def _listening(port):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    @staticmethod
    def _wait(predicate, what, timeout=10):
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, "timed out waiting for %s" % what
            time.sleep(0.05)
        time.sleep(0.1)

    def stop(self):
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)


@pytest.mark.skipif(shutil.which("ser2net") is None or shutil.which("socat") is None,
                    reason="ser2net and socat are needed (.ci/run installs them)")
def test_status_table_shows_each_fault_state(sim_cluster, tmp_path):
    consoles = LoggedConsoles(tmp_path, {host: sim_cluster.consoles[host] for host in WATCHED})
    try:
        for host, flag in FAULTS.items():
            sim_cluster.fault("--host", host, flag, "true")
        sim_cluster.board("carrier1").set_lines({1: {"power": True}, 2: {"power": True}, 3: {"power": True},
                                                 4: {"power": True}})
        sim_cluster.board("rack1").set_lines({1: {"power": True}})
        for host, state in (("node01", "login"), ("node05", "login"), ("node02", "hung"), ("node03", "panic")):
            sim_cluster.wait_state(host, state)
        deadline = time.monotonic() + 30
        while sim_cluster.node("node04")["boots"] < 3:
            assert time.monotonic() < deadline, "node04 did not loop"
            time.sleep(0.1)
        time.sleep(3.5)  # longer than the boot timeout given below: node02 and node03 have been silent that long

        root = fake_tree(tmp_path / "noderoot")
        status = playbook(sim_cluster, "status.yml", "-e", "status_log_dir=%s" % consoles.logs,
                          "-e", "status_boot_timeout=3", "-e", "ansible_connection=local",
                          "-e", "status_health_root=%s" % root)
    finally:
        consoles.stop()
    assert status.returncode == 0, status.stdout + status.stderr
    table = {row[2]: row for row in ROW.findall(status.stdout)}
    print("\n".join(line for line in status.stdout.splitlines() if re.search("node0|BOARD|sensors of", line)))
    assert len(table) == 14, status.stdout
    states = {host: table[host][5] for host in table}
    assert {h: states[h] for h in WATCHED} == {"node01": "login", "node02": "hung", "node03": "panic",
                                               "node04": "boot_loop", "node05": "login"}, status.stdout
    assert states["node06"] == "off" and table["node06"][4] == "off"
    assert all(table[h][4] == "on" for h in WATCHED)
    assert table["node01"][6] == "1" and int(table["node04"][6]) >= 3
    # health on the nodes at login only; the console's under-voltage warning on node05
    assert table["node01"][8].startswith("47.2C load 0.15 mem 14% disk "), table["node01"]
    assert table["node05"][8].startswith("console:undervoltage 47.2C"), table["node05"]
    assert table["node02"][8] == "-" and table["node06"][8] == "-"
    # carrier1 (itx4_hwmon) has a current monitor per slot, rack1 none; its thermometer and fan below the table
    assert all(re.match(r"^\d+\.\d\dV/\d+\.\d\dA/\d+\.\d\dW$", table[h][7]) for h in WATCHED[:4]), status.stdout
    assert table["node05"][7] == "-"
    assert re.search(r'"sensors of carrier1: board_temp \d+\.\dC, fan \d+% \d+rpm"', status.stdout), status.stdout
    assert ("BOARD      SLOT  NODE     SPECIALIZATIONS          POWER    STATE      BOOTS SENSORS            HEALTH"
            in status.stdout)
