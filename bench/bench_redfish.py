# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""carrier-redfish benchmark (make bench): the latency of a power read and of a reset through the
service against the bus time the same operation needs through the library, and 100 concurrent
clients. Prints figures and ratios measured side by side in one run; asserts nothing about speed.

The embedded cluster (inventory/sim/cluster.carrier.yml: carrier1, itx4_hwmon, 4 nodes; rack1,
backplane10, 10 nodes) is simulated (sim/carrier-sim) and carrier-redfish is started from the
redfish_service role's entry script over TLS (a certificate ``openssl req -x509`` makes here) on
127.0.0.1, with an accounts file of one Operator whose random password is kept in a 0600
credentials file the clients read. rack1 is served with backplane10's profile given as a mapping
with ``timing.stagger: 0``, so its resets compare with the floor's ``stagger=0``; carrier1 keeps its
built-in profile (stagger 0.5 s), whose gate every power-on through the service passes.

1. Floor: ``Board.read_state`` of one rack1 slot (BENCH_READS, default 200) and ``_power.execute``
   of ``PowerRequest(board, [slot], on/off, stagger=0)`` alternating (BENCH_RESETS, default 50).
2. The same through the service with ``requests`` (one keep-alive connection): ``GET
   /redfish/v1/Systems/node05`` (PowerState read from the hardware) and ``POST
   .../Actions/ComputerSystem.Reset`` alternating On/ForceOff, once with Basic authentication and
   once with a session's X-Auth-Token: p50/p99 and their ratio to the floor's. Then 10 resets of
   carrier1's node01 (built-in profile): the stagger gate against ForceOff.
