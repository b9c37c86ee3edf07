# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The simulated nodes' bootloader EEPROMs, file trees and recovery.bin (sim/carrier_sim/eeprom.py),
through the simulator's real interfaces (bus socket, pty, status) and the files it serves."""

from __future__ import annotations

import hashlib
import os
import re

import pytest
from simkit import gpio_topology
from test_nodes import Lines

from ansible_collections.picluster.carrier.plugins.module_utils._eeprom import config as EC
from ansible_collections.picluster.carrier.plugins.module_utils._eeprom import files as EF
from ansible_collections.picluster.carrier.plugins.module_utils._eeprom import image as EI
from ansible_collections.picluster.carrier.plugins.module_utils._eeprom import node as EN
from ansible_collections.picluster.carrier.plugins.module_utils._eeprom import sig as ES
from ansible_collections.picluster.carrier.plugins.module_utils import _keys
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from carrier_sim import bootconf
from carrier_sim import eeprom as sim_eeprom
from carrier_sim import pieeprom

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
FIXTURES = os.path.join(os.path.dirname(REPO), "shared", "fixtures", "eeprom")
REAL_IMAGES = sorted(n for n in os.listdir(FIXTURES) if "pieeprom" in n) if os.path.isdir(FIXTURES) else []
needs_real_images = pytest.mark.skipif(not REAL_IMAGES, reason="real EEPROM images not available: %s is absent"
                                       % FIXTURES)


def boot_lines(text):
    return [line[7:] for line in text.split("\r\n") if "Boot mode:" in line]


def node_paths(sim, host):
    root = sim.node(host)["root"]
    return root, EN.NodePaths.defaults(root)


def stage(root, boot_order, sig=None):
    """What eeprom_config stages (the library's plan, written): returns the new image bytes."""
    plan = EN.plan_node_update(EN.NodePaths.defaults(root), boot_order=boot_order)
    EF.write_planned(plan)
    boot = os.path.join(root, "boot/firmware")
    if sig is not None:
        with open(os.path.join(boot, "pieeprom.sig"), "w") as f:
            f.write(sig)
    with open(os.path.join(boot, "pieeprom.upd"), "rb") as f:
        return f.read()


# --- pure functions -----------------------------------------------------------------------------------------


def test_initial_image_is_a_real_image_with_the_slot_keys():
    data = sim_eeprom.initial_image("bcm2711", {"BOOT_ORDER": "0xf12", "NET_BOOT_MAX_RETRIES": 2})
    image = EI.EepromImage(data)
    assert len(data) == 524288 and image.soc == "bcm2711"
    assert image.config == "[all]\nBOOT_UART=1\nBOOT_ORDER=0xf12\nNET_BOOT_MAX_RETRIES=2\n"
    # the package image and the node image differ only in bootconf.txt
    package = sim_eeprom.package_image("bcm2711")
    assert EI.EepromImage(package).with_config(image.config).to_bytes() == data
    cm5 = EI.EepromImage(sim_eeprom.initial_image("bcm2712"))
    assert len(cm5.to_bytes()) == 2097152 and cm5.soc == "bcm2712"
    assert cm5.to_bytes()[0x10008:0x1000f] == b"bootsys"  # an A/B image (docs/hardware.md section 4)


def test_initial_image_from_a_given_image_keeps_its_other_files():
    base = EI.EepromImage(EI.make_synthetic_image("bcm2711", "[all]\nBOOT_ORDER=0x1\n"))
    base.set_pubkey(b"\x01" * 264)
    image = EI.EepromImage(sim_eeprom.initial_image("bcm2711", {"BOOT_UART": "1"}, base.to_bytes()))
    assert image.get_file(EI.PUBKEY_BIN) == b"\x01" * 264
    assert image.config == "[all]\nBOOT_ORDER=0x1\nBOOT_UART=1\n"
    with pytest.raises(CarrierError, match="bcm2711 image for a bcm2712 node"):
        sim_eeprom.initial_image("bcm2712", None, base.to_bytes())


