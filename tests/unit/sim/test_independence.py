# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The simulator's structure: what it imports from the collection (only what is shared by definition), no
import cycle among its modules, and one table of boot modes that no module patches."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

SIM = os.path.join(os.path.dirname(__file__), "..", "..", "..", "sim", "carrier_sim")
COLLECTION = "ansible_collections.picluster.carrier.plugins.module_utils."
# The topology format is one for the inventory and the simulator; CarrierError is the library's error.
SHARED = {(COLLECTION + "_errors", "CarrierError"), (COLLECTION + "_topology", "load_topology")}


def modules():
    names = sorted(n[:-3] for n in os.listdir(SIM) if n.endswith(".py"))
    return {name: ast.parse(open(os.path.join(SIM, name + ".py")).read(), name) for name in names}


def imports(tree):
    """``(module, name)`` for every import anywhere in the file (function bodies too)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            found += [(base, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, None) for alias in node.names]
    return found


def test_only_the_shared_pieces_come_from_the_collection():
    """The simulator is the oracle of the collection's EEPROM code: it must not run that code."""
    used = {(name, module, what) for name, tree in modules().items() for module, what in imports(tree)
            if module.startswith("ansible_collections")}
    assert {(module, what) for _name, module, what in used} <= SHARED, sorted(used)


def sim_graph():
    graph = {}
    known = set(modules())
    for name, tree in modules().items():
        deps = set()
        for module, what in imports(tree):
            if module == ".":
                deps.add(what)
            elif module.startswith(".") and module.lstrip(".") in known:
                deps.add(module.lstrip("."))
        graph[name] = deps & known
    return graph


def test_no_import_cycle():
    graph = sim_graph()
    cycles = []

    def visit(name, path):
        for dep in sorted(graph[name]):
            if dep in path:
                cycles.append(path[path.index(dep):] + [dep])
            elif len(path) < len(graph):
                visit(dep, path + [dep])

    for name in graph:
        visit(name, [name])
    assert not cycles, cycles[:5]


def test_boot_modes_are_one_table_that_no_module_patches():
    from carrier_sim import boot, diskboot, httpboot, netboot

    assert boot.BOOT_MODES[0x1] is boot.mode_sd
    assert boot.BOOT_MODES[0x2] is netboot.mode_network and boot.BOOT_MODES[0x7] is httpboot.mode_http
    assert {boot.BOOT_MODES[c] for c in (0x4, 0x5)} == {boot.mode_absent}
    assert boot.BOOT_MODES[0x6] is diskboot.mode_nvme
    assert not set(boot.BOOT_MODES) & {0x3, 0xE, 0xF}  # the bootloader stage's own: RPIBOOT, STOP, RESTART
    for name, tree in modules().items():
        for node in ast.walk(tree):
            targets = node.targets if isinstance(node, ast.Assign) else []
            for target in targets:
                patched = target.value if isinstance(target, ast.Subscript) else target
                assert not (isinstance(patched, ast.Attribute) and patched.attr == "BOOT_MODES"), name


@pytest.mark.parametrize("module", ["netboot", "httpboot", "shell", "eeprom", "pieeprom", "boot", "usb", "storage",
                                    "firstboot", "diskboot"])
def test_each_module_imports_on_its_own(module):
    """A fresh interpreter imports any one module first: nothing depends on an import order."""
    sim_dir = os.path.abspath(os.path.join(SIM, ".."))
    collections = os.path.abspath(os.path.join(SIM, "..", "..", ".collections"))
    code = "import sys; sys.path[:0] = [%r, %r]; import carrier_sim.%s" % (sim_dir, collections, module)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_the_simulators_models_agree_with_the_collections_table():
    """Two tables by design (the simulator's describes what a node prints); the facts both hold must agree."""
    from ansible_collections.picluster.carrier.plugins.module_utils._models import MODELS
    from carrier_sim.models import MODELS as SIM_MODELS

    assert set(SIM_MODELS) == set(MODELS)
    for name, model in MODELS.items():
        mine = SIM_MODELS[name]
        facts = (model.soc, model.dtb, model.bootloader == "eeprom")
        assert (mine["soc"].lower(), mine["dtb"], mine["eeprom"]) == facts, name
