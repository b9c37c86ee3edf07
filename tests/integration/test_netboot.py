# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Network boot end to end: playbooks/netboot.yml builds the assets (netboot_assets, http_boot_image)
and renders the netboot_server role's dnsmasq configuration; the real dnsmasq runs it in a network
namespace as a proxy DHCP + TFTP server beside a "site router" (another dnsmasq handing out
addresses); simulated nodes, each in its own namespace, really netboot through them.

Lab (all in namespaces this test makes and removes; addresses from 192.0.2.0/24, TEST-NET-1):

    router ns: eth0 192.0.2.254 (dnsmasq: plain DHCP 192.0.2.100-199)
    server ns: br0 192.0.2.1 (dnsmasq from the role's template: proxy DHCP, pxe-service, TFTP;
               python -m http.server on :8080 for HTTP boot)
    node ns x5: eth0 with the node's MAC, no address until DHCP

Nodes (backplane10, slots 1-5): node01 netboots and self-updates its EEPROM from pieeprom.upd in
its TFTP directory; node02's serial directory is missing: it falls back to the TFTP root, fails,
and goes on to SD; node03 HTTP-boots a boot.img signed with its EEPROM's key; node04's boot.img
was changed after signing; node05's EEPROM holds another key: both refused, both go on to SD;
node06 has static TFTP_IP/CLIENT_IP/SUBNET/GATEWAY in its EEPROM (no DHCP); node07 reads from a TFTP-only
dnsmasq on its namespace's loopback (the simulator's ``tftp_server`` setting); node08 is a CM5 (no
start4.elf: its directory counts by config.txt, then its device tree and kernel_2712.img).
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "unit" / "plugins" / "module_utils"))
if str(REPO / ".collections") not in sys.path:
    sys.path.insert(0, str(REPO / ".collections"))

from netboot_fixtures import make_boot_dir, rsa_key  # noqa: E402

from ansible_collections.picluster.carrier.plugins.module_utils._eeprom import image as E  # noqa: E402
from ansible_collections.picluster.carrier.plugins.module_utils import _keys as K  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.needs_root, pytest.mark.slow]

VENV_BIN = Path(sys.executable).parent
SUBNET = "192.0.2"
NODES = {
    # host: (slot, serial, mac, boot order, extra bootconf)
    "node01": (1, "100000001e7ea419", "dc:a6:32:51:80:f3", "0x12", {}),
    "node02": (2, "100000008306d03b", "dc:a6:32:a5:dc:f3", "0x12", {}),
    "node03": (3, "100000001a466884", "e4:5f:01:e2:39:e5", "0x17", {}),
    "node04": (4, "1000000099dd251d", "2c:cf:67:9f:8e:6b", "0x17", {}),
    "node05": (5, "10000000c88b2875", "dc:a6:32:92:8c:d7", "0x17", {}),
    "node06": (6, "10000000bb049a79", "dc:a6:32:c6:c4:7d", "0x12",
               {"TFTP_IP": SUBNET + ".1", "CLIENT_IP": SUBNET + ".50", "SUBNET": "255.255.255.0",
                "GATEWAY": "0.0.0.0"}),
    "node07": (7, "10000000c0433cbd", "dc:a6:32:c5:96:70", "0x12", {}),
    "node08": (8, "100000003d6c51e3", "2c:cf:67:00:9d:14", "0x12", {}),
}
MODELS = {"node08": "cm5"}
# node07 has no DHCP either: its simulator setting points it at a TFTP server on its namespace's loopback.
SIM_EXTRA = {"node07": {"tftp_server": "127.0.0.1"}}


def sh(*args, check=True, **kw):
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, check=False, **kw)
    if check and proc.returncode != 0:
        raise AssertionError("%s: rc %d\n%s%s" % (" ".join(map(str, args)), proc.returncode, proc.stdout, proc.stderr))
    return proc


def have(tool):
    return shutil.which(tool) is not None