def test_effective_settings_take_all_and_this_boards_serial_section():
    text = "[all]\nBOOT_ORDER=0xf41\nBOOT_UART=1\n[0xb7f44626]\nBOOT_ORDER=0xf21\n[0x12345678]\nBOOT_UART=0\n" \
           "[gpio8=0]\nBOOT_ORDER=0xf1\n[all]\nWAKE_ON_GPIO=0\n"
    assert bootconf.effective_settings(text, "10000000b7f44626") == {
        "BOOT_ORDER": "0xf21", "BOOT_UART": "1", "WAKE_ON_GPIO": "0"}
    assert bootconf.effective_settings(text, "1000000012345678")["BOOT_UART"] == "0"
    assert bootconf.effective_settings(text, "1000000012345678")["BOOT_ORDER"] == "0xf41"


@pytest.mark.parametrize("value, codes", [
    (None, [0x1, 0x4, 0xF]), ("", [0x1, 0x4, 0xF]), ("0xf41", [0x1, 0x4, 0xF]), ("f41", [0x1, 0x4, 0xF]),
    ("0XF21", [0x1, 0x2, 0xF]), (0xF216, [0x6, 0x1, 0x2, 0xF]), ("0", [0x1]), ("0x111111111", [0x1] * 8),
])
def test_boot_order_is_read_nibble_by_nibble_from_the_lowest(value, codes):
    assert bootconf.parse_boot_order(value) == codes


def test_the_config_of_a_new_node_sets_keys_in_all_as_rpi_eeprom_config_would():
    assert bootconf.set_in_all("", "BOOT_UART", "1") == "[all]\nBOOT_UART=1\n"
    text = "# mine\nBOOT_ORDER=0x1\n[0x12345678]\nBOOT_UART=0\n[all]\nWAKE_ON_GPIO=1\n\n# end\n"
    added = text.replace("WAKE_ON_GPIO=1\n", "WAKE_ON_GPIO=1\nBOOT_UART=1\n")
    assert bootconf.set_in_all(text, "BOOT_UART", "1") == added
    assert bootconf.set_in_all(text, "BOOT_ORDER", "0xf21") == text.replace("0x1\n", "0xf21\n")
    for key, value in (("BOOT_UART", "1"), ("BOOT_ORDER", "0xf21"), ("NEW", "x")):
        cfg = EC.BootConfig.parse(text)
        cfg.set(key, value, "all")
        assert bootconf.set_in_all(text, key, value) == cfg.render()  # the same text as the collection's


def test_flash_refuses_what_is_not_an_image_of_its_soc(tmp_path):
    eeprom = sim_eeprom.NodeEeprom("bcm2711", sim_eeprom.initial_image("bcm2711"), "10000000b7f44626")
    eeprom.attach(str(tmp_path / "eeprom" / "pieeprom.bin"))
    before = eeprom.data
    with pytest.raises(CarrierError, match="bcm2712 image, this EEPROM is bcm2711"):
        eeprom.flash(sim_eeprom.initial_image("bcm2712"))
    with pytest.raises(CarrierError):
        eeprom.flash(before[:1000])
    assert eeprom.data == before and eeprom.flashes == 0
    new = EI.EepromImage(before).with_config("[all]\nBOOT_ORDER=0xf12\n").to_bytes()
    written, unchanged = eeprom.flash(new)
    assert written == 1 and unchanged == 127  # only bootconf.txt's 4 KiB sector differs
    assert (tmp_path / "eeprom" / "pieeprom.bin").read_bytes() == new
    assert eeprom.settings()["BOOT_ORDER"] == "0xf12" and eeprom.flashes == 1


def test_recovery_bin_is_recognised_per_soc():
    rec = sim_eeprom.recovery_bin("bcm2711")
    assert sim_eeprom.is_recovery_bin(rec, "bcm2711")
    assert not sim_eeprom.is_recovery_bin(rec, "bcm2712")
    assert not sim_eeprom.is_recovery_bin(b"\x00" * 1000, "bcm2711")


