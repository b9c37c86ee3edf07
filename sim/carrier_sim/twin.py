# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Twin nodes: a booted simulated node runs a real Debian userland in a podman container.

A slot (or a whole board) with ``sim: {twin: true}`` (or a mapping of the settings below) gets a
container whose life follows the node's lines, the way an OS follows a module's power:

- the boot reaching init starts it (``podman start``: systemd boots as PID 1);
- power off kills it at once (SIGKILL to everything, no clean shutdown: pulling the power);
- run held low freezes it (``podman pause``, the cgroup freezer); run rising is a fresh boot;
- the container is kept across power cycles, so what the OS wrote to its root stays, as on eMMC;
  a new image on the storage it booted from (or a new first-boot seed) makes a new container;
- a first-boot seed on the boot partition or in the TFTP directory (cloud-init NoCloud:
  ``user-data``, ``meta-data``) is mounted at /var/lib/cloud/seed/nocloud, where the image's real
  cloud-init reads it on first boot (host name, users, SSH keys);
- a storage node's data disk is its NVMe backing file on a loop device (direct I/O: what the disk
  acknowledged is in the file), visible as ``/dev/disk/by-id/nvme-CARRIER_SIM_<serial>``; the
  file outlives power cycles;
- each twin has an address on the rack's network: a bridge inside a namespace of the simulator's
  own (the host's firewall and bridge netfilter never see node-to-node traffic), joined to the host
  by one veth pair; nothing else routes there, so only this machine reaches the nodes. A node with
  its own cable (``sim.netns``, the netboot tests) runs its twin in that namespace instead.

Settings (``twin:`` mapping of the slot's, else the board's ``sim``):
``image`` (default $CARRIER_TWIN_IMAGE or localhost/bookworm-systemd-twin, built by
scripts/build-twin-image.sh), ``network`` (the rack's IPv4 network, default 10.231.0.0/24: the host
takes its first address), ``address`` (the node's, default the host address 10 + its index),
``data_disk`` (``nvme``, the default when the node has an NVMe disk and does not boot from it, or
``none``), ``memory`` (a podman memory limit), ``volumes`` (``host_dir:node_dir`` mounts, such as a
stand-in's shared directory).

Needs root (namespaces, loop devices, privileged containers for data disks) and podman.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import os
import re
import shutil

DEFAULT_IMAGE = "localhost/bookworm-systemd-twin"
DEFAULT_NETWORK = "10.231.0.0/24"
FIRST_NODE_HOST = 10  # the first twin's host number on the rack network
SEED_FILES = ("meta-data", "user-data", "network-config", "vendor-data")
SEED_DIR = "/var/lib/cloud/seed/nocloud"
_KEYS = frozenset({"image", "network", "address", "data_disk", "memory", "volumes"})
_MEMORY = re.compile(r"^[0-9]+[bkmg]?$")
_VOLUME = re.compile(r"^(/[^:,]+):(/[^:,]+)(?::(ro|rw))?$")


class TwinError(Exception):
    """A twin setting or the host's tools are wrong; the text names what."""


def twin_settings(node_spec, board_spec):
    """The node's twin settings (a dict), or None when the node has no twin. Raises TwinError naming the field."""
    for path, sim in (("boards.%s.slots.%s.sim.twin" % (board_spec.name, node_spec.slot), node_spec.sim),
                      ("boards.%s.sim.twin" % board_spec.name, board_spec.sim)):
        value = (sim or {}).get("twin")
        if value is None:
            continue
        if value is False:
            return None
        if value is True:
            return {"_path": path}
        if not isinstance(value, dict):
            raise TwinError("%s: %r is not true, false or a mapping" % (path, value))
        unknown = sorted(set(value) - _KEYS)
        if unknown:
            raise TwinError("%s: unknown setting(s) %s (known: %s)"
                            % (path, ", ".join(unknown), ", ".join(sorted(_KEYS))))
        return dict(value, _path=path)
    return None


def _check(settings):
    """Validated settings: the network, address, data disk, memory and volumes of one twin."""
    path = settings["_path"]
    out = {"image": str(settings.get("image") or os.environ.get("CARRIER_TWIN_IMAGE") or DEFAULT_IMAGE)}
    try:
        out["network"] = ipaddress.IPv4Network(str(settings.get("network", DEFAULT_NETWORK)), strict=True)
    except ValueError as exc:
        raise TwinError("%s.network: %r is not an IPv4 network (%s)" % (path, settings.get("network"), exc)) from None
    if out["network"].num_addresses < 8:
        raise TwinError("%s.network: %s is too small for a rack" % (path, out["network"]))
    address = settings.get("address")
    if address is not None:
        try:
            out["address"] = ipaddress.IPv4Address(str(address))
        except ValueError:
            raise TwinError("%s.address: %r is not an IPv4 address" % (path, address)) from None
        if out["address"] not in out["network"] or out["address"] in (
                out["network"].network_address, out["network"].broadcast_address, _host_side(out["network"])):
            raise TwinError("%s.address: %s is not a node address of %s" % (path, address, out["network"]))
    disk = settings.get("data_disk")
    if disk not in (None, "nvme", "none"):
        raise TwinError("%s.data_disk: %r is not nvme or none" % (path, disk))
    out["data_disk"] = disk
    memory = settings.get("memory")
    if memory is not None and not _MEMORY.match(str(memory).lower()):
        raise TwinError("%s.memory: %r is not a size such as 768m or 2g" % (path, memory))
    out["memory"] = str(memory).lower() if memory is not None else None
    volumes = settings.get("volumes") or []
    if not isinstance(volumes, list):
        raise TwinError("%s.volumes: %r is not a list" % (path, volumes))
    for volume in volumes:
        if not _VOLUME.match(str(volume)) or ".." in str(volume).split("/"):
            raise TwinError("%s.volumes: %r is not host_dir:node_dir[:ro] with absolute paths" % (path, volume))
    out["volumes"] = [str(v) for v in volumes]
    return out


def _host_side(network):
    return network.network_address + 1


async def _run(*argv, check=True):
    """Run a command; its stdout (stripped). Raises TwinError with its stderr when it fails and ``check``."""
    proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if check and proc.returncode != 0:
        raise TwinError("%s: %s" % (" ".join(argv[:3]), (err or out).decode("utf-8", "replace").strip()))
    return out.decode("utf-8", "replace").strip() if proc.returncode == 0 else None


def rack_tag(state_dir):
    """The tag in the names of one simulator's twins, namespaces and container labels (from its state dir)."""
    return hashlib.sha256(os.path.abspath(state_dir).encode()).hexdigest()[:6]


class TwinRack:
    """Every twin of one simulator, their network and their containers."""

    def __init__(self, pairs, state_dir, log=None):
        """``pairs``: (node, settings) of the nodes with a twin, in topology order."""
        self.state_dir = state_dir
        self.log = log or (lambda msg: None)
        self.tag = rack_tag(state_dir)
        self.rack_ns = "ctw%s" % self.tag  # the bridge's namespace; also the host's veth to it
        self.twins = []
        self.network = None
        self.started = False
        used = {}
        for index, (node, raw) in enumerate(pairs):
            settings = _check(raw)
            if self.network is None:
                self.network = settings["network"]
            elif settings["network"] != self.network:
                raise TwinError("%s.network: %s differs from the rack's %s (one network per simulator)"
                                % (raw["_path"], settings["network"], self.network))
            address = settings.get("address") or self.network.network_address + FIRST_NODE_HOST + index
            if address not in self.network or address == self.network.broadcast_address:
                raise TwinError("%s: no address left in %s for %s" % (raw["_path"], self.network, node.host))
            if address in used:
                raise TwinError("%s.address: %s is %s's too" % (raw["_path"], address, used[address]))
            used[address] = node.host
            twin = Twin(self, node, index, address, settings)
            node.twin = twin
            self.twins.append(twin)

    @property
    def host_address(self):
        return _host_side(self.network)

    async def start(self):
        """Check podman and the images, then make the rack network, the data disks and the containers' dirs."""
        if shutil.which("podman") is None:
            raise TwinError("twin nodes need podman (apt-get install podman)")
        for image in sorted({t.settings["image"] for t in self.twins}):
            if await _run("podman", "image", "exists", image, check=False) is None:
                raise TwinError("twin image %s is missing: build it with scripts/build-twin-image.sh" % image)
        await self.shutdown(quiet=True)  # what an earlier simulator on this state dir left
        prefix = self.network.prefixlen
        await _run("ip", "netns", "add", self.rack_ns)
        await _run("ip", "-n", self.rack_ns, "link", "set", "lo", "up")
        await _run("ip", "-n", self.rack_ns, "link", "add", "br0", "type", "bridge")
        await _run("ip", "-n", self.rack_ns, "link", "set", "br0", "up")
        await _run("ip", "link", "add", self.rack_ns, "type", "veth", "peer", "name", "uplink", "netns", self.rack_ns)
        await _run("ip", "-n", self.rack_ns, "link", "set", "uplink", "master", "br0", "up")
        await _run("ip", "addr", "add", "%s/%d" % (self.host_address, prefix), "dev", self.rack_ns)
        await _run("ip", "link", "set", self.rack_ns, "up")
        self.started = True
        await asyncio.gather(*(twin.prepare() for twin in self.twins))
        self.log("twins: %d node(s) on %s (this host %s)" % (len(self.twins), self.network, self.host_address))

    async def shutdown(self, quiet=False):
        """Remove the containers, the data disks' loop devices and the rack network."""
        for twin in self.twins:
            twin.close()
        await asyncio.gather(*(twin.remove() for twin in self.twins), return_exceptions=True)
        await _run("ip", "link", "del", self.rack_ns, check=False)
        await _run("ip", "netns", "del", self.rack_ns, check=False)
        if not quiet and self.started:
            self.log("twins: removed")
        self.started = False


class Twin:
    """One node's container: the wanted state (what the lines and the boot ask), made real by one worker."""

    def __init__(self, rack, node, index, address, settings):
        self.rack = rack
        self.node = node
        self.index = index
        self.address = address
        self.settings = settings
        self.name = "ctw%s-%s" % (rack.tag, node.host)
        self.netns = str(node.spec.sim["netns"]) if (node.spec.sim or {}).get("netns") else None
        self.own_netns = self.netns is None
        if self.own_netns:
            self.netns = "ctw%s-%d" % (rack.tag, index)
        self.dir = os.path.join(rack.state_dir, "twins", node.host)
        self.want = ("off", 0, None, None)  # (state, boot number, source key, seed files)
        self.state = "absent"  # absent, running, frozen, stopped
        self.booted = 0  # the boot number the running container is
        self.created_key = None
        self.loop = None
        self.by_id = None
        self.error = None
        self.starts = 0
        self._event = None
        self._task = None

    # --- what the node asks --------------------------------------------------------------------------
    def boot(self, ctx):
        """The kernel starts init: a fresh boot of the container (a new one when the OS's source changed)."""
        seed = self._seed(ctx)
        self._want(("running", self.node.boots, self._source_key(ctx, seed), seed))

    def on_stop(self, state):
        """The node lost power ("off": killed) or is held in reset ("reset": frozen until the next boot)."""
        self._want(("off" if state == "off" else "frozen",) + self.want[1:])

    def _want(self, want):
        self.want = want
        if self._event is None:
            self._event = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._worker(), name="twin-%s" % self.node.host)
        self._event.set()

    def _source_key(self, ctx, seed):
        """What the OS came from: the storage it booted (and when it was written) or its TFTP directory, and
        the seed."""
        h = hashlib.sha256(str(ctx.mode).encode())
        kind = {"SD": "emmc", "NVME": "nvme"}.get(ctx.mode)
        path = (self.node.storage_files or {}).get(kind) if kind else None
        if path and os.path.exists(path):
            st = os.stat(path)
            h.update(b"%d:%d" % (st.st_size, st.st_mtime_ns))
        h.update(str((getattr(ctx, "netboot", None) or {}).get("dir")).encode())
        for name, data in sorted(seed.items()):
            h.update(name.encode() + b"\0" + data)
        return h.hexdigest()

    def _seed(self, ctx):
        seed = dict(getattr(ctx, "seed", None) or {})
        if not seed and getattr(ctx, "disk", None) and self.node.tree is not None:
            for name in SEED_FILES:
                path = os.path.join(self.node.tree.boot_partition, name)
                if os.path.isfile(path):
                    with open(path, "rb") as f:
                        seed[name] = f.read()
        return {k: v for k, v in seed.items() if k in SEED_FILES}

    # --- making it so ----------------------------------------------------------------------------------
    async def prepare(self):
        """The node's network interface and data disk (once per simulator run)."""
        os.makedirs(self.dir, exist_ok=True)
        if self.own_netns:
            ns, host_if = self.netns, "n%d" % self.index
            await _run("ip", "netns", "add", ns)
            await _run("ip", "-n", ns, "link", "set", "lo", "up")
            await _run("ip", "-n", self.rack.rack_ns, "link", "add", host_if, "type", "veth", "peer", "name", "eth0",
                       "netns", ns)
            await _run("ip", "-n", self.rack.rack_ns, "link", "set", host_if, "master", "br0", "up")
            await _run("ip", "-n", ns, "addr", "add", "%s/%d" % (self.address, self.rack.network.prefixlen),
                       "dev", "eth0")
            await _run("ip", "-n", ns, "link", "set", "eth0", "up")
        disk = self.settings["data_disk"]
        nvme = (self.node.storage_files or {}).get("nvme")
        if disk == "nvme" or (disk is None and nvme):
            if not nvme:
                raise TwinError("%s.data_disk: %s has no NVMe disk (sim.nvme_gb)"
                                % (self.settings["_path"], self.node.host))
            self.loop = await _run("losetup", "--find", "--show", "--direct-io=on", nvme)
            self.by_id = "/dev/disk/by-id/nvme-CARRIER_SIM_%s" % self.node.serial
            with open(os.path.join(self.dir, "disk.conf"), "w") as f:
                f.write("L+ %s - - - - %s\n" % (self.by_id, self.loop))

    def _create_argv(self):
        argv = ["podman", "create", "--name", self.name, "--hostname", self.node.host,
                "--network", "ns:" + (self.netns if os.path.isabs(self.netns) else "/run/netns/" + self.netns),
                "--systemd=always", "--label", "picluster.carrier.twin=" + self.rack.tag,
                "--stop-signal", "SIGRTMIN+3"]
        if self.loop:
            conf = os.path.join(self.dir, "disk.conf")
            argv += ["--privileged", "-v", "%s:/etc/tmpfiles.d/carrier-twin-disk.conf:ro" % conf]
        if os.path.isdir(os.path.join(self.dir, "seed")):
            argv += ["-v", "%s:%s:ro" % (os.path.join(self.dir, "seed"), SEED_DIR)]
        if self.settings["memory"]:
            argv += ["--memory", self.settings["memory"]]
        for volume in self.settings["volumes"]:
            argv += ["-v", volume]
        return argv + [self.settings["image"], "/sbin/init"]

    async def _recreate(self, key, seed):
        await _run("podman", "rm", "-f", "-t", "0", self.name, check=False)
        seed_dir = os.path.join(self.dir, "seed")
        shutil.rmtree(seed_dir, ignore_errors=True)
        if seed:
            os.makedirs(seed_dir)
            for name, data in seed.items():
                with open(os.path.join(seed_dir, name), "wb") as f:
                    f.write(data)
        await _run(*self._create_argv())
        self.created_key = key

    async def _worker(self):
        while True:
            await self._event.wait()
            self._event.clear()
            try:
                await self._apply(*self.want)
                self.error = None
            except asyncio.CancelledError:
                raise
            except (TwinError, OSError) as exc:  # said in the status and the log; the next change tries again
                self.error = str(exc)
                self.rack.log("twin %s: %s" % (self.node.host, exc))

    async def _apply(self, state, boot, key, seed):
        if state in ("off", "running") and self.state in ("running", "frozen") and (
                state == "off" or boot != self.booted):
            await _run("podman", "kill", "-s", "KILL", self.name, check=False)
            await _run("podman", "wait", self.name, check=False)
            self.state = "stopped"
        if state == "frozen" and self.state == "running":
            await _run("podman", "pause", self.name)
            self.state = "frozen"
        if state == "running" and self.state in ("absent", "stopped"):
            if key != self.created_key:
                await self._recreate(key, seed)
            await _run("podman", "start", self.name)
            self.state, self.booted = "running", boot
            self.starts += 1

    def close(self):
        if self._task is not None:
            self._task.cancel()
            self._task = None
            self._event = None

    async def remove(self):
        await _run("podman", "rm", "-f", "-t", "0", self.name, check=False)
        self.state, self.created_key = "absent", None
        if self.own_netns:
            await _run("ip", "netns", "del", self.netns, check=False)
        if self.loop:
            await _run("losetup", "-d", self.loop, check=False)
            self.loop = None
        else:
            # an earlier run's loop devices on this node's disk (a simulator killed before its shutdown)
            nvme = (self.node.storage_files or {}).get("nvme")
            if nvme:
                out = await _run("losetup", "-j", nvme, "-O", "NAME", "-n", check=False)
                for dev in (out or "").split():
                    await _run("losetup", "-d", dev, check=False)

    def snapshot(self):
        return {"address": str(self.address), "container": self.name, "state": self.state, "want": self.want[0],
                "netns": self.netns, "data_disk": self.by_id, "loop": self.loop, "starts": self.starts,
                "error": self.error}
