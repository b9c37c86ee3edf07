# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Board profiles and boards: which expander bit drives which control line of which slot.

A profile is data (the built-ins below, or a user's dict of the same shape, see docs/internals.md).
A :class:`Board` is a profile on a bus. All access to the hardware goes through a
:meth:`Board.session`, which holds the bus lock and one open bus for its whole duration, so a
read-modify-write-verify is never interleaved with another process's (docs/hardware.md section 2).

Line meanings (a line is *asserted* when its bit is at its ``active`` level):

- ``power``: the node is powered (a load switch enable or GLOBAL_EN, docs/hardware.md section 1);
- ``run``: the node may run; de-asserted holds RUN_PG low, the SoC in reset;
- ``rpiboot``: nRPIBOOT is pulled low, so the boot ROM enters USB device boot at the next start;
- ``eeprom_wp``: EEPROM_nWP is pulled low (write protect, when the EEPROM config enables it);
- ``led``: the slot's identify/status LED is lit (node_power's ``identify``).

A profile may also list the board's sensors and fans (``sensors:``, ``fans:``, a slot's
``monitor:``; their schema and drivers are in ``_sensors``) and its power-restore policy
(``restore: last | off | on``, applied by ``_restore`` when the controller starts).
"""

from __future__ import annotations

import contextlib
import copy
import os

from ansible_collections.picluster.carrier.plugins.module_utils._backends import (
    BUS_SESSIONS,
    TURINGPI1_BITS,
    TuringPi2Session,
)
from ansible_collections.picluster.carrier.plugins.module_utils import _outlets
from ansible_collections.picluster.carrier.plugins.module_utils._bus import (
    bus_id, bus_lock, file_lock, lock_directory, open_bus,
)
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError
from ansible_collections.picluster.carrier.plugins.module_utils._expanders import chip_width
from ansible_collections.picluster.carrier.plugins.module_utils._turingpi import BmcClient, parse_bmc_url
from ansible_collections.picluster.carrier.plugins.module_utils._values import check_number, format_ranges

LINE_NAMES = ("power", "run", "rpiboot", "eeprom_wp")
# Lines a slot may have beyond the power-related ones; read_state reports them only where present.
SLOT_LINE_NAMES = LINE_NAMES + ("led",)
RESTORE_POLICIES = ("last", "off", "on")
KINDS = ("gpio", "clusterctrl", "turingpi1", "turingpi2") + _outlets.OUTLET_KINDS

# docs/hardware.md section 1: timing is not confirmed electrically; conservative defaults.
DEFAULT_TIMING = {"reset_pulse": 0.1, "off_time": 1.0, "stagger": 0.5}
MAX_SECONDS = 600


class Line(object):
    """One control line of one slot: a chip bit and its electrical sense."""

    __slots__ = ("name", "chip", "bit", "active_high", "pull_up")

    def __init__(self, name, chip, bit, active_high=True, pull_up=True):
        self.name = name
        self.chip = chip
        self.bit = bit
        self.active_high = active_high
        self.pull_up = pull_up

    @property
    def mask(self):
        return 1 << self.bit

    def level_for(self, asserted):
        """The bit level (True = 1) that makes the line asserted (or not)."""
        return asserted if self.active_high else not asserted

    def asserted_at(self, level):
        return bool(level) == self.active_high

    def to_dict(self):
        data = {"bit": self.bit, "active": "high" if self.active_high else "low",
                "pull": "up" if self.pull_up else "down"}
        if self.chip is not None:
            data["chip"] = self.chip
        return data


def parse_int(value):
    """An int from an int or a decimal / ``0x`` hex string (YAML data: ``address: "0x20"``); None for
    anything else (a float, a boolean, other text)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        try:
            return int(text, 16) if text.startswith("0x") else int(text, 10)
        except ValueError:
            return None
    return None