# --- the node's file tree -----------------------------------------------------------------------------------


def test_node_tree_is_what_eeprom_config_reads(run_sim):
    topo = gpio_topology("itx4", {1: "n1", 2: "n2", 3: "n3"}, slot_sim={"bootconf": {"BOOT_ORDER": "0xf21"}})
    topo["boards"]["b1"]["slots"][2]["model"] = "cm5"
    topo["boards"]["b1"]["slots"][3]["model"] = "cm3"
    sim = run_sim(topo)
    state = sim.state_dir
    node = sim.node("n1")
    root, paths = node_paths(sim, "n1")
    assert root == os.path.join(state, "nodes", "n1", "root")
    assert EN.detect_soc(paths.compatible) == "bcm2711"
    assert os.readlink(os.path.join(root, "proc/device-tree")) == "../sys/firmware/devicetree/base"
    config, source = EN.read_node_config(paths)
    assert source == "blconfig nvmem device"
    assert config == "[all]\nBOOT_UART=1\nBOOT_ORDER=0xf21\n"
    firmware = EN.find_firmware_image(paths.firmware_dir, "bcm2711")
    assert firmware.endswith("bootloader-2711/default/pieeprom-2024-07-30.bin")
    assert sim_eeprom.is_recovery_bin(open(os.path.join(os.path.dirname(firmware), "recovery.bin"), "rb").read(),
                                      "bcm2711")
    assert os.path.isfile(os.path.join(paths.boot_partition, "config.txt"))
    assert os.path.getsize(os.path.join(paths.boot_partition, "start4.elf")) == 2252832
    # the EEPROM, mirrored in a file, and in the status
    eeprom_file = os.path.join(state, "nodes", "n1", "eeprom", "pieeprom.bin")
    data = open(eeprom_file, "rb").read()
    assert EI.EepromImage(data).config == config
    assert node["eeprom"] == {"soc": "bcm2711", "size": 524288, "sha256": hashlib.sha256(data).hexdigest(),
                              "file": eeprom_file, "flashes": 0, "boot_order": "0xf21"}
    # a CM5: 2 MiB BCM2712 image, bootloader-2712
    root5, paths5 = node_paths(sim, "n2")
    assert EN.detect_soc(paths5.compatible) == "bcm2712"
    assert EN.find_firmware_image(paths5.firmware_dir, "bcm2712").endswith(
        "bootloader-2712/default/pieeprom-2024-07-30.bin")
    assert sim.node("n2")["eeprom"]["size"] == 2097152
    # a CM3 has no bootloader EEPROM: eeprom_config's check refuses it as on a real one
    root3, paths3 = node_paths(sim, "n3")
    assert sim.node("n3")["eeprom"] is None
    with pytest.raises(CarrierError, match="not a Raspberry Pi 4/5"):
        EN.detect_soc(paths3.compatible)
    sim.stop()
    assert not os.path.exists(os.path.join(state, "nodes")), "node trees left behind"


