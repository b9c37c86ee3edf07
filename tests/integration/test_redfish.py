# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""carrier-redfish in front of the simulator, started as the redfish_service role's unit starts it
(its entry script, plain HTTP on 127.0.0.1 and once over TLS with a certificate ``openssl req -x509``
makes here), driven by real Redfish clients: sushy (what Ironic uses) powers nodes on and off and sets
the boot device, DMTF's Redfish Service Validator checks every resource against the DSP8010 schemas,
and Redfish resets race node_power tasks on one chip without losing a write.

The validator needs the DSP8010 CSDL files: it downloads them unless it is given a directory
(``REDFISH_SCHEMA_DIR``, a DSP8010 ``csdl/`` directory); without network and without that directory
its test is skipped, with the reason.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from modrun import run_module  # noqa: E402

pytest.importorskip("flask")
pytest.importorskip("cheroot")

from ansible_collections.picluster.carrier.plugins.module_utils._redfish.accounts import hash_password  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
ENTRY = REPO / "roles" / "redfish_service" / "files" / "carrier-redfish.py"
USERS = {"admin": ("admin-pw-1", "Administrator"), "viewer": ("viewer-pw-1", "ReadOnly")}


class Redfish:
    """A running carrier-redfish process and a small client for it."""

    def __init__(self, url, process, ca=None):
        self.url = url
        self.process = process
        self.ca = ca

    def request(self, method, path, body=None, user="admin", headers=None):
        """``(status, headers, JSON body or None)``."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if user:
            login = ("%s:%s" % (user, USERS[user][0])).encode()
            request.add_header("Authorization", "Basic " + base64.b64encode(login).decode())
        if data is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        context = None
        if self.url.startswith("https"):
            import ssl
            context = ssl.create_default_context(cafile=self.ca)
        try:
            with urllib.request.urlopen(request, timeout=30, context=context) as response:
                text = response.read()
                return response.status, response.headers, json.loads(text) if text else None
        except urllib.error.HTTPError as exc:
            text = exc.read()
            return exc.code, exc.headers, json.loads(text) if text else None

    def reset(self, host, reset_type, user="admin", timeout=120):
        """POST the reset; a 202 (the reset outlasted the service's task threshold, as on a loaded machine)
        is followed to its end on the task monitor. ``(status, headers, body)`` of the outcome."""
        status, headers, body = self.request("POST", "/redfish/v1/Systems/%s/Actions/ComputerSystem.Reset" % host,
                                             {"ResetType": reset_type}, user=user)
        deadline = time.monotonic() + timeout
        monitor = headers.get("Location") if status == 202 else None
        while status == 202 and time.monotonic() < deadline:
            time.sleep(0.2)
            status, headers, body = self.request("GET", monitor, user=user)
        return status, headers, body


def service_config(cluster, directory, tls=None, consoles=None):
    accounts = {"version": 1, "accounts": {u: {"password_hash": hash_password(p, iterations=1000), "role": r}
                                           for u, (p, r) in USERS.items()}}
    accounts_file = directory / "accounts.json"
    accounts_file.write_text(json.dumps(accounts))
    accounts_file.chmod(0o600)
    lock_dir = os.path.join(cluster.dir, "locks")
    os.makedirs(lock_dir, exist_ok=True)
    boards = [{"name": name, "profile": board["profile"], "bus": board["bus"], "lock_dir": lock_dir,
               "nodes": {str(slot): {"host": spec["host"], "model": spec.get("model", "cm4"),
                                     "console_port": (consoles or {}).get(spec["host"])}
                         for slot, spec in board["slots"].items()}}
              for name, board in cluster.data["boards"].items()]
    config = {"listen": "127.0.0.1", "port": 0, "tls_cert": None, "tls_key": None,
              "accounts_file": str(accounts_file), "lock_dir": lock_dir, "state_dir": str(directory / "state"),
              "session_timeout": 600, "console_host": "127.0.0.1", "boards": boards}
    if tls:
        config["tls_cert"], config["tls_key"] = tls
    path = directory / "redfish.json"
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


def start(config_path):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"))
    if ENTRY.exists():
        command = [sys.executable, str(ENTRY), "--config", str(config_path)]
    else:
        command = [sys.executable, "-c", "import sys; from ansible_collections.picluster.carrier.plugins."
                   "module_utils._redfish import main; sys.exit(main(sys.argv[1:]))", "--config", str(config_path)]
        env["PYTHONPATH"] = str(REPO / ".collections")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = process.stdout.readline()
    match = re.search(r"serving (https?://[\d.]+:\d+)", line)
    if not match:
        process.kill()
        raise AssertionError("carrier-redfish did not start: %r %s" % (line, process.stderr.read()))
    return process, match.group(1)


@pytest.fixture
def redfish_factory(sim_cluster, tmp_path):
    running = []

    def make(tls=False, consoles=None):
        ca = None
        tls_files = None
        if tls:
            cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                            "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                            "-out", str(cert)], check=True, capture_output=True)
            tls_files, ca = (str(cert), str(key)), str(cert)
        process, url = start(service_config(sim_cluster, tmp_path, tls_files, consoles))
        running.append(process)
        service = Redfish(url, process, ca)
        service.cluster = sim_cluster
        return service

    yield make
    for process in running:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            raise AssertionError("carrier-redfish did not stop on SIGTERM") from None
        assert process.returncode == 0, process.stderr.read()


@pytest.fixture
def redfish(redfish_factory):
    return redfish_factory()


def powered(cluster, host):
    return cluster.node(host)["lines"]["power"]


def test_power_on_off_and_errors_over_http(redfish):
    cluster = redfish.cluster
    status, _headers, root = redfish.request("GET", "/redfish/v1/", user=None)
    assert status == 200 and root["RedfishVersion"]
    assert redfish.request("GET", "/redfish/v1/Systems", user=None)[0] == 401
    assert redfish.reset("node05", "On")[0] == 204
    assert powered(cluster, "node05")
    cluster.wait_state("node05", ("bootloader", "kernel", "login"))
    assert redfish.request("GET", "/redfish/v1/Systems/node05")[2]["PowerState"] == "On"
    status, _headers, body = redfish.reset("node06", "Nmi")
    assert status == 400 and body["error"]["code"].endswith("ActionParameterValueNotInList")
    assert redfish.reset("node06", "On", user="viewer")[0] == 403
    assert not powered(cluster, "node06")
    assert redfish.reset("node05", "ForceOff")[0] == 204
    assert not powered(cluster, "node05")


def test_sushy_drives_power_and_boot_device_over_tls(redfish_factory):
    sushy = pytest.importorskip("sushy")
    redfish = redfish_factory(tls=True)
    cluster = redfish.cluster
    root = sushy.Sushy(redfish.url + "/redfish/v1", username="admin", password=USERS["admin"][0], verify=redfish.ca)
    system = root.get_system("/redfish/v1/Systems/node01")
    assert system.power_state == sushy.POWER_STATE_OFF
    system.reset_system(sushy.RESET_ON)
    system.refresh()
    assert system.power_state == sushy.POWER_STATE_ON and powered(cluster, "node01")
    assert sushy.BOOT_SOURCE_TARGET_PXE in system.get_allowed_system_boot_source_values()
    system.set_system_boot_options(sushy.BOOT_SOURCE_TARGET_PXE, enabled=sushy.BOOT_SOURCE_ENABLED_CONTINUOUS)
    system.refresh()
    assert system.boot.target == sushy.BOOT_SOURCE_TARGET_PXE
    assert system.boot.enabled == sushy.BOOT_SOURCE_ENABLED_CONTINUOUS
    system.reset_system(sushy.RESET_FORCE_OFF)
    system.refresh()
    assert system.power_state == sushy.POWER_STATE_OFF and not powered(cluster, "node01")
    assert [s.identity for s in root.get_system_collection().get_members()][:2] == ["node01", "node02"]


def test_service_validator_finds_no_error(redfish, tmp_path):
    validator = shutil.which("rf_service_validator") or str(Path(sys.executable).parent / "rf_service_validator")
    if not os.path.exists(validator):
        pytest.skip("rf_service_validator is not installed (requirements/test.txt: redfish-service-validator)")
    schemas = os.environ.get("REDFISH_SCHEMA_DIR")
    if not schemas or not os.path.isfile(os.path.join(schemas, "ComputerSystem_v1.xml")):
        pytest.skip("the validator needs DMTF's DSP8010 CSDL files offline: set REDFISH_SCHEMA_DIR to a csdl/ "
                    "directory")
    ini = tmp_path / "validator.ini"  # the password in a 0600 file, not on the command line
    ini.write_text("[Authentication]\nuser = admin\npassword = %s\nauthtype = Session\n" % USERS["admin"][0])
    ini.chmod(0o600)
    result = subprocess.run([validator, "--config", str(ini), "--rhost", redfish.url, "--schema_directory", schemas,
                             "--skipschema", "--logdir", str(tmp_path / "validator")],
                            capture_output=True, text=True, timeout=600, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert not re.search(r"\b[1-9]\d* errors?\b", output, re.IGNORECASE), output[-6000:]


def test_redfish_resets_and_node_power_on_one_chip_lose_no_write(redfish, tmp_path):
    """Slots 1-3 of rack1's first expander switched over Redfish while node_power switches slots 4 and 5
    of the same chip: every request succeeds and each slot ends exactly as its last request left it."""
    cluster = redfish.cluster
    spec = cluster.data["boards"]["rack1"]
    hosts = {slot: spec["slots"][slot]["host"] for slot in (1, 2, 3, 4, 5)}
    rounds = 4
    failures = []

    def over_redfish(slot):
        for i in range(rounds):
            status, _headers, body = redfish.reset(hosts[slot], "On" if i % 2 == 0 else "ForceOff")
            if status != 204:
                failures.append((slot, status, body))

    def over_ansible(slot):
        for i in range(rounds):
            result = run_module("node_power", {"board": "rack1", "profile": spec["profile"], "bus": spec["bus"],
                                               "lock_dir": os.path.join(cluster.dir, "locks"), "slot": slot,
                                               "state": "on" if i % 2 == 0 else "off", "stagger": 0},
                                tmp_path / ("slot%d" % slot))
            if result.exit_status != 0:
                failures.append((slot, result.get("msg")))

    threads = [threading.Thread(target=over_redfish, args=(s,)) for s in (1, 2, 3)]
    threads += [threading.Thread(target=over_ansible, args=(s,)) for s in (4, 5)]
    for slot in (4, 5):
        (tmp_path / ("slot%d" % slot)).mkdir()
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not failures, failures
    # rounds is even: every slot's last request was off; then one more On over Redfish for slot 2 only
    assert [powered(cluster, hosts[s]) for s in (1, 2, 3, 4, 5)] == [False] * 5
    assert redfish.reset(hosts[2], "On")[0] == 204
    assert [powered(cluster, hosts[s]) for s in (1, 2, 3, 4, 5)] == [False, True, False, False, False]
    assert time.monotonic() - started < 300


@pytest.mark.skipif(not shutil.which("ser2net"), reason="ser2net is needed (.ci/run installs it)")
def test_graceful_shutdown_types_poweroff_on_a_logged_in_console(redfish_factory, sim_cluster, tmp_path):
    """Through a real ser2net (as the terminal_server role sets it up): refused at the login prompt
    (nothing switched), done once the console is logged in: the node halts, then its power goes off."""
    from console_rig import Ser2net

    from ansible_collections.picluster.carrier.plugins.module_utils._console import ConsoleSession

    ser2net = Ser2net(str(tmp_path), {"node05": sim_cluster.consoles["node05"]})
    try:
        redfish = redfish_factory(consoles={"node05": ser2net.ports["node05"]})
        system = redfish.request("GET", "/redfish/v1/Systems/node05")[2]
        assert system["SerialConsole"]["Telnet"]["Port"] == ser2net.ports["node05"]
        assert redfish.reset("node05", "On")[0] == 204
        sim_cluster.wait_state("node05", "login", timeout=60)
        status, _headers, body = redfish.reset("node05", "GracefulShutdown")
        assert status == 409 and "login prompt" in body["error"]["message"], body
        assert powered(sim_cluster, "node05")
        with ConsoleSession(ser2net.url("node05")) as console:
            console.login("pi", "raspberry", timeout=30)
        status, _headers, body = redfish.reset("node05", "GracefulShutdown")
        assert status == 204, body
        assert not powered(sim_cluster, "node05")
        assert redfish.request("GET", "/redfish/v1/Systems/node05")[2]["PowerState"] == "Off"
    finally:
        ser2net.stop()


def community_general():
    """The directory holding ansible_collections/community/general (make collections extracts it), or None."""
    paths = [Path(p) for p in os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(":") if p]
    for directory in [REPO / ".collections"] + paths:
        if (directory / "ansible_collections" / "community" / "general" / "plugins" / "modules"
                / "redfish_command.py").exists():
            return directory
    return None


PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  vars_files: [creds.yml]
  module_defaults:
    community.general.redfish_command: &bmc {baseuri: "%(baseuri)s", username: "{{ bmc_user }}",
                                             password: "{{ bmc_password }}", validate_certs: true,
                                             ca_path: "%(ca)s", resource_id: node09}
    community.general.redfish_info: {baseuri: "%(baseuri)s", username: "{{ bmc_user }}",
                                     password: "{{ bmc_password }}", validate_certs: true, ca_path: "%(ca)s"}
  tasks:
    - {community.general.redfish_command: {category: Systems, command: PowerOn}, register: power_on}
    - {community.general.redfish_info: {category: Systems, command: GetSystemInventory}, register: inventory}
    - community.general.redfish_command: {category: Systems, command: SetOneTimeBoot, bootdevice: Pxe}
      register: boot
    - {community.general.redfish_info: {category: Systems, command: GetBootOverride}, register: override}
    - {community.general.redfish_info: {category: Chassis, command: GetChassisThermals}, register: thermals}
    - {community.general.redfish_command: {category: Systems, command: PowerForceOff}, register: power_off}
    - ansible.builtin.copy:
        dest: "%(out)s"
        content: "{{ {'on': power_on, 'inventory': inventory, 'boot': boot, 'override': override,
                      'thermals': thermals, 'off': power_off} | to_json }}"
        mode: "0600"
"""


def test_community_general_redfish_modules(redfish_factory, tmp_path):
    """community.general.redfish_command and redfish_info, as a playbook runs them (over TLS, as they
    expect: their baseuri has no scheme)."""
    collections = community_general()
    if collections is None:
        pytest.skip("community.general is not installed (make collections extracts it)")
    redfish = redfish_factory(tls=True)
    cluster = redfish.cluster
    creds = tmp_path / "creds.yml"
    creds.write_text("bmc_user: admin\nbmc_password: %s\n" % USERS["admin"][0])
    creds.chmod(0o600)
    out = tmp_path / "out.json"
    playbook = tmp_path / "redfish.yml"
    playbook.write_text(PLAYBOOK % {"baseuri": redfish.url.split("://", 1)[1], "out": out, "ca": redfish.ca})
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH="%s:%s" % (REPO / ".collections", collections),
               ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
               "-e", "ansible_python_interpreter=%s" % sys.executable, str(playbook)]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["on"]["changed"] is True
    systems = {entry[0]["system_uri"]: entry[1]
               for entry in results["inventory"]["redfish_facts"]["system"]["entries"]}
    assert len(systems) == len(cluster.hosts)
    assert systems["/redfish/v1/Systems/node09"]["PowerState"] == "On"
    assert systems["/redfish/v1/Systems/node08"]["PowerState"] == "Off"
    assert results["boot"]["changed"] is True
    override = {entry[0]["system_uri"]: entry[1]
                for entry in results["override"]["redfish_facts"]["boot_override"]["entries"]}
    assert "Pxe" in json.dumps(override["/redfish/v1/Systems/node09"])
    assert "Once" in json.dumps(override["/redfish/v1/Systems/node09"])
    assert results["thermals"]["redfish_facts"]["thermals"]["ret"] is True
    assert results["off"]["changed"] is True and not powered(cluster, "node09")
