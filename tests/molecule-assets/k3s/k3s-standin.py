#!/bin/sh
''''exec python3 "$0" "$@" # '''
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A stand-in for the k3s binary, for the k3s role's molecule scenario only.

The real k3s cannot be downloaded on the test machines (no GitHub), and a real cluster cannot
form between containers without a network. This script behaves like the parts of k3s the role
relies on, so the role's own logic (install, token, config, units, ordering, handlers, readiness
check) runs for real against systemd:

- ``k3s --version``: prints the version it was built for (the scenario's prepare step writes
  ``@K3S_VERSION@``) in k3s's two-line format.
- ``k3s server`` / ``k3s agent``: long-running processes for ``Type=notify`` units. They read
  ``/etc/rancher/k3s/config.yaml`` (top-level scalar keys only: token, token-file, server,
  cluster-init, node-name, write-kubeconfig-mode, data-dir) and command-line ``--key=value``
  flags, refuse to start without what k3s needs (an agent without server or token, a joining
  server without a token), write the files k3s writes (``<data-dir>/server/token`` and
  ``node-token`` as ``K10<hash>::server:<token>`` mode 0600, ``/etc/rancher/k3s/k3s.yaml``),
  register the node in a cluster directory shared between the containers (a podman volume,
  ``K3S_STANDIN_CLUSTER_DIR``, default ``/var/lib/k3s-standin``) instead of the network, wait
  until the server named by ``server:`` has registered, check that the token matches the
  cluster's (exit 1 otherwise, as k3s does on a bad token), record the image archives found in
  ``<data-dir>/agent/images``, tell systemd READY=1, refresh a heartbeat every 2 s and mark the
  node NotReady when stopped.
- ``k3s kubectl get nodes [-o json]``: on a server whose process runs, lists the registered
  nodes as a NodeList (Ready when the process is alive and its heartbeat is fresh); otherwise
  fails with kubectl's "connection refused" message.

What it does not do (left unproven by the scenario): TLS, etcd, containerd, image import,
pod networking, real scheduling.
"""

import fcntl
import hashlib
import json
import os
import secrets
import signal
import socket
import struct
import sys
import time

VERSION = "@K3S_VERSION@"
CONFIG = "/etc/rancher/k3s/config.yaml"
KUBECONFIG = "/etc/rancher/k3s/k3s.yaml"
CLUSTER_DIR = os.environ.get("K3S_STANDIN_CLUSTER_DIR", "/var/lib/k3s-standin")
PIDFILE = "/run/k3s-standin-{}.pid"
HEARTBEAT_MAX_AGE = 15.0
# A fixed "CA" so every node computes the same hash part of the full token.
CA_HASH = hashlib.sha256(b"k3s-standin-ca").hexdigest()


def log(msg):
    print(f"k3s-standin: {msg}", file=sys.stderr, flush=True)


def parse_config(path):
    """Top-level ``key: value`` scalars of a YAML file (lists and nested maps are skipped)."""
    conf = {}
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError:
        return conf
    for line in lines:
        if not line or line[0] in " #-" or ":" not in line:
            continue
        key, _sep, value = line.partition(":")
        value = value.strip()
        if not value:
            continue
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif value in ("true", "false"):
            value = value == "true"
        conf[key.strip()] = value
    return conf


def parse_flags(args):
    flags = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise SystemExit(f"k3s-standin: unexpected argument {arg!r}")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 < len(args) and not args[i + 1].startswith("--"):
                value = args[i + 1]
                i += 1
            else:
                value = True
        flags[key] = value
        i += 1
    return flags


def write_private(path, text, mode=0o600):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def read_json(path, default=None):
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (FileNotFoundError, json.JSONDecodeError):
        return default


def token_secret(conf):
    """The token as given (token, token-file or K3S_TOKEN), reduced to its secret part."""
    token = conf.get("token") or os.environ.get("K3S_TOKEN") or ""
    if not token and conf.get("token-file"):
        try:
            with open(conf["token-file"], encoding="utf-8") as fh:
                token = fh.read().strip()
        except OSError as exc:
            raise SystemExit(f"k3s-standin: cannot read token-file {conf['token-file']}: {exc}")
    if "::" in token:  # full K10<hash>::server:<secret> form
        token = token.rsplit(":", 1)[-1]
    return token


def sd_notify(message):
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(addr)
        sock.sendall(message.encode())


def node_file(name):
    return os.path.join(CLUSTER_DIR, "nodes", f"{name}.json")


def node_addresses(name, conf):
    """What a server URL may name this node by: its names, the addresses set in its config, and the
    addresses its host name resolves to (a join URL holds an IP address where nodes have no DNS)."""
    found = {name, socket.gethostname()}
    for key in ("node-ip", "advertise-address", "bind-address"):
        found.update(a.strip() for a in str(conf.get(key) or "").split(",") if a.strip())
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for _index, ifname in socket.if_nameindex():
            try:  # SIOCGIFADDR: the interface's IPv4 address
                packed = fcntl.ioctl(probe.fileno(), 0x8915, struct.pack("256s", ifname.encode()[:15]))
                found.add(socket.inet_ntoa(packed[20:24]))
            except OSError:
                continue
    finally:
        probe.close()
    return sorted(a for a in found if a and not a.startswith("127."))


def server_registered(url):
    """The node named by the host part of a https://HOST:PORT URL has registered as a server."""
    host = url.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    for entry in os.listdir(os.path.join(CLUSTER_DIR, "nodes")):
        node = read_json(os.path.join(CLUSTER_DIR, "nodes", entry), {})
        if node.get("role") == "server" and host in node.get("addresses", []) and node.get("ready"):
            return True
    return False