# --- recovery.bin ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model, sectors", [("cm4", 128), ("cm5", 512)])
def test_staged_update_is_flashed_at_the_next_boot(run_sim, plain_modes, model, sectors):
    topo = gpio_topology("itx4", {1: "n1"})
    topo["boards"]["b1"]["slots"][1]["model"] = model
    sim = run_sim(topo)
    root, paths = node_paths(sim, "n1")
    before = sim.node("n1")["eeprom"]
    new = stage(root, ["network", "sd", "restart"])
    console = sim.console("n1")
    bus = sim.bus("b1")
    lines = Lines(bus)
    lines.set(power=True)
    text = console.read_until("n1 login: ")
    out = text.split("\r\n")
    sig = ES.parse_sig(open(os.path.join(paths.boot_partition, "pieeprom.sig")).read())
    assert "Loading recovery.bin (SoC %s)" % ("BCM2712" if model == "cm5" else "BCM2711") in out
    assert "SIG pieeprom.sig %s %d" % (sig.sha256, sig.ts) in out
    assert "Reading EEPROM: %d" % (sectors * 4096) in out
    assert out.index("Writing EEPROM") < out.index("Verify BOOT EEPROM") < out.index("SUCCESS")
    marks = "".join(line for line in out if re.fullmatch(r"[.+]+", line))
    assert len(marks) == sectors and marks.count("+") == 1  # one 4 KiB sector rewritten: bootconf.txt
    # then a reset: the bootloader boots with the new BOOT_ORDER
    after_flash = text.split("SUCCESS", 1)[1]
    assert "RPi: BOOTLOADER release" not in text.split("SUCCESS", 1)[0]  # the ROM ran recovery.bin first
    assert boot_lines(after_flash) == ["Boot mode: NETWORK (02) order f1", "Boot mode: SD (01) order f"]
    node = sim.node("n1")
    assert node["boots"] == 2 and node["eeprom"]["flashes"] == 1 and node["eeprom"]["boot_order"] == "0xf12"
    assert node["eeprom"]["sha256"] == hashlib.sha256(new).hexdigest() != before["sha256"]
    assert open(node["eeprom"]["file"], "rb").read() == new
    assert sorted(f for f in os.listdir(paths.boot_partition) if f.startswith(("recovery", "pieeprom"))) == [
        "pieeprom.sig", "pieeprom.upd", "recovery.000"]
    # the OS now sees the new config as the live one
    live = EN.read_blconfig(paths.dt_base, paths.nvmem_devices)
    assert EC.effective_boot_order(live) == ["network", "sd", "restart"]
    # a reset without recovery.bin: no flashing again
    lines.set(run=False)
    sim.wait_state("n1", "reset")
    lines.set(run=True)
    text = console.read_until("n1 login: ")
    assert "Writing EEPROM" not in text and boot_lines(text)[0] == "Boot mode: NETWORK (02) order f1"
    assert sim.node("n1")["eeprom"]["flashes"] == 1
    bus.close()
    console.close()


def test_bad_signature_is_refused_and_the_eeprom_is_unchanged(run_sim, plain_modes):
    sim = run_sim(gpio_topology("itx4", {1: "n1"}))
    root, paths = node_paths(sim, "n1")
    before = sim.node("n1")["eeprom"]
    stage(root, ["network", "sd"], sig="%s\nts: 1722344555\n" % ("0" * 64))
    console = sim.console("n1")
    bus = sim.bus("b1")
    lines = Lines(bus)
    lines.set(power=True)
    node = sim.wait_state("n1", "error")
    text = console.read_for(0.6)
    assert "SIG pieeprom.sig %s 1722344555" % ("0" * 64) in text
    assert re.search(r"Bad signature pieeprom\.upd: sha256 [0-9a-f]{64}", text)
    assert "Writing EEPROM" not in text and "BOOTLOADER" not in text and "login:" not in text
    assert node["error"].startswith("recovery.bin: pieeprom.upd: sha256")
    assert node["eeprom"] == before
    assert os.path.exists(os.path.join(paths.boot_partition, "recovery.bin"))  # not renamed: it runs again
    assert EI.EepromImage(open(before["file"], "rb").read()).config == "[all]\nBOOT_UART=1\nBOOT_ORDER=0xf41\n"
    # fixed by hand (the update removed): the next power-on boots the old EEPROM
    for name in ("pieeprom.upd", "pieeprom.sig", "recovery.bin"):
        os.unlink(os.path.join(paths.boot_partition, name))
    lines.set(power=False)
    sim.wait_state("n1", "off")
    lines.set(power=True)
    text = console.read_until("n1 login: ")
    assert boot_lines(text)[0] == "Boot mode: SD (01) order f4" and sim.node("n1")["error"] is None
    bus.close()
    console.close()


