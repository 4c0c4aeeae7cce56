"""The underlay of a one-machine cluster: a bridge in a namespace of its own, and one
namespace per node wired to it, with routes to every other node's pod CIDR
(docs/cluster.md). Nothing is added to the host namespace."""

from __future__ import annotations

import ipaddress
import logging
import socket
from dataclasses import dataclass

from netplane.kernel import links
from netplane.kernel import netns as ns

log = logging.getLogger(__name__)

UNDERLAY_BRIDGE = "br0"
UNDERLAY_NET = ipaddress.ip_network("10.255.0.0/24")


@dataclass(frozen=True)
class NodeSpec:
    name: str
    index: int
    pod_cidr: str

    @property
    def underlay_ip(self) -> str:
        return str(UNDERLAY_NET.network_address + 10 + self.index)


class ClusterNetwork:
    """Namespaces `np-<cid>-underlay` and `np-<cid>-<node>`; pods' namespaces (made by the
    kubelets) are `np-<cid>-p-<uid>`, and `destroy()` removes those too."""

    def __init__(self, cluster_id: str, nodes: list[NodeSpec]) -> None:
        self.cluster_id = cluster_id
        self.nodes = nodes
        self.prefix = f"np-{cluster_id}-"

    @property
    def underlay_netns(self) -> str:
        return f"{self.prefix}underlay"

    def node_netns(self, node: str) -> str:
        return f"{self.prefix}{node}"

    def all_netns(self) -> list[str]:
        """Every namespace of this cluster that exists now (pods' included)."""
        return ns.names(self.prefix)

    def create(self) -> None:
        gateway = str(UNDERLAY_NET.network_address + 1)
        ns.create(self.underlay_netns)
        links.up(self.underlay_netns, "lo")
        links.bridge(self.underlay_netns, UNDERLAY_BRIDGE, gateway, UNDERLAY_NET.prefixlen)
        for node in self.nodes:
            node_ns = self.node_netns(node.name)
            ns.create(node_ns)
            links.up(node_ns, "lo")
            # Interface names are per namespace, but both ends are created in the underlay
            # first, so the node side gets a unique temporary name there.
            links.veth(self.underlay_netns, f"u{node.index}", node_ns, "eth0", master=UNDERLAY_BRIDGE)
            links.address(node_ns, "eth0", node.underlay_ip, UNDERLAY_NET.prefixlen)
            ns.sysctl(node_ns, "net.ipv4.ip_forward", "1")
            for other in self.nodes:
                if other is not node:
                    links.route(node_ns, other.pod_cidr, other.underlay_ip)
            # The control plane's listener lives in the underlay: it answers pods directly.
            links.route(self.underlay_netns, node.pod_cidr, node.underlay_ip)

    def destroy(self) -> None:
        """Removes every namespace with this cluster's prefix (idempotent)."""
        for name in self.all_netns():
            try:
                ns.remove(name)
            except OSError as exc:
                log.warning("cannot remove network namespace %s: %s", name, exc)


def listen_in_netns(netns_name: str, host: str, port: int) -> socket.socket:
    """A listening socket inside `netns_name`, to hand to a process in another namespace."""
    return ns.listen_tcp(netns_name, host, port)