class Lab:
    """Namespaces, veths, a bridge, processes; everything recorded so ``close`` removes it."""

    def __init__(self, base):
        self.base = Path(base)
        self.tag = "pcsnb%d" % (os.getpid() % 100000)
        self.namespaces = []
        self.procs = []

    def ns(self, name):
        return "%s-%s" % (self.tag, name)

    def add_ns(self, name):
        full = self.ns(name)
        if os.path.exists("/run/netns/" + full):  # left by an earlier run of this test killed midway
            sh("ip", "netns", "del", full)
        sh("ip", "netns", "add", full)
        self.namespaces.append(full)
        sh("ip", "-n", full, "link", "set", "lo", "up")
        return full

    def build(self):
        server = self.add_ns("srv")
        sh("ip", "-n", server, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", server, "addr", "add", SUBNET + ".1/24", "dev", "br0")
        sh("ip", "-n", server, "link", "set", "br0", "up")
        router = self.add_ns("router")
        self.plug(router, "eth0", "p-router", None)
        sh("ip", "-n", router, "addr", "add", SUBNET + ".254/24", "dev", "eth0")
        for host, (_slot, _serial, mac, _order, _conf) in NODES.items():
            self.plug(self.add_ns(host), "eth0", "p-" + host, mac)

    def plug(self, ns, inner, port, mac):
        """A veth from namespace ``ns`` (named ``inner``) to a port of the server's bridge."""
        server = self.ns("srv")
        sh("ip", "link", "add", inner, "netns", ns, "type", "veth", "peer", "name", port, "netns", server)
        if mac:
            sh("ip", "-n", ns, "link", "set", inner, "address", mac)
        sh("ip", "-n", ns, "link", "set", inner, "up")
        sh("ip", "-n", server, "link", "set", port, "master", "br0")
        sh("ip", "-n", server, "link", "set", port, "up")

    def spawn(self, ns, argv, log):
        out = open(log, "wb")
        proc = subprocess.Popen(["ip", "netns", "exec", self.ns(ns)] + [str(a) for a in argv], stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        self.procs.append(proc)
        return proc

    def close(self):
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        for ns in reversed(self.namespaces):
            sh("ip", "netns", "del", ns, check=False)

    def leftovers(self):
        listed = sh("ip", "netns", "list").stdout
        left = [ns for ns in self.namespaces if re.search(r"^%s\b" % re.escape(ns), listed, re.M)]
        left += ["process %d" % p.pid for p in self.procs if p.poll() is None]
        return left


def eeprom_with_key(path, public_key, boot_order, soc="bcm2711"):
    image = E.EepromImage(E.make_synthetic_image(soc, "[all]\nBOOT_UART=1\nBOOT_ORDER=%s\n" % boot_order))
    image.set_pubkey(K.pubkey_bin(public_key))
    path.write_bytes(image.to_bytes())
    return path


RESULTS_CALLBACK = """
import json
import os

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "netboot_results"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.results = {}

    def _add(self, result, **kwargs):
        self.results.setdefault(result._task.get_name(), []).append(dict(result._result))

    v2_runner_on_ok = v2_runner_on_failed = v2_runner_on_skipped = _add

    def v2_playbook_on_stats(self, stats):
        with open(os.environ["NETBOOT_RESULTS"], "w") as f:
            json.dump({"tasks": self.results, "changed": {h: stats.summarize(h)["changed"]
                                                          for h in stats.processed}}, f, default=str)
"""


def ansible_playbook(args, env, cwd):
    """Run ansible-playbook; returns (process, {task name: [result, ...]}, {host: changed count})."""
    plugins = Path(cwd) / "callback_plugins"
    plugins.mkdir(exist_ok=True)
    (plugins / "netboot_results.py").write_text(RESULTS_CALLBACK)
    out = Path(cwd) / "results.json"
    if out.exists():
        out.unlink()
    env = dict(env, ANSIBLE_CALLBACK_PLUGINS=str(plugins), ANSIBLE_CALLBACKS_ENABLED="netboot_results",
               NETBOOT_RESULTS=str(out))
    proc = subprocess.run([str(VENV_BIN / "ansible-playbook")] + [str(a) for a in args], capture_output=True,
                          text=True, env=env, cwd=str(cwd), timeout=300, check=False)
    data = json.loads(out.read_text()) if out.exists() else {"tasks": {}, "changed": {}}
    return proc, data["tasks"], data["changed"]


class Consoles:
    """Read several node consoles at once (the simulator's ptys)."""

    def __init__(self, paths):
        self.fds = {host: os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK) for host, path in paths.items()}
        self.text = {host: "" for host in paths}

    def wait(self, done, timeout):
        """Read until ``done(host, text)`` is true for every host, or the timeout."""
        deadline = time.monotonic() + timeout
        pending = set(self.fds)
        while pending and time.monotonic() < deadline:
            ready, _writable, _errors = select.select([self.fds[h] for h in pending], [], [], 0.2)
            for host in list(pending):
                if self.fds[host] in ready:
                    try:
                        self.text[host] += os.read(self.fds[host], 65536).decode("utf-8", "replace")
                    except BlockingIOError:
                        pass
                if done(host, self.text[host]):
                    pending.discard(host)
        return pending

    def close(self):
        for fd in self.fds.values():
            os.close(fd)


@pytest.fixture(scope="module")
def lab():
    for tool in ("ip", "dnsmasq", "mcopy", "mkfs.vfat"):
        if not have(tool):
            pytest.skip("%s is not installed" % tool)
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    base = Path(tempfile.mkdtemp(prefix="pcs-nb-", dir="/tmp"))
    lab = Lab(base)
    try:
        lab.build()
        yield lab
    finally:
        lab.close()
        left = lab.leftovers()
        shutil.rmtree(base, ignore_errors=True)
        assert not left, "left behind: %s" % left
        assert not base.exists()


@pytest.fixture(scope="module")
def site(lab):
    """Assets built by playbooks/netboot.yml, dnsmasq + router + HTTP server running, the simulator up."""
    base = lab.base
    boot = make_boot_dir(base / "boot", pi4=True, pi5=True)
    key_path = base / "keys" / "boot.pem"
    key_path.parent.mkdir()
    key = rsa_key(key_path)
    other = rsa_key()
    topology = {
        "plugin": "picluster.carrier.boards",
        "controllers": {"ctrl0": {"vars": {"ansible_connection": "local",
                                           "ansible_python_interpreter": sys.executable}}},
        "boards": {"rack1": {"profile": "backplane10", "controller": "ctrl0", "bus": "sim:%s/bus.sock" % base,
                             "console": "%s/state/console/{host}" % base, "slots": {}}},
    }
    for host, (slot, serial, mac, order, conf) in NODES.items():
        pub = other.public_key() if host == "node05" else key.public_key()
        eeprom = eeprom_with_key(base / ("eeprom-%s.bin" % host), pub, order,
                                 "bcm2712" if MODELS.get(host) == "cm5" else "bcm2711")
        # Network waits twice the defaults: they run on the node's scaled clock (a 2 s boot: DHCP gives up
        # after 15 s of real time, TFTP after 10 s), room for a loaded CI machine.
        bootconf = {"BOOT_UART": "1", "BOOT_ORDER": order, "HTTP_HOST": SUBNET + ".1", "HTTP_PORT": "8080",
                    "HTTP_PATH": host, "DHCP_TIMEOUT": "90000", "TFTP_FILE_TIMEOUT": "60000"}
        bootconf.update(conf)
        topology["boards"]["rack1"]["slots"][slot] = {
            "host": host, "model": MODELS.get(host, "cm4"), "serial": serial, "mac": mac,
            "vars": {"netboot_nfs_root": "%s.1:/srv/nfs/%s" % (SUBNET, host)},
            "sim": dict({"netns": lab.ns(host), "bootconf": bootconf, "eeprom_image": str(eeprom),
                         "boot_time": 2.0}, **SIM_EXTRA.get(host, {})),
        }
    inventory = base / "cluster.carrier.yml"
    inventory.write_text(yaml.safe_dump(topology, sort_keys=False))
    conf = base / "dnsmasq-netboot.conf"
    extra = {
        "netboot_source": str(boot), "netboot_http_signing_key": str(key_path),
        "netboot_server_interface": "br0", "netboot_server_subnet": SUBNET + ".0",
        "netboot_server_tftp_root": str(base / "tftp"), "netboot_server_http_root": str(base / "http"),
        "netboot_server_dnsmasq_conf": str(conf), "netboot_server_dnsmasq_pid_file": str(base / "dnsmasq.pid"),
        "netboot_server_dnsmasq_user": "root", "netboot_server_log_dhcp": True,
        "netboot_server_install_packages": False, "netboot_server_manage_services": False,
    }
    (base / "extra.json").write_text(json.dumps(extra))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_INVENTORY_ENABLED="picluster.carrier.boards", ANSIBLE_RETRY_FILES_ENABLED="0",
               ANSIBLE_LOCAL_TEMP=str(base / "ansible-tmp"), ANSIBLE_HOME=str(base / "ansible-home"),
               PATH="%s:%s" % (VENV_BIN, os.environ.get("PATH", "")))
    args = ["-i", inventory, REPO / "playbooks" / "netboot.yml", "-e", "@%s" % (base / "extra.json")]
    first, results, _changed = ansible_playbook(args, env, base)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    assets = results["Build the TFTP directories"][0]
    assert assets["changed"] is True and sorted(assets["changed_nodes"]) == sorted(NODES)
    # The EEPROM self-update for node01, staged in its TFTP directory by eeprom_image.
    new_eeprom = E.EepromImage(E.make_synthetic_image("bcm2711", "[all]\nBOOT_UART=1\nBOOT_ORDER=0x12\n"))
    new_eeprom.set_pubkey(K.pubkey_bin(key.public_key()))
    (base / "pieeprom-new.bin").write_bytes(new_eeprom.to_bytes())
    stage = subprocess.run(
        [str(VENV_BIN / "ansible"), "-i", inventory, "ctrl0", "-m", "picluster.carrier.eeprom_image", "-a",
         json.dumps({"src": str(base / "pieeprom-new.bin"), "dest": str(base / "tftp" / "1e7ea419"),
                     "target": "tftp_self_update", "settings": {"WAKE_ON_GPIO": 0}, "signing_key": str(key_path)})],
        capture_output=True, text=True, env=env, cwd=str(base), timeout=120, check=False)
    assert stage.returncode == 0, stage.stdout + stage.stderr
    # Run again: nothing to do anywhere (the staged self-update is kept, the boot images are the same).
    second, results2, changed2 = ansible_playbook(args, env, base)
    assert second.returncode == 0, second.stdout[-4000:]
    assert results2["Build the TFTP directories"][0]["changed"] is False
    assert results2["Build the TFTP directories"][0]["nodes"]["node01"]["preserved"] == ["pieeprom.sig",
                                                                                         "pieeprom.upd"]
    assert all(r["changed"] is False for r in results2["Build the signed HTTP boot images"][0]["results"])
    assert changed2 == {"ctrl0": 0}, changed2
    # node02's directory goes missing (an operator removed it): it must fall back and fail.
    shutil.rmtree(base / "tftp" / "8306d03b")
    # node04's image is changed after signing; node05's EEPROM has another key.
    img = base / "http" / "node04" / "boot.img"
    data = bytearray(img.read_bytes())
    data[-1] ^= 0xFF
    img.write_bytes(bytes(data))

    # The site's router (addresses), the netboot server (the role's configuration), an HTTP server.
    router = lab.spawn("router", ["dnsmasq", "--keep-in-foreground", "--port=0", "--interface=eth0",
                                  "--bind-interfaces", "--dhcp-range=%s.100,%s.199,255.255.255.0,1h" % (SUBNET, SUBNET),
                                  "--no-ping", "--dhcp-leasefile=%s" % (base / "router.leases"), "--user=root",
                                  "--pid-file=%s" % (base / "router.pid"), "--log-facility=-", "--log-dhcp"],
                       base / "router.log")
    server = lab.spawn("srv", ["dnsmasq", "--keep-in-foreground", "-C", conf, "--log-facility=-",
                               "--dhcp-leasefile=%s" % (base / "srv.leases")], base / "dnsmasq.log")
    http = lab.spawn("srv", [sys.executable, "-m", "http.server", "8080", "--bind", SUBNET + ".1", "--directory",
                             base / "http"], base / "http.log")
    loopback = lab.spawn("node07", ["dnsmasq", "--keep-in-foreground", "--port=0", "--enable-tftp",
                                    "--tftp-root=%s" % (base / "tftp"), "--listen-address=127.0.0.1",
                                    "--bind-interfaces", "--user=root", "--log-facility=-",
                                    "--pid-file=%s" % (base / "loopback.pid")], base / "loopback.log")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        logs = (base / "dnsmasq.log").read_text() + (base / "router.log").read_text()
        if "TFTP root is" in logs and "DHCP, IP range" in logs and "TFTP root is" in (
                base / "loopback.log").read_text() and sh(
                "ip", "netns", "exec", lab.ns("srv"), "ss", "-ltn", check=False).stdout.count(":8080"):
            break
        for proc, name in ((router, "router"), (server, "dnsmasq"), (http, "http"), (loopback, "loopback")):
            assert proc.poll() is None, "%s exited: %s" % (name, (base / ("%s.log" % name)).read_text())
        time.sleep(0.1)
    else:
        raise AssertionError("servers did not start: %s" % (base / "dnsmasq.log").read_text())

    # The simulator, with the netboot modes loaded (sim/carrier_sim/netboot.py).
    wrapper = base / "sim-python"
    wrapper.write_text("#!%s\nimport runpy, sys\nsys.path[:0] = [%r, %r]\nimport carrier_sim.netboot  # noqa\n"
                       "sys.argv = sys.argv[1:]\nrunpy.run_path(sys.argv[0], run_name='__main__')\n"
                       % (sys.executable, str(REPO / "sim"), str(REPO / ".collections")))
    wrapper.chmod(0o755)
    state = base / "state"
    sim = [str(wrapper), str(REPO / "sim" / "carrier-sim")]
    sh(*sim, "start", "--topology", inventory, "--state-dir", state)
    try:
        yield {"base": base, "state": state, "key": key, "inventory": inventory, "env": env, "args": args}
    finally:
        sh(*sim, "stop", "--state-dir", state, check=False)
        assert not (state / "carrier-sim.pid").exists()
        assert not (base / "bus.sock").exists()


