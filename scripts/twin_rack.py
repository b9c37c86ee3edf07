# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""From a bare simulated rack to a running cluster, in one run (make demo-cluster, the twin rack test
and bench/bench_twin_rack.py).

A rack of twin nodes (sim/carrier_sim/twin.py: each booted node is a Debian 12 systemd container
on the rack's own network), everything off and the storage blank, then the chain a user runs:

  flash      playbooks/flash.yml writes an image shaped like Raspberry Pi OS to every node's eMMC
             through its controller, with a first-boot customisation (host name, a user with sudo and
             an SSH key): its NoCloud seed is what the real cloud-init applies in the twin
  power      playbooks/power.yml switches the rack on, staggered per board
  ssh        every node answers SSH as that user (Ansible's wait_for_connection)
  prepare    test scaffolding (tests/twin/prepare.yml): a Ceph monitor and manager on the admin
             node (the ceph_node role joins an existing cluster), and the Pi-hole and k3s stand-ins
             on the controller (neither can be downloaded here; the same stand-ins as their roles'
             molecule scenarios)
  site       playbooks/site.yml: node_base everywhere, ceph_node, k3s, pihole, mpi by group
  verify     Ceph healthy with an OSD up on every storage node, Pi-hole answering DNS for every
             node, the k3s nodes Ready (stand-in), an MPI job across the compute nodes
  power_loss objects written to Ceph with their checksums while one storage node's power is pulled
             mid-write; it comes back, Ceph recovers, every acknowledged object reads back intact

Every stage is timed; the table is printed at the end, and --report writes it all as JSON.

  scripts/twin_rack.py [--nodes 5|14] [--work DIR] [--keep] [--report FILE] [--stages a,b,...]

Needs root (the simulator's twins), podman and the twin image (scripts/build-twin-image.sh, built
when missing).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "sim")]
import collection_link  # noqa: E402  (scripts/: the one home of the collection link)
from carrier_sim.twin import rack_tag  # noqa: E402
STAGES = ("images", "rack", "flash", "power", "ssh", "prepare", "site", "verify", "power_loss")
NETWORK = "10.231.%d.0/24"
USER = "admin"
IMAGE_CACHE = ROOT / "tests" / "output" / "twin"
# What each node is, by position in the rack (a 5-node rack takes the first five).
LAYOUT_5 = [
    ["ceph_storage", "mpi"],
    ["ceph_storage", "mpi"],
    ["ceph_storage", "mpi"],
    ["k3s_server", "pihole", "mpi"],
    ["k3s_agent", "mpi"],
]


class StageFailed(Exception):
    """A stage did not do what it should; the text says what, with the command's output."""


def layout(count):
    if count < 5:
        raise SystemExit("twin_rack: a rack needs at least 5 nodes (3 Ceph storage nodes, a k3s server, an agent)")
    return LAYOUT_5 + [["k3s_agent", "mpi"] for _extra in range(count - 5)]