3. 100 concurrent clients (BENCH_CLIENTS), threads each with its own connection, half with a session's
   token and half Basic, for BENCH_SECONDS (default 10) or 300 requests each: 10 of them reset
   rack1's slots 1-10 (one slot each, On/ForceOff alternating), the others read the 14 systems in
   turn. Once over TLS and once, on a second service over plain HTTP, to tell the TLS handshakes
   apart. Requests/s, p50/p99 of reads (per authentication) and of resets, errors (anything but
   200/204, or no response within 30 s), 202s (followed to the end on the task monitor), responses
   that close their connection (the client connects again), the kernel's listen queue overflows
   during the run (TcpExt ListenOverflows of this network namespace, so other processes' too), and
   whether each reset slot's power line in the simulator is what its client last asked for.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import collection_link  # noqa: E402

COLLECTIONS = collection_link.activate()

from ansible_collections.picluster.carrier.plugins.module_utils._board import BUILTIN_PROFILES, Board  # noqa: E402
from ansible_collections.picluster.carrier.plugins.module_utils._fileio import atomic_write  # noqa: E402
from ansible_collections.picluster.carrier.plugins.module_utils._power import PowerRequest, execute  # noqa: E402
from ansible_collections.picluster.carrier.plugins.module_utils._redfish.accounts import hash_password  # noqa: E402

SIM = [sys.executable, str(REPO / "sim" / "carrier-sim")]
ENTRY = REPO / "roles" / "redfish_service" / "files" / "carrier-redfish.py"
READS = int(os.environ.get("BENCH_READS", "200"))
RESETS = int(os.environ.get("BENCH_RESETS", "50"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "100"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
TIMEOUT = 30.0  # seconds a client waits for one response before it counts an error
PER_CLIENT = 300
RESETTERS = 10
USER = "bench"
SYSTEMS = "/redfish/v1/Systems/"
FLOOR_SLOT, FLOOR_HOST = 1, "node05"  # rack1 slot 1


class Bench(object):
    """The simulator, the service and what the measurements need; :meth:`close` removes all of it."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="pcr-", dir="/tmp")
        self.state = os.path.join(self.dir, "state")
        self.locks = os.path.join(self.dir, "locks")
        os.makedirs(self.locks)
        self.process = None
        self.runs = 0
        self.sim_started = False
        self.data = yaml.safe_load((REPO / "inventory" / "sim" / "cluster.carrier.yml").read_text())
        for index, board in enumerate(self.data["boards"].values()):
            board["bus"] = "sim:%s/b%d.sock" % (self.dir, index)
            board["console"] = "%s/console/{host}" % self.state
        self.profile = copy.deepcopy(BUILTIN_PROFILES["backplane10"])
        self.profile.update(name="backplane10-stagger0", timing={"stagger": 0})

    def start(self):
        """The simulator, a certificate, the accounts file and the clients' 0600 credentials file."""
        topology = Path(self.dir) / "cluster.carrier.yml"
        topology.write_text(yaml.safe_dump(self.data, sort_keys=False))
        subprocess.run(SIM + ["start", "--topology", str(topology), "--state-dir", self.state], check=True,
                       capture_output=True, timeout=120)
        self.sim_started = True
        self.cert, self.key = os.path.join(self.dir, "cert.pem"), os.path.join(self.dir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                        "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", self.key,
                        "-out", self.cert], check=True, capture_output=True, timeout=60)
        self.credentials = os.path.join(self.dir, "credentials.json")
        password = secrets.token_urlsafe(18)
        atomic_write(self.credentials, json.dumps({"username": USER, "password": password}), mode=0o600)
        self.accounts = os.path.join(self.dir, "accounts.json")
        atomic_write(self.accounts, json.dumps({"version": 1, "accounts": {
            USER: {"password_hash": hash_password(password), "role": "Operator"}}}), mode=0o600)

    def serve(self, tls=True):
        """Start carrier-redfish (TLS, or plain HTTP) with a fresh state directory; sets ``url``."""
        self.runs += 1
        boards = []
        for name, board in self.data["boards"].items():
            boards.append({"name": name, "profile": self.profile if name == "rack1" else board["profile"],
                           "bus": board["bus"], "lock_dir": self.locks,
                           "nodes": {str(slot): {"host": spec["host"], "model": spec.get("model", "cm4")}
                                     for slot, spec in board["slots"].items()}})
        config = os.path.join(self.dir, "redfish%d.json" % self.runs)
        atomic_write(config, json.dumps({"listen": "127.0.0.1", "port": 0, "tls_cert": self.cert if tls else None,
                                         "tls_key": self.key if tls else None, "accounts_file": self.accounts,
                                         "lock_dir": self.locks, "session_timeout": 600, "boards": boards,
                                         "state_dir": os.path.join(self.dir, "redfish-state%d" % self.runs)}),
                     mode=0o600)
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS))
        # stderr to a file: a pipe nobody reads would fill and stop the service's threads
        self.log = open(os.path.join(self.dir, "redfish%d.log" % self.runs), "w+", encoding="utf-8")
        self.process = subprocess.Popen([sys.executable, str(ENTRY), "--config", config], stdout=subprocess.PIPE,
                                        stderr=self.log, text=True, env=env)
        line = self.process.stdout.readline()
        if "serving http" not in line:
            self.stop_service()
            self.log.seek(0)
            raise RuntimeError("carrier-redfish did not start: %r %s" % (line, self.log.read()[-2000:]))
        self.url = line.split("serving ", 1)[1].strip()

    def stop_service(self):
        """Stop the service on SIGTERM; what went wrong, as sentences."""
        problems = []
        if self.process is None:
            return problems
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            problems.append("carrier-redfish did not stop on SIGTERM")
        if self.process.returncode != 0:
            self.log.seek(0)
            problems.append("carrier-redfish exited %s: %s" % (self.process.returncode, self.log.read()[-2000:]))
        self.process.stdout.close()
        self.log.close()
        self.process = None
        return problems

    def cpu(self):
        """CPU seconds so far of (this process, the service, the simulator)."""
        with open(os.path.join(self.state, "carrier-sim.pid"), encoding="ascii") as handle:
            sim = int(handle.read().split()[0])
        return time.process_time(), cpu_seconds(self.process.pid), cpu_seconds(sim)

    def board(self, name, profile=None):
        spec = self.data["boards"][name]
        return Board(name, profile or spec["profile"], spec["bus"], lock_dir=self.locks)

    def client(self, token=False, timeout=60):
        """A keep-alive ``requests.Session`` of one connection: Basic, or a session's X-Auth-Token."""
        with open(self.credentials, encoding="utf-8") as handle:
            login = json.load(handle)
        session = requests.Session()
        session.trust_env = False  # loopback: no proxy, and the environment's CA bundle would win over verify
        session.verify = self.cert
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=1)
        session.mount(self.url.split(":", 1)[0] + "://", adapter)
        if not token:
            session.auth = (login["username"], login["password"])
            return session
        response = session.post(self.url + "/redfish/v1/SessionService/Sessions", timeout=timeout,
                                json={"UserName": login["username"], "Password": login["password"]})
        response.raise_for_status()
        session.headers["X-Auth-Token"] = response.headers["X-Auth-Token"]
        return session

    def power_lines(self):
        """host -> the power line as the simulator holds it."""
        out = subprocess.run(SIM + ["status", "--json", "--state-dir", self.state], check=True, capture_output=True,
                             text=True, timeout=60).stdout
        boards = json.loads(out)["boards"]
        return {spec["host"]: bool(boards[name]["slots"][str(slot)]["lines"]["power"])
                for name, board in self.data["boards"].items() for slot, spec in board["slots"].items()}

    def close(self):
        problems = self.stop_service()
        if self.sim_started:
            subprocess.run(SIM + ["stop", "--state-dir", self.state], capture_output=True, check=False, timeout=120)
        shutil.rmtree(self.dir, ignore_errors=True)
        return problems


