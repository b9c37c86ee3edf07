# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The redfish_service role run by ansible-playbook on the control node over the simulated cluster's inventory, every
path in a temporary directory and the unit left alone: the configuration it writes (checked by the service itself),
console ports numbered as terminal_server numbers them, modes, idempotence, check mode, and its refusals. The service
running under systemd is the molecule scenario's (roles/redfish_service/molecule/default)."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "inventory" / "sim" / "cluster.carrier.yml"
PASSWORD = "role-s3cret-pw"


def converge(tmp_path, *args, extra=None):
    root = tmp_path / "root"
    (root / "units").mkdir(parents=True, exist_ok=True)
    settings = {
        "redfish_service_accounts": [{"name": "admin", "password": PASSWORD, "role": "Administrator"}],
        "redfish_service_packages": [], "redfish_service_manage_service": False,
        "redfish_service_config_dir": str(root / "etc"), "redfish_service_install_dir": str(root / "lib"),
        "redfish_service_unit_dir": str(root / "units"), "redfish_service_state_dir": str(root / "state"),
        "redfish_service_tls_dir": str(root / "etc" / "tls"),
        "redfish_service_collections_path": str(REPO / ".collections"), "redfish_service_python": sys.executable,
    }
    settings.update(extra or {})
    vars_file = tmp_path / "vars.yml"
    vars_file.write_text(yaml.safe_dump(settings))
    vars_file.chmod(0o600)
    play = tmp_path / "play.yml"
    play.write_text("- hosts: ctrl0\n  gather_facts: false\n  roles: [picluster.carrier.redfish_service]\n")
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               PATH="%s:%s" % (Path(sys.executable).parent, os.environ.get("PATH", "")))
    command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(INVENTORY), str(play),
               "-e", "ansible_python_interpreter=%s" % sys.executable, "-e", "@%s" % vars_file] + list(args)
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=300,
                          check=False)
    return proc, root


def changed(output):
    return int(re.search(r"ctrl0\s+:\s+ok=\d+\s+changed=(\d+)", output).group(1))


def test_files_consoles_idempotence_and_check_mode(tmp_path):
    proc, root = converge(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert PASSWORD not in proc.stdout + proc.stderr
    config = json.loads((root / "etc" / "redfish.json").read_text())
    assert config["listen"] == "127.0.0.1" and config["port"] == 8443 and config["manager"] == "ctrl0"
    assert config["accounts_file"] == str(root / "etc" / "redfish-accounts.json")
    assert [board["name"] for board in config["boards"]] == ["carrier1", "rack1"]
    rack1 = config["boards"][1]
    assert rack1["profile"] == "backplane10" and rack1["bus"] == "sim:/tmp/picluster-sim/bus2.sock"
    # terminal_server's ports: 7001 up, the nodes with a console device in name order (node01 .. node14).
    assert config["boards"][0]["nodes"]["1"] == {"host": "node01", "model": "cm4", "console_port": 7001}
    assert rack1["nodes"]["6"] == {"host": "node10", "model": "cm4", "console_port": 7010}
    assert rack1["nodes"]["10"] == {"host": "node14", "model": "cm5", "console_port": 7014}
    cert, key = Path(config["tls_cert"]), Path(config["tls_key"])
    assert cert.parent == root / "etc" / "tls" and cert.read_text().startswith("-----BEGIN CERTIFICATE-----")
    san = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-ext", "subjectAltName"],
                         capture_output=True, text=True, check=True).stdout
    assert "IP Address:127.0.0.1" in san and "DNS:ctrl0" in san
    modes = {path: stat.S_IMODE(path.stat().st_mode) for path in (
        root / "etc" / "redfish.json", root / "etc" / "redfish-accounts.json", key, cert.parent, root / "state")}
    assert modes == {root / "etc" / "redfish.json": 0o600, root / "etc" / "redfish-accounts.json": 0o600,
                     key: 0o600, cert.parent: 0o700, root / "state": 0o700}
    assert PASSWORD not in (root / "etc" / "redfish-accounts.json").read_text()
    unit = (root / "units" / "picluster-carrier-redfish.service").read_text()
    assert "ExecStart=%s %s/carrier-redfish.py --config %s/redfish.json\n" % (
        sys.executable, root / "lib", root / "etc") in unit

    again, _root = converge(tmp_path)
    assert again.returncode == 0 and changed(again.stdout) == 0, again.stdout

    # A new address: check mode says what would change and writes nothing, the run then makes a new certificate.
    before = {p: p.read_bytes() for p in (root / "etc").rglob("*") if p.is_file()}
    check, _root = converge(tmp_path, "--check", extra={"redfish_service_listen": "127.0.0.2"})
    assert check.returncode == 0 and changed(check.stdout) > 0, check.stdout
    assert {p: p.read_bytes() for p in (root / "etc").rglob("*") if p.is_file()} == before
    moved, _root = converge(tmp_path, extra={"redfish_service_listen": "127.0.0.2"})
    assert moved.returncode == 0, moved.stdout + moved.stderr
    config = json.loads((root / "etc" / "redfish.json").read_text())
    assert config["listen"] == "127.0.0.2" and Path(config["tls_cert"]) != cert


def test_any_address_and_bad_accounts_are_refused(tmp_path):
    proc, root = converge(tmp_path, extra={"redfish_service_listen": "0.0.0.0"})
    assert proc.returncode != 0 and "redfish_service_allow_any_address" in proc.stdout, proc.stdout
    assert not (root / "etc").exists()
    allowed, root = converge(tmp_path, extra={"redfish_service_listen": "0.0.0.0",
                                              "redfish_service_allow_any_address": True})
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    bad_role, _root = converge(tmp_path, extra={"redfish_service_accounts": [
        {"name": "admin", "password": PASSWORD, "role": "root"}]})
    assert bad_role.returncode != 0 and "role" in bad_role.stdout, bad_role.stdout
    assert PASSWORD not in bad_role.stdout + bad_role.stderr