def run(kind, args):
    conf = parse_config(CONFIG)
    conf.update(parse_flags(args))
    name = conf.get("node-name") or socket.gethostname()
    data_dir = conf.get("data-dir", "/var/lib/rancher/k3s")
    server_url = conf.get("server") or os.environ.get("K3S_URL", "")
    secret = token_secret(conf)
    os.makedirs(os.path.join(CLUSTER_DIR, "nodes"), exist_ok=True)
    cluster_file = os.path.join(CLUSTER_DIR, "cluster.json")

    if kind == "agent" and not server_url:
        raise SystemExit("k3s-standin: agent: --server is required")
    if server_url and not secret:
        raise SystemExit("k3s-standin: --token is required when joining a cluster")

    if server_url:
        # Joining: wait for the named server (k3s retries the same way), then check the token.
        while not server_registered(server_url):
            log(f"waiting for the server {server_url} to register")
            time.sleep(2)
        cluster = read_json(cluster_file, {})
        if cluster.get("token_sha256") != hashlib.sha256(secret.encode()).hexdigest():
            raise SystemExit(f"k3s-standin: {server_url} rejected the token (401 Unauthorized)")
    else:
        if kind != "server":
            raise SystemExit("k3s-standin: only a server may start without --server")
        token_path = os.path.join(data_dir, "server", "token")
        if not secret:
            existing = ""
            if os.path.exists(token_path):
                with open(token_path, encoding="utf-8") as fh:
                    existing = fh.read().strip()
            secret = existing.rsplit(":", 1)[-1] if existing else secrets.token_hex(16)
        cluster = read_json(cluster_file, {})
        digest = hashlib.sha256(secret.encode()).hexdigest()
        if cluster.get("token_sha256") not in (None, digest) and cluster.get("init_node") != name:
            raise SystemExit("k3s-standin: a cluster with another token already exists")
        tmp = f"{cluster_file}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"token_sha256": digest, "init_node": name,
                       "cluster_init": bool(conf.get("cluster-init"))}, fh)
        os.replace(tmp, cluster_file)

    if kind == "server":
        full = f"K10{CA_HASH}::server:{secret}\n"
        write_private(os.path.join(data_dir, "server", "token"), full)
        write_private(os.path.join(data_dir, "server", "node-token"), full)
        mode = int(str(conf.get("write-kubeconfig-mode", "600")), 8)
        write_private(KUBECONFIG, (
            "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: https://127.0.0.1:6443\n"
            "    certificate-authority-data: c3RhbmQtaW4=\n  name: default\ncontexts:\n- context:\n"
            "    cluster: default\n    user: default\n  name: default\ncurrent-context: default\n"
            "users:\n- name: default\n  user:\n    token: stand-in\n"), mode)

    images_dir = os.path.join(data_dir, "agent", "images")
    images = sorted(os.listdir(images_dir)) if os.path.isdir(images_dir) else []
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
    if kind == "server":
        labels["node-role.kubernetes.io/control-plane"] = "true"
        labels["node-role.kubernetes.io/master"] = "true"
        if read_json(cluster_file, {}).get("cluster_init") or server_url:
            labels["node-role.kubernetes.io/etcd"] = "true"
    node = {"name": name, "role": kind, "version": VERSION, "images": images, "ready": True,
            "addresses": node_addresses(name, conf), "server_url": server_url,
            "created": time.time(), "heartbeat": time.time(), "labels": labels}

    def save():
        tmp = f"{node_file(name)}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(node, fh)
        os.replace(tmp, node_file(name))

    def stop(_signum, _frame):
        node["ready"] = False
        save()
        try:
            os.unlink(PIDFILE.format(kind))
        except FileNotFoundError:
            pass
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    save()
    with open(PIDFILE.format(kind), "w", encoding="utf-8") as fh:
        fh.write(f"{os.getpid()}\n")
    log(f"{kind} {name} running ({VERSION}); images seen: {images}")
    sd_notify("READY=1")
    while True:
        time.sleep(2)
        node["heartbeat"] = time.time()
        save()