def cpu_seconds(pid):
    """User + system CPU seconds of process ``pid`` so far, its finished threads' included."""
    with open("/proc/%d/stat" % pid, encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))


def listen_overflows():
    """The kernel's count of connections dropped because a listen queue was full (this network namespace)."""
    with open("/proc/net/netstat", encoding="ascii") as handle:
        lines = [line.split() for line in handle if line.startswith("TcpExt:")]
    return int(dict(zip(lines[0], lines[1])).get("ListenOverflows", 0))


def quantiles(samples):
    """(p50, p99, max) in milliseconds."""
    ordered = sorted(samples)
    p99 = statistics.quantiles(ordered, n=100, method="inclusive")[98] if len(ordered) > 1 else ordered[0]
    return statistics.median(ordered) * 1000, p99 * 1000, ordered[-1] * 1000


def timed(bench, count, action):
    """Seconds of each of ``count`` calls of ``action(index)``, and the CPU seconds per call of
    (this process, the service, the simulator)."""
    times = []
    before = bench.cpu()
    for index in range(count):
        started = time.perf_counter()
        action(index)
        times.append(time.perf_counter() - started)
    return times, [(b - a) / count for a, b in zip(before, bench.cpu())]


def reset(session, url, host, reset_type, timeout=TIMEOUT):
    """POST the reset; a 202 is followed on its task monitor. ``(status, whether it was a 202)``."""
    response = session.post(url + SYSTEMS + host + "/Actions/ComputerSystem.Reset", json={"ResetType": reset_type},
                            timeout=timeout)
    if response.status_code != 202:
        return response.status_code, False
    monitor = response.headers["Location"]
    deadline = time.monotonic() + timeout
    while response.status_code == 202 and time.monotonic() < deadline:
        time.sleep(0.05)
        response = session.get(url + monitor, timeout=timeout)
    return response.status_code, True


def read_power(session, url, host, timeout=TIMEOUT):
    response = session.get(url + SYSTEMS + host, timeout=timeout)
    if response.status_code != 200 or response.json().get("PowerState") not in ("On", "Off"):
        return response.status_code or -1
    return 200


def floor(bench):
    """Library timings on rack1's FLOOR_SLOT: ``{"read": [...], "reset": [...]}``."""
    board = bench.board("rack1", bench.profile)
    states = ("on", "off")
    execute(PowerRequest(board, [FLOOR_SLOT], "off", stagger=0))
    reads, read_cpu = timed(bench, READS, lambda _i: board.read_state([FLOOR_SLOT]))
    resets, reset_cpu = timed(bench, RESETS, lambda i: execute(PowerRequest(board, [FLOOR_SLOT], states[i % 2],
                                                                            stagger=0)))
    return {"read": reads, "reset": resets, "read_cpu": read_cpu, "reset_cpu": reset_cpu}


def over_http(bench, token):
    """Service timings on FLOOR_HOST with one keep-alive client; statuses other than 200/204 are counted."""
    session = bench.client(token=token)
    bad = []
    types = ("On", "ForceOff")
    try:
        read_power(session, bench.url, FLOOR_HOST)  # the TLS handshake and the Basic cache, not timed

        def read(_index):
            status = read_power(session, bench.url, FLOOR_HOST)
            if status != 200:
                bad.append(status)

        def post(index):
            status, _accepted = reset(session, bench.url, FLOOR_HOST, types[index % 2])
            if status != 204:
                bad.append(status)

        reads, read_cpu = timed(bench, READS, read)
        resets, reset_cpu = timed(bench, RESETS, post)
    finally:
        session.close()
    return {"read": reads, "reset": resets, "bad": bad, "read_cpu": read_cpu, "reset_cpu": reset_cpu}


