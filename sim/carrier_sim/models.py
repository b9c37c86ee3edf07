# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a simulated node reports about itself, per model (docs/hardware.md section 9)."""

from __future__ import annotations

import hashlib

_A72 = {"implementer": "0x41", "architecture": "8", "variant": "0x0", "part": "0xd08", "revision": "3",
        "bogomips": "108.00", "features": "fp asimd evtstrm crc32 cpuid"}
_A76 = {"implementer": "0x41", "architecture": "8", "variant": "0x4", "part": "0xd0b", "revision": "1",
        "bogomips": "108.00",
        "features": "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop "
                    "asimddp"}
_A53 = {"implementer": "0x41", "architecture": "8", "variant": "0x0", "part": "0xd03", "revision": "4",
        "bogomips": "38.40", "features": "fp asimd evtstrm crc32 cpuid"}

# boardrev: the revision code (board type = bits 4-11, docs/hardware.md section 9); eeprom: boots from
# the SPI EEPROM bootloader (BCM2711/BCM2712) rather than bootcode.bin.
MODELS = {
    "cm4": {"boardrev": "c03141", "name": "Raspberry Pi Compute Module 4 Rev 1.1", "soc": "BCM2711",
            "dtb": "bcm2711-rpi-cm4.dtb", "eeprom": True, "cpu": _A72, "cores": 4, "mem_mb": 4096,
            "machine": "aarch64", "kernel": "6.6.51+rpt-rpi-v8"},
    "pi4": {"boardrev": "c03114", "name": "Raspberry Pi 4 Model B Rev 1.4", "soc": "BCM2711",
            "dtb": "bcm2711-rpi-4-b.dtb", "eeprom": True, "cpu": _A72, "cores": 4, "mem_mb": 4096,
            "machine": "aarch64", "kernel": "6.6.51+rpt-rpi-v8"},
    "cm4s": {"boardrev": "a03150", "name": "Raspberry Pi Compute Module 4S Rev 1.0", "soc": "BCM2711",
             "dtb": "bcm2711-rpi-cm4s.dtb", "eeprom": False, "cpu": _A72, "cores": 4, "mem_mb": 1024,
             "machine": "aarch64", "kernel": "6.6.51+rpt-rpi-v8"},
    "cm5": {"boardrev": "c04180", "name": "Raspberry Pi Compute Module 5 Rev 1.0", "soc": "BCM2712",
            "dtb": "bcm2712-rpi-cm5-cm5io.dtb", "eeprom": True, "cpu": _A76, "cores": 4, "mem_mb": 4096,
            "machine": "aarch64", "kernel": "6.6.51+rpt-rpi-2712"},
    "pi5": {"boardrev": "c04170", "name": "Raspberry Pi 5 Model B Rev 1.0", "soc": "BCM2712",
            "dtb": "bcm2712-rpi-5-b.dtb", "eeprom": True, "cpu": _A76, "cores": 4, "mem_mb": 4096,
            "machine": "aarch64", "kernel": "6.6.51+rpt-rpi-2712"},
    "cm3": {"boardrev": "a02100", "name": "Raspberry Pi Compute Module 3 Plus Rev 1.0", "soc": "BCM2837",
            "dtb": "bcm2710-rpi-cm3.dtb", "eeprom": False, "cpu": _A53, "cores": 4, "mem_mb": 1024,
            "machine": "aarch64", "kernel": "6.6.51+rpt-rpi-v8"},
    # rom_netboot: the BCM2837 boot ROM network-boots from the board's Ethernet (docs/hardware.md section 11):
    # "rom" enabled as made (3B+), "otp" once OTP bit 17 is set (3B: the slot's sim.otp_usb_boot).
    "pi3bplus": {"boardrev": "a020d3", "name": "Raspberry Pi 3 Model B Plus Rev 1.3", "soc": "BCM2837",
                 "dtb": "bcm2710-rpi-3-b-plus.dtb", "eeprom": False, "rom_netboot": "rom", "cpu": _A53,
                 "cores": 4, "mem_mb": 1024, "machine": "aarch64", "kernel": "6.6.51+rpt-rpi-v8"},
    "pi3": {"boardrev": "a02082", "name": "Raspberry Pi 3 Model B Rev 1.2", "soc": "BCM2837",
            "dtb": "bcm2710-rpi-3-b.dtb", "eeprom": False, "rom_netboot": "otp", "cpu": _A53, "cores": 4,
            "mem_mb": 1024, "machine": "aarch64", "kernel": "6.6.51+rpt-rpi-v8"},
    "pizero2": {"boardrev": "902120", "name": "Raspberry Pi Zero 2 W Rev 1.0", "soc": "BCM2837",
                "dtb": "bcm2710-rpi-zero-2-w.dtb", "eeprom": False, "cpu": _A53, "cores": 4, "mem_mb": 512,
                "machine": "aarch64", "kernel": "6.6.51+rpt-rpi-v8"},
    "pizero": {"boardrev": "900093", "name": "Raspberry Pi Zero Rev 1.3", "soc": "BCM2835",
               "dtb": "bcm2708-rpi-zero.dtb", "eeprom": False, "cores": 1, "mem_mb": 512, "machine": "armv6l",
               "kernel": "6.6.51+rpt-rpi-v6",
               "cpu": {"implementer": "0x41", "architecture": "7", "variant": "0x0", "part": "0xb76",
                       "revision": "7", "bogomips": "697.95",
                       "features": "half thumb fastmult vfp edsp java tls", "v6": True}},
}
DEFAULT_MODEL = "cm4"


def model_info(model):
    return MODELS.get(model or DEFAULT_MODEL, MODELS[DEFAULT_MODEL])


def serial_for(host, serial=None):
    """The 16-digit /proc/cpuinfo serial: the topology's (an 8-digit one gets the 10000000 prefix
    Pi 4 serials carry), else a stable one derived from the host name."""
    if serial:
        serial = serial.lower()
        return serial if len(serial) == 16 else "10000000" + serial[-8:]
    return "10000000" + hashlib.sha256(host.encode()).hexdigest()[:8]


def cpuinfo(model, serial):
    info = model_info(model)
    cpu = info["cpu"]
    blocks = []
    for n in range(info["cores"]):
        if cpu.get("v6"):
            blocks.append("processor\t: %d\nmodel name\t: ARMv6-compatible processor rev 7 (v6l)\n"
                          "BogoMIPS\t: %s\nFeatures\t: %s\nCPU implementer\t: %s\nCPU architecture: %s\n"
                          "CPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %s\n"
                          % (n, cpu["bogomips"], cpu["features"], cpu["implementer"], cpu["architecture"],
                             cpu["variant"], cpu["part"], cpu["revision"]))
        else:
            blocks.append("processor\t: %d\nBogoMIPS\t: %s\nFeatures\t: %s\nCPU implementer\t: %s\n"
                          "CPU architecture: %s\nCPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %s\n"
                          % (n, cpu["bogomips"], cpu["features"], cpu["implementer"], cpu["architecture"],
                             cpu["variant"], cpu["part"], cpu["revision"]))
    tail = "Revision\t: %s\nSerial\t\t: %s\nModel\t\t: %s\n" % (info["boardrev"], serial, info["name"])
    return "\n".join(blocks) + "\n" + tail
