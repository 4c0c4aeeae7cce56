"""The kubelet's settings, and the seam to the pod network (a Protocol, so that unit tests
can run pods without namespaces; the real one is control.kubelet.network.PodNetwork)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from control.kubelet.dnsconfig import ResolvConf

SOCKET_NAME = "kubelet.sock"


@dataclass(frozen=True)
class KubeletConfig:
    node_name: str
    pod_cidr: str
    root_dir: Path
    node_ip: str
    cluster_id: str = "local"
    cluster_dns: tuple[str, ...] = ()
    cluster_domain: str = "cluster.local"
    # The node's resolv.conf (--resolv-conf); None when that flag is empty.
    host_resolv: ResolvConf | None = field(default_factory=ResolvConf)
    lease_duration: int = 40
    lease_renew_interval: float = 10.0
    status_update_frequency: float = 10.0
    healthz_bind_address: str = "127.0.0.1"
    healthz_port: int = 10248  # 0: no /healthz and /metrics port (the unix socket still serves them)
    backoff_initial: float = 10.0
    backoff_cap: float = 300.0
    max_pods: int = 110
    bridge: str = "cbr0"

    @property
    def socket_path(self) -> Path:
        return self.root_dir / SOCKET_NAME


class PodNetInfoLike(Protocol):
    @property
    def netns(self) -> str: ...

    @property
    def ip(self) -> str: ...


class PodNetworkProvider(Protocol):
    """What the kubelet needs of the pod network. Calls may block: the kubelet makes them
    from a thread."""

    def ensure_node_bridge(self) -> None: ...

    def setup(self, pod_uid: str, namespace: str, name: str) -> PodNetInfoLike:
        """The pod's namespace, veth and address; idempotent (the same IP again)."""

    def teardown(self, pod_uid: str) -> None:
        """Removes the namespace and releases the address; idempotent. `pod_uid` may be the
        part of a uid that `list_pod_netns` knows."""

    def netns_name(self, pod_uid: str) -> str: ...

    def list_pod_netns(self) -> set[str]:
        """The pods that have a namespace on this node: their uids, or as much of a uid as
        the namespace's name keeps."""


def default_network(config: KubeletConfig) -> PodNetworkProvider:
    from control.kubelet.network import NodeNetworkConfig, PodNetwork

    return PodNetwork(NodeNetworkConfig(config.cluster_id, config.pod_cidr, config.root_dir,
                                        bridge=config.bridge))