@pytest.fixture(scope="module")
def booted(site):
    """Power the five nodes on at once and read their consoles until each is done."""
    sys.path.insert(0, str(REPO / ".collections"))
    from ansible_collections.picluster.carrier.plugins.module_utils._board import Board

    base = site["base"]
    consoles = Consoles({host: site["state"] / "console" / host for host in NODES})
    board = Board("rack1", "backplane10", "sim:%s/bus.sock" % base, lock_dir=str(base / "locks"))
    try:
        board.set_lines({slot: {"power": True} for slot, *_rest in NODES.values()})
        pending = consoles.wait(lambda host, text: "%s login:" % host in text, timeout=60)
        board.set_lines({slot: {"power": False} for slot, *_rest in NODES.values()})
    finally:
        consoles.close()
    assert not pending, "no login prompt on %s:\n%s" % (sorted(pending), "\n".join(
        "---- %s\n%s" % (h, consoles.text[h][-3000:]) for h in sorted(pending)))
    return {"text": consoles.text, "dnsmasq": (base / "dnsmasq.log").read_text(),
            "loopback": (base / "loopback.log").read_text()}


def lines(text):
    return [re.sub(r"^\s*\d+\.\d+ ", "", line) for line in text.replace("\r", "").split("\n")]


def test_network_boot_through_proxy_dhcp_to_login(booted):
    text = booted["text"]["node01"]
    out = lines(text)
    assert "Boot mode: NETWORK (02) order 1" in out
    net = [line for line in out if line.startswith("NET 192.0.2.")]
    # The address and gateway from the site's router, the TFTP server from the proxy's offer.
    assert net and re.match(r"^NET 192\.0\.2\.1\d\d 255\.255\.255\.0 gw 192\.0\.2\.254 tftp 192\.0\.2\.1$",
                            net[0]), text
    assert "DHCP src: dc:a6:32:51:80:f3 192.0.2.254" in out and "DHCP src: dc:a6:32:51:80:f3 192.0.2.1" in out
    # TFTP reads from the node's serial directory, in a Pi 4's order, with the server's MAC.
    gets = [line.split()[-1] for line in out if line.startswith("TFTP_GET: ")]
    assert gets[:2] == ["1e7ea419/start4.elf", "1e7ea419/config.txt"], gets
    assert re.search(r"TFTP_GET: [0-9a-f]{2}(:[0-9a-f]{2}){5} 192\.0\.2\.1 1e7ea419/config\.txt", text)
    # The boot after the self-update's reset, file by file as a Pi 4 reads them.
    second = lines(text.split("Self-update: flashed, resetting", 1)[1])
    reads = [line.split()[1] for line in second if line.startswith("Read ")]
    assert reads == ["1e7ea419/config.txt", "1e7ea419/pieeprom.sig", "1e7ea419/start4.elf", "1e7ea419/fixup4.dat",
                     "1e7ea419/bcm2711-rpi-cm4.dtb", "1e7ea419/cmdline.txt", "1e7ea419/kernel8.img"], reads
    assert re.search(r"Read 1e7ea419/kernel8\.img bytes +144080 hnd 0x", text)
    assert "Starting start4.elf @ 0xfec00200" in text
    assert text.rstrip().endswith("node01 login:")
    # dnsmasq really served them (proxy DHCP with the PXE service, then TFTP of the node's directory).
    log = booted["dnsmasq"]
    assert "PXE(br0) dc:a6:32:51:80:f3 proxy" in log
    assert "Early terminate received" in log
    assert re.search(r"sent .*/tftp/1e7ea419/kernel8\.img to 192\.0\.2\.1\d\d", log)