def gated(bench, count=10):
    """carrier1's node01 (built-in profile, stagger 0.5 s) reset On/ForceOff alternating: seconds per type."""
    session = bench.client(token=True)
    times = {"On": [], "ForceOff": []}
    try:
        for index in range(count):
            reset_type = ("On", "ForceOff")[index % 2]
            started = time.perf_counter()
            status, _accepted = reset(session, bench.url, "node01", reset_type)
            times[reset_type].append(time.perf_counter() - started)
            if status != 204:
                raise RuntimeError("reset %s of node01: HTTP %s" % (reset_type, status))
    finally:
        session.close()
    return times


class Client(threading.Thread):
    """One of the concurrent clients: its own connection; a reader, or the resetter of one system."""

    def __init__(self, bench, index, start, hosts, reset_host=None):
        super().__init__(name="client-%d" % index, daemon=True)
        self.bench, self.index, self.start_gate, self.hosts, self.reset_host = bench, index, start, hosts, reset_host
        self.times, self.errors, self.accepted, self.closed, self.last = [], [], 0, 0, None
        self.token = index % 2 == 0

    def closing(self, response, *_args, **_kwargs):
        if response.headers.get("Connection", "").lower() == "close":
            self.closed += 1

    def run(self):
        session = None
        try:
            session = self.bench.client(token=self.token)
            session.hooks["response"].append(self.closing)
            read_power(session, self.bench.url, self.hosts[0])  # connect (and log in) before the start
        except Exception as exc:  # counted, and the barrier is left so the others still run
            self.errors.append(repr(exc))
        try:
            self.start_gate["barrier"].wait(timeout=120)
            if not self.errors:
                self.loop(session)
        finally:
            if session is not None:
                session.close()

    def loop(self, session):
        for count in range(PER_CLIENT):
            if time.monotonic() >= self.start_gate["deadline"]:
                return
            started = time.perf_counter()
            try:
                if self.reset_host:
                    wanted = ("On", "ForceOff")[count % 2]
                    self.last = "unknown"  # until the service says it is done
                    status, accepted = reset(session, self.bench.url, self.reset_host, wanted)
                    self.accepted += accepted
                    if status == 204:
                        self.last = wanted
                    else:
                        self.errors.append(status)
                else:
                    status = read_power(session, self.bench.url, self.hosts[count % len(self.hosts)])
                    if status != 200:
                        self.errors.append(status)
            except Exception as exc:  # a client's failure is a figure of the run, not the end of it
                self.errors.append(type(exc).__name__)
                return
            self.times.append(time.perf_counter() - started)


def concurrent(bench):
    """CLIENTS threads at once; the figures of the run and the final power line of every reset system."""
    rack = [spec["host"] for _slot, spec in sorted(bench.data["boards"]["rack1"]["slots"].items())]
    hosts = [spec["host"] for board in bench.data["boards"].values() for spec in board["slots"].values()]
    gate = {"deadline": None}
    gate["barrier"] = threading.Barrier(CLIENTS + 1, action=lambda: gate.update(deadline=time.monotonic() + SECONDS))
    clients = []
    for index in range(CLIENTS):
        reset_host = rack[index] if index < min(RESETTERS, len(rack)) else None
        shift = index % len(hosts)
        clients.append(Client(bench, index, gate, hosts[shift:] + hosts[:shift], reset_host))
        clients[-1].start()
    gate["barrier"].wait(timeout=180)
    overflows, started, cpu = listen_overflows(), time.monotonic(), bench.cpu()
    for client in clients:
        client.join(timeout=max(1.0, gate["deadline"] + TIMEOUT * 2 - time.monotonic()))
    elapsed = time.monotonic() - started
    cpu = [b - a for a, b in zip(cpu, bench.cpu())]
    lines = bench.power_lines()
    resetters = [c for c in clients if c.reset_host]
    matches = sum(1 for c in resetters if c.last in ("On", "ForceOff") and lines[c.reset_host] == (c.last == "On"))
    readers = [c for c in clients if not c.reset_host]
    return {"elapsed": elapsed, "cpu": cpu, "resets": [t for c in resetters for t in c.times],
            "Basic": [t for c in readers if not c.token for t in c.times],
            "X-Auth-Token": [t for c in readers if c.token for t in c.times],
            "errors": [e for c in clients for e in c.errors], "accepted": sum(c.accepted for c in clients),
            "closed": sum(c.closed for c in clients), "overflows": listen_overflows() - overflows,
            "resetters": len(resetters), "matches": matches, "alive": sum(1 for c in clients if c.is_alive())}


