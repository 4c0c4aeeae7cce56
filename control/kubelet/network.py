"""A pod's network: its namespace, a veth into the node's bridge, an address from IPAM,
the default route via the bridge. The kubelet runs inside the node's namespace, so the
bridge and the host ends of the veths are in the kubelet's own namespace."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from control.kubelet.ipam import HostLocalIPAM
from netplane.kernel import links
from netplane.kernel import netns as ns

BRIDGE = "cbr0"


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
    state_dir: Path
    bridge: str = BRIDGE


class PodNetwork:
    def __init__(self, config: NodeNetworkConfig) -> None:
        self.config = config
        self.ipam = HostLocalIPAM(config.pod_cidr, config.state_dir / "ipam")
        self.prefixlen = ipaddress.ip_network(config.pod_cidr).prefixlen

    def netns_name(self, uid: str) -> str:
        return f"np-{self.config.cluster_id}-p-{uid[:13]}"

    def ensure_node_bridge(self) -> None:
        links.bridge(None, self.config.bridge, self.ipam.gateway, self.prefixlen)

    def setup(self, uid: str) -> PodNetInfo:
        """Idempotent: a pod whose namespace and address exist gets them back as they are."""
        name = self.netns_name(uid)
        host_end = "veth" + uid.replace("-", "")[:11]
        ip = self.ipam.allocate(uid)
        if ns.exists(name) and links.exists(name, "eth0") and links.exists(None, host_end):
            return PodNetInfo(name, ip, self.ipam.gateway, host_end)
        ns.create(name)
        links.veth(None, host_end, name, "eth0", master=self.config.bridge)
        links.address(name, "eth0", ip, self.prefixlen)
        links.route(name, "default", self.ipam.gateway)
        return PodNetInfo(name, ip, self.ipam.gateway, host_end)

    def teardown(self, uid: str) -> None:
        links.delete(None, "veth" + uid.replace("-", "")[:11])
        ns.remove(self.netns_name(uid))
        self.ipam.release(uid)

    def pod_namespaces(self) -> set[str]:
        """uid prefixes of the pod namespaces that exist (for reconciliation)."""
        prefix = f"np-{self.config.cluster_id}-p-"
        return {name[len(prefix):] for name in ns.names(prefix)}
