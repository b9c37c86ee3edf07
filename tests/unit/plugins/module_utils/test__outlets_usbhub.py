# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The usb_hub driver (_outlets/usbhub.py): the ports' ``disable`` files of a sysfs tree the test
makes, and of the simulator's emulated hub."""

from __future__ import annotations

import errno
import os
import sys
import time

import pytest

from ansible_collections.picluster.carrier.plugins.module_utils import _outlets
from ansible_collections.picluster.carrier.plugins.module_utils._board import Board
from ansible_collections.picluster.carrier.plugins.module_utils._errors import BusError
from ansible_collections.picluster.carrier.plugins.module_utils._outlets import usbhub
from ansible_collections.picluster.carrier.plugins.module_utils._power import PowerRequest as Request, execute

SIM_TESTS = os.path.join(os.path.dirname(__file__), "..", "..", "sim")


def make_hub(devices, name="1-1", ports=4, disabled=(), root=False, **files):
    """A hub's directory as the kernel shows it (the files the driver reads)."""
    hub = devices / name
    interface = hub / ("%s-0:1.0" % name[3:] if root else "%s:1.0" % name)
    values = dict({"idVendor": "2109", "idProduct": "2817", "product": "USB2.0 Hub", "bcdDevice": "9013",
                   "maxchild": str(ports), "bConfigurationValue": "1"}, **files)
    interface.mkdir(parents=True)
    for key, value in values.items():
        (hub / key).write_text(value + "\n")
    for port in range(1, ports + 1):
        port_dir = interface / ("%s-port%d" % (name, port))
        port_dir.mkdir()
        (port_dir / "disable").write_text("1\n" if port in disabled else "0\n")
    return hub


def disable(hub, port):
    name = hub.name
    interface = "%s-0:1.0" % name[3:] if name.startswith("usb") else "%s:1.0" % name
    return hub / interface / ("%s-port%d" % (name, port)) / "disable"


@pytest.fixture
def devices(tmp_path, monkeypatch):
    monkeypatch.setattr(usbhub, "POWER_GOOD", 0.0)
    path = tmp_path / "sys" / "bus" / "usb" / "devices"
    path.mkdir(parents=True)
    return path


def board(path, tmp_path, profile="usb_hub4"):
    return Board("hub1", profile, str(path), lock_dir=str(tmp_path / "locks"))


def test_reads_and_writes_the_ports_disable_files(devices, tmp_path):
    hub = make_hub(devices, disabled=(2,))
    driver = _outlets.make_driver(board(hub, tmp_path))
    assert isinstance(driver, usbhub.HubDriver)
    assert driver.read([1, 2]) == {1: True, 2: False}
    driver.write(1, False)
    assert disable(hub, 1).read_text() == "1\n"
    driver.write(2, True)
    assert disable(hub, 2).read_text() == "0\n" and driver.read([1, 2]) == {1: False, 2: True}
    facts = driver.facts()
    assert facts == {"model": "USB2.0 Hub", "manufacturer": None, "vendor_id": "2109", "product_id": "2817",
                     "firmware": "9013", "ports": 4, "power_switching": "unknown", "mechanism": "sysfs"}


def test_root_hubs_and_hubs_behind_the_board(devices, tmp_path):
    root = make_hub(devices, "usb1", ports=2, root=True, idVendor="1d6b", product="xHCI Host Controller")
    behind = make_hub(devices, "1-1.4", ports=4, disabled=(3,))
    profile = {"name": "chain", "kind": "usb_hub", "slots": {1: {"port": 1}, 2: {"port": 3, "hub": "1-1.4"}}}
    driver = _outlets.make_driver(board(root, tmp_path, profile))
    assert driver.port_dir(1) == str(root / "1-0:1.0" / "usb1-port1")
    assert driver.read([1, 2]) == {1: True, 2: False}
    driver.write(2, True)
    assert disable(behind, 3).read_text() == "0\n"
    facts = driver.facts()
    assert facts["vendor_id"] == "1d6b" and facts["hubs"]["1-1.4"]["ports"] == 4


def test_errors_name_board_slot_and_path(devices, tmp_path, monkeypatch):
    hub = make_hub(devices, ports=2)
    driver = usbhub.HubDriver(board(hub, tmp_path))
    with pytest.raises(BusError, match=r"usb_hub board hub1 slot 3 \(.*/1-1\): the hub has no port 3 \(no directory "
                                       r".*/1-1:1.0/1-1-port3\)"):
        driver.read([3])
    os.unlink(disable(hub, 2))
    with pytest.raises(BusError, match=r"slot 2 .*Linux 6.0 or later needed"):
        driver.write(2, True)
    real_open = open

    def refused(path, *args, **kwargs):
        if str(path).endswith("disable") and args and "w" in args[0]:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", refused)
    with pytest.raises(BusError, match=r"usb_hub board hub1 slot 1 \(.*port1/disable\): permission denied writing "
                                       r".*needs root on the controller"):
        driver.write(1, False)
    monkeypatch.undo()
    (hub / "1-1:1.0" / "1-1-port1" / "disable").write_text("2\n")
    with pytest.raises(BusError, match=r"slot 1 .* reads '2', not 0 or 1"):
        driver.read([1])
    import shutil

    shutil.rmtree(hub)
    with pytest.raises(BusError, match=r"usb_hub board hub1 slot 1 \(.*/1-1\): the hub is gone"):
        driver.read([1])
    with pytest.raises(BusError, match=r"usb_hub board hub1 \(.*/1-1\): the hub is gone"):
        driver.facts()