def test_self_update_from_the_tftp_directory(booted, site):
    text = booted["text"]["node01"]
    assert re.search(r"Read 1e7ea419/pieeprom\.upd bytes +524288", text), text
    assert "Self-update: EEPROM" in text and "Self-update: flashed, resetting" in text
    # After the reset the node boots again; its EEPROM now is the staged image: nothing more to flash.
    after = text.split("Self-update: flashed, resetting", 1)[1]
    assert "RPi: BOOTLOADER release" in after
    assert "self-update: EEPROM up to date" in after
    assert after.count("Self-update: EEPROM") == 0


def test_missing_serial_directory_falls_back_and_fails_like_a_pi(booted):
    text = booted["text"]["node02"]
    out = lines(text)
    gets = [line.split()[-1] for line in out if line.startswith("TFTP_GET: ")]
    assert gets == ["8306d03b/start4.elf", "start4.elf"], gets
    assert "TFTP 1: File not found 8306d03b/start4.elf" in out
    assert "TFTP 1: File not found start4.elf" in out
    assert any(line.startswith("Net boot failed: no start4.elf in 8306d03b/ or the TFTP root") for line in out)
    # Then the next boot mode of BOOT_ORDER 0x12: SD, which boots.
    assert out.index("Boot mode: SD (01) order 0") > out.index("Boot mode: NETWORK (02) order 1")
    assert re.search(r"Read start4\.elf bytes +\d+ hnd", text)  # from the SD card
    assert text.rstrip().endswith("node02 login:")