def _as_int(value, field, low=None, high=None):
    number = parse_int(value)
    if number is None:
        raise CarrierError("%s: %r is not an integer" % (field, value))
    if (low is not None and number < low) or (high is not None and number > high):
        raise CarrierError("%s: %r is out of range (%s..%s)" % (field, number, low, high))
    return number


def _choice(value, field, choices):
    if value not in choices:
        raise CarrierError("%s: %r is not one of %s" % (field, value, ", ".join(choices)))
    return value


def _no_unknown(data, allowed, field):
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        raise CarrierError("%s: unknown key(s) %s (allowed: %s)" % (field, ", ".join(unknown), ", ".join(allowed)))


class Profile(object):
    """A validated board profile. Build one with :func:`get_profile`."""

    def __init__(self, data, builtin=False):
        if not isinstance(data, dict):
            raise CarrierError("profile: %r is not a mapping" % (data,))
        self.builtin = builtin
        self.name = str(data.get("name") or "custom")
        field = "profile %s" % self.name
        _no_unknown(data, ("name", "description", "kind", "chips", "slots", "timing", "device", "max_slots",
                           "sensors", "fans", "restore", "api", "snmp"), field)
        self.description = str(data.get("description") or "")
        self.kind = _choice(data.get("kind", "gpio"), field + ".kind", KINDS)
        self.timing = dict(DEFAULT_TIMING)
        timing = data.get("timing") or {}
        if not isinstance(timing, dict):
            raise CarrierError("%s.timing: %r is not a mapping" % (field, timing))
        _no_unknown(timing, tuple(DEFAULT_TIMING), field + ".timing")
        for key, value in timing.items():
            what = "a number of seconds (0-%d)" % MAX_SECONDS
            if isinstance(value, str):  # profiles are YAML data: a quoted "0.5" is a mistake, not a number
                raise CarrierError("%s.timing.%s: %r is not %s" % (field, key, value, what))
            self.timing[key] = float(check_number(value, "%s.timing.%s" % (field, key), 0, MAX_SECONDS,
                                                  allow_none=False, what=what))
        self.chips = {}
        self._lines = {}
        self.device_address = None
        self.restore = _choice(data.get("restore", "last"), field + ".restore", RESTORE_POLICIES)
        self.monitors = {}  # slot -> {chip, channel, shunt_ohms}
        # A board that resets a node by a command of its own rather than by a run line.
        self.native_reset = self.kind == "turingpi2"
        if self.kind not in _outlets.OUTLET_KINDS:
            _outlets.refuse_options(data, field)
        if self.kind == "gpio":
            self._parse_gpio(data, field)
        elif self.kind == "clusterctrl":
            self._parse_command_board(data, field, default_address=0x20, max_slots=32)
        elif self.kind == "turingpi1":
            self._parse_command_board(data, field, default_address=0x57, max_slots=7)
        elif self.kind in _outlets.OUTLET_KINDS:
            self._parse_outlet_board(data, field)
        else:
            self._parse_bmc_board(data, field)
        self.slot_numbers = tuple(sorted(self._lines))
        self._parse_sensors(data, field)

    def _parse_sensors(self, data, field):
        from ansible_collections.picluster.carrier.plugins.module_utils import _sensors

        self.sensors, self.fans = {}, {}
        if self.kind == "turingpi2" and (data.get("sensors") or data.get("fans")):
            raise CarrierError("%s.sensors: a turingpi2 profile has no I2C bus of its own for sensors" % field)
        taken = {address: "expander %s" % name for name, (_t, address) in self.chips.items()}
        if self.device_address is not None:
            taken[self.device_address] = "the %s device" % self.kind
        self.sensors = _sensors.parse_sensors(data.get("sensors"), field, taken)
        self.fans = _sensors.parse_fans(data.get("fans"), field, taken, self.sensors)
        clashes = set(self.sensors) & set(self.chips) | set(self.fans) & (set(self.chips) | set(self.sensors))
        for name in sorted(clashes):
            raise CarrierError("%s: %r names two things (chips, sensors and fans share one name space)" % (field, name))
        for slot, spec in self._monitor_specs.items():
            self.monitors[slot] = _sensors.parse_monitor(spec, "%s.slots.%s.monitor" % (field, slot), self.sensors)

    def _parse_gpio(self, data, field):
        chips = data.get("chips")
        if not isinstance(chips, dict) or not chips:
            raise CarrierError("%s.chips: a gpio profile needs a mapping of chips (name: {type, address}), got %r"
                               % (field, chips))
        for chip_name, chip in chips.items():
            cfield = "%s.chips.%s" % (field, chip_name)
            if not isinstance(chip, dict):
                raise CarrierError("%s: %r is not a mapping" % (cfield, chip))
            _no_unknown(chip, ("type", "address"), cfield)
            try:
                chip_width(chip.get("type"))
            except CarrierError as exc:
                raise CarrierError("%s.type: %s" % (cfield, exc)) from None
            address = _as_int(chip.get("address"), cfield + ".address", 0x03, 0x77)
            self.chips[str(chip_name)] = (str(chip["type"]).lower(), address)
        slots = data.get("slots")
        if not isinstance(slots, dict) or not slots:
            raise CarrierError("%s.slots: a mapping of slot number to lines is required, got %r" % (field, slots))
        used = {}
        self._monitor_specs = {}
        for slot_key, lines in slots.items():
            slot = _as_int(slot_key, "%s.slots" % field, 1, 999)
            sfield = "%s.slots.%s" % (field, slot)
            if not isinstance(lines, dict) or "power" not in lines:
                raise CarrierError("%s: each slot needs at least a `power` line, got %r" % (sfield, lines))
            _no_unknown(lines, SLOT_LINE_NAMES + ("monitor",), sfield)
            parsed = {}
            for line_name, spec in lines.items():
                if line_name == "monitor":
                    self._monitor_specs[slot] = spec
                    continue
                lfield = "%s.%s" % (sfield, line_name)
                if not isinstance(spec, dict):
                    raise CarrierError("%s: %r is not a mapping {chip, bit, active, pull}" % (lfield, spec))
                _no_unknown(spec, ("chip", "bit", "active", "pull"), lfield)
                chip_name = str(spec.get("chip", next(iter(self.chips)) if len(self.chips) == 1 else ""))
                if chip_name not in self.chips:
                    raise CarrierError("%s.chip: %r is not one of the profile's chips (%s)"
                                       % (lfield, spec.get("chip"), ", ".join(sorted(self.chips))))
                width = chip_width(self.chips[chip_name][0])
                bit = _as_int(spec.get("bit"), lfield + ".bit", 0, width - 1)
                if (chip_name, bit) in used:
                    raise CarrierError("%s.bit: %s bit %d is already %s"
                                       % (lfield, chip_name, bit, used[(chip_name, bit)]))
                used[(chip_name, bit)] = "slot %d %s" % (slot, line_name)
                active = _choice(spec.get("active", "high"), lfield + ".active", ("high", "low"))
                pull = _choice(spec.get("pull", "up"), lfield + ".pull", ("up", "down"))
                if self.chips[chip_name][0].startswith("pcf8574") and active == "high" and pull == "down":
                    # docs/hardware.md section 2: a PCF8574 bit at 1 is only a weak high; a pull-down wins.
                    raise CarrierError("%s: a %s drives only low (a 1 is a weak pull-up), so an active-high line "
                                       "with a pull-down could never be asserted" % (lfield, self.chips[chip_name][0]))
                parsed[line_name] = Line(line_name, chip_name, bit, active == "high", pull == "up")
            if slot in self._lines:
                raise CarrierError("%s: slot %d is listed twice" % (field, slot))
            self._lines[slot] = parsed

    def _parse_command_board(self, data, field, default_address, max_slots):
        if "chips" in data:
            raise CarrierError("%s.chips: a %s profile has no chips (it speaks a command protocol)"
                               % (field, self.kind))
        device = data.get("device") or {}
        if not isinstance(device, dict):
            raise CarrierError("%s.device: %r is not a mapping" % (field, device))
        _no_unknown(device, ("address",), field + ".device")
        self.device_address = _as_int(device.get("address", default_address), field + ".device.address", 0x03, 0x77)
        self._monitor_specs = {}
        count = _as_int(data.get("max_slots", max_slots), field + ".max_slots", 1, max_slots)
        for slot in range(1, count + 1):
            if self.kind == "turingpi1":
                self._lines[slot] = {"power": Line("power", None, TURINGPI1_BITS[slot - 1])}
            else:
                self._lines[slot] = {"power": Line("power", None, 0), "rpiboot": Line("rpiboot", None, 0)}

    def _parse_outlet_board(self, data, field):
        self._monitor_specs = {}
        self.outlets, self.outlet_options = _outlets.parse_profile(data, field, _as_int)
        for slot in self.outlets:
            self._lines[slot] = {"power": Line("power", None, 0)}

    def _parse_bmc_board(self, data, field):
        for key in ("chips", "device"):
            if key in data:
                raise CarrierError("%s.%s: a turingpi2 profile has none (its BMC speaks HTTP)" % (field, key))
        self._monitor_specs = {}
        count = _as_int(data.get("max_slots", 4), field + ".max_slots", 1, 4)
        for slot in range(1, count + 1):
            self._lines[slot] = {"power": Line("power", None, slot - 1), "rpiboot": Line("rpiboot", None, slot - 1)}

    @staticmethod
    def blank_state():
        """A slot's state with every line unknown (None), for a backend to fill in."""
        return dict.fromkeys(LINE_NAMES)

    def lines(self, slot):
        """Line name -> :class:`Line` for one slot (CarrierError for a slot the profile lacks)."""
        try:
            return self._lines[slot]
        except KeyError:
            raise CarrierError("slot: %r is not a slot of profile %s (slots: %s)"
                               % (slot, self.name, format_ranges(self.slot_numbers))) from None

    def to_dict(self):
        data = {"name": self.name, "kind": self.kind, "timing": dict(self.timing), "restore": self.restore}
        if self.sensors:
            data["sensors"] = {name: {k: v for k, v in spec.items() if k != "kind"}
                               for name, spec in self.sensors.items()}
        if self.fans:
            data["fans"] = {name: {k: v for k, v in spec.items() if v is not None} for name, spec in self.fans.items()}
        if self.description:
            data["description"] = self.description
        if self.kind == "gpio":
            data["chips"] = {name: {"type": t, "address": a} for name, (t, a) in self.chips.items()}
            data["slots"] = {slot: {n: line.to_dict() for n, line in lines.items()}
                             for slot, lines in self._lines.items()}
            for slot, monitor in self.monitors.items():
                data["slots"][slot]["monitor"] = dict(monitor)
        elif self.kind == "turingpi2":
            data["max_slots"] = len(self._lines)
        elif self.kind in _outlets.OUTLET_KINDS:
            data.update(_outlets.to_dict(self))
        else:
            data["device"] = {"address": self.device_address}
            data["max_slots"] = len(self._lines)
        return data


