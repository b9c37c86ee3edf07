# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""End to end on the simulator (issue 4): eeprom_config sets a boot order on a node's file tree, the node is
reset through its carrier board (node_power), its console shows recovery.bin flashing the EEPROM and then the
new order being tried, and a bad pieeprom.sig is refused at boot with the EEPROM unchanged.

Everything runs as in use: the simulator daemon (``sim/carrier-sim``), the modules as Ansible runs them
(a fresh interpreter with an arguments file), the console through pyserial (the console module's
library). The node has no network cable (no TFTP server): NETWORK fails and the bootloader falls to SD.
"""

from __future__ import annotations

import hashlib
import os
import re

import pytest
from modrun import run_module

from ansible_collections.picluster.carrier.plugins.module_utils._eeprom import sig as S
from ansible_collections.picluster.carrier.plugins.module_utils._console import ConsoleSession

pytest.importorskip("serial")

HOST = "ee01"
TOPOLOGY = {
    "controllers": {"ctrl0": {}},
    "boards": {
        "carrier1": {
            "profile": "itx4", "controller": "ctrl0", "bus": "sim:{dir}/bus1.sock",
            "console": "{dir}/state/console/{host}",
            "slots": {
                1: {"host": HOST, "model": "cm4", "serial": "10000000b7f44626", "mac": "dc:a6:32:01:36:c2",
                    "sim": {"boot_time": 2.0}},
            },
        },
    },
}


@pytest.fixture
def rig(sim_cluster_factory, tmp_path):
    cluster = sim_cluster_factory(TOPOLOGY)
    spec = cluster.data["boards"]["carrier1"]
    lock_dir = os.path.join(cluster.dir, "locks")
    os.makedirs(lock_dir, exist_ok=True)

    def power(state, **extra):
        args = {"board": "carrier1", "profile": spec["profile"], "bus": spec["bus"], "lock_dir": lock_dir,
                "slot": 1, "state": state}
        args.update(extra)
        result = run_module("node_power", args, tmp_path)
        assert result.exit_status == 0, result
        return result

    def eeprom_config(check=False, **args):
        args.setdefault("root", cluster.node(HOST)["root"])
        return run_module("eeprom_config", args, tmp_path, check=check)

    console = ConsoleSession(cluster.consoles[HOST])
    console.open()
    rig = type("Rig", (), {})()
    rig.cluster, rig.power, rig.eeprom_config, rig.console = cluster, power, eeprom_config, console
    yield rig
    console.close()


def boot_modes(lines):
    return [re.sub(r"^\s*\d+\.\d+ ", "", line) for line in lines if "Boot mode:" in line]


def test_boot_order_set_with_eeprom_config_is_flashed_and_tried(rig):
    cluster, console = rig.cluster, rig.console
    node = cluster.node(HOST)
    root = node["root"]
    boot = os.path.join(root, "boot", "firmware")
    eeprom_before = node["eeprom"]

    rig.power("on")
    first = console.capture(until=r"%s login: " % HOST, timeout=30)["lines"]
    assert boot_modes(first) == ["Boot mode: SD (01) order f4"]

    # check mode: the change is predicted, nothing is written
    predicted = rig.eeprom_config(check=True, boot_order=["network", "sd", "restart"])
    assert predicted.exit_status == 0 and predicted["changed"] is True, predicted
    assert not os.path.exists(os.path.join(boot, "pieeprom.upd"))

    result = rig.eeprom_config(boot_order=["network", "sd", "restart"])
    assert result.exit_status == 0, result
    assert result["changed"] is True and result["reboot_required"] is True
    assert result["config_source"] == "blconfig nvmem device" and result["soc"] == "bcm2711"
    assert result["previous_config"] == "[all]\nBOOT_UART=1\nBOOT_ORDER=0xf41\n"
    assert result["config"] == "[all]\nBOOT_UART=1\nBOOT_ORDER=0xf12\n"
    assert result["boot_order"] == ["network", "sd", "restart"]
    assert sorted(os.path.basename(p) for p in result["staged"]) == ["pieeprom.sig", "pieeprom.upd", "recovery.bin"]
    assert result["image"].endswith("lib/firmware/raspberrypi/bootloader-2711/default/pieeprom-2024-07-30.bin")
    staged = open(os.path.join(boot, "pieeprom.upd"), "rb").read()
    assert cluster.node(HOST)["eeprom"] == eeprom_before  # staged only: the EEPROM changes at the next boot

    # reset through the carrier board's run line: the ROM runs recovery.bin, then the new bootloader config
    rig.power("reset", reset_pulse=0.05)
    text = console.capture(until=r"%s login: " % HOST, timeout=30)["lines"]
    sig = S.parse_sig(open(os.path.join(boot, "pieeprom.sig")).read())
    assert "SIG pieeprom.sig %s %d" % (sig.sha256, sig.ts) in text
    assert text.index("Writing EEPROM") < text.index("Verify BOOT EEPROM") < text.index("SUCCESS")
    after = text[text.index("SUCCESS"):]
    assert boot_modes(after) == ["Boot mode: NETWORK (02) order f1", "Boot mode: SD (01) order f"]
    assert any("RPi: BOOTLOADER release" in line for line in after)
    assert not any("RPi: BOOTLOADER release" in line for line in text[:text.index("SUCCESS")])
    node = cluster.node(HOST)
    assert node["eeprom"]["sha256"] == hashlib.sha256(staged).hexdigest() != eeprom_before["sha256"]
    assert node["eeprom"]["flashes"] == 1 and node["eeprom"]["boot_order"] == "0xf12"
    assert os.path.exists(os.path.join(boot, "recovery.000")) and not os.path.exists(os.path.join(boot,
                                                                                                  "recovery.bin"))

    # the live config over the console
    console.login("pi", "raspberry", timeout=30)
    out, rc = console.run_command("vcgencmd bootloader_config")
    assert rc == 0 and "BOOT_ORDER=0xf12" in out.splitlines(), out
    out, rc = console.run_command("ls /boot/firmware")
    assert rc == 0 and "recovery.000" in out.split() and "pieeprom.upd" in out.split(), out

    # nothing more to do
    again = rig.eeprom_config(boot_order=["network", "sd", "restart"])
    assert again.exit_status == 0 and again["changed"] is False, again
    assert again["boot_order"] == ["network", "sd", "restart"]


def test_no_reboot_required_once_the_update_is_flashed(rig):
    """recovery.bin leaves the flashed pieeprom.upd beside recovery.000: that is no pending update."""
    cluster, console = rig.cluster, rig.console
    rig.power("on")
    console.capture(until=r"%s login: " % HOST, timeout=30)
    assert rig.eeprom_config(boot_order=["network", "sd", "restart"])["changed"] is True
    rig.power("reset", reset_pulse=0.05)
    console.capture(until=r"%s login: " % HOST, timeout=30)
    assert cluster.node(HOST)["eeprom"]["boot_order"] == "0xf12"
    again = rig.eeprom_config(boot_order=["network", "sd", "restart"])
    assert again["changed"] is False
    assert again["reboot_required"] is False, again


def test_bad_signature_is_refused_at_boot(rig):
    cluster, console = rig.cluster, rig.console
    node = cluster.node(HOST)
    boot = os.path.join(node["root"], "boot", "firmware")
    before = node["eeprom"]
    eeprom_bytes = open(before["file"], "rb").read()
    rig.power("on")
    console.capture(until=r"%s login: " % HOST, timeout=30)

    result = rig.eeprom_config(boot_order=["nvme", "sd", "restart"])
    assert result.exit_status == 0 and result["changed"] is True, result
    # the image altered after its .sig was written (a copy gone wrong)
    with open(os.path.join(boot, "pieeprom.upd"), "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02\x03")

    rig.power("reset", reset_pulse=0.05)
    cluster.wait_state(HOST, "error", timeout=20)
    lines = console.capture(duration=0.5)["lines"]
    lines = lines[[i for i, line in enumerate(lines) if line.startswith("Loading recovery.bin")][0]:]
    assert any(re.fullmatch(r"Bad signature pieeprom\.upd: sha256 [0-9a-f]{64}", line) for line in lines), lines
    assert not any("Writing EEPROM" in line or "login:" in line for line in lines)
    node = cluster.node(HOST)
    assert node["eeprom"] == before and open(before["file"], "rb").read() == eeprom_bytes
    assert node["error"].startswith("recovery.bin: pieeprom.upd: sha256")
    assert os.path.exists(os.path.join(boot, "recovery.bin"))
    # still refused at every power-on until the files are fixed
    rig.power("off")
    rig.power("on")
    cluster.wait_state(HOST, "error", timeout=20)
    assert cluster.node(HOST)["eeprom"] == before
