# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The playbooks run from an installed collection, as a user runs them: the artifact
`ansible-galaxy collection build` makes, installed with `ansible-galaxy collection install -p DIR`,
then `ansible-playbook picluster.carrier.<name>` from a directory without this repo's ansible.cfg,
with ANSIBLE_COLLECTIONS_PATH=DIR only (not the checkout's .collections)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PLAYBOOKS = sorted(path.stem for path in (REPO / "playbooks").glob("*.yml"))
# What a user sets in their own ansible.cfg: the collection's inventory plugin enabled.
INVENTORY_ENABLED = "picluster.carrier.boards,host_list,yaml,ini,auto"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The directory the built collection is installed into (holds ansible_collections/)."""
    build = tmp_path_factory.mktemp("build")
    subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(build), str(REPO)],
                   check=True, capture_output=True, text=True, timeout=300)
    (artifact,) = build.glob("picluster-carrier-*.tar.gz")
    dest = tmp_path_factory.mktemp("installed")
    subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", "--offline", "-p", str(dest), str(artifact)],
                   check=True, capture_output=True, text=True, timeout=300, env=_env(dest))
    assert (dest / "ansible_collections" / "picluster" / "carrier" / "playbooks" / "power.yml").is_file()
    assert not (dest / "ansible_collections" / "picluster" / "carrier").is_symlink()
    return dest


def _env(collections):
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("ANSIBLE_") and key != "PYTHONPATH"}
    env.update(ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
               ANSIBLE_INVENTORY_ENABLED=INVENTORY_ENABLED, ANSIBLE_INVENTORY_UNPARSED_FAILED="true",
               ANSIBLE_HOST_KEY_CHECKING="false", ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_LOCAL_TEMP=str(Path(collections) / "tmp"),
               PATH="%s:%s" % (BIN, os.environ.get("PATH", "")))
    return env


def run(installed, cwd, *args):
    proc = subprocess.run([str(BIN / "ansible-playbook"), *args], capture_output=True, text=True,
                          env=_env(installed), cwd=str(cwd), timeout=600, check=False)
    return proc


def cluster_args(cluster):
    return ["-i", cluster.inventory, "-e", "ansible_python_interpreter=%s" % sys.executable,
            "-e", "carrier_lock_dir=%s" % os.path.join(cluster.dir, "locks")]


def test_every_playbook_of_the_repo_is_in_the_artifact(installed):
    shipped = sorted(path.stem for path in (installed / "ansible_collections" / "picluster" / "carrier"
                                            / "playbooks").glob("*.yml"))
    assert shipped == PLAYBOOKS
    assert {"power", "status", "console", "netboot", "boot_order", "site"} <= set(PLAYBOOKS)


@pytest.mark.parametrize("name", PLAYBOOKS)
def test_playbook_paths_stay_inside_the_collection(name):
    """Paths from playbook_dir or the inventory, or up out of playbooks/, break once installed."""
    text = (REPO / "playbooks" / ("%s.yml" % name)).read_text()
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    found = re.findall(r"playbook_dir|inventory_dir|\.\./", text)
    assert not found, found


@pytest.mark.parametrize("name", PLAYBOOKS)
def test_syntax_check_from_the_installed_collection(installed, tmp_path, name):
    proc = run(installed, tmp_path, "picluster.carrier.%s" % name, "-i", "localhost,", "--syntax-check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ERROR" not in proc.stderr, proc.stderr


def test_status_and_power_from_the_installed_collection(installed, tmp_path, sim_cluster):
    status = run(installed, tmp_path, "picluster.carrier.status", *cluster_args(sim_cluster))
    assert status.returncode == 0, status.stdout + status.stderr
    # BOARD SLOT NODE SPECIALIZATIONS POWER, then whatever columns the table has after them.
    rows = re.findall(r'"(\S+)\s+(\d+)\s+(node\d+)\s+(\S+)\s+(on|off)\b', status.stdout)
    assert len(rows) == len(sim_cluster.hosts), status.stdout
    assert all(row[4] == "off" for row in rows), rows

    # power_wait_login includes the playbook's tasks/wait_login.yml: a path relative to the
    # playbook inside the installed collection.
    power = run(installed, tmp_path, "picluster.carrier.power", *cluster_args(sim_cluster), "-l", "node01",
                "-e", "power_state=on", "-e", "power_wait_login=true", "-e", "power_wait_timeout=60")
    assert power.returncode == 0, power.stdout + power.stderr
    assert re.search(r"^node01\s+:.*changed=1\s.*failed=0", power.stdout, re.M), power.stdout
    included = installed / "ansible_collections" / "picluster" / "carrier" / "playbooks" / "tasks" / "wait_login.yml"
    assert "included: %s for node01" % included in power.stdout, power.stdout
    assert sim_cluster.node("node01")["lines"]["power"] is True
    assert sim_cluster.node("node02")["lines"]["power"] is False
    assert sim_cluster.node("node01")["state"] == "login"