def _carrier_slots(chip_names, slots_per_chip, first_slot=1):
    """Slots of a generic carrier: three lines per slot, packed from bit 0 of each chip.

    power (load switch / GLOBAL_EN enable, active high, pulled down: nodes stay off until the
    controller says so), run (RUN_PG, released high), rpiboot (nRPIBOOT, active low).
    """
    slots = {}
    slot = first_slot
    for chip in chip_names:
        for index in range(slots_per_chip):
            base = 3 * index
            slots[slot] = {
                "power": {"chip": chip, "bit": base, "active": "high", "pull": "down"},
                "run": {"chip": chip, "bit": base + 1, "active": "high", "pull": "up"},
                "rpiboot": {"chip": chip, "bit": base + 2, "active": "low", "pull": "up"},
            }
            slot += 1
    return slots


def _itx4_profiles():
    """The mini-ITX carrier, plain and with the sensors' reference layout."""
    itx4_slots = _carrier_slots(["u1"], 4)
    for slot in range(1, 5):
        # The four spare bits of the PCA9555 drive EEPROM_nWP (active low, pulled up).
        itx4_slots[slot]["eeprom_wp"] = {"chip": "u1", "bit": 11 + slot, "active": "low", "pull": "up"}
    itx4_hwmon_slots = copy.deepcopy(itx4_slots)
    for slot in range(1, 5):
        itx4_hwmon_slots[slot]["led"] = {"chip": "u2", "bit": slot - 1, "active": "high", "pull": "down"}
        itx4_hwmon_slots[slot]["monitor"] = {"chip": "ina3221_1" if slot < 4 else "ina3221_2",
                                             "channel": slot if slot < 4 else 1}
    return {
        "itx4": {
            "name": "itx4",
            "description": "4-slot mini-ITX CM4 carrier: one PCA9555 at 0x20; per slot power, run, rpiboot, eeprom_wp",
            "kind": "gpio",
            "chips": {"u1": {"type": "pca9555", "address": 0x20}},
            "slots": itx4_slots,
        },
        # A reference layout for the sensors (docs/internals.md, "Sensors"): the itx4 plus per-slot
        # current monitors, a board thermometer, identify LEDs and a fan controller. The fan part is the
        # CM4 IO board's (an EMC2301 at 0x2f, its only address); the rest is an assumed design, not a
        # board someone sells.
        "itx4_hwmon": {
            "name": "itx4_hwmon",
            "description": "itx4 with sensors: INA3221 at 0x40 (slots 1-3) and 0x41 (slot 4), 0.01 ohm shunts; "
                           "TMP102 at 0x48; identify LEDs on a TCA9554 at 0x21 bits 0-3; EMC2301 fan at 0x2f "
                           "(as on the CM4 IO board). An assumed reference design: check your board's schematic",
            "kind": "gpio",
            "chips": {"u1": {"type": "pca9555", "address": 0x20}, "u2": {"type": "tca9554", "address": 0x21}},
            "slots": itx4_hwmon_slots,
            "sensors": {"ina3221_1": {"type": "ina3221", "address": 0x40, "shunt_ohms": 0.01},
                        "ina3221_2": {"type": "ina3221", "address": 0x41, "shunt_ohms": 0.01},
                        "board_temp": {"type": "tmp102", "address": 0x48}},
            "fans": {"fan": {"type": "emc2301", "address": 0x2F, "curve": [[40, 30], [60, 60], [75, 100]]}},
        },
    }


