#!/usr/bin/env bash
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
#
# The main job against the embedded simulated cluster (make demo):
# start the simulator, show the cluster, power every node on (staggered), power-cycle one node,
# show the cluster again, stop the simulator. Exits non-zero if any step fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export ANSIBLE_CONFIG="$ROOT/ansible.cfg"
ANSIBLE_COLLECTIONS_PATH=$("$ROOT/scripts/collection-link.sh")
export ANSIBLE_COLLECTIONS_PATH
export ANSIBLE_NOCOLOR="${ANSIBLE_NOCOLOR:-}"
TOPOLOGY="$ROOT/inventory/sim/cluster.carrier.yml"
STATE_DIR="${PICLUSTER_SIM_DIR:-/tmp/picluster-sim}"
PY="${PYTHON:-$(command -v python)}"
SIM=("$PY" "$ROOT/sim/carrier-sim")

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

stop_sim() { "${SIM[@]}" stop --state-dir "$STATE_DIR" >/dev/null 2>&1 || true; }

step "Starting the simulated cluster ($TOPOLOGY)"
stop_sim  # a simulator left over from an interrupted demo
"${SIM[@]}" start --topology "$TOPOLOGY" --state-dir "$STATE_DIR"
trap stop_sim EXIT

step "The inventory: boards, slots and specializations"
ansible-inventory -i "$TOPOLOGY" --graph

step "Cluster status (read from the expanders' input registers)"
ansible-playbook -i "$TOPOLOGY" playbooks/status.yml

step "Power every node on (staggered per board, 14 forks at once)"
ansible-playbook -i "$TOPOLOGY" playbooks/power.yml -e power_state=on

step "Power-cycle node03 and wait for its login prompt on its serial console"
ansible-playbook -i "$TOPOLOGY" playbooks/power.yml -l node03 -e power_state=cycle -e power_wait_login=true

step "Cluster status again"
ansible-playbook -i "$TOPOLOGY" playbooks/status.yml

step "What the simulator saw"
"${SIM[@]}" status --state-dir "$STATE_DIR"

step "Stopping the simulator"
trap - EXIT
"${SIM[@]}" stop --state-dir "$STATE_DIR"
echo "demo: done"