def test_http_boot_signed_image(booted):
    text = booted["text"]["node03"]
    out = lines(text)
    assert "Boot mode: HTTP (07) order 1" in out
    assert "HTTP: GET request for http://192.0.2.1:8080/node03/boot.sig" in out
    assert out.index("HTTP: GET request for http://192.0.2.1:8080/node03/boot.sig") < out.index(
        "HTTP: GET request for http://192.0.2.1:8080/node03/boot.img")
    assert "HTTP: boot.sig verified with the customer key" in out
    assert any(re.match(r"Read boot\.img:kernel8\.img bytes +144080 hnd", line) for line in out)
    assert "Boot mode: SD (01) order 0" not in out
    assert text.rstrip().endswith("node03 login:")


@pytest.mark.parametrize("host,reason", [
    ("node04", "signature check failed: boot.sig: bad .sig file: sha256"),
    ("node05", "signature check failed: boot.sig: bad .sig file: the rsa2048 signature does not verify"),
])
def test_http_boot_refuses_bad_signature_or_foreign_key(booted, host, reason):
    out = lines(booted["text"][host])
    failed = [line for line in out if line.startswith("HTTP boot failed: ")]
    assert failed and failed[0].startswith("HTTP boot failed: " + reason), failed
    assert "HTTP: boot.sig verified with the customer key" not in out
    assert out.index("Boot mode: SD (01) order 0") > out.index(failed[0])