def _builtin_profiles():
    clusterhat_slots = {slot: {"power": {"chip": "u1", "bit": slot - 1, "active": "high", "pull": "down"}}
                        for slot in range(1, 5)}
    return {
        **_itx4_profiles(),
        **_outlets.BUILTIN_PROFILES,
        "backplane10": {
            "name": "backplane10",
            "description": "10-slot 19-inch backplane: PCA9555 at 0x20 (slots 1-5) and 0x21 (slots 6-10)",
            "kind": "gpio",
            "chips": {"u1": {"type": "pca9555", "address": 0x20}, "u2": {"type": "pca9555", "address": 0x21}},
            "slots": _carrier_slots(["u1", "u2"], 5),
        },
        # docs/hardware.md section 3: XRA1200 (some batches PCA9554, same register layout) at 0x20,
        # bits 0-3 = power of P1-P4, 1 = on. Bits 4-7 (LED, hub, alert, HAT EEPROM WP) are not slot
        # lines and are never touched.
        "clusterhat_v2": {
            "name": "clusterhat_v2",
            "description": "Cluster HAT v2: four Pi Zeros, XRA1200/PCA9554 at 0x20, bits 0-3 power P1-P4",
            "kind": "gpio",
            "chips": {"u1": {"type": "xra1200", "address": 0x20}},
            "slots": copy.deepcopy(clusterhat_slots),
        },
        "clusterhat_v3": {
            "name": "clusterhat_v3",
            "description": "Cluster HAT v3: four Pi Zeros, XRA1200/PCA9554 at 0x20, bits 0-3 power P1-P4",
            "kind": "gpio",
            "chips": {"u1": {"type": "xra1200", "address": 0x20}},
            "slots": copy.deepcopy(clusterhat_slots),
        },
        "clusterctrl": {
            "name": "clusterctrl",
            "description": "ClusterCTRL (Triple, Stack, A+6, Single): USB-I2C command protocol at 0x20",
            "kind": "clusterctrl",
            "device": {"address": 0x20},
            "max_slots": 32,
        },
        # docs/hardware.md section 3: four nodes behind the BMC's HTTP API (the bus is the BMC's URL).
        "turingpi2": {
            "name": "turingpi2",
            "description": "Turing Pi 2: four nodes behind the BMC's HTTP API (bus = the BMC's URL)",
            "kind": "turingpi2",
            "max_slots": 4,
        },
        "turingpi1": {
            "name": "turingpi1",
            "description": "Turing Pi 1: seven nodes, register 0xF2 at 0x57, one power bit per node",
            "kind": "turingpi1",
            "device": {"address": 0x57},
            "max_slots": 7,
        },
    }


