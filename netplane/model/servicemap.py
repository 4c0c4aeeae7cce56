"""The proxy's view of Services and EndpointSlices (kube-proxy's ServicePortMap and
EndpointsMap), the immutable ProxyState built from them, and the diff between two states."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from netplane.model.core import Service
from netplane.model.discovery import EndpointSlice
from netplane.model.meta import IntOrString, decode

DEFAULT_STICKY_MAX_AGE_SECONDS = 10800


@dataclass(frozen=True, order=True, slots=True)
class ServicePortName:
    """One port of one Service; `port` is the port's *name* ("" for an unnamed port)."""

    namespace: str
    name: str
    port: str
    protocol: str = "TCP"

    def __str__(self) -> str:
        # kube-proxy's format: the protocol is not shown, an empty port name adds nothing.
        suffix = f":{self.port}" if self.port else ""
        return f"{self.namespace}/{self.name}{suffix}"


@dataclass(frozen=True, order=True, slots=True)
class ServicePort:
    """What a proxy needs to program one service port (kube-proxy's BaseServicePortInfo)."""

    cluster_ips: tuple[str, ...]
    port: int
    protocol: str = "TCP"
    node_port: int = 0
    target_port: IntOrString = 0
    session_affinity_client_ip: bool = False
    sticky_max_age_seconds: int = 0
    external_ips: tuple[str, ...] = ()
    load_balancer_ips: tuple[str, ...] = ()
    load_balancer_source_ranges: tuple[str, ...] = ()
    internal_policy_local: bool = False
    external_policy_local: bool = False
    health_check_node_port: int = 0
    service_type: str = "ClusterIP"

    @property
    def cluster_ip(self) -> str:
        """The primary cluster IP."""
        return self.cluster_ips[0] if self.cluster_ips else ""

    @property
    def externally_accessible(self) -> bool:
        """Reachable from outside the cluster (node port, load balancer or external IP)."""
        return bool(self.node_port or self.load_balancer_ips or self.external_ips)

    @property
    def uses_cluster_endpoints(self) -> bool:
        # Even with externalTrafficPolicy Local, cluster endpoints serve the traffic that
        # short-circuits from inside the cluster.
        return not self.internal_policy_local or self.externally_accessible

    @property
    def uses_local_endpoints(self) -> bool:
        return self.internal_policy_local or (
            self.external_policy_local and self.externally_accessible)


@dataclass(frozen=True, order=True, slots=True)
class Endpoint:
    """One backend address of a service port (kube-proxy's BaseEndpointInfo)."""

    ip: str
    port: int
    ready: bool = True
    serving: bool = True
    terminating: bool = False
    node_name: str = ""
    zone: str = ""
    hostname: str = ""

    def is_local(self, node_name: str) -> bool:
        return bool(self.node_name) and self.node_name == node_name

    def __str__(self) -> str:
        if ":" in self.ip:
            return f"[{self.ip}]:{self.port}"
        return f"{self.ip}:{self.port}"


ServiceMap = Mapping[ServicePortName, ServicePort]
EndpointsMap = Mapping[ServicePortName, tuple[Endpoint, ...]]


def _as_service(obj: Service | Mapping[str, Any]) -> Service:
    return obj if isinstance(obj, Service) else decode(Service, dict(obj))


def _as_slice(obj: EndpointSlice | Mapping[str, Any]) -> EndpointSlice:
    return obj if isinstance(obj, EndpointSlice) else decode(EndpointSlice, dict(obj))


def _externally_accessible(svc: Service) -> bool:
    kind = svc.spec.type
    return kind in ("LoadBalancer", "NodePort") or (
        kind == "ClusterIP" and bool(svc.spec.external_ips))


def service_ports(svc: Service) -> dict[ServicePortName, ServicePort]:
    """The proxied ports of one Service; empty for the services kube-proxy skips
    (ExternalName, and no cluster IP or "None")."""
    spec = svc.spec
    ips = tuple(spec.cluster_ips) or ((spec.cluster_ip,) if spec.cluster_ip else ())
    if spec.type == "ExternalName" or not ips or ips[0] in ("", "None"):
        return {}
    client_ip = spec.session_affinity == "ClientIP"
    sticky = 0
    if client_ip:
        config = spec.session_affinity_config
        timeout = config.client_ip.timeout_seconds if config and config.client_ip else None
        sticky = timeout if timeout is not None else DEFAULT_STICKY_MAX_AGE_SECONDS
    ext_local = _externally_accessible(svc) and spec.external_traffic_policy == "Local"
    needs_health_check = spec.type == "LoadBalancer" and ext_local
    lb_ips = tuple(i.ip for i in svc.status.load_balancer.ingress if i.ip)
    result: dict[ServicePortName, ServicePort] = {}
    for p in spec.ports:
        name = ServicePortName(svc.metadata.namespace, svc.metadata.name, p.name,
                               p.protocol or "TCP")
        result[name] = ServicePort(
            cluster_ips=ips,
            port=p.port,
            protocol=p.protocol or "TCP",
            node_port=p.node_port,
            target_port=p.target_port or p.port,
            session_affinity_client_ip=client_ip,
            sticky_max_age_seconds=sticky,
            external_ips=tuple(spec.external_ips),
            load_balancer_ips=lb_ips,
            load_balancer_source_ranges=tuple(spec.load_balancer_source_ranges),
            internal_policy_local=spec.internal_traffic_policy == "Local",
            external_policy_local=ext_local,
            health_check_node_port=spec.health_check_node_port if needs_health_check else 0,
            service_type=spec.type,
        )
    return result


def build_service_map(services: Iterable[Service | Mapping[str, Any]]) -> ServiceMap:
    result: dict[ServicePortName, ServicePort] = {}
    for svc in services:
        result.update(service_ports(_as_service(svc)))
    return MappingProxyType(result)


