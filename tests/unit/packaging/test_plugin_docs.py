# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every plugin's DOCUMENTATION, EXAMPLES and RETURN is YAML that ansible-doc and ansible-lint can
read: it parses, and no mapping holds a key twice (YAML loaders keep the last one silently).
Read from the source with ast, so a module that fails to import is still checked."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
# An action plugin is documented by the module of its name (Ansible reads the docs there).
PLUGINS = sorted(path for path in (REPO / "plugins").glob("*/*.py")
                 if path.parent.name not in ("module_utils", "doc_fragments", "action") and path.name != "__init__.py")
ACTIONS = sorted(path for path in (REPO / "plugins" / "action").glob("*.py") if path.name != "__init__.py")
BLOCKS = ("DOCUMENTATION", "EXAMPLES", "RETURN")


class _StrictLoader(yaml.SafeLoader):
    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, dummy in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, "duplicate key %r" % (key,), key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _StrictLoader.construct_mapping)


def _blocks(path):
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in BLOCKS and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                yield name, node.value.value


def test_there_are_plugins_to_check():
    assert len(PLUGINS) > 10 and any(path.parent.name == "inventory" for path in PLUGINS)


@pytest.mark.parametrize("path", PLUGINS, ids=lambda path: str(path.relative_to(REPO)))
def test_doc_blocks_are_yaml_without_duplicate_keys(path):
    blocks = dict(_blocks(path))
    assert "DOCUMENTATION" in blocks, path
    for name, text in blocks.items():
        try:
            list(yaml.load_all(text, Loader=_StrictLoader))
        except yaml.YAMLError as exc:
            pytest.fail("%s %s: %s" % (path.relative_to(REPO), name, exc))


@pytest.mark.parametrize("path", ACTIONS, ids=lambda path: str(path.relative_to(REPO)))
def test_every_action_plugin_has_its_documented_module(path):
    module = REPO / "plugins" / "modules" / path.name
    assert module.is_file(), "%s has no plugins/modules/%s holding its documentation" % (path, path.name)
    assert "DOCUMENTATION" in dict(_blocks(module)), module
