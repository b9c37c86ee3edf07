# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pi 3B+ network boot end to end (docs/hardware.md section 11): playbooks/netboot.yml builds the TFTP
tree (bootcode.bin at its root, a serial directory per node) and the netboot_server role's dnsmasq
configuration; the real dnsmasq serves it as a proxy DHCP + TFTP server beside a "site router" (the lab of
test_netboot.py); simulated Pi 3 boards without SD cards boot from their boot ROM through them.

Nodes (backplane10): w1 (3B+) netboots to its login prompt; w2 (3B+) has no serial directory, and the
TFTP root has no start.elf: bootcode.bin stops; w3 is a 3B whose OTP does not enable USB host boot: it
never asks for an address. Then bootcode.bin is taken away from the TFTP root: w1 stays silent.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from test_netboot import SUBNET, Consoles, Lab, ansible_playbook, have, lines, sh

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "unit" / "plugins" / "module_utils"))
if str(REPO / ".collections") not in sys.path:
    sys.path.insert(0, str(REPO / ".collections"))

from netboot_fixtures import BOOTCODE_BIN, make_boot_dir, rsa_key  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.needs_root, pytest.mark.slow]

VENV_BIN = Path(sys.executable).parent
NODES = {
    # host: (slot, serial, mac, model, sim settings)
    "w1": (1, "00000000a1b2c3d4", "b8:27:eb:b2:c3:d4", "pi3bplus", {}),
    "w2": (2, "0000000055aa66bb", "b8:27:eb:aa:66:bb", "pi3bplus", {}),
    "w3": (3, "00000000c0de0003", "b8:27:eb:de:00:03", "pi3", {"otp_usb_boot": False}),
}