BUILTIN_PROFILES = _builtin_profiles()
_PROFILE_CACHE = {}


def get_profile(name_or_dict):
    """A validated :class:`Profile` from a built-in name or a user's dict."""
    if isinstance(name_or_dict, Profile):
        return name_or_dict
    if isinstance(name_or_dict, str):
        cached = _PROFILE_CACHE.get(name_or_dict)
        if cached is None:
            if name_or_dict not in BUILTIN_PROFILES:
                raise CarrierError("profile: %r is not a built-in profile (built-in: %s); define your own as a mapping"
                                   % (name_or_dict, ", ".join(sorted(BUILTIN_PROFILES))))
            cached = _PROFILE_CACHE[name_or_dict] = Profile(BUILTIN_PROFILES[name_or_dict], builtin=True)
        return cached
    if isinstance(name_or_dict, dict):
        return Profile(name_or_dict)
    raise CarrierError("profile: %r is neither a profile name nor a mapping" % (name_or_dict,))


def slot_summary(lines_state):
    """One word for a slot's state from its asserted lines: off, reset, usb_boot, on."""
    if lines_state.get("power") is False:
        return "off"
    if lines_state.get("run") is False:
        return "reset"
    if lines_state.get("rpiboot") is True:
        return "usb_boot"
    return "on"