class Rack:
    """One twin rack: its files under ``work``, its simulator, and how to reach its nodes."""

    def __init__(self, work, count, subnet=None, log=print):
        self.work = Path(work).resolve()
        self.count = count
        self.log = log
        self.subnet = subnet if subnet is not None else _subnet(self.work)
        self.network = NETWORK % self.subnet
        self.state = self.work / "state"
        self.tag = rack_tag(self.state)  # its twins are named ctw<tag>-<host>
        self.inventory = self.work / "rack.carrier.yml"
        self.key = self.work / "id_ed25519"
        self.hosts = ["node%02d" % (i + 1) for i in range(count)]
        self.roles = dict(zip(self.hosts, layout(count)))
        self.address = {h: "10.231.%d.%d" % (self.subnet, 10 + i) for i, h in enumerate(self.hosts)}
        self.serial = {h: "10000000%08x" % (0x7a170000 + i) for i, h in enumerate(self.hosts)}
        self.times = {}
        self.results = {}
        self.env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                        ANSIBLE_FORCE_COLOR="0", ANSIBLE_FORKS=str(max(count, 5)),
                        ANSIBLE_COLLECTIONS_PATH=str(collection_link.collections_path()),
                        ANSIBLE_HOST_KEY_CHECKING="False",
                        ANSIBLE_LOG_PATH=str(self.work / "ansible.log"),  # to follow a long stage: tail -f
                        CONTAINERS_CONF=os.environ.get("CONTAINERS_CONF",
                                                       str(ROOT / "tests" / "molecule" / "containers.conf")),
                        PATH="%s:%s" % (Path(sys.executable).parent, os.environ.get("PATH", "")))

    # --- running things -------------------------------------------------------------------------------
    def run(self, argv, timeout=900, check=True, quiet=False):
        proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=self.env, cwd=str(ROOT),
                              timeout=timeout, check=False, stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            command = " ".join(map(str, argv[:4]))
            raise StageFailed("%s exited %d:\n%s" % (command, proc.returncode, _tail(proc.stdout + proc.stderr)))
        if not quiet and proc.stdout.strip():
            self.log(_tail(proc.stdout, 40))
        return proc

    def playbook(self, path, *args, timeout=1800):
        return self.run([Path(sys.executable).parent / "ansible-playbook", "-i", self.inventory, path] + list(args),
                        timeout=timeout)

    def ssh_argv(self, host, command, sudo=True):
        argv = ["ssh", "-i", self.key, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=5",
                "%s@%s" % (USER, self.address[host])]
        return argv + [("sudo -n " if sudo else "") + command]

    def ssh(self, host, command, sudo=True, timeout=300, check=True):
        proc = self.run(self.ssh_argv(host, command, sudo), timeout=timeout, check=check, quiet=True)
        return proc.stdout

    def sim(self, *args, check=True):
        return self.run([sys.executable, ROOT / "sim" / "carrier-sim"] + list(args) + ["--state-dir", self.state],
                        check=check, quiet=True)

    # --- the rack's files ------------------------------------------------------------------------------
    def topology(self):
        """Boards of 10 slots (backplane10), CM4s with eMMC; storage nodes have an NVMe data disk."""
        boards = {}
        standin = self.work / "k3s-standin"
        for index, host in enumerate(self.hosts):
            board = "rack%d" % (index // 10 + 1)
            b = boards.setdefault(board, {
                "profile": "backplane10", "controller": "ctrl0", "bus": "sim:%s/%s.sock" % (self.work, board),
                "console": "%s/console/{host}" % self.state, "sim": {"usb_rate": 0, "gadget_time": 0.2},
                "slots": {}})
            roles = self.roles[host]
            twin = {"network": self.network, "address": self.address[host], "memory": "2g"}
            sim = {"emmc_gb": 8, "twin": twin}
            slot_vars = {"ansible_host": self.address[host]}
            if "ceph_storage" in roles:
                sim["nvme_gb"] = 6
                slot_vars["ceph_node_data_device"] = "/dev/disk/by-id/nvme-CARRIER_SIM_%s" % self.serial[host]
            if {"k3s_server", "k3s_agent"} & set(roles):
                twin["volumes"] = ["%s:/var/lib/k3s-standin" % standin]
            b["slots"][index % 10 + 1] = {"host": host, "model": "cm4", "serial": self.serial[host],
                                          "usb_port": "1-%d.%d" % (index // 10 + 1, index % 10 + 1),
                                          "specializations": roles, "sim": sim, "vars": slot_vars}
        return {"plugin": "picluster.carrier.boards",
                "controllers": {"ctrl0": {"vars": {"ansible_connection": "local", "ansible_host": "localhost",
                                                   "ansible_python_interpreter": sys.executable}}},
                "boards": boards}

    def write_files(self):
        self.work.mkdir(parents=True, exist_ok=True)
        (self.work / "k3s-standin").mkdir(exist_ok=True)
        import yaml  # the venv's PyYAML (Ansible's own dependency)
        self.inventory.write_text(yaml.safe_dump(self.topology(), sort_keys=False))
        if not self.key.exists():
            self.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "twin-rack", "-f", self.key], quiet=True)
        group_vars = self.work / "group_vars"
        group_vars.mkdir(exist_ok=True)
        password = self.work / ".pihole-password"
        if not password.exists():
            _write_secret(password, secrets.token_urlsafe(18))
        files = {
            "carrier_nodes.yml": {
                "ansible_user": USER, "ansible_ssh_private_key_file": str(self.key),
                "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
                "ansible_python_interpreter": "/usr/bin/python3",
                "carrier_lock_dir": str(self.work / "locks"),
                "node_base_time_sync": "timesyncd",
                "twin_work": str(self.work),
                "twin_network": self.network,
            },
            "ceph_storage.yml": {
                "ceph_node_admin_host": self.hosts[0], "ceph_node_method": "packages",
                "ceph_node_volume_mode": "raw", "ceph_node_min_size_gb": 4, "ceph_node_osd_up_retries": 60,
            },
            "k3s_server.yml": _k3s_vars(self.work),
            "k3s_agent.yml": _k3s_vars(self.work),
            "pihole.yml": {
                "pihole_artifacts_dir": str(self.work / "pihole-artifacts"),
                "pihole_version": "v6.3", "pihole_web_version": "v6.4", "pihole_ftl_version": "v6.4.1",
                "pihole_admin_password": "{{ lookup('ansible.builtin.file', '%s') }}" % password,
                "pihole_upstreams": ["192.0.2.53"], "pihole_verify_retries": 20, "pihole_verify_delay": 1,
            },
            "mpi.yml": {"mpi_network": self.network, "mpi_install_dev": True},
        }
        for name, data in files.items():
            (group_vars / name).write_text("---\n" + yaml.safe_dump(data, sort_keys=False))

    # --- the stages --------------------------------------------------------------------------------------
    def stage_images(self):
        self.run([ROOT / "scripts" / "build-twin-image.sh"], timeout=1800)
        IMAGE_CACHE.mkdir(parents=True, exist_ok=True)
        image = IMAGE_CACHE / "rpi-64M.img.xz"
        if not image.exists():
            sys.path.insert(0, str(ROOT / "tests" / "unit" / "plugins" / "module_utils"))
            from flash_fixtures import compress, make_os_image
            make_os_image(IMAGE_CACHE / "rpi-64M.img", size_mb=64, payload_mb=1)
            compress(str(IMAGE_CACHE / "rpi-64M.img"), "xz")
        self.image = image
        return {"image": str(image)}

    def stage_rack(self):
        self.write_files()
        self.sim("stop", check=False)
        # A new rack's storage is blank: node_flash's records of the last one would say it is written.
        shutil.rmtree(self.work / "flash-state", ignore_errors=True)
        self.sim("start", "--topology", self.inventory, "--boot-time", "1.0")
        status = json.loads(self.sim("status", "--json").stdout)
        return {"twins": status.get("twins"), "nodes": len(status["nodes"]),
                "states": sorted({n["state"] for n in status["nodes"].values()})}

    def stage_flash(self):
        # The image is shaped like Raspberry Pi OS from Trixie on, whose first boot is cloud-init's.
        key = Path(str(self.key) + ".pub").read_text().strip()
        customize = {"style": "cloud-init", "users": [{"name": USER, "sudo": True, "ssh_authorized_keys": [key]}]}
        image = getattr(self, "image", IMAGE_CACHE / "rpi-64M.img.xz")
        self.playbook(ROOT / "playbooks" / "flash.yml", "-e", "flash_image=%s" % image,
                      "-e", json.dumps({"flash_customize": customize}), "-e", "flash_max_parallel=4",
                      "-e", "flash_state_dir=%s" % (self.work / "flash-state"))
        return {"flashed": len(self.hosts)}

    def stage_power(self):
        self.playbook(ROOT / "playbooks" / "power.yml", "-e", "power_state=on", "-e", "power_stagger=0.5")
        return {"on": len(self.hosts)}

    def stage_ssh(self):
        self.run([Path(sys.executable).parent / "ansible", "-i", self.inventory, "carrier_nodes", "-m",
                  "ansible.builtin.wait_for_connection", "-a", "timeout=300 sleep=1"], timeout=400, quiet=True)
        names = {h: self.ssh(h, "hostname", sudo=True).strip() for h in self.hosts}
        wrong = {h: n for h, n in names.items() if n != h}
        if wrong:
            raise StageFailed("host names after first boot differ from the inventory: %s" % wrong)
        return {"hostnames": names}

    def stage_prepare(self):
        self.playbook(ROOT / "tests" / "twin" / "prepare.yml")
        return {}

    def stage_site(self):
        self.playbook(ROOT / "playbooks" / "site.yml")
        # The mpi role has no molecule scenario (it needs several nodes): its idempotence is proven here,
        # by a second run of its play on the real rack that must change nothing.
        again = self.playbook(ROOT / "playbooks" / "site.yml", "--tags", "mpi")
        changed = {host: int(count) for host, count in re.findall(r"^(\S+)\s+:.*?\bchanged=(\d+)", again.stdout, re.M)
                   if int(count)}
        if changed:
            raise StageFailed("a second run of the mpi play changed something: %s\n%s" % (changed, _tail(again.stdout)))
        return {"mpi_rerun_changed": changed}

    def stage_verify(self):
        admin = self.hosts[0]
        storage = [h for h in self.hosts if "ceph_storage" in self.roles[h]]
        out = {}
        wait_clean = self.ssh(admin, "python3 /usr/local/sbin/twin-objects wait-clean --timeout 240", timeout=300)
        out["ceph_wait"] = wait_clean.strip().splitlines()[-1:]
        status = json.loads(self.ssh(admin, "ceph status --format json"))
        up_hosts = sorted(h for h, up in self.osds_up(admin).items() if up)
        out["ceph"] = {"health": status["health"]["status"], "osds_up": status["osdmap"]["num_up_osds"],
                       "osd_hosts_up": up_hosts}
        if out["ceph"]["osds_up"] != len(storage) or up_hosts != sorted(storage):
            raise StageFailed("Ceph: expected an OSD up on each of %s, got %s" % (storage, out["ceph"]))
        if out["ceph"]["health"] != "HEALTH_OK":
            raise StageFailed("Ceph: %s" % self.ssh(admin, "ceph health detail").strip())
        dns_node = next(h for h in self.hosts if "pihole" in self.roles[h])
        answers = {}
        for host in self.hosts:
            answer = self.ssh(self.hosts[-1], "dig +short +time=2 @%s %s" % (self.address[dns_node], host),
                              sudo=False).strip()
            answers[host] = answer
        out["dns"] = {"server": dns_node, "answers": answers}
        wrong = {h: a for h, a in answers.items() if a != self.address[h]}
        if wrong:
            raise StageFailed("Pi-hole on %s answered wrongly for %s" % (dns_node, wrong))
        server = next(h for h in self.hosts if "k3s_server" in self.roles[h])
        nodes = json.loads(self.ssh(server, "k3s kubectl get nodes -o json"))
        ready = sorted(i["metadata"]["name"] for i in nodes["items"] if any(
            c["type"] == "Ready" and c["status"] == "True" for c in i["status"]["conditions"]))
        k3s_hosts = sorted(h for h in self.hosts if {"k3s_server", "k3s_agent"} & set(self.roles[h]))
        out["k3s"] = {"ready": ready, "stand_in": True}
        if ready != k3s_hosts:
            raise StageFailed("k3s (stand-in): Ready %s, expected %s" % (ready, k3s_hosts))
        mpi = [h for h in self.hosts if "mpi" in self.roles[h]]
        job = self.ssh(mpi[0], "sudo -n -u mpi -i picluster-mpi-sample", sudo=False, timeout=300)
        out["mpi"] = {"output": job.strip().splitlines()[-12:]}
        out["mpi"]["pi"] = self.mpi_pi(mpi)
        return out

    def mpi_pi(self, mpi):
        """The role's C example: built on every MPI node (same path), then one job over all their slots."""
        # Over SSH with sudo -u, as a user would: Ansible's become_user to an unprivileged user needs ACLs
        # (setfacl) on the node for its temporary files, which a minimal image lacks.
        build = "sudo -n -u mpi -i mpicc -O2 -o /home/mpi/mpi-pi /usr/local/share/picluster-mpi/mpi-pi.c -lm"
        compilers = {h: subprocess.Popen([str(a) for a in self.ssh_argv(h, build, sudo=False)], stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True, env=self.env, stdin=subprocess.DEVNULL)
                     for h in mpi}
        failed = {}
        for host, proc in compilers.items():
            output, _errors = proc.communicate(timeout=300)
            if proc.returncode != 0:
                failed[host] = _tail(output, 10)
        if failed:
            raise StageFailed("mpicc failed on %s" % failed)
        slots = self.ssh(mpi[0], "awk '/slots=/ {sub(/.*slots=/, \"\"); n += $1} END {print n}' "
                         "/etc/openmpi/picluster-hostfile").strip()
        job = self.ssh(mpi[0], "sudo -n -u mpi -i mpirun --hostfile /etc/openmpi/picluster-hostfile -np %s "
                       "/home/mpi/mpi-pi 100000000" % shlex.quote(slots), sudo=False, timeout=300)
        result = [line for line in job.splitlines() if line.startswith("pi = ")]
        if not result:
            raise StageFailed("the MPI pi job printed no result:\n%s" % _tail(job))
        return result[-1]

    def stage_power_loss(self):
        """Pull a storage node's power while objects are written; recover; read everything back."""
        admin = self.hosts[0]
        victim = [h for h in self.hosts if "ceph_storage" in self.roles[h]][-1]
        manifest = "/var/tmp/twin-objects.manifest"
        count = 120
        self.ssh(admin, "rm -f %s" % manifest)
        writer = subprocess.Popen([str(a) for a in self.ssh_argv(
            admin, "python3 /usr/local/sbin/twin-objects write --pool twin-check --count %d --size 65536 "
            "--rate 10 --manifest %s" % (count, manifest))], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env=self.env, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while _lines(self.ssh(admin, "cat %s 2>/dev/null || true" % manifest)) < count // 4:
                if time.monotonic() > deadline or writer.poll() is not None:
                    raise StageFailed("the writer did not get going: %s" % _tail(writer.stdout.read() if
                                                                                 writer.poll() is not None else ""))
                time.sleep(0.5)
            acked_before = _lines(self.ssh(admin, "cat %s" % manifest))
            pulled = time.monotonic()
            self.playbook(ROOT / "playbooks" / "power.yml", "-l", victim, "-e", "power_state=off")
            noticed = self.wait_osd(admin, victim, False, 60)
            self.playbook(ROOT / "playbooks" / "power.yml", "-l", victim, "-e", "power_state=on")
            output, _errors = writer.communicate(timeout=600)
        finally:
            if writer.poll() is None:
                writer.kill()
        if writer.returncode != 0:
            raise StageFailed("the writer failed (rc %s):\n%s" % (writer.returncode, _tail(output)))
        back = self.wait_osd(admin, victim, True, 300)
        clean = self.ssh(admin, "python3 /usr/local/sbin/twin-objects wait-clean --timeout 300", timeout=360)
        recovered = time.monotonic() - pulled
        verify = self.ssh(admin, "python3 /usr/local/sbin/twin-objects verify --pool twin-check --manifest %s"
                          % manifest, timeout=300)
        if not verify.strip().endswith("0 lost, 0 corrupt"):
            raise StageFailed("objects lost or corrupt after %s's power loss: %s" % (victim, _tail(verify, 10)))
        return {"victim": victim, "objects": count, "acknowledged_before_pull": acked_before,
                "seconds_until_osd_down": noticed, "seconds_until_osd_up_again": back,
                "seconds_pull_to_clean": round(recovered, 1), "wait_clean": clean.strip().splitlines()[-1:],
                "verify": verify.strip().splitlines()[-1:], "writer": output.strip().splitlines()[-3:]}

    def osds_up(self, admin):
        """{storage host: whether every OSD of it is up}, from the monitors."""
        tree = json.loads(self.ssh(admin, "ceph osd tree --format json"))
        status = {n["id"]: n.get("status") for n in tree["nodes"]}
        return {n["name"]: all(status.get(c) == "up" for c in n.get("children", []))
                for n in tree["nodes"] if n["type"] == "host" and n.get("children")}

    def wait_osd(self, admin, host, up, timeout):
        """Seconds until the monitors see ``host``'s OSDs up (or down)."""
        start = time.monotonic()
        while self.osds_up(admin).get(host) != up:
            if time.monotonic() - start > timeout:
                raise StageFailed("the OSDs of %s were not %s within %d s" % (host, "up" if up else "down", timeout))
            time.sleep(1)
        return round(time.monotonic() - start, 1)

    # --- the whole run ------------------------------------------------------------------------------------
    def go(self, stages=STAGES):
        for name in stages:
            self.log("\n==> %s" % name)
            start = time.monotonic()
            try:
                self.results[name] = getattr(self, "stage_" + name)()
            finally:
                self.times[name] = round(time.monotonic() - start, 1)
            self.log("==> %s done in %.1f s" % (name, self.times[name]))
        return self.results

    def memory(self):
        """Resident memory per twin container of this rack (podman stats), MiB."""
        proc = self.run(["podman", "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}"], check=False,
                        quiet=True)
        out, prefix = {}, "ctw%s-" % self.tag
        for line in proc.stdout.splitlines():
            name, _sep, usage = line.partition(" ")
            if name.startswith(prefix):
                out[name[len(prefix):]] = _mib(usage.split("/")[0].strip())
        return out

    def stop(self):
        self.sim("stop", check=False)

    def summary(self):
        """What the cluster showed, in lines a person reads (the stand-ins said as such)."""
        lines = []
        verify, loss = self.results.get("verify") or {}, self.results.get("power_loss") or {}
        if verify.get("ceph"):
            ceph = verify["ceph"]
            hosts = ", ".join(ceph["osd_hosts_up"])
            lines.append("ceph (real, Debian 12): %s, %d OSDs up on %s" % (ceph["health"], ceph["osds_up"], hosts))
        if verify.get("dns"):
            dns = verify["dns"]
            lines.append("dns (Pi-hole stand-in on %s, the real dnsmasq): %s" % (dns["server"], ", ".join(
                "%s %s" % kv for kv in sorted(dns["answers"].items()))))
        if verify.get("k3s"):
            lines.append("k3s (stand-in): Ready %s" % ", ".join(verify["k3s"]["ready"]))
        if verify.get("mpi"):
            lines += ["mpi: " + line for line in verify["mpi"]["output"][-8:]]
            lines.append("mpi: the role's C example across every slot: %s" % verify["mpi"].get("pi"))
        if loss:
            lines.append("power loss: %s's power pulled after %d of %d objects were acknowledged; its OSDs down "
                         "after %.1f s, up %.1f s after power-on, active+clean %.1f s after the pull; %s"
                         % (loss["victim"], loss["acknowledged_before_pull"], loss["objects"],
                            loss["seconds_until_osd_down"], loss["seconds_until_osd_up_again"],
                            loss["seconds_pull_to_clean"], loss["verify"][-1]))
        return "\n".join(lines)

    def table(self):
        rows = ["%-11s %8s" % ("stage", "seconds")]
        rows += ["%-11s %8.1f" % (name, secs) for name, secs in self.times.items()]
        rows.append("%-11s %8.1f" % ("total", sum(self.times.values())))
        return "\n".join(rows)


def _subnet(work):
    """The rack's third octet: kept in the work directory, so a rack run stage by stage keeps its network."""
    path = Path(work) / "subnet"
    if path.exists():
        return int(path.read_text())
    subnet = 200 + (os.getpid() % 50)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("%d\n" % subnet)
    return subnet


def _k3s_vars(work):
    return {"k3s_airgap_dir": str(work / "airgap"), "k3s_version": "v1.33.2+k3s1",
            "k3s_service_settings": {"LimitNOFILE": "16384", "TasksMax": "infinity"},
            "k3s_server_config": {"write-kubeconfig-mode": "0600", "disable": ["traefik", "servicelb"]},
            "k3s_verify_retries": 30, "k3s_verify_delay": 2}


def _write_secret(path, text):
    fd = os.open(str(path) + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(str(path) + ".tmp", path)


def _lines(text):
    return len([line for line in text.splitlines() if line.strip()])


def _mib(text):
    units = {"kb": 1 / 1024, "mb": 1, "gb": 1024, "b": 1 / 1048576, "kib": 1 / 1024, "mib": 1, "gib": 1024}
    number = "".join(c for c in text if c.isdigit() or c == ".")
    unit = text[len(number):].strip().lower() if text.startswith(number) else "mb"
    return round(float(number or 0) * units.get(unit, 1), 1)


def _tail(text, lines=60):
    return "\n".join((text or "").rstrip().splitlines()[-lines:])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--work", default=None, help="working directory (default: a new one under /tmp)")
    parser.add_argument("--keep", action="store_true", help="leave the rack running at the end")
    parser.add_argument("--report", help="write the stages' results and times as JSON to this file")
    parser.add_argument("--stages", default=",".join(STAGES))
    args = parser.parse_args(argv)
    stages = [s for s in args.stages.split(",") if s]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        parser.error("--stages: unknown %s (known: %s)" % (", ".join(unknown), ", ".join(STAGES)))
    if os.geteuid() != 0:
        parser.error("the twin rack needs root (network namespaces, loop devices, podman)")
    work = args.work or "/tmp/twin-rack-%d" % os.getpid()
    rack = Rack(work, args.nodes)
    ok = False
    try:
        rack.go(stages)
        ok = True
    except StageFailed as exc:
        print("twin_rack: stage failed: %s" % exc, file=sys.stderr)
    finally:
        memory = rack.memory()
        if not args.keep:
            rack.stop()
        if rack.summary():
            print("\n" + rack.summary())
        print("\n" + rack.table())
        if memory:
            print("memory per twin node (MiB): %s" % ", ".join("%s %.0f" % kv for kv in sorted(memory.items())))
        if args.report:
            Path(args.report).write_text(json.dumps({"times": rack.times, "results": rack.results,
                                                     "memory_mib": memory, "ok": ok}, indent=2, default=str))
        if args.keep:
            print("the rack is still running: %s (stop: sim/carrier-sim stop --state-dir %s)"
                  % (rack.inventory, shlex.quote(str(rack.state))))
        elif args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
