"""Where a cluster keeps its files, and the record `netplane down` tears it down from.

    <state-dir>/cluster.json          the record (cluster id, nodes, processes, ports)
    <state-dir>/admin.kubeconfig      for the host: https://127.0.0.1:<port>
    <state-dir>/node.kubeconfig       for node components: https://10.255.0.1:6443
    <state-dir>/apiserver/            the apiserver's data dir (database, pki, tokens)
    <state-dir>/nodes/<node>/         a kubelet's root dir
    <state-dir>/logs/<component>.log  every component's output
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

UNDERLAY_GATEWAY = "10.255.0.1"
UNDERLAY_API_PORT = 6443
CLUSTER_DNS_IP = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"
POD_CIDR_TEMPLATE = "10.244.{index}.0/24"
CLUSTER_CIDR = "10.244.0.0/16"  # every node's pod CIDR: what proxies treat as in-cluster traffic


def cluster_id_for(state_dir: Path) -> str:
    """A short id derived from the state dir, so two clusters never share a namespace name
    and `down` finds the same names `up` made."""
    return hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:6]


@dataclass
class ProcessRecord:
    name: str
    pid: int
    argv: list[str]
    netns: str = ""


@dataclass
class NodeRecord:
    name: str
    index: int
    pod_cidr: str
    underlay_ip: str
    netns: str


@dataclass
class ClusterRecord:
    cluster_id: str
    api_port: int
    proxy_mode: str
    nodes: list[NodeRecord] = field(default_factory=list)
    processes: list[ProcessRecord] = field(default_factory=list)
    supervisor_pid: int = 0


@dataclass(frozen=True)
class Layout:
    state_dir: Path

    @property
    def record_path(self) -> Path:
        return self.state_dir / "cluster.json"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.state_dir / "admin.kubeconfig"

    @property
    def node_kubeconfig(self) -> Path:
        return self.state_dir / "node.kubeconfig"

    @property
    def apiserver_dir(self) -> Path:
        return self.state_dir / "apiserver"

    def node_dir(self, node: str) -> Path:
        return self.state_dir / "nodes" / node

    def log_path(self, component: str) -> Path:
        return self.state_dir / "logs" / f"{component}.log"

    def read_record(self) -> ClusterRecord | None:
        try:
            raw = json.loads(self.record_path.read_text())
        except FileNotFoundError:
            return None
        return ClusterRecord(
            cluster_id=raw["cluster_id"], api_port=raw["api_port"], proxy_mode=raw["proxy_mode"],
            nodes=[NodeRecord(**n) for n in raw["nodes"]],
            processes=[ProcessRecord(**p) for p in raw["processes"]],
            supervisor_pid=raw.get("supervisor_pid", 0))

    def write_record(self, record: ClusterRecord) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.record_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(record), indent=2))
        os.replace(tmp, self.record_path)


def plan_nodes(cluster_id: str, count: int) -> list[NodeRecord]:
    """Node i (1-based): pod CIDR 10.244.<i>.0/24, underlay address 10.255.0.<10+i>."""
    if not 1 <= count <= 200:
        raise ValueError(f"--nodes must be between 1 and 200, not {count}")
    nodes = []
    for i in range(1, count + 1):
        name = f"node-{i}"
        cidr = POD_CIDR_TEMPLATE.format(index=i)
        ipaddress.ip_network(cidr)
        nodes.append(NodeRecord(name=name, index=i, pod_cidr=cidr,
                                underlay_ip=f"10.255.0.{10 + i}", netns=f"np-{cluster_id}-{name}"))
    return nodes