def board_from_dict(data, **options):
    """A :class:`Board` from a mapping of its settings: ``name``, ``profile``, ``bus``, and optionally
    ``addresses``, ``protected_slots``, ``lock_dir`` and ``bmc`` (the BMC client's keyword arguments).

    The inventory caches each board in this shape, and the board modules' options map onto it
    (``_common.board_from_params``); other keys are ignored. ``options`` go to Board as they are
    (``bus_opener``, ``retries``).
    """
    return Board(data["name"], data["profile"], data["bus"], addresses=data.get("addresses"),
                 protected_slots=data.get("protected_slots") or (), lock_dir=data.get("lock_dir"),
                 bmc=data.get("bmc"), **options)


class Board(object):
    """A profile on a bus, with its chip addresses and protected slots."""

    def __init__(self, name, profile, bus_spec, addresses=None, protected_slots=(), lock_dir=None,
                 bus_opener=open_bus, retries=5, bmc=None):
        self.name = name
        self.profile = get_profile(profile)
        self.bus_spec = bus_spec
        self.lock_dir = lock_dir
        self.protected_slots = frozenset(_as_int(s, "protected_slots", 1, 999) for s in (protected_slots or ()))
        self.retries = retries
        self._bus_opener = bus_opener
        self._held = None
        self.bmc = dict(bmc or {})
        self._bmc_client = None
        if self.profile.kind == "turingpi2":
            parse_bmc_url(bus_spec)
        elif self.profile.kind in _outlets.OUTLET_KINDS:
            self.bus_spec = _outlets.check_address(self.profile.kind, bus_spec)
        else:
            bus_id(bus_spec)  # a clear error for a malformed bus, before anything is opened
        self.chips = dict(self.profile.chips)
        for chip_name, address in (addresses or {}).items():
            if chip_name not in self.chips:
                raise CarrierError("addresses: %r is not a chip of profile %s (chips: %s)"
                                   % (chip_name, self.profile.name, ", ".join(sorted(self.chips)) or "none"))
            address = _as_int(address, "addresses.%s" % chip_name, 0x03, 0x77)
            self.chips[chip_name] = (self.chips[chip_name][0], address)
        for slot in self.protected_slots:
            self.profile.lines(slot)

    def new_bus(self):
        """A new open bus of this board (the caller closes it; take ``bus_lock`` around each chip's access)."""
        return self._bus_opener(self.bus_spec)

    def resolve_slots(self, slot):
        """A sorted list of slot numbers from an int, a digit string, a list of them, or ``all``."""
        if slot is None or slot == "all" or slot == ["all"]:
            return list(self.profile.slot_numbers)
        items = slot if isinstance(slot, (list, tuple)) else [slot]
        result = set()
        for item in items:
            number = _as_int(item, "slot", 1, 999)
            self.profile.lines(number)
            result.add(number)
        if not result:
            raise CarrierError("slot: an empty list names no slot")
        return sorted(result)

    @contextlib.contextmanager
    def session(self):
        """Hold this board's bus lock and an open bus; yield a backend session.

        Inside :meth:`holding`, the held session is reused (no second lock, no second open).
        """
        if self._held is not None:
            yield self._held
            return
        if self.profile.kind == "turingpi2":
            # The BMC serialises its own requests; a power set names only the nodes it changes.
            yield TuringPi2Session(self, self.bmc_client())
            return
        if self.profile.kind in _outlets.OUTLET_KINDS:
            # One request at a time per device: a read-back must see this write, not another fork's.
            with file_lock(os.path.join(lock_directory(self.lock_dir), self.lock_key + ".lock")):
                session = _outlets.OutletSession(self, _outlets.make_driver(self))
                try:
                    yield session
                finally:
                    session.close()
            return
        with bus_lock(self.bus_spec, self.lock_dir):
            bus = self._bus_opener(self.bus_spec)
            try:
                yield BUS_SESSIONS[self.profile.kind](self, bus)
            finally:
                bus.close()

    @contextlib.contextmanager
    def holding(self):
        """Keep one session (the bus lock, the open bus, what was read of the chips) for a block of
        reads and writes that must not be interleaved with another process's."""
        if self._held is not None:
            yield self._held
            return
        with self.session() as session:
            self._held = session
            try:
                yield session
            finally:
                self._held = None

    @property
    def lock_key(self):
        """A file-name-safe identity of the board's bus (or BMC), for lock and gate files."""
        if self.profile.kind == "turingpi2":
            return "bmc-" + "".join(c if c.isalnum() or c in ".-" else "_" for c in parse_bmc_url(self.bus_spec))
        if self.profile.kind in _outlets.OUTLET_KINDS:
            return _outlets.lock_key(self.profile.kind, self.bus_spec)
        return bus_id(self.bus_spec)

    def bmc_client(self):
        if self._bmc_client is None:
            login = {k: v for k, v in self.bmc.items() if k in ("user", "password", "ca_path", "validate_certs")}
            self._bmc_client = BmcClient(self.bus_spec, token_dir=lock_directory(self.lock_dir), **login)
        return self._bmc_client

    def read_state(self, slots=None):
        with self.session() as session:
            return session.read_state(self.resolve_slots(slots))

    def set_lines(self, changes):
        with self.session() as session:
            return session.set_lines(changes)
