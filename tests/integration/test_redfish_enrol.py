# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/redfish_enrol.yml run by ansible-playbook over the simulated cluster's inventory: the Metal3
manifests, their Secrets and the Ironic node list, what they hold, their modes, idempotence, refusals."""

from __future__ import annotations

import base64
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "inventory" / "sim" / "cluster.carrier.yml"
PASSWORD = "enrol-s3cret-pw"


def enrol(tmp_path, *args, credentials=None, inventory=INVENTORY):
    """Run the playbook in ``tmp_path``; the credentials go in a 0600 vars file, never on the command line."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               PATH="%s:%s" % (Path(sys.executable).parent, os.environ.get("PATH", "")))
    command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory),
               str(REPO / "playbooks" / "redfish_enrol.yml"), "-e", "ansible_python_interpreter=%s" % sys.executable,
               "-e", "redfish_enrol_output_dir=%s" % (tmp_path / "out")]
    if credentials is not None:
        vars_file = tmp_path / "credentials.yml"
        vars_file.write_text(yaml.safe_dump(credentials))
        vars_file.chmod(0o600)
        command += ["-e", "@%s" % vars_file]
    return subprocess.run(command + list(args), capture_output=True, text=True, env=env, cwd=str(tmp_path),
                          timeout=300, check=False)


def inventory_nodes():
    topology = yaml.safe_load(INVENTORY.read_text())
    return {slot["host"]: (board_name, int(number), slot["mac"])
            for board_name, board in topology["boards"].items() for number, slot in board["slots"].items()}


def test_manifests_secrets_and_ironic_nodes(tmp_path):
    proc = enrol(tmp_path, credentials={"redfish_enrol_username": "ironic", "redfish_enrol_password": PASSWORD})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert PASSWORD not in proc.stdout + proc.stderr
    assert base64.b64encode(PASSWORD.encode()).decode() not in proc.stdout + proc.stderr
    out = tmp_path / "out"
    nodes = inventory_nodes()
    assert len(nodes) == 14

    hosts = list(yaml.safe_load_all((out / "baremetalhosts.yaml").read_text()))
    assert sorted(h["metadata"]["name"] for h in hosts) == sorted(nodes)
    for host in hosts:
        name = host["metadata"]["name"]
        assert host["apiVersion"] == "metal3.io/v1alpha1" and host["kind"] == "BareMetalHost"
        assert host["metadata"]["namespace"] == "metal3"
        assert host["metadata"]["labels"] == {"picluster.carrier/controller": "ctrl0",
                                              "picluster.carrier/board": nodes[name][0]}
        # The sim controller's ansible_host, and the service's default port.
        assert host["spec"]["bmc"] == {"address": "redfish://localhost:8443/redfish/v1/Systems/%s" % name,
                                       "credentialsName": "%s-bmc-secret" % name,
                                       "disableCertificateVerification": False}
        assert host["spec"]["bootMACAddress"] == nodes[name][2]
        assert host["spec"]["online"] is False

    secrets_file = out / "bmc-secrets.yaml"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    secrets = {s["metadata"]["name"]: s for s in yaml.safe_load_all(secrets_file.read_text())}
    assert sorted(secrets) == sorted("%s-bmc-secret" % name for name in nodes)
    for secret in secrets.values():
        assert secret["apiVersion"] == "v1" and secret["kind"] == "Secret" and secret["type"] == "Opaque"
        assert secret["metadata"]["namespace"] == "metal3"
        assert base64.b64decode(secret["data"]["username"]) == b"ironic"
        assert base64.b64decode(secret["data"]["password"]) == PASSWORD.encode()

    ironic_file = out / "ironic-nodes.yaml"
    assert stat.S_IMODE(ironic_file.stat().st_mode) == 0o600
    ironic = yaml.safe_load(ironic_file.read_text())
    assert sorted(n["name"] for n in ironic["nodes"]) == sorted(nodes)
    node05 = next(n for n in ironic["nodes"] if n["name"] == "node05")
    assert node05 == {
        "name": "node05", "driver": "redfish",
        "driver_info": {"redfish_address": "https://localhost:8443", "redfish_system_id": "/redfish/v1/Systems/node05",
                        "redfish_username": "ironic", "redfish_password": PASSWORD, "redfish_verify_ca": True},
        "extra": {"carrier_controller": "ctrl0", "carrier_board": "rack1", "carrier_slot": 1},
        "ports": [{"address": "dc:a6:32:92:8c:d7"}],
    }

    before = {p.name: p.read_bytes() for p in out.iterdir()}
    again = enrol(tmp_path, credentials={"redfish_enrol_username": "ironic", "redfish_enrol_password": PASSWORD})
    assert again.returncode == 0, again.stdout + again.stderr
    assert re.search(r"localhost\s+:\s+ok=\d+\s+changed=0\s", again.stdout), again.stdout
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_controller_address_port_and_unverified_certificates(tmp_path):
    credentials = {"redfish_enrol_username": "metal3", "redfish_enrol_password": PASSWORD,
                   "redfish_enrol_verify_certs": False}
    proc = enrol(tmp_path, "-e", "redfish_enrol_namespace=pis", credentials=credentials)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    hosts = list(yaml.safe_load_all((tmp_path / "out" / "baremetalhosts.yaml").read_text()))
    assert {h["metadata"]["namespace"] for h in hosts} == {"pis"}
    assert all(h["spec"]["bmc"]["disableCertificateVerification"] is True for h in hosts)
    ironic = yaml.safe_load((tmp_path / "out" / "ironic-nodes.yaml").read_text())
    assert {n["driver_info"]["redfish_verify_ca"] for n in ironic["nodes"]} == {False}
    credentials.update(redfish_enrol_verify_certs=True, redfish_enrol_ca_file="/etc/ironic/carrier-ca.crt")
    proc = enrol(tmp_path, credentials=credentials)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ironic = yaml.safe_load((tmp_path / "out" / "ironic-nodes.yaml").read_text())
    assert {n["driver_info"]["redfish_verify_ca"] for n in ironic["nodes"]} == {"/etc/ironic/carrier-ca.crt"}

    # The controller's own service address and port (its host vars) win over ansible_host.
    host_vars = tmp_path / "host_vars"
    host_vars.mkdir()
    (host_vars / "ctrl0.yml").write_text("redfish_service_listen: 192.0.2.10\nredfish_service_port: 9443\n")
    inventory_dir = tmp_path / "inventory"
    inventory_dir.mkdir()
    (inventory_dir / "cluster.carrier.yml").write_text(INVENTORY.read_text())
    (inventory_dir / "host_vars").symlink_to(host_vars)
    proc = enrol(tmp_path, credentials=credentials, inventory=inventory_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    hosts = list(yaml.safe_load_all((tmp_path / "out" / "baremetalhosts.yaml").read_text()))
    assert {h["spec"]["bmc"]["address"].rsplit("/", 1)[0] for h in hosts} == {
        "redfish://192.0.2.10:9443/redfish/v1/Systems"}
    ironic = yaml.safe_load((tmp_path / "out" / "ironic-nodes.yaml").read_text())
    assert {n["driver_info"]["redfish_address"] for n in ironic["nodes"]} == {"https://192.0.2.10:9443"}


def test_missing_credentials_are_refused_and_nothing_written(tmp_path):
    proc = enrol(tmp_path, credentials={"redfish_enrol_username": "ironic"})
    assert proc.returncode != 0
    assert "redfish_enrol_password" in proc.stdout and "ctrl0" in proc.stdout, proc.stdout
    assert not (tmp_path / "out").exists()
