# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_bootcfg: cmdline.txt token edits, config.txt section edits, boot dir lookup, atomic writes."""

from __future__ import annotations


import pytest

from ansible_collections.picluster.carrier.plugins.module_utils import _bootcfg as B
from ansible_collections.picluster.carrier.plugins.module_utils._errors import CarrierError

# Raspberry Pi OS bookworm (2024) as shipped: the files the role meets on a fresh node.
PIOS_CMDLINE = ("console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 "
                "fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot\n")
PIOS_CONFIG = """\
# For more options and information see
# http://rptl.io/configtxt
dtparam=audio=on

# Automatically load overlays for detected cameras
camera_auto_detect=1
auto_initramfs=1

# Enable DRM VC4 V3D driver
dtoverlay=vc4-kms-v3d
max_framebuffers=2
arm_64bit=1
arm_boost=1

[cm4]
# Enable host mode on the 2711 built-in XHCI USB controller.
otg_mode=1

[cm5]
dtoverlay=dwc2,dr_mode=host

[all]
"""


# --- cmdline.txt ----------------------------------------------------------------------------

@pytest.mark.parametrize("text, kwargs, expected", [
    # k3s on Raspberry Pi OS: both tokens appended at the end of the kernel parameters
    (PIOS_CMDLINE, dict(set_={"cgroup_memory": 1}, add=["cgroup_enable=memory"]),
     PIOS_CMDLINE.rstrip("\n") + " cgroup_memory=1 cgroup_enable=memory\n"),
    # replace in place, keep the order of everything else
    ("a=1 root=/dev/sda2 b\n", dict(set_={"root": "PARTUUID=x-02"}), "a=1 root=PARTUUID=x-02 b\n"),
    # a key given twice collapses to the tokens wished, at the first one's place
    ("console=serial0,115200 x console=tty1\n", dict(set_={"console": "tty1"}), "console=tty1 x\n"),
    ("console=tty1 x\n", dict(set_={"console": ["serial0,115200", "tty1"]}), "console=serial0,115200 console=tty1 x\n"),
    # bare flags: None sets one, absent removes it
    ("rootwait\n", dict(set_={"quiet": None}), "rootwait quiet\n"),
    ("rootwait quiet splash\n", dict(absent=["quiet", "splash"]), "rootwait\n"),
    # absent by key removes every token of it, by key=value only that one
    ("cgroup_disable=memory cgroup_disable=cpuset r\n", dict(absent=["cgroup_disable=memory"]),
     "cgroup_disable=cpuset r\n"),
    ("cgroup_disable=memory cgroup_disable=cpuset r\n", dict(absent=["cgroup_disable"]), "r\n"),
    # add keeps other tokens of the same key
    ("cgroup_enable=cpuset r\n", dict(add=["cgroup_enable=memory"]), "cgroup_enable=cpuset r cgroup_enable=memory\n"),
    # booleans are 1/0
    ("r\n", dict(set_={"usbcore.autosuspend": False}), "r usbcore.autosuspend=0\n"),
    # arguments for init after "--" are never touched; new tokens go before it
    ("r quiet -- single quiet\n", dict(set_={"a": 1}, absent=["quiet"]), "r a=1 -- single quiet\n"),
    # quoted values stay one token
    ('r dyndbg="file x +p" q\n', dict(absent=["q"]), 'r dyndbg="file x +p"\n'),
    # an empty file gets a line
    ("", dict(add=["quiet"]), "quiet\n"),
])
def test_edit_cmdline(text, kwargs, expected):
    after = B.edit_cmdline(text, **kwargs)
    assert after == expected
    # idempotent: the same wishes on the result change nothing
    assert B.edit_cmdline(after, **kwargs) == after


@pytest.mark.parametrize("text", [
    PIOS_CMDLINE.replace(" quiet", "  a=1 b quiet"),
    "a=1   b\n",          # odd spacing
    "a=1 b",              # no final newline
    "a=1 b\n\n",          # trailing blank line
])
def test_cmdline_unchanged_bytes_when_nothing_to_do(text):
    assert B.edit_cmdline(text, set_={"a": 1}, add=["b"], absent=["zzz"]) == text


def test_cmdline_first_token_replaced_not_duplicated():
    assert B.edit_cmdline("x=1 y x=2 x=3\n", set_={"x": 9}) == "x=9 y\n"