@pytest.mark.parametrize("case", ["missing_sig", "wrong_soc", "no_update", "foreign_recovery", "no_sd"])
def test_recovery_cases(run_sim, plain_modes, case):
    slot_sim = {"media": {"sd": False}, "bootconf": {"BOOT_ORDER": "0xf1"}} if case == "no_sd" else None
    sim = run_sim(gpio_topology("itx4", {1: "n1"}, slot_sim=slot_sim))
    root, paths = node_paths(sim, "n1")
    boot = paths.boot_partition
    before = sim.node("n1")["eeprom"]
    stage(root, ["network", "sd"])
    if case == "missing_sig":
        os.unlink(os.path.join(boot, "pieeprom.sig"))
    elif case == "wrong_soc":
        other = sim_eeprom.initial_image("bcm2712")
        open(os.path.join(boot, "pieeprom.upd"), "wb").write(other)
        open(os.path.join(boot, "pieeprom.sig"), "w").write(ES.make_sig(other))
    elif case == "no_update":
        os.unlink(os.path.join(boot, "pieeprom.upd"))
        os.unlink(os.path.join(boot, "pieeprom.sig"))
    elif case == "foreign_recovery":
        open(os.path.join(boot, "recovery.bin"), "wb").write(b"\x7fELF" + b"\0" * 4000)
    console = sim.console("n1")
    bus = sim.bus("b1")
    Lines(bus).set(power=True)
    if case in ("missing_sig", "wrong_soc"):
        node = sim.wait_state("n1", "error")
        text = console.read_for(0.4)
        expected = "Bad signature pieeprom.upd: no pieeprom.sig" if case == "missing_sig" else \
            "Bad image pieeprom.upd: pieeprom.upd: a bcm2712 image on a bcm2711"
        assert expected in text, text
        assert node["eeprom"] == before
    elif case == "no_update":
        text = console.read_until("n1 login: ")
        assert "Loading recovery.bin" in text and "Writing EEPROM" not in text
        assert os.path.exists(os.path.join(boot, "recovery.000")) and not os.path.exists(os.path.join(boot,
                                                                                                      "recovery.bin"))
        assert sim.node("n1")["eeprom"] == before
    elif case == "foreign_recovery":
        # not a valid executable for this SoC: the ROM ignores it and boots the EEPROM
        text = console.read_until("n1 login: ")
        assert "recovery.bin" not in text and boot_lines(text)[0] == "Boot mode: SD (01) order f4"
        assert sim.node("n1")["eeprom"] == before
    else:
        # no SD/eMMC: the ROM never sees the boot partition, so nothing is flashed
        text = console.read_for(0.6)
        assert "recovery.bin" not in text and "SD card not detected" in text
        assert sim.node("n1")["eeprom"] == before and os.path.exists(os.path.join(boot, "recovery.bin"))
    bus.close()
    console.close()


def test_network_self_update_uses_the_same_eeprom(run_sim):
    """netboot.py flashes through Node.flash_eeprom and reads the node's EEPROM back from the same place."""
    from carrier_sim import netboot

    sim = run_sim(gpio_topology("itx4", {1: "n1"}))
    node = sim.sim.nodes["n1"]
    new = EI.EepromImage(node.eeprom_image).with_config("[all]\nBOOT_UART=1\nBOOT_ORDER=0xf21\n").to_bytes()
    node.flash_eeprom(new)
    assert netboot.node_eeprom(node) == new
    status = sim.node("n1")["eeprom"]
    assert status["flashes"] == 1 and status["boot_order"] == "0xf21"
    assert open(status["file"], "rb").read() == new


# --- the shell -------------------------------------------------------------------------------------------------