def test_bad_input_through_the_playbook_writes_nothing(site, tmp_path):
    """A source without start4.elf: the play fails with the module's message; the TFTP tree is untouched."""
    base = site["base"]
    before = {str(p): p.stat().st_mtime_ns for p in (base / "tftp").rglob("*")}
    bad = make_boot_dir(tmp_path / "pi5only", pi4=False, pi5=True)
    extra = json.loads((base / "extra.json").read_text())
    extra.update(netboot_source=bad, netboot_serve=False)
    (tmp_path / "extra.json").write_text(json.dumps(extra))
    args = ["-i", site["inventory"], REPO / "playbooks" / "netboot.yml", "-e", "@%s" % (tmp_path / "extra.json")]
    proc, results, _changed = ansible_playbook(args, site["env"], tmp_path)
    assert proc.returncode != 0
    msg = results["Build the TFTP directories"][0]["msg"]
    assert "has no start4.elf: not a Pi 4/CM4 boot partition" in msg
    assert {str(p): p.stat().st_mtime_ns for p in (base / "tftp").rglob("*")} == before


def test_static_network_settings_from_the_eeprom(booted):
    text = booted["text"]["node06"]
    out = lines(text)
    assert "NET 192.0.2.50 255.255.255.0 gw 0.0.0.0 tftp 192.0.2.1" in out
    assert not [line for line in out if line.startswith("DHCP src")]
    assert re.search(r"Read bb049a79/kernel8\.img bytes +144080", text)
    assert text.rstrip().endswith("node06 login:")
    assert re.search(r"sent .*/tftp/bb049a79/kernel8\.img to 192\.0\.2\.50", booted["dnsmasq"])


