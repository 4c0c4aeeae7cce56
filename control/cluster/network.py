"""The underlay of a one-machine cluster (docs/cluster.md): a bridge in a namespace of its
own, and one namespace per node wired to it by a veth, forwarding, with a route to every
other node's pod CIDR. Nothing is added to the host namespace.

    np-<cid>-underlay   br0 10.255.0.1/24; ports u<i>; routes to each pod CIDR via its node
    np-<cid>-<node>     eth0 10.255.0.<10+i>/24, ip_forward=1, routes to the other pod CIDRs
    np-<cid>-p-<uid8>   pods' namespaces, made by the kubelets (control/kubelet/network.py)
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from dataclasses import dataclass

from pyroute2 import IPRoute

from netplane.kernel import addresses, links, netns, routes, sysctl
from netplane.kernel.netns import ipr

log = logging.getLogger(__name__)

UNDERLAY_BRIDGE = "br0"
UNDERLAY_NET = ipaddress.IPv4Network("10.255.0.0/24")
UNDERLAY_GATEWAY = str(UNDERLAY_NET.network_address + 1)
NODE_IFNAME = "eth0"
_CLUSTER_ID = re.compile(r"[a-z0-9]{1,12}")
_NODE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


@dataclass(frozen=True)
class NodeSpec:
    name: str
    index: int  # 1-based in `netplane up`; the underlay address is 10.255.0.<10+index>
    pod_cidr: str

    @property
    def underlay_ip(self) -> str:
        return str(UNDERLAY_NET.network_address + 10 + self.index)


def _check(cluster_id: str, nodes: list[NodeSpec]) -> None:
    # A dash in the id would let one cluster's prefix match another's names; a node named
    # "underlay" or "p-..." would take the underlay's or the pods' names.
    if not _CLUSTER_ID.fullmatch(cluster_id):
        raise ValueError(f"cluster id {cluster_id!r}: 1-12 lowercase letters or digits")
    for node in nodes:
        if not _NODE_NAME.fullmatch(node.name) or node.name == "underlay" or node.name.startswith("p-"):
            raise ValueError(f"node name {node.name!r}: a DNS label, not 'underlay', not starting 'p-'")
        if not 0 <= node.index <= 240:
            raise ValueError(f"node {node.name}: index {node.index} is not within 0..240")
        ipaddress.IPv4Network(node.pod_cidr)
    for attr in ("name", "index", "pod_cidr"):
        values = [getattr(n, attr) for n in nodes]
        if len(set(values)) != len(values):
            raise ValueError(f"two nodes share a {attr}: {values}")


class ClusterNetwork:
    """The namespaces of cluster `cluster_id`, all named `np-<cid>-...`."""

    def __init__(self, cluster_id: str, nodes: list[NodeSpec]) -> None:
        _check(cluster_id, nodes)
        self.cluster_id = cluster_id
        self.nodes = list(nodes)
        self.prefix = f"np-{cluster_id}-"

    @property
    def underlay_netns(self) -> str:
        return f"{self.prefix}underlay"

    def node_netns(self, node: str) -> str:
        return f"{self.prefix}{node}"

    def pod_netns_prefix(self) -> str:
        return f"{self.prefix}p-"

    def all_netns(self) -> list[str]:
        """Every namespace of this cluster that exists now (pods' included)."""
        return netns.names(self.prefix)

    def create(self) -> None:
        """Builds the underlay and the nodes' namespaces. Idempotent (what exists is checked
        and completed); if it fails, the namespaces it created are removed again."""
        made = []
        try:
            for name in (self.underlay_netns, *(self.node_netns(n.name) for n in self.nodes)):
                if netns.create(name):
                    made.append(name)
            with ipr(self.underlay_netns) as underlay:
                links.up(underlay, "lo")
                links.bridge(underlay, UNDERLAY_BRIDGE)
                addresses.ensure(underlay, UNDERLAY_BRIDGE, UNDERLAY_GATEWAY, UNDERLAY_NET.prefixlen)
                for node in self.nodes:
                    self._wire_node(underlay, node)
        except BaseException:
            for name in made:
                netns.delete(name)
            raise

    def _wire_node(self, underlay: IPRoute, node: NodeSpec) -> None:
        node_ns = self.node_netns(node.name)
        # Both ends start in the underlay's view: the node end is created directly in the
        # node's namespace as eth0, the underlay end is named after the node's index.
        port = f"u{node.index}"
        if not links.exists(underlay, port):
            with ipr(node_ns) as n:
                links.delete(n, NODE_IFNAME)
            links.veth(underlay, port, NODE_IFNAME, peer_netns=node_ns)
        if links.master(underlay, port) != UNDERLAY_BRIDGE:
            links.attach(underlay, port, UNDERLAY_BRIDGE)
        links.up(underlay, port)
        with ipr(node_ns) as n:
            links.up(n, "lo")
            addresses.replace(n, NODE_IFNAME, node.underlay_ip, UNDERLAY_NET.prefixlen)
            links.up(n, NODE_IFNAME)
            for other in self.nodes:
                if other.name != node.name:
                    routes.replace(n, other.pod_cidr, other.underlay_ip)
            # Like a host on a real network, a node has a default route. Traffic the node
            # itself sends to a ClusterIP needs one: the kernel routes a packet before the
            # nat OUTPUT hook may redirect it to the proxy. Unknown destinations end in the
            # underlay, which routes nowhere else.
            routes.replace(n, "default", UNDERLAY_GATEWAY)
        # The apiserver's underlay listener answers pods directly, without NAT.
        routes.replace(underlay, node.pod_cidr, node.underlay_ip)
        sysctl.write(node_ns, "net.ipv4.ip_forward", "1")

    def destroy(self) -> list[str]:
        """Removes every namespace named with this cluster's prefix: the underlay, nodes and
        pods (which the kubelets may have left behind); returns the names removed.
        Idempotent, and needs nothing but the cluster id. Processes still inside a
        namespace keep it alive, nameless, until they exit: stop them first."""
        removed = []
        for name in netns.names(self.prefix):
            try:
                if netns.delete(name):
                    removed.append(name)
            except OSError as exc:
                log.warning("cannot remove network namespace %s: %s", name, exc)
        return removed


def listen_in_netns(netns_name: str, host: str, port: int) -> socket.socket:
    """A listening TCP socket inside namespace `netns_name`; it stays there whatever thread
    or process uses it (the apiserver gets the underlay's as --listen-fd)."""
    return netns.listen_tcp(netns_name, host, port)