def test_shell_answers_vcgencmd_and_shows_the_boot_partition(run_sim, plain_modes):
    topo = gpio_topology("itx4", {1: "n1", 2: "n2"}, slot_sim={"bootconf": {"BOOT_ORDER": "0xf21"}})
    topo["boards"]["b1"]["slots"][2]["model"] = "cm3"
    sim = run_sim(topo)
    bus = sim.bus("b1")
    latch = 0xFFFF & ~0x0009  # both slots' power low
    bus.write_word_data(0x20, 0x02, latch)
    bus.write_word_data(0x20, 0x06, 0xFFFF & ~0x003F)
    bus.write_word_data(0x20, 0x02, latch | 0x0009)  # power on slots 1 and 2
    console = sim.console("n1")
    console.read_until("n1 login: ")
    console.login("n1")
    assert console.run("vcgencmd bootloader_config") == "[all]\r\nBOOT_UART=1\r\nBOOT_ORDER=0xf21"
    assert console.run("vcgencmd bootloader_version").split("\r\n")[1] == "version 5f18ffb6 (release)"
    files = sorted(os.listdir(os.path.join(sim.node("n1")["root"], "boot/firmware")), key=str.lower)
    assert "config.txt" in files and "start4.elf" in files
    assert console.run("ls -1 /boot/firmware").split("\r\n") == files
    listing = console.run("ls /boot/firmware")  # columns, filled top to bottom, within 80 characters
    assert sorted(listing.split(), key=str.lower) == files
    assert all(len(row) <= 80 for row in listing.split("\r\n"))
    long = console.run("ls -l /boot/firmware/start4.elf")
    assert re.fullmatch(r"-rwxr-xr-x 1 root root 2252832 \w{3} \d\d \d\d:\d\d start4.elf", long), long
    assert "enable_uart=1" in console.run("cat /boot/firmware/config.txt")
    assert console.run("ls /boot/nothing") == "ls: cannot access '/boot/nothing': No such file or directory"
    assert console.run("echo $?") == "2"
    console.close()
    console = sim.console("n2")
    sim.wait_state("n2", "login")
    console.login("n2")
    assert console.run("vcgencmd bootloader_config") == 'error=2 error_msg="Command not registered"'
    console.close()
    bus.close()


def test_an_eeprom_image_of_another_soc_is_a_setup_error(short_dir, run_sim):
    from carrier_sim.server import SimError

    path = os.path.join(short_dir, "cm5.bin")
    with open(path, "wb") as f:
        f.write(sim_eeprom.initial_image("bcm2712"))
    with pytest.raises(SimError, match=r"boards\.b1\.slots\.1\.sim: sim\.eeprom_image: a bcm2712 image for a bcm2711"):
        run_sim(gpio_topology("itx4", {1: "n1"}, slot_sim={"eeprom_image": path}))
    assert not os.path.exists(os.path.join(short_dir, "state", "nodes"))


# --- the simulator's reading against the collection's, on Raspberry Pi's real images ------------------------


@needs_real_images
@pytest.mark.parametrize("name", REAL_IMAGES)
def test_real_images_read_and_rewritten_the_same_by_both(name):
    data = open(os.path.join(FIXTURES, name), "rb").read()
    mine, theirs = pieeprom.Pieeprom(data, name), EI.EepromImage(data, name)
    assert mine.soc == theirs.soc == ("bcm2712" if name.startswith("2712") else "bcm2711")
    assert mine.ab == theirs.ab
    assert mine.config == theirs.config and mine.config.startswith("[all]\nBOOT_UART=")
    assert mine.public_key() is None  # Raspberry Pi's images carry no customer key
    new = "[all]\nBOOT_UART=1\nBOOT_ORDER=0xf12\n[0xb7f44626]\nBOOT_ORDER=0xf21\n"
    written = theirs.with_config(new).to_bytes()
    assert pieeprom.Pieeprom(written).config == new
    assert mine.with_config(new).data == written  # byte for byte, as rpi-eeprom-config writes it
    assert bootconf.effective_settings(new, "10000000b7f44626")["BOOT_ORDER"] == "0xf21"