def test_power_through_the_session_reads_back(devices, tmp_path):
    hub = make_hub(devices, ports=4, disabled=(1, 2, 3, 4))
    hub1 = board(hub, tmp_path)
    result = execute(Request(hub1, [1, 2, 3], "on", stagger=0), sleep=lambda s: None)
    assert result["changed"] and [disable(hub, n).read_text() for n in (1, 2, 3, 4)] == ["0\n", "0\n", "0\n", "1\n"]
    assert not execute(Request(hub1, [1, 2, 3], "on", stagger=0), sleep=lambda s: None)["changed"]
    assert hub1.read_state([4])[4]["power"] is False


def test_hub_descriptor_power_switching():
    assert usbhub.parse_hub_descriptor(bytes([9, 0x29, 7, 0x09, 0x00, 50, 100, 0, 0xff])) == (7, "per-port")
    assert usbhub.parse_hub_descriptor(bytes([9, 0x29, 4, 0x08, 0x00, 50, 100, 0, 0xff])) == (4, "ganged")
    assert usbhub.parse_hub_descriptor(bytes([12, 0x2a, 4, 0x0a, 0x00, 50, 100, 0, 0, 0, 0, 0])) == (4, "none")
    with pytest.raises(ValueError, match="not a hub descriptor"):
        usbhub.parse_hub_descriptor(bytes([18, 1, 0, 2]))


def test_hub_descriptor_asked_through_usbfs(devices):
    import ctypes
    import struct

    hub = make_hub(devices, ports=7, busnum="1", devnum="5", speed="480")
    seen = {}

    def opener(path, flags):
        seen["path"] = path
        return os.open(os.devnull, os.O_RDONLY)

    def ioctl(fd, request, arg, mutate):
        fields = struct.unpack(usbhub._CTRL, bytes(arg))
        seen["request"], seen["fields"] = request, fields[:6]
        answer = bytes([9, 0x29, 7, 0x09, 0x00, 50, 100, 0, 0xff])
        ctypes.memmove(fields[6], answer, len(answer))
        return len(answer)

    data = usbhub.read_hub_descriptor(str(hub), opener=opener, ioctl=ioctl)
    assert seen["path"] == "/dev/bus/usb/001/005" and seen["request"] == usbhub.USBDEVFS_CONTROL
    assert seen["fields"] == (0xA0, 6, 0x2900, 0, 64, 1000)
    assert usbhub.parse_hub_descriptor(data) == (7, "per-port")

    def refused(fd, request, arg, mutate):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    assert usbhub.read_hub_descriptor(str(hub), opener=opener, ioctl=refused) is None
    assert usbhub.read_hub_descriptor(str(devices / "nothing")) is None
    if struct.calcsize("P") == 8:
        assert usbhub.USBDEVFS_CONTROL == 0xC0185500


# --- against the simulator's emulated hub ------------------------------------------------------------

@pytest.fixture
def emulated(short_dir, monkeypatch):
    if SIM_TESTS not in sys.path:
        sys.path.insert(0, SIM_TESTS)
    from simkit import SimThread

    path = os.path.join(short_dir, "state/sys/bus/usb/devices/1-1")
    topology = {"controllers": {"c": {}}, "boards": {"hub": {
        "profile": "usb_hub7", "controller": "c", "bus": path, "sim": {"stuck": {5: "off"}},
        "slots": {n: {"host": "h%d" % n} for n in range(1, 8)}}}}
    sim = SimThread(topology, os.path.join(short_dir, "state"), boot_time=0.3, baud=1152000)
    yield sim, Board("hub", "usb_hub7", path, lock_dir=os.path.join(short_dir, "locks"))
    sim.stop()


@pytest.fixture
def short_dir():
    import shutil
    import tempfile

    path = tempfile.mkdtemp(prefix="pcs-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_against_the_emulated_hub(emulated):
    sim, hub = emulated
    assert hub.read_state([1])[1]["power"] is True
    started = time.monotonic()
    result = execute(Request(hub, [1, 2, 3, 4, 6, 7], "off", stagger=0))
    assert result["changed"] and time.monotonic() - started < 2.0
    for host in ("h1", "h4", "h7"):
        sim.wait_state(host, "off")
    with hub.session() as session:
        assert session.chip_facts()["device"]["vendor_id"] == "2109"
    with pytest.raises(BusError, match=r"usb_hub board hub: slot\(s\) 5 did not follow: slot 5 reads off, wanted on"):
        hub.set_lines({5: {"power": True}})
    assert sim.node("h5")["state"] == "off"
    sim.control({"op": "fault", "board": "hub", "gone": True})
    with pytest.raises(BusError, match=r"usb_hub board hub slot 1 \(.*/1-1\): the hub is gone"):
        hub.read_state([1])
