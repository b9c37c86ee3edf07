# -*- coding: utf-8 -*-
# Copyright: picluster.carrier contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A simulated node's network interface: where its cable goes, and its own IP stack (docs/hardware.md section 6).

Where the node's network is (the slot's ``sim:`` settings in the topology):

- ``netns: pcs-node01``: the node's NIC is the (first non-loopback) interface of that network
  namespace (``/run/netns/<name>``, or an absolute path), ``iface`` names another one. The node
  configures the address DHCP gave it on that interface (``ip -n``), as its own IP stack would.
- ``tftp_server: 127.0.0.1`` (and ``tftp_port``, default 69): no DHCP; TFTP straight to that
  server from the simulator's own network (a TFTP-only test on loopback). ``http_port`` and
  HTTP_HOST work the same for HTTP boot.

Without either, the node has no cable: the network boot modes wait for link and fail, like a Pi
with no network.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import re
import socket
import threading

# docs/hardware.md section 5: the bootloader's network timeouts (ms), their defaults and minimums.
DEFAULT_TIMEOUTS = {"DHCP_TIMEOUT": 45000, "DHCP_REQ_TIMEOUT": 4000, "TFTP_FILE_TIMEOUT": 30000}
MIN_TIMEOUTS = {"DHCP_TIMEOUT": 5000, "DHCP_REQ_TIMEOUT": 500, "TFTP_FILE_TIMEOUT": 5000}
# Real seconds: the network waits are scaled like the rest of the boot, but never below these.
MIN_REAL_WAIT = {"DHCP_TIMEOUT": 2.0, "DHCP_REQ_TIMEOUT": 0.5, "TFTP_FILE_TIMEOUT": 2.0}
CLONE_NEWNET = 0x40000000


class NetbootFailed(Exception):
    """A network boot mode failed: the text says why, as the node printed it."""


# --- network namespaces -----------------------------------------------------------------------------


def _netns_path(name):
    return name if os.path.isabs(name) else os.path.join("/run/netns", name)


def _in_netns(netns, fn):
    """Run ``fn()`` in a fresh thread that has joined ``netns`` (sockets made there stay there)."""
    if not netns:
        return fn()
    out = {}

    def worker():
        libc = ctypes.CDLL(None, use_errno=True)
        try:
            target = os.open(_netns_path(netns), os.O_RDONLY)
        except OSError as e:
            out["error"] = NetbootFailed("network namespace %s: %s" % (netns, e.strerror))
            return
        try:
            if libc.setns(target, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                out["error"] = NetbootFailed("network namespace %s: setns: %s" % (netns, os.strerror(err)))
                return
            try:
                out["value"] = fn()
            except BaseException as e:  # handed to the caller
                out["error"] = e
        finally:
            os.close(target)
        # The thread ends here: it never runs anything else in the node's namespace.

    t = threading.Thread(target=worker, name="netns-%s" % netns)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


async def in_netns(netns, fn):
    if not netns:
        return fn()
    return await asyncio.get_running_loop().run_in_executor(None, _in_netns, netns, fn)


def _first_iface():
    names = [name for _i, name in socket.if_nameindex() if name != "lo"]
    return names[0] if names else None


def _iface_mac(iface):
    try:
        with open("/sys/class/net/%s/address" % iface) as f:
            return f.read().strip()
    except OSError:
        return None


async def recv_within(loop, sock, timeout):
    """One datagram ``(data, source)``; asyncio.TimeoutError after ``timeout`` seconds."""
    return await asyncio.wait_for(loop.sock_recvfrom(sock, 4096), timeout)


# --- the node's IP stack ------------------------------------------------------------------------------


async def _ip_cmd(*args):
    proc = await asyncio.create_subprocess_exec("ip", *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise NetbootFailed("ip %s: %s" % (" ".join(args), err.decode().strip()))
    return out.decode()


async def configure_address(net, lease):
    """The node's own IP stack takes the address (in its namespace only)."""
    ns = ["-n", net["netns"]]
    await _ip_cmd(*ns, "addr", "flush", "dev", net["iface"])
    await _ip_cmd(*ns, "addr", "add", "%s/%d" % (lease.ip, lease.prefix), "dev", net["iface"])
    await _ip_cmd(*ns, "link", "set", "dev", net["iface"], "up")


async def neighbour_mac(net, ip):
    if not net["netns"] or net["static"]:
        return "00:00:00:00:00:00"
    try:
        out = await _ip_cmd("-n", net["netns"], "neigh", "show", ip)
    except NetbootFailed:
        return "00:00:00:00:00:00"
    m = re.search(r"lladdr ([0-9a-f:]{17})", out)
    return m.group(1) if m else "00:00:00:00:00:00"


# --- the node's network settings --------------------------------------------------------------------


def _setting_ms(config, key, scale):
    try:
        value = int(str(config.get(key, DEFAULT_TIMEOUTS[key])), 0)
    except ValueError:
        value = DEFAULT_TIMEOUTS[key]
    value = max(value, MIN_TIMEOUTS[key])
    return max(value / 1000.0 * scale, MIN_REAL_WAIT[key])


async def node_network(node, ctx):
    """The node's NIC (namespace + interface, or the loopback TFTP server), or None (no cable)."""
    sim = dict(node.spec.sim or {})
    scale = node.scale if node.scale > 0 else 1.0
    timeouts = {k: _setting_ms(ctx.config, k, scale) for k in DEFAULT_TIMEOUTS}
    mac = (node.spec.mac or "").lower() or None
    netns = str(sim["netns"]) if sim.get("netns") else None
    iface = sim.get("iface")
    if netns and not iface:
        iface = await in_netns(netns, _first_iface)
        if not iface and not sim.get("tftp_server"):
            raise NetbootFailed("network namespace %s has no interface" % netns)
    if netns and mac is None and iface:
        mac = await in_netns(netns, lambda: _iface_mac(iface))
    net = {"netns": netns, "iface": iface, "mac": mac or "dc:a6:32:00:00:00", "timeouts": timeouts,
           "tftp_port": int(sim.get("tftp_port", 69)), "http_port": sim.get("http_port"), "static": False}
    if sim.get("tftp_server"):
        # No DHCP: straight to this server (a TFTP-only test), from the namespace when one is given.
        net.update(static=True, tftp_server=str(sim["tftp_server"]), iface=None)
        return net
    return net if netns else None