def process_alive(kind):
    try:
        with open(PIDFILE.format(kind), encoding="utf-8") as fh:
            pid = int(fh.read().strip())
        os.kill(pid, 0)
        return True
    except (OSError, ValueError):
        return False


def kubectl(args):
    if args[:2] != ["get", "nodes"]:
        raise SystemExit(f"k3s-standin: kubectl {' '.join(args)}: only 'get nodes [-o json]' is implemented")
    if not os.path.exists(KUBECONFIG) or not process_alive("server"):
        raise SystemExit("The connection to the server 127.0.0.1:6443 was refused - "
                         "did you specify the right host or port?")
    now = time.time()
    items = []
    nodes_dir = os.path.join(CLUSTER_DIR, "nodes")
    for entry in sorted(os.listdir(nodes_dir)):
        node = read_json(os.path.join(nodes_dir, entry))
        if not node:
            continue
        fresh = node.get("ready") and now - node.get("heartbeat", 0) < HEARTBEAT_MAX_AGE
        status = "True" if fresh else ("Unknown" if node.get("ready") else "False")
        items.append({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": node["name"], "labels": node["labels"]},
            "status": {
                "conditions": [
                    {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory"},
                    {"type": "Ready", "status": status,
                     "reason": "KubeletReady" if fresh else "NodeStatusUnknown",
                     "lastHeartbeatTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(node["heartbeat"]))},
                ],
                "nodeInfo": {"kubeletVersion": node["version"], "architecture": os.uname().machine},
            },
        })
    if args[2:] == ["-o", "json"]:
        print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}, indent=2))
    else:
        print(f"{'NAME':<24}{'STATUS':<10}VERSION")
        for item in items:
            ready = next(c["status"] for c in item["status"]["conditions"] if c["type"] == "Ready")
            print(f"{item['metadata']['name']:<24}{'Ready' if ready == 'True' else 'NotReady':<10}"
                  f"{item['status']['nodeInfo']['kubeletVersion']}")


def main(argv):
    if not argv or argv[0] in ("--version", "-v", "version"):
        print(f"k3s version {VERSION} (standin)\ngo version go1.0-standin")
        return 0
    if argv[0] in ("server", "agent"):
        run(argv[0], argv[1:])
        return 0
    if argv[0] == "kubectl":
        kubectl(argv[1:])
        return 0
    raise SystemExit(f"k3s-standin: command {argv[0]!r} is not implemented by the stand-in")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