def row(label, samples, base=None, cpu=None):
    """One line: n, p50, p99, max (ms), the ratios to ``base`` (p50, p99), CPU ms per request of
    (this process, the service, the simulator)."""
    if not samples:
        print("   %-38s     0" % label)
        return
    p50, p99, top = quantiles(samples)
    ratio = "%7.1fx %6.1fx" % (p50 / base[0], p99 / base[1]) if base else " " * 15
    used = "" if cpu is None else "  %6.2f %6s %6.2f" % (cpu[0] * 1000, "%.2f" % (cpu[1] * 1000) if base else "-",
                                                         cpu[2] * 1000)
    print("   %-38s %5d %8.2f %8.2f %8.2f %s%s" % (label, len(samples), p50, p99, top, ratio, used))


def report_single(floors, http, gate):
    print("1-2. one system (rack1 slot 1, node05), TLS, one keep-alive requests.Session; ms; x = service / floor;")
    print("     CPU ms per request of the caller (the library for the floor, the client for HTTP), service, simulator")
    heads = ("", "n", "p50", "p99", "max", "p50 x", "p99 x", "caller", "svc", "sim")
    print("   %-38s %5s %8s %8s %8s %7s %7s  %6s %6s %6s" % heads)
    base = {kind: quantiles(floors[kind])[:2] for kind in ("read", "reset")}
    row("floor: Board.read_state", floors["read"], cpu=floors["read_cpu"])
    row("floor: execute on/off, stagger 0", floors["reset"], cpu=floors["reset_cpu"])
    for auth in ("Basic", "X-Auth-Token"):
        row("GET Systems/node05, %s" % auth, http[auth]["read"], base["read"], http[auth]["read_cpu"])
        row("POST Reset On/ForceOff, %s" % auth, http[auth]["reset"], base["reset"], http[auth]["reset_cpu"])
    bad = sorted(set(s for a in http for s in http[a]["bad"]))
    print("   unexpected statuses: %d %s" % (sum(len(http[a]["bad"]) for a in http), bad or ""))
    print("   carrier1 node01, built-in profile (stagger 0.5 s), X-Auth-Token:")
    row("POST Reset On (waits at the gate)", gate["On"])
    row("POST Reset ForceOff", gate["ForceOff"])
    return base


def report_load(label, load, base):
    total = len(load["Basic"]) + len(load["X-Auth-Token"]) + len(load["resets"])
    cpu = ["%.2f" % (used * 1000 / max(total, 1)) for used in load["cpu"]]
    print("   %s: %d requests in %.1f s: %.0f requests/s; CPU ms per request: clients %s, service %s, simulator %s"
          % ((label, total, load["elapsed"], total / load["elapsed"]) + tuple(cpu)))
    for auth in ("Basic", "X-Auth-Token"):
        row("GET Systems/<host>, %s" % auth, load[auth], base["read"])
    row("POST Reset On/ForceOff", load["resets"], base["reset"])
    errors = load["errors"]
    print("   errors %d%s; 202s followed %d; clients not finished %d" % (
        len(errors), " (%s)" % ", ".join(sorted(set(map(str, errors)))) if errors else "", load["accepted"],
        load["alive"]))
    print("   responses with Connection: close %d; listen queue overflows %d; final power line = last reset "
          "asked for: %d of %d systems" % (load["closed"], load["overflows"], load["matches"], load["resetters"]))


def main():
    bench = Bench()
    problems = []
    try:
        bench.start()
        bench.serve(tls=True)
        floors = floor(bench)
        http = {"Basic": over_http(bench, token=False), "X-Auth-Token": over_http(bench, token=True)}
        gate = gated(bench)
        loads = [("TLS", concurrent(bench))]
        problems += bench.stop_service()
        bench.serve(tls=False)
        loads.append(("plain HTTP", concurrent(bench)))
        base = report_single(floors, http, gate)
        print("3. %d concurrent clients, each its own connection (%d reset one rack1 system each, the others read "
              "the 14 in turn; half Basic, half X-Auth-Token), %.0f s or %d requests each; ms"
              % (CLIENTS, min(RESETTERS, CLIENTS), SECONDS, PER_CLIENT))
        for label, load in loads:
            report_load(label, load, base)
    finally:
        problems += bench.close()
    for problem in problems:
        print("!! %s" % problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