@needs_real_images
def test_real_image_staged_by_the_collection_is_flashed_by_recovery_bin(run_sim, plain_modes):
    real = os.path.join(FIXTURES, "2711-pieeprom-2026-05-17.bin")
    sim = run_sim(gpio_topology("itx4", {1: "n1"}))
    root, paths = node_paths(sim, "n1")
    recovery_bin = os.path.join(os.path.dirname(EN.find_firmware_image(paths.firmware_dir, "bcm2711")),
                                "recovery.bin")
    plan = EN.plan_node_update(paths, boot_order=["network", "sd", "restart"], image=real, recovery_bin=recovery_bin)
    EF.write_planned(plan)
    staged = open(os.path.join(paths.boot_partition, "pieeprom.upd"), "rb").read()
    console = sim.console("n1")
    bus = sim.bus("b1")
    Lines(bus).set(power=True)
    text = console.read_until("n1 login: ")
    assert "SUCCESS" in text and boot_lines(text.split("SUCCESS", 1)[1])[0] == "Boot mode: NETWORK (02) order f1"
    node = sim.node("n1")
    assert node["eeprom"]["sha256"] == hashlib.sha256(staged).hexdigest() and node["eeprom"]["boot_order"] == "0xf12"
    assert open(node["eeprom"]["file"], "rb").read()[:4096] == open(real, "rb").read()[:4096]  # real code bytes
    bus.close()
    console.close()


def test_sig_checks_agree_with_the_collections_sig_files():
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    image = EI.EepromImage(EI.make_synthetic_image("bcm2711"))
    image.set_pubkey(_keys.pubkey_bin(key.public_key()))
    public = pieeprom.Pieeprom(image.to_bytes()).public_key()
    assert public.public_numbers() == key.public_key().public_numbers()
    data = b"boot.img bytes" * 100
    signed = ES.make_sig(data, ts=1722344555, private_key=key)
    assert pieeprom.check_sig(data, signed, "boot.sig", public).ts == 1722344555
    assert pieeprom.check_sig(data, ES.make_sig(data, ts=5), "pieeprom.sig").sha256 == hashlib.sha256(data).hexdigest()
    with pytest.raises(CarrierError, match="boot.sig: bad .sig file: sha256"):
        pieeprom.check_sig(data + b"!", signed, "boot.sig", public)
    with pytest.raises(CarrierError, match="boot.sig: bad .sig file: the rsa2048 signature does not verify"):
        pieeprom.check_sig(data, ES.make_sig(data, ts=1, private_key=other), "boot.sig", public)
    with pytest.raises(CarrierError, match="boot.sig: bad .sig file: no rsa2048"):
        pieeprom.check_sig(data, ES.make_sig(data, ts=1), "boot.sig", public)
    for bad in ("", "%s\n" % ("0" * 64), "%s\nts: soon\n" % ("0" * 64), "ABC\nts: 1\n"):
        with pytest.raises(CarrierError, match="pieeprom.sig: bad .sig file"):
            pieeprom.parse_sig(bad, "pieeprom.sig")


def test_corrupt_images_are_refused_by_the_simulators_reader():
    data = bytearray(sim_eeprom.package_image("bcm2711"))
    with pytest.raises(CarrierError, match="not a bootloader image"):
        pieeprom.Pieeprom(bytes(data[:-1]))
    data[8] ^= 0xFF  # inside the bootcode: fine
    pieeprom.Pieeprom(bytes(data))
    data[0] = 0x12  # the first magic
    with pytest.raises(CarrierError, match="corrupt section magic 0x12aaf00f at 0x0"):
        pieeprom.Pieeprom(bytes(data))
    image = pieeprom.Pieeprom(sim_eeprom.package_image("bcm2712"))
    assert image.ab and image.partition == (0x10000, 0x107000)
    with pytest.raises(CarrierError, match="bootconf.txt of 4077 bytes: at most 4076 fit"):
        image.with_config("#" * 4077)