def _ip_sort_key(ep: Endpoint) -> tuple[int, int, int]:
    try:
        ip = ipaddress.ip_address(ep.ip)
        return (ip.version, int(ip), ep.port)
    except ValueError:
        return (99, 0, ep.port)


def _canonical_ip(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address


def build_endpoints_map(slices: Iterable[EndpointSlice | Mapping[str, Any]]) -> EndpointsMap:
    """Merge every slice of a service, keyed by the slice port's name and protocol.

    As kube-proxy's EndpointSliceCache: slices without the service-name label and FQDN
    slices are ignored, so are ports without a number; an endpoint's first address is
    its IP; endpoints repeated across slices count once (a local copy wins)."""
    merged: dict[ServicePortName, dict[str, Endpoint]] = {}
    for raw in slices:
        es = _as_slice(raw)
        service = es.service_name
        if not service or es.address_type == "FQDN":
            continue
        for port in es.ports:
            if not port.port:
                continue
            spn = ServicePortName(es.metadata.namespace, service, port.name,
                                  port.protocol or "TCP")
            bucket = merged.setdefault(spn, {})
            for ep in es.endpoints:
                if not ep.addresses:
                    continue
                cond = ep.conditions
                endpoint = Endpoint(
                    ip=_canonical_ip(ep.addresses[0]),
                    port=port.port,
                    ready=cond.ready is None or cond.ready,
                    serving=cond.serving is None or cond.serving,
                    terminating=bool(cond.terminating),
                    node_name=ep.node_name or "",
                    zone=ep.zone or "",
                    hostname=ep.hostname or "",
                )
                key = str(endpoint)
                if key not in bucket or endpoint.node_name:
                    bucket[key] = endpoint
    return MappingProxyType({
        spn: tuple(sorted(bucket.values(), key=_ip_sort_key))
        for spn, bucket in merged.items()
    })


@dataclass(frozen=True)
class ProxyState:
    """Everything a proxy backend programs: service ports and their endpoints."""

    services: ServiceMap = field(default_factory=lambda: MappingProxyType({}))
    endpoints: EndpointsMap = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def build(cls, services: Iterable[Service | Mapping[str, Any]],
              slices: Iterable[EndpointSlice | Mapping[str, Any]]) -> ProxyState:
        return cls(build_service_map(services), build_endpoints_map(slices))

    def endpoints_for(self, name: ServicePortName) -> tuple[Endpoint, ...]:
        return self.endpoints.get(name, ())


@dataclass(frozen=True)
class StateChange:
    """What changed between two ProxyStates, as a partial sync needs it."""

    services_added: frozenset[ServicePortName] = frozenset()
    services_removed: frozenset[ServicePortName] = frozenset()
    services_updated: frozenset[ServicePortName] = frozenset()
    endpoints_changed: frozenset[ServicePortName] = frozenset()
    # (service port, endpoint) pairs that were serving and are gone: clear their UDP
    # conntrack entries or replies keep flowing to a dead backend.
    deleted_udp_endpoints: frozenset[tuple[ServicePortName, Endpoint]] = frozenset()
    # UDP service ports that went from no serving endpoint to some: clear conntrack
    # entries that blackholed earlier packets to the cluster IP.
    newly_active_udp_services: frozenset[ServicePortName] = frozenset()
    deleted_udp_cluster_ips: frozenset[str] = frozenset()

    @property
    def changed(self) -> frozenset[ServicePortName]:
        """Every service port whose rules must be rewritten."""
        return (self.services_added | self.services_removed | self.services_updated
                | self.endpoints_changed)

    @property
    def is_empty(self) -> bool:
        return not self.changed

    def __or__(self, other: StateChange) -> StateChange:
        """Both changes at once: what a sync must do after applying neither. Valid for
        changes of disjoint services, as a tracker that diffs service by service makes."""
        return StateChange(
            self.services_added | other.services_added,
            self.services_removed | other.services_removed,
            self.services_updated | other.services_updated,
            self.endpoints_changed | other.endpoints_changed,
            self.deleted_udp_endpoints | other.deleted_udp_endpoints,
            self.newly_active_udp_services | other.newly_active_udp_services,
            self.deleted_udp_cluster_ips | other.deleted_udp_cluster_ips,
        )


def diff(old: ProxyState, new: ProxyState) -> StateChange:
    old_s, new_s = old.services, new.services
    added = frozenset(new_s.keys() - old_s.keys())
    removed = frozenset(old_s.keys() - new_s.keys())
    updated = frozenset(k for k in new_s.keys() & old_s.keys() if new_s[k] != old_s[k])
    endpoints_changed = frozenset(
        k for k in old.endpoints.keys() | new.endpoints.keys()
        if old.endpoints_for(k) != new.endpoints_for(k))
    deleted_udp: set[tuple[ServicePortName, Endpoint]] = set()
    newly_active: set[ServicePortName] = set()
    for spn in endpoints_changed:
        if spn.protocol != "UDP":
            continue
        before, after = old.endpoints_for(spn), new.endpoints_for(spn)
        # kube-proxy's detectStaleConntrackEntries: an endpoint that was serving and now
        # is gone, or no longer serving, may have stale conntrack entries.
        still_serving = {str(ep) for ep in after if ep.serving}
        deleted_udp.update((spn, ep) for ep in before
                           if ep.serving and str(ep) not in still_serving)
        if still_serving and not any(ep.serving for ep in before):
            newly_active.add(spn)
    deleted_ips = frozenset(ip for k in removed if old_s[k].protocol == "UDP"
                            for ip in old_s[k].cluster_ips)
    return StateChange(added, removed, updated, endpoints_changed, frozenset(deleted_udp),
                       frozenset(newly_active), deleted_ips)