def test_tftp_only_server_on_loopback(booted):
    text = booted["text"]["node07"]
    out = lines(text)
    assert "NET 127.0.0.1 255.0.0.0 gw 0.0.0.0 tftp 127.0.0.1" in out
    assert [line.split()[-1] for line in out if line.startswith("TFTP_GET: ")][:2] == [
        "c0433cbd/start4.elf", "c0433cbd/config.txt"]
    assert text.rstrip().endswith("node07 login:")
    assert re.search(r"sent .*/tftp/c0433cbd/kernel8\.img to 127\.0\.0\.1", booted["loopback"])


def test_cm5_network_boot(booted):
    text = booted["text"]["node08"]
    out = lines(text)
    assert "RP1_BOOT chip ID: 0x20001927" in out
    gets = [line.split()[-1] for line in out if line.startswith("TFTP_GET: ")]
    assert "3d6c51e3/start4.elf" not in gets and gets[:2] == ["3d6c51e3/config.txt", "3d6c51e3/config.txt"], gets
    reads = [line.split()[1] for line in out if line.startswith("Read ")]
    assert reads == ["3d6c51e3/config.txt", "3d6c51e3/bcm2712-rpi-cm5-cm5io.dtb", "3d6c51e3/cmdline.txt",
                     "3d6c51e3/kernel_2712.img"], reads
    assert "TFTP 1: File not found 3d6c51e3/pieeprom.sig" in out  # no self-update staged for it
    assert text.rstrip().endswith("node08 login:")