@pytest.mark.parametrize("text, kwargs, message", [
    ("a\nb\n", dict(add=["c"]), "cmdline.txt: 2 non-empty lines"),
    ('a "b\n', dict(add=["c"]), "unbalanced double quote"),
    ("a\n", dict(add=["two words"]), "cmdline_add: invalid kernel parameter 'two words'"),
    ("a\n", dict(add=["--"]), "cmdline_add: invalid kernel parameter '--'"),
    ("a\n", dict(absent=[""]), "cmdline_absent: invalid kernel parameter ''"),
    ("a\n", dict(set_={"x": "a b"}), "cmdline_set.x: value 'a b' contains whitespace"),
    ("a\n", dict(set_={"x": []}), "cmdline_set.x: empty list"),
    ("a\n", dict(set_={"x": {"y": 1}}), "cmdline_set.x: value {'y': 1} is not a string"),
    ("a\n", dict(set_={"bad key": 1}), "cmdline_set: invalid key 'bad key'"),
    ("a\n", dict(set_={"x": 1}, absent=["x=2"]), "cmdline_absent: 'x=2' names key 'x' that cmdline_set sets"),
    ("a\n", dict(add=["q"], absent=["q"]), "cmdline_absent: 'q' is also in cmdline_add"),
])
def test_cmdline_errors(text, kwargs, message):
    with pytest.raises(CarrierError, match=message.replace("(", r"\(").replace("[", r"\[")):
        B.edit_cmdline(text, **kwargs)


# --- config.txt -----------------------------------------------------------------------------

def test_config_set_in_existing_sections():
    after = B.edit_config(PIOS_CONFIG, {"all": {"arm_boost": 0, "enable_uart": True}, "cm4": {"otg_mode": 0}})
    # last [all] block gets the new key; arm_boost rewritten where it is (the leading block counts as [all])
    assert "arm_boost=0\n" in after and "arm_boost=1" not in after
    assert after.endswith("[all]\nenable_uart=1\n")
    assert "[cm4]\n# Enable host mode on the 2711 built-in XHCI USB controller.\notg_mode=0\n" in after
    # nothing else moved
    assert after.replace("arm_boost=0", "arm_boost=1").replace("otg_mode=0", "otg_mode=1") \
        .replace("enable_uart=1\n", "") == PIOS_CONFIG
    assert B.edit_config(after, {"all": {"arm_boost": 0, "enable_uart": True}, "cm4": {"otg_mode": 0}}) == after


def test_config_new_section_appended():
    after = B.edit_config(PIOS_CONFIG, {"pi5": {"usb_max_current_enable": 1}})
    assert after == PIOS_CONFIG + "\n[pi5]\nusb_max_current_enable=1\n"
    assert B.edit_config(after, {"pi5": {"usb_max_current_enable": 1}}) == after


def test_config_all_without_filters_and_empty_file():
    assert B.edit_config("a=1\n", {"all": {"b": 2}}) == "a=1\nb=2\n"
    assert B.edit_config("", {"all": {"b": 2}}) == "b=2\n"
    assert B.edit_config("", {"cm4": {"b": 2}}) == "[cm4]\nb=2\n"
    # a file whose last block is another filter gets an [all] block, not a line under [cm4]
    assert B.edit_config("[cm4]\nx=1\n", {"all": {"b": 2}}) == "[cm4]\nx=1\n\n[all]\nb=2\n"


def test_config_same_key_other_section_untouched():
    text = "otg_mode=0\n[cm4]\notg_mode=1\n"
    assert B.edit_config(text, {"cm4": {"otg_mode": 1}}) == text
    assert B.edit_config(text, {"all": {"otg_mode": 1}}) == "otg_mode=1\n[cm4]\notg_mode=1\n"


def test_config_repeatable_keys_add_lines():
    after = B.edit_config(PIOS_CONFIG, {"all": {"dtoverlay": ["vc4-kms-v3d", "disable-bt"], "dtparam": "pciex1"}})
    assert after.count("dtoverlay=vc4-kms-v3d") == 1
    assert after.endswith("[all]\ndtoverlay=disable-bt\ndtparam=pciex1\n")
    assert B.edit_config(after, {"all": {"dtoverlay": ["vc4-kms-v3d", "disable-bt"], "dtparam": "pciex1"}}) == after
    # the [cm5] dtoverlay is another section's line
    assert "[cm5]\ndtoverlay=dwc2,dr_mode=host\n" in after


def test_config_absent():
    after = B.edit_config(PIOS_CONFIG, config_absent={"all": ["dtoverlay=vc4-kms-v3d", "camera_auto_detect"],
                                                      "cm5": ["dtoverlay"]})
    assert "vc4-kms-v3d" not in after and "camera_auto_detect" not in after
    assert "[cm5]\n\n[all]\n" in after
    assert "# Enable DRM VC4 V3D driver\n" in after  # comments stay
    # absent of something that is not there: same text
    assert B.edit_config(PIOS_CONFIG, config_absent={"pi3": ["x"], "all": ["dtoverlay=nope"]}) == PIOS_CONFIG


def test_config_last_occurrence_is_rewritten():
    assert B.edit_config("a=1\na=2\n", {"all": {"a": 3}}) == "a=1\na=3\n"


def test_config_keeps_other_lines_and_no_final_newline():
    text = "include extra.txt\ninitramfs initrd.img followkernel\n  gpu_mem = 64"
    assert B.edit_config(text, {"all": {"gpu_mem": 64}}) == text
    assert B.edit_config(text, {"all": {"gpu_mem": 16}}) == \
        "include extra.txt\ninitramfs initrd.img followkernel\ngpu_mem=16"