class Pi3Lab(Lab):
    def build(self):
        server = self.add_ns("srv")
        sh("ip", "-n", server, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", server, "addr", "add", SUBNET + ".1/24", "dev", "br0")
        sh("ip", "-n", server, "link", "set", "br0", "up")
        router = self.add_ns("router")
        self.plug(router, "eth0", "p-router", None)
        sh("ip", "-n", router, "addr", "add", SUBNET + ".254/24", "dev", "eth0")
        for host, (_slot, _serial, mac, _model, _sim) in NODES.items():
            self.plug(self.add_ns(host), "eth0", "p-" + host, mac)


@pytest.fixture(scope="module")
def lab():
    for tool in ("ip", "dnsmasq", "mcopy", "mkfs.vfat"):
        if not have(tool):
            pytest.skip("%s is not installed" % tool)
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    base = Path(tempfile.mkdtemp(prefix="pcs-nb3-", dir="/tmp"))
    lab = Pi3Lab(base)
    lab.tag = "pcs3nb%d" % (os.getpid() % 100000)
    try:
        lab.build()
        yield lab
    finally:
        lab.close()
        left = lab.leftovers()
        shutil.rmtree(base, ignore_errors=True)
        assert not left, "left behind: %s" % left
        assert not base.exists()


def _topology(lab, base):
    topology = {
        "plugin": "picluster.carrier.boards",
        "controllers": {"ctrl0": {"vars": {"ansible_connection": "local",
                                           "ansible_python_interpreter": sys.executable}}},
        "boards": {"rack1": {"profile": "backplane10", "controller": "ctrl0", "bus": "sim:%s/bus.sock" % base,
                             "console": "%s/state/console/{host}" % base, "slots": {}}},
    }
    for host, (slot, serial, mac, model, sim) in NODES.items():
        # No SD card: the ROM goes on to USB and the network. Network waits on the node's scaled clock.
        bootconf = {"DHCP_TIMEOUT": "90000", "TFTP_FILE_TIMEOUT": "60000"}
        topology["boards"]["rack1"]["slots"][slot] = {
            "host": host, "model": model, "serial": serial, "mac": mac,
            "vars": {"netboot_nfs_root": "%s.1:/srv/nfs/%s" % (SUBNET, host), "netboot_config": ["uart_2ndstage=1"]},
            "sim": dict({"netns": lab.ns(host), "bootconf": bootconf, "media": {"sd": False}, "boot_time": 2.0},
                        **sim),
        }
    return topology


@pytest.fixture(scope="module")
def site(lab):
    base = lab.base
    # bootcode.bin with its UART on (the documented sed of BOOT_UART=0 to 1), so its reads show on the console.
    boot = make_boot_dir(base / "boot", pi4=False, pi3=True,
                         extra={"bootcode.bin": BOOTCODE_BIN.replace(b"BOOT_UART=0", b"BOOT_UART=1")})
    inventory = base / "cluster.carrier.yml"
    inventory.write_text(yaml.safe_dump(_topology(lab, base), sort_keys=False))
    key_path = base / "boot.pem"
    rsa_key(key_path)  # HTTP boot asked for: Pi 3 nodes have none, so the play leaves them out
    conf = base / "dnsmasq-netboot.conf"
    extra = {
        "netboot_source": str(boot), "netboot_server_interface": "br0", "netboot_server_subnet": SUBNET + ".0",
        "netboot_server_tftp_root": str(base / "tftp"), "netboot_server_dnsmasq_conf": str(conf),
        "netboot_server_dnsmasq_pid_file": str(base / "dnsmasq.pid"), "netboot_server_dnsmasq_user": "root",
        "netboot_server_log_dhcp": True, "netboot_server_install_packages": False,
        "netboot_server_manage_services": False, "netboot_http_signing_key": str(key_path),
        "netboot_server_http_root": str(base / "http"),
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
    assert assets["changed"] is True and assets["root_files"] == {"bootcode.bin": "added"}, assets
    assert sorted(assets["changed_nodes"]) == sorted(NODES)
    http = results["Build the signed HTTP boot images"][0]
    assert http.get("skipped_reason") == "No items in the list" and not http["results"], http
    assert not (base / "http").exists()
    second, results2, changed2 = ansible_playbook(args, env, base)
    assert second.returncode == 0, second.stdout[-4000:]
    assert results2["Build the TFTP directories"][0]["root_files"] == {"bootcode.bin": "unchanged"}
    assert changed2 == {"ctrl0": 0}, changed2
    assert 'pxe-service=0,"Raspberry Pi Boot"' in conf.read_text()
    shutil.rmtree(base / "tftp" / "55aa66bb")  # w2's directory goes missing

    router = lab.spawn("router", ["dnsmasq", "--keep-in-foreground", "--port=0", "--interface=eth0",
                                  "--bind-interfaces", "--dhcp-range=%s.100,%s.199,255.255.255.0,1h" % (SUBNET, SUBNET),
                                  "--no-ping", "--dhcp-leasefile=%s" % (base / "router.leases"), "--user=root",
                                  "--pid-file=%s" % (base / "router.pid"), "--log-facility=-", "--log-dhcp"],
                       base / "router.log")
    server = lab.spawn("srv", ["dnsmasq", "--keep-in-foreground", "-C", conf, "--log-facility=-",
                               "--dhcp-leasefile=%s" % (base / "srv.leases")], base / "dnsmasq.log")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        logs = (base / "dnsmasq.log").read_text() + (base / "router.log").read_text()
        if "TFTP root is" in logs and "DHCP, IP range" in logs:
            break
        for proc, name in ((router, "router"), (server, "dnsmasq")):
            assert proc.poll() is None, "%s exited: %s" % (name, (base / ("%s.log" % name)).read_text())
        time.sleep(0.1)
    else:
        raise AssertionError("servers did not start: %s" % (base / "dnsmasq.log").read_text())

    sim = [sys.executable, str(REPO / "sim" / "carrier-sim")]
    state = base / "state"
    sh(*sim, "start", "--topology", inventory, "--state-dir", state)
    try:
        yield {"base": base, "state": state, "inventory": inventory, "env": env, "args": args, "sim": sim}
    finally:
        sh(*sim, "stop", "--state-dir", state, check=False)
        assert not (state / "carrier-sim.pid").exists()


def _board(site):
    from ansible_collections.picluster.carrier.plugins.module_utils._board import Board

    return Board("rack1", "backplane10", "sim:%s/bus.sock" % site["base"], lock_dir=str(site["base"] / "locks"))


def _node_state(site, host):
    out = sh(*site["sim"], "status", "--json", "--state-dir", site["state"]).stdout
    return json.loads(out)["nodes"][host]["state"]


@pytest.fixture(scope="module")
def booted(site):
    """Power w1-w3 on at once; w1 reaches its login prompt, w2 stops in bootcode.bin, w3 stays silent."""
    consoles = Consoles({host: site["state"] / "console" / host for host in NODES})
    board = _board(site)

    def done(host, text):
        return {"w1": "w1 login:", "w2": "stopped", "w3": "\0never"}[host] in text

    try:
        board.set_lines({slot: {"power": True} for slot, *_rest in NODES.values()})
        pending = consoles.wait(done, timeout=60)
        time.sleep(1.0)  # w3's ROM would have asked for an address by now (its SD timeout is 5/6 s)
        states = {host: _node_state(site, host) for host in NODES}
        board.set_lines({slot: {"power": False} for slot, *_rest in NODES.values()})
    finally:
        consoles.close()
    assert pending == {"w3"}, "no end on %s:\n%s" % (sorted(pending), "\n".join(
        "---- %s\n%s" % (h, consoles.text[h][-3000:]) for h in sorted(pending)))
    return {"text": consoles.text, "dnsmasq": (site["base"] / "dnsmasq.log").read_text(),
            "router": (site["base"] / "router.log").read_text(), "states": states}


def _tftp_log(log):
    """(what, path) of dnsmasq's TFTP lines, in order: sent / not found / failed (an aborted transfer)."""
    out = []
    for m in re.finditer(r"dnsmasq-tftp\[\d+\]: (sent|file|failed sending) (\S+)", log):
        what = {"sent": "sent", "file": "missing", "failed sending": "aborted"}[m.group(1)]
        out.append((what, m.group(2).split("/tftp/", 1)[-1]))
    return out


def test_pi3bplus_netboots_to_login_through_dnsmasq(booted):
    text = booted["text"]["w1"]
    out = lines(text)
    assert "Raspberry Pi Bootcode" in out
    reads = [line.split()[2].rstrip(",") for line in out if line.startswith("Read File: ")]
    assert reads == ["a1b2c3d4/config.txt", "a1b2c3d4/start.elf", "a1b2c3d4/fixup.dat",
                     "a1b2c3d4/bcm2710-rpi-3-b-plus.dtb", "a1b2c3d4/cmdline.txt", "a1b2c3d4/kernel8.img"], reads
    assert "Machine model: Raspberry Pi 3 Model B Plus Rev 1.3" in text
    assert text.rstrip().endswith("w1 login:")
    # The server side, as dnsmasq logged it: the PXE answer, then bootcode.bin from the root, bootsig.bin
    # asked for and missing, then the serial directory's start.elf (the existence test) and the rest.
    log = booted["dnsmasq"]
    assert "PXE(br0) b8:27:eb:b2:c3:d4 proxy" in log
    ip = re.search(r"IP (192\.0\.2\.1\d\d)", text).group(1)
    mine = _tftp_log("\n".join(line for line in log.splitlines() if re.search(r"\b%s$" % re.escape(ip), line)))
    assert mine[:3] == [("sent", "bootcode.bin"), ("missing", "bootsig.bin"), ("aborted", "a1b2c3d4/start.elf")], mine
    assert mine[3:3 + len(reads)] == [("sent", p) for p in reads], mine
    # Then only the OS's look for its first-boot seed files (there are none here).
    assert mine[3 + len(reads):] == [("missing", "a1b2c3d4/user-data"), ("missing", "a1b2c3d4/meta-data")], mine


def test_missing_serial_directory_and_no_start_elf_in_the_root(booted):
    out = lines(booted["text"]["w2"])
    assert "TFTP: 55aa66bb/start.elf not found" in out and "TFTP: start.elf not found" in out
    assert [line for line in out if line][-1] == "start.elf not found in 55aa66bb/ or the TFTP root: stopped", out
    assert not [line for line in out if line.startswith("Read File: ")]
    assert booted["states"]["w2"] == "bootloader"


def test_pi3_without_usb_boot_otp_stays_silent(booted):
    assert booted["text"]["w3"].strip() == ""
    assert "b8:27:eb:de:00:03" not in booted["dnsmasq"] + booted["router"]
    assert booted["states"]["w3"] == "bootloader"


def test_without_bootcode_bin_the_rom_stays_silent(site, booted):
    base = site["base"]
    os.unlink(base / "tftp" / "bootcode.bin")
    consoles = Consoles({"w1": site["state"] / "console" / "w1"})
    board = _board(site)
    try:
        board.set_lines({1: {"power": True}})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "bootcode.bin not found" not in (base / "dnsmasq.log").read_text():
            time.sleep(0.2)
        consoles.wait(lambda host, text: False, timeout=1.0)
        state = _node_state(site, "w1")
        board.set_lines({1: {"power": False}})
    finally:
        consoles.close()
    assert re.search(r"file \S+/tftp/bootcode\.bin not found", (base / "dnsmasq.log").read_text())
    assert consoles.text["w1"].strip() == "" and state == "bootloader"
    # The playbook puts it back.
    proc, results, _changed = ansible_playbook(site["args"], site["env"], base)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert results["Build the TFTP directories"][0]["root_files"] == {"bootcode.bin": "added"}
    assert (base / "tftp" / "bootcode.bin").is_file()