def _adhoc(site, module, args):
    """Run ``module`` on the controller with ``ansible``; returns its result."""
    proc = subprocess.run(
        [str(VENV_BIN / "ansible"), "-i", site["inventory"], "ctrl0", "-m", module, "-a", json.dumps(args)],
        capture_output=True, text=True, env=site["env"], cwd=str(site["base"]), timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.split(" => ", 1)[1]), proc.stdout + proc.stderr


def test_netboot_with_a_first_boot_customisation(site, booted):
    """node06 (cloud-init seed) and node07 (firstrun.sh) get a customisation in their TFTP directories;
    they netboot it and their login prompts show the customised names. A file holding a password hash
    is 0600, and dnsmasq serves only world-readable files (running as root): node06's user-data is not
    served, its meta-data names it; node07's firstrun.sh has SSH keys only, so dnsmasq serves it."""
    from firstboot_fixtures import SHA512, ssh_key

    sys.path.insert(0, str(REPO / ".collections"))
    from ansible_collections.picluster.carrier.plugins.module_utils._board import Board

    base = site["base"]
    nodes = []
    for host in ("node06", "node07"):
        _slot, serial, mac, _order, _conf = NODES[host]
        nodes.append({"name": host, "serial": serial, "mac": mac, "model": "cm4", "extra_kernel_args": [],
                      "config": [], "nfs_root": "%s.1:/srv/nfs/%s" % (SUBNET, host)})  # as playbooks/netboot.yml
    nodes[0]["customize"] = {"hostname": "edge06", "style": "cloud-init"}
    nodes[1]["customize"] = {"hostname": "edge07", "style": "firstrun",
                             "users": [{"name": "admin", "ssh_authorized_keys": [ssh_key()]}]}
    args = {"source": str(base / "boot"), "tftp_root": str(base / "tftp"), "nodes": nodes,
            "customize": {"users": [{"name": "admin", "password_hash": SHA512}], "timezone": "UTC"}}
    result, output = _adhoc(site, "picluster.carrier.netboot_assets", args)
    assert result["changed"] is True and result["changed_nodes"] == ["node06", "node07"], result
    n06, n07 = result["nodes"]["node06"], result["nodes"]["node07"]
    assert (n06["added"], n06["modified"]) == (["meta-data", "user-data"], ["cmdline.txt"]), n06
    assert (n07["added"], n07["modified"]) == (["firstrun.sh"], ["cmdline.txt"]), n07
    assert SHA512 not in output
    assert (base / "tftp" / "bb049a79" / "user-data").stat().st_mode & 0o777 == 0o600
    assert (base / "tftp" / "c0433cbd" / "firstrun.sh").stat().st_mode & 0o777 == 0o644
    again, _output = _adhoc(site, "picluster.carrier.netboot_assets", args)
    assert again["changed"] is False, again

    consoles = Consoles({host: site["state"] / "console" / host for host in ("node06", "node07")})
    board = Board("rack1", "backplane10", "sim:%s/bus.sock" % base, lock_dir=str(base / "locks"))
    names = {"node06": "edge06", "node07": "edge07"}
    try:
        board.set_lines({NODES[host][0]: {"power": True} for host in names})
        pending = consoles.wait(lambda host, text: "%s login:" % names[host] in text, timeout=60)
        board.set_lines({NODES[host][0]: {"power": False} for host in names})
    finally:
        consoles.close()
    assert not pending, "no customised login prompt on %s:\n%s" % (sorted(pending), "\n".join(
        "---- %s\n%s" % (h, consoles.text[h][-3000:]) for h in sorted(pending)))
    for host, name in names.items():
        text = consoles.text[host]
        assert "systemd[1]: Hostname set to <%s>." % name in text
        assert "%s login:" % host not in text
    log = (base / "dnsmasq.log").read_text()
    assert re.search(r"sent .*/tftp/bb049a79/meta-data to 192\.0\.2\.50", log)
    assert not re.search(r"sent .*/tftp/bb049a79/user-data", log)
    assert re.search(r"sent .*/tftp/c0433cbd/firstrun\.sh to 127\.0\.0\.1", (base / "loopback.log").read_text())