@pytest.mark.parametrize("kwargs, message", [
    (dict(config_set={"all": {"arm_boost": [1, 2]}}), "config_set.all.arm_boost: a list of values is only for"),
    (dict(config_set={"all": {"arm_boost": None}}), "config_set.all.arm_boost: no value given"),
    (dict(config_set={"all": {"x": "a b"}}), "config_set.all.x: value 'a b' contains whitespace"),
    (dict(config_set={"[all]": {"x": 1}}), "config_set: invalid section filter '[all]'"),
    (dict(config_set={"all": ["x=1"]}), "config_set.all: ['x=1'] is not a mapping"),
    (dict(config_set={"all": {"x=y": 1}}), "config_set.all: invalid key 'x=y'"),
    (dict(config_set=["x"]), "config_set: ['x'] is not a mapping"),
    (dict(config_absent={"all": "x"}), "config_absent.all: 'x' is not a list of keys"),
    (dict(config_absent={"all": [3]}), "config_absent.all: 3 is not a key"),
    (dict(config_set={"all": {"x": 1}}, config_absent={"all": ["x"]}), "config_absent.all: 'x' is also set"),
])
def test_config_errors(kwargs, message):
    with pytest.raises(CarrierError, match=message.replace("[", r"\[").replace("(", r"\(")):
        B.edit_config(PIOS_CONFIG, **kwargs)


# --- files ----------------------------------------------------------------------------------

def test_find_boot_dir(tmp_path):
    with pytest.raises(CarrierError, match="boot_dir: none given and no cmdline.txt or config.txt found"):
        B.find_boot_dir(str(tmp_path))
    (tmp_path / "boot").mkdir()
    (tmp_path / "boot/config.txt").write_text("")
    assert B.find_boot_dir(str(tmp_path)) == str(tmp_path / "boot")
    (tmp_path / "boot/firmware").mkdir()
    assert B.find_boot_dir(str(tmp_path)) == str(tmp_path / "boot")  # an empty /boot/firmware does not count
    (tmp_path / "boot/firmware/cmdline.txt").write_text("")
    assert B.find_boot_dir(str(tmp_path)) == str(tmp_path / "boot/firmware")


def test_plan_reads_only_files_concerned(tmp_path):
    (tmp_path / "config.txt").write_text(PIOS_CONFIG)
    boot_dir, changes = B.plan_boot_files(str(tmp_path), config_set={"all": {"arm_boost": 1}})
    assert boot_dir == str(tmp_path) and list(changes) == ["config"] and not changes["config"].changed
    with pytest.raises(CarrierError, match="boot_dir: .*/cmdline.txt does not exist"):
        B.plan_boot_files(str(tmp_path), cmdline_add=["quiet"])
    with pytest.raises(CarrierError, match="boot_dir: .*/nope is not a directory"):
        B.plan_boot_files(str(tmp_path / "nope"), cmdline_add=["quiet"])


def test_cmdline_expectations():
    assert B.cmdline_expectations({"cgroup_memory": 1, "quiet": None, "console": ["tty1", "ttyS0"]},
                                  ["cgroup_enable=memory", "quiet"], ["cgroup_disable=memory", "splash"]) == (
        ["cgroup_memory=1", "quiet", "console=tty1", "console=ttyS0", "cgroup_enable=memory"],
        ["cgroup_disable=memory", "splash"])
    assert B.cmdline_expectations() == ([], [])


@pytest.mark.parametrize("section", ["pi4]\n[all", "all]\ndtoverlay=evil\n[pi4", "cm4 # x", "cm4\r", "[cm4]"])
def test_config_section_cannot_inject_a_second_section(section):
    for kwargs, field in ((dict(config_set={section: {"otg_mode": 1}}), "config_set"),
                          (dict(config_absent={section: ["otg_mode"]}), "config_absent")):
        with pytest.raises(CarrierError, match=r"^%s: invalid section filter " % field):
            B.edit_config("[all]\n", **kwargs)


def test_config_section_spaces_dropped_and_non_finite_values_refused():
    assert B.edit_config("", {" cm4 ": {"otg_mode": 1}}) == B.edit_config("", {"cm4": {"otg_mode": 1}})
    for bad in (float("nan"), float("inf"), float("-inf")):
        with pytest.raises(CarrierError, match=r"^config_set.all.arm_freq: .* is not a finite number"):
            B.edit_config("", {"all": {"arm_freq": bad}})
        with pytest.raises(CarrierError, match=r"^cmdline_set.cma: .* is not a finite number"):
            B.edit_cmdline("quiet\n", {"cma": bad})


def test_config_header_with_text_after_it_is_a_section():
    """Both parsers read ``[cm4] # ...`` as the cm4 filter (one reading for config.txt and bootconf.txt)."""
    text = "[cm4] # compute module\notg_mode=1\n[all]\n"
    assert B.edit_config(text, {"cm4": {"otg_mode": 1}}) == text
    assert B.edit_config(text, {"cm4": {"otg_mode": 0}}) == text.replace("otg_mode=1", "otg_mode=0")
