"""A pod's network (docs/cluster.md): its namespace `np-<cid>-p-<uid8>`, a veth whose node
end (`veth<uid8>`) is a port of the node's bridge and whose pod end is eth0 with an address
from host-local IPAM, lo up, and the default route via the bridge.

The kubelet runs inside its node's namespace, so the node side here is the calling
thread's own namespace; call these functions from a thread (asyncio.to_thread), never from
the event loop: they block on netlink.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pyroute2 import IPRoute

from control.kubelet.ipam import HostLocalIPAM
from netplane.kernel import addresses, links, netns, routes
from netplane.kernel.netns import ipr

log = logging.getLogger(__name__)

BRIDGE = "cbr0"
POD_IFNAME = "eth0"
_UID8 = re.compile(r"[A-Za-z0-9_.-]{1,8}")


class PodNetworkError(Exception):
    """A pod's network cannot be set up as asked."""


@dataclass(frozen=True)
class PodNetInfo:
    netns: str
    ip: str
    gateway: str
    veth_host: str


@dataclass(frozen=True)
class NodeNetworkConfig:
    cluster_id: str
    pod_cidr: str
    state_dir: Path  # IPAM keeps its files under <state_dir>/ipam
    bridge: str = BRIDGE


def uid8(pod_uid: str) -> str:
    """The first 8 characters of a pod uid, which name its namespace and veth."""
    short = pod_uid[:8]
    if not _UID8.fullmatch(short):
        raise ValueError(f"pod uid {pod_uid!r} cannot name a namespace or interface")
    return short


class PodNetwork:
    """The pod networks of one node."""

    def __init__(self, node: NodeNetworkConfig) -> None:
        self.node = node
        self.ipam = HostLocalIPAM(node.pod_cidr, node.state_dir / "ipam")
        self.prefixlen = ipaddress.ip_network(node.pod_cidr).prefixlen
        self.gateway = self.ipam.gateway
        self.prefix = f"np-{node.cluster_id}-p-"

    def netns_name(self, pod_uid: str) -> str:
        return self.prefix + uid8(pod_uid)

    def veth_name(self, pod_uid: str) -> str:
        return "veth" + uid8(pod_uid)

    def ensure_node_bridge(self) -> None:
        """The node's bridge, up, with the gateway address (the first of the pod CIDR)."""
        with ipr(None) as node:
            self._ensure_bridge(node)

    def _ensure_bridge(self, node: IPRoute) -> None:
        if links.bridge(node, self.node.bridge):
            log.info("created bridge %s with gateway %s", self.node.bridge, self.gateway)
        addresses.ensure(node, self.node.bridge, self.gateway, self.prefixlen)

    def setup(self, pod_uid: str, namespace: str = "", name: str = "") -> PodNetInfo:
        """Makes the network of pod `pod_uid` (`namespace`/`name` only label messages) and
        returns it. Idempotent: a pod with a network gets the same one back, with anything
        missing (address, route, bridge port) put back. If a first setup fails, nothing of
        it is left."""
        pod = f"{namespace}/{name}" if name else pod_uid
        ns_name, host_end = self.netns_name(pod_uid), self.veth_name(pod_uid)
        first = self.ipam.lookup(pod_uid) is None
        if first and netns.exists(ns_name):
            with ipr(None) as node:
                if not links.exists(node, host_end):
                    # Two uids that share 8 characters, or another node's pod of this cluster.
                    raise PodNetworkError(
                        f"pod {pod}: network namespace {ns_name} exists and is not this node's; "
                        f"if it is a leftover, remove it with `ip netns delete {ns_name}`")
        ip = self.ipam.allocate(pod_uid)
        try:
            self._wire(ns_name, host_end, ip)
        except BaseException:
            if first:
                log.warning("pod %s: network setup failed; removing what was made", pod)
                self._remove(pod_uid)
            raise
        if first:
            log.info("pod %s: network %s, %s via %s", pod, ns_name, ip, self.gateway)
        return PodNetInfo(ns_name, ip, self.gateway, host_end)

    def _wire(self, ns_name: str, host_end: str, ip: str) -> None:
        netns.create(ns_name)
        with ipr(None) as node:
            self._ensure_bridge(node)
            if not links.exists(node, host_end):
                with ipr(ns_name) as pod:
                    links.delete(pod, POD_IFNAME)  # not a veth peer any more, or it would be gone
                links.veth(node, host_end, POD_IFNAME, peer_netns=ns_name)
            if links.master(node, host_end) != self.node.bridge:
                links.attach(node, host_end, self.node.bridge)
            links.set_hairpin(node, host_end)
            links.up(node, host_end)
        with ipr(ns_name) as pod:
            links.up(pod, "lo")
            addresses.replace(pod, POD_IFNAME, ip, self.prefixlen)
            links.up(pod, POD_IFNAME)
            routes.replace(pod, "default", self.gateway)

    def teardown(self, pod_uid: str) -> None:
        """Removes the pod's namespace, veth and address (idempotent). `pod_uid` may be a
        uid8 from `list_pod_netns` when the full uid is not known."""
        self._remove(pod_uid)

    def _remove(self, pod_uid: str) -> None:
        with ipr(None) as node:
            links.delete(node, self.veth_name(pod_uid))
        netns.delete(self.netns_name(pod_uid))
        self.ipam.release(pod_uid)

    def list_pod_netns(self) -> set[str]:
        """This node's pod namespaces, as the pod's uid when IPAM knows it, else as the uid8
        of the name. Pod namespaces of the cluster's other nodes are left out (they share
        /run/netns): a namespace is this node's if IPAM holds an address for its uid or this
        namespace has its veth."""
        held = {uid8(uid): uid for uid in self.ipam.held().values() if uid}
        with ipr(None) as node:
            veths = {n[4:] for n in links.names(node) if n.startswith("veth")}
        out = set()
        for name in netns.names(self.prefix):
            short = name[len(self.prefix):]
            if short in held:
                out.add(held[short])
            elif short in veths:
                out.add(short)
        return out

    def leaked(self, live_uids: Iterable[str]) -> set[str]:
        """Pods (uids, or uid8s for namespaces whose uid IPAM lost) that hold a network or
        an address on this node but are not in `live_uids`: after a restart, pass each to
        `teardown` (having killed its processes)."""
        live = set(live_uids)
        live8 = {uid[:8] for uid in live}
        known = {uid for uid in self.ipam.held().values() if uid} | self.list_pod_netns()
        return {uid for uid in known if (uid not in live if len(uid) > 8 else uid not in live8)}
