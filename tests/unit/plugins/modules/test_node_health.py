# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""node_health run as Ansible runs it, on a fake tree with a fake vcgencmd and without one."""

from __future__ import annotations

import sys
from pathlib import Path

from modrun import run_module

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "module_utils"))
from test__health import fake_tree  # noqa: E402


def test_health_with_a_vcgencmd(tmp_path):
    root = fake_tree(tmp_path / "root")
    tool = tmp_path / "vcgencmd"
    tool.write_text("#!/bin/sh\n[ \"$1\" = get_throttled ] && echo throttled=0x50005 && exit 0\nexit 2\n")
    tool.chmod(0o755)
    result = run_module("node_health", {"root": root, "vcgencmd": str(tool)}, tmp_path, check=True)
    assert result.exit_status == 0, result
    assert result["changed"] is False
    assert result["throttled"]["undervoltage"] is True and result["throttled"]["undervoltage_occurred"] is True
    assert result["temperature_c"] == 47.234 and result["unavailable"] == {}


def test_health_without_vcgencmd_and_a_hanging_one(tmp_path):
    root = fake_tree(tmp_path / "root")
    result = run_module("node_health", {"root": root, "vcgencmd": "no-such-vcgencmd"}, tmp_path)
    assert result.exit_status == 0, result
    assert result["throttled"] is None and result["unavailable"] == {"throttled": "vcgencmd is not installed"}
    slow = tmp_path / "slow"
    slow.write_text("#!/bin/sh\nsleep 5\n")
    slow.chmod(0o755)
    result = run_module("node_health", {"root": root, "vcgencmd": str(slow), "timeout": 0.3}, tmp_path)
    assert "did not answer in 0.3 s" in result["unavailable"]["throttled"]
    result = run_module("node_health", {"root": root, "timeout": "nan"}, tmp_path)
    assert result.exit_status == 1 and "timeout" in result["msg"]


def test_the_return_block_names_what_is_returned(tmp_path):
    import yaml

    from ansible_collections.picluster.carrier.plugins.modules import node_health

    documented = yaml.safe_load(node_health.RETURN)
    result = run_module("node_health", {"root": fake_tree(tmp_path / "root")}, tmp_path)
    assert set(result) - {"changed", "invocation"} == set(documented)
    assert set(result["throttled"] or documented["throttled"]["contains"]) == set(documented["throttled"]["contains"])
