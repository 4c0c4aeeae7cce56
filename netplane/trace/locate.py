"""What the API says about a trace: the pod (its node, IP, uid), the nodes (their
addresses), the service port behind VIP:PORT and how many of its endpoints are ready, and
which pod owns each endpoint address. The look-ups are a thin shell over the REST client;
`match_service_port` is pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from netplane.client.rest import ApiClient, ApiError, resource_path
from netplane.model import EndpointSlice, Node, Pod, Service, decode


class LocateError(Exception):
    """The pod or its node cannot be traced from; the message says why and what to try."""


@dataclass(frozen=True)
class PodInfo:
    namespace: str
    name: str
    uid: str
    ip: str
    node: str


@dataclass(frozen=True)
class ServiceMatch:
    """The service port VIP:PORT/PROTO reaches."""

    service: str  # "ns/name"
    port_name: str
    kind: str  # "cluster IP", "node port", "external IP", "load balancer IP"
    protocol: str  # "TCP" / "UDP"
    endpoints: int = 0
    ready: int = 0

    @property
    def service_port(self) -> str:
        """kube-proxy's ServicePortName: "ns/name:port" (":port" only when the port is named)."""
        return f"{self.service}:{self.port_name}" if self.port_name else self.service


@dataclass(frozen=True)
class Located:
    pod: PodInfo
    node_addresses: dict[str, tuple[str, ...]]  # node name -> its addresses
    service: ServiceMatch | None
    other_protocol: str | None = None  # a service serves VIP:PORT, but over this protocol
    pods_by_ip: dict[str, str] = field(default_factory=dict)  # endpoint IP -> "ns/name"

    def node_of(self, ip: str) -> str | None:
        """The node that owns address `ip`, if any."""
        return next((n for n, addrs in self.node_addresses.items() if ip in addrs), None)


def match_service_port(services: list[Service], node_ips: set[str], ip: str, port: int,
                       proto: str) -> tuple[ServiceMatch | None, str | None]:
    """The service port that `ip:port/proto` reaches (a ClusterIP, external IP, load
    balancer IP, or a node's address with a NodePort), and, when only another protocol is
    served there, that protocol."""
    other = None
    for svc in services:
        spec = svc.spec
        name = f"{svc.metadata.namespace}/{svc.metadata.name}"
        cluster_ips = set(spec.cluster_ips or [spec.cluster_ip]) - {"", "None"}
        lb_ips = {i.ip for i in svc.status.load_balancer.ingress if i.ip}
        for p in spec.ports:
            if ip in cluster_ips and p.port == port:
                kind = "cluster IP"
            elif ip in spec.external_ips and p.port == port:
                kind = "external IP"
            elif ip in lb_ips and p.port == port:
                kind = "load balancer IP"
            elif ip in node_ips and p.node_port and p.node_port == port:
                kind = "node port"
            else:
                continue
            if p.protocol.upper() != proto.upper():
                other = p.protocol.upper()
                continue
            return ServiceMatch(name, p.name, kind, p.protocol.upper()), None
    return None, other


def count_endpoints(slices: list[EndpointSlice], port_name: str) -> tuple[int, int]:
    """(endpoints, ready endpoints) of one service port across its EndpointSlices."""
    total = ready = 0
    for s in slices:
        if not any((p.name or "") == port_name for p in s.ports):
            continue
        for ep in s.endpoints:
            total += 1
            ready += ep.conditions.ready is not False
    return total, ready


async def _items(api: ApiClient, path: str, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
    return list((await api.list(path, params)).get("items") or [])


async def locate(api: ApiClient, namespace: str, pod_name: str, ip: str, port: int, proto: str) -> Located:
    try:
        pod = decode(Pod, await api.get(resource_path("v1", "pods", namespace, pod_name)))
    except ApiError as exc:
        if exc.code == 404:
            raise LocateError(f"pod {namespace}/{pod_name} not found (is -n/--namespace right?)") from None
        raise
    if not pod.spec.node_name:
        raise LocateError(f"pod {namespace}/{pod_name} is not scheduled to a node yet")
    if pod.spec.host_network:
        raise LocateError(f"pod {namespace}/{pod_name} uses the node's network: trace from a pod with a "
                          "network of its own")
    if not pod.status.pod_ip:
        phase = pod.status.phase or "unknown"
        raise LocateError(f"pod {namespace}/{pod_name} has no IP yet (phase {phase}); wait until it runs")
    info = PodInfo(namespace, pod_name, pod.metadata.uid, pod.status.pod_ip, pod.spec.node_name)
    nodes = [decode(Node, raw) for raw in await _items(api, resource_path("v1", "nodes"))]
    addresses = {n.metadata.name: tuple(a.address for a in n.status.addresses) for n in nodes}
    services = [decode(Service, raw) for raw in await _items(api, resource_path("v1", "services"))]
    node_ips = {a for addrs in addresses.values() for a in addrs}
    match, other = match_service_port(services, node_ips, ip, port, proto)
    if match is not None:
        ns, name = match.service.split("/", 1)
        slices = await _items(api, resource_path("discovery.k8s.io/v1", "endpointslices", ns),
                              {"labelSelector": f"kubernetes.io/service-name={name}"})
        total, ready = count_endpoints([decode(EndpointSlice, s) for s in slices], match.port_name)
        match = ServiceMatch(match.service, match.port_name, match.kind, match.protocol, total, ready)
    pods = await _items(api, resource_path("v1", "pods"))
    by_ip = {p["status"]["podIP"]: f"{p['metadata']['namespace']}/{p['metadata']['name']}"
             for p in pods if (p.get("status") or {}).get("podIP")}
    return Located(info, addresses, match, other, by_ip)
