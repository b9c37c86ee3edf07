# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The flash contract from both sides: the collection's device finder (_flash.device, which reads the real
kernel's sysfs the same way) finds and vets the disk the simulator's mass-storage gadget exposes, by USB
port, and nothing on another port. The simulator never imports that code; only this test uses both."""

from __future__ import annotations

import json
import os
import socket

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils._flash import device
from diskimages import make_image, needs_tools, rpi_files
from test_usb import Lines, topology


def rpiboot(base, port, target="emmc"):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(os.path.join(base, "usb.sock"))
        sock.sendall(json.dumps({"op": "rpiboot", "port": port, "target": target}).encode() + b"\n")
        return json.loads(sock.makefile("rb").readline())


def test_the_collections_finder_reads_the_simulated_disks(run_sim, short_dir, tmp_path):
    sim = run_sim(topology())
    bus = sim.bus("b1")
    try:
        lines = Lines(bus)
        sys_root, dev_root = os.path.join(short_dir, "sys"), os.path.join(short_dir, "dev")
        assert device.disks_on_port(sys_root, dev_root, "1-1.2") == []
        lines.set(2, power=True, rpiboot=True)
        sim.wait_state("n2", "rpiboot")
        assert rpiboot(short_dir, "1-1.2", "nvme")["value"]["device"] == "sdb"
        found = device.disks_on_port(sys_root, dev_root, "1-1.2")
        assert [(d.name, d.size, device.lun(d)) for d in found] == [("sda", 16 * 1024 ** 3, 0), ("sdb", 1024 ** 3, 1)]
        assert device.disks_on_port(sys_root, dev_root, "1-1.1") == []
        assert device.disks_on_port(sys_root, dev_root, "1-1") == []  # the hub above is not the port
        empty = tmp_path / "empty"
        empty.write_text("")
        for disk in found:  # a file under the state dir, not read-only, not mounted, big enough
            device.vet(disk, "1-1.2", 4096, sim_root=short_dir, mountinfo=str(empty), swaps=str(empty))
        with pytest.raises(device.DeviceError, match="not on USB port 1-1.1"):
            device.vet(found[0], "1-1.1", 4096, sim_root=short_dir, mountinfo=str(empty), swaps=str(empty))
        with pytest.raises(device.DeviceError, match="larger than the node's storage"):
            device.vet(found[1], "1-1.2", 2 * 1024 ** 3, sim_root=short_dir, mountinfo=str(empty), swaps=str(empty))
        lines.set(2, power=False)
        assert device.disks_on_port(sys_root, dev_root, "1-1.2") == []
    finally:
        bus.close()


@pytest.mark.parametrize("style", ["cloud-init", "firstrun"])
def test_the_simulator_reads_the_host_name_the_collection_writes(style):
    """The collection's first-boot files (_firstboot.seed_files), as the simulated OS reads them on its first boot."""
    from ansible_collections.picluster.carrier.plugins.module_utils import _firstboot
    from carrier_sim.firstboot import first_boot_hostname

    class Partition:
        def __init__(self, files):
            self.files = files

        def read(self, name):
            return self.files.get(name)

    cust = _firstboot.check_customize({"hostname": "node05", "fqdn": "node05.lab.example", "style": style})
    cmdline = "console=serial0,115200 rootwait systemd.run=/boot/firmware/firstrun.sh" if style == "firstrun" else ""
    assert first_boot_hostname(Partition(_firstboot.seed_files(cust)), cmdline) == "node05"


@needs_tools
@pytest.mark.parametrize("style", ["cloud-init", "firstrun"])
def test_a_customised_image_written_through_the_gadget_boots_with_its_name(
        run_sim, short_dir, tmp_path, monkeypatch, plain_modes, style):
    """The collection customises a Raspberry Pi OS-shaped image (mtools), the image goes to the eMMC through the
    gadget's /dev link, and the node boots to a login prompt with the customised name."""
    import subprocess

    from ansible_collections.picluster.carrier.plugins.module_utils import _fat, _firstboot
    from test_storage_boot import flash

    def runner(argv, env, cwd):
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, check=False)
        return proc.returncode, proc.stdout, proc.stderr

    monkeypatch.setattr(_fat, "_RUNNER", runner)
    image = make_image(str(tmp_path / "os.img"), rpi_files())
    _firstboot.apply_to_image(image, _firstboot.check_customize({"hostname": "node05", "style": style}))
    sim = run_sim(topology())
    bus = sim.bus("b1")
    try:
        lines = Lines(bus)
        flash(sim, lines, short_dir, 1, "1-1.1", image)
        console = sim.console("n1")
        lines.set(1, power=True)
        console.read_until("node05 login: ")
        console.login("node05")
        assert console.run("hostname") == "node05"
        console.close()
    finally:
        bus.close()
