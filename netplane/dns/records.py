"""The records one Service (with its EndpointSlices) or one Pod puts into the cluster zone,
as the Kubernetes DNS-Based Service Discovery specification (schema 1.1.0) prescribes.
Pure: model objects in, plain values out (the zone indexes them, the answerer encodes them).

Where the specification leaves room, CoreDNS's choices are kept so that clients see what
they would see on a real cluster: SRV priority 0 and weight 100 shared evenly among a
name's records, an endpoint without a hostname named by its dashed IP, PTRs for endpoints
of every service (not only headless ones), ExternalName as a CNAME at the service name.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from netplane.dns.names import dashed
from netplane.model import EndpointSlice, Pod, Service

# Record types, by their wire numbers (dnslib's QTYPE), so the core needs no dnslib.
A, NS, CNAME, SOA, PTR, TXT, AAAA, SRV, ANY = 1, 2, 5, 6, 12, 16, 28, 33, 255
SCHEMA_VERSION = "1.1.0"


class Srv(NamedTuple):
    priority: int
    weight: int
    port: int
    target: str


# name -> record type -> values (an IP for A/AAAA, a name for CNAME/PTR/NS, Srv, text)
RecordValue = str | Srv
Records = dict[int, tuple[RecordValue, ...]]


@dataclass(frozen=True)
class ServiceRecords:
    """Everything one service contributes: its names (all under `<svc>.<ns>.svc.<zone>`),
    the empty non-terminals among them (`_tcp.<svc>...`: they exist, with no records), and
    the PTRs (IP -> name) of its ClusterIPs and endpoints."""

    names: dict[str, Records] = field(default_factory=dict)
    empty: frozenset[str] = frozenset()
    ptrs: tuple[tuple[str, str], ...] = ()


def _family(ip: str) -> int:
    return AAAA if ipaddress.ip_address(ip).version == 6 else A


def _add(names: dict[str, dict[int, list[RecordValue]]], name: str, rtype: int, value: RecordValue) -> None:
    values = names.setdefault(name, {}).setdefault(rtype, [])
    if value not in values:
        values.append(value)


def cluster_ips(svc: Service) -> list[str]:
    """The service's ClusterIPs; empty for headless, ExternalName or not yet allocated."""
    spec = svc.spec
    if spec.type == "ExternalName" or spec.cluster_ip in ("", "None"):
        return []
    ips = spec.cluster_ips or [spec.cluster_ip]
    out = []
    for ip in ips:
        try:
            out.append(str(ipaddress.ip_address(ip)))
        except ValueError:
            continue  # the apiserver validates; a bad address only loses its own record
    return out


def is_headless(svc: Service) -> bool:
    return svc.spec.type != "ExternalName" and svc.spec.cluster_ip == "None"


class _Endpoint(NamedTuple):
    ip: str
    name: str  # hostname, or the dashed IP


def published_endpoints(svc: Service, slices: Iterable[EndpointSlice]) -> list[_Endpoint]:
    """Ready endpoints (ready null counts as ready, as the API says), and not-ready ones too
    when the service sets publishNotReadyAddresses; the first address of each (consumers
    must use only the first), deduplicated across slices, in a stable order."""
    seen: dict[str, _Endpoint] = {}
    for sl in slices:
        if sl.address_type not in ("IPv4", "IPv6"):
            continue  # FQDN slices carry no addresses a record can hold
        for ep in sl.endpoints:
            if not ep.addresses:
                continue
            ready = ep.conditions.ready is not False
            if not ready and not svc.spec.publish_not_ready_addresses:
                continue
            try:
                ip = str(ipaddress.ip_address(ep.addresses[0]))
            except ValueError:
                continue
            seen.setdefault(ip, _Endpoint(ip, (ep.hostname or "").lower() or dashed(ip)))
    return sorted(seen.values())


def _srv_ports(svc: Service, slices: Iterable[EndpointSlice]) -> list[tuple[str, str, int]]:
    """(name, protocol, port) of the named ports: the service's ports for a ClusterIP (the
    clients connect to the service port); the endpoints' ports for a headless service (they
    connect to the endpoints directly)."""
    out: list[tuple[str, str, int]] = []
    if is_headless(svc):
        for sl in slices:
            for p in sl.ports:
                if p.name and p.port:
                    out.append((p.name.lower(), (p.protocol or "TCP").lower(), p.port))
    else:
        for sp in svc.spec.ports:
            if sp.name and sp.port:
                out.append((sp.name.lower(), (sp.protocol or "TCP").lower(), sp.port))
    return sorted(set(out))


def service_records(svc: Service, slices: Iterable[EndpointSlice], zone: str) -> ServiceRecords:
    """The records of `svc`, given the EndpointSlices labelled with its name."""
    slices = list(slices)
    base = f"{svc.name}.{svc.namespace or 'default'}.svc.{zone}".lower()
    names: dict[str, dict[int, list[RecordValue]]] = {}
    ptrs: list[tuple[str, str]] = []
    if svc.spec.type == "ExternalName":
        target = svc.spec.external_name.strip().rstrip(".").lower()
        if target:
            _add(names, base, CNAME, target)
        return _freeze(names, base, ptrs)
    ips = cluster_ips(svc)
    headless = is_headless(svc)
    if not ips and not headless:
        return ServiceRecords()  # no ClusterIP allocated yet: nothing to answer
    endpoints = published_endpoints(svc, slices)
    for ip in ips:
        _add(names, base, _family(ip), ip)
        ptrs.append((ip, base))
    for ep in endpoints:
        ep_name = f"{ep.name}.{base}"
        _add(names, ep_name, _family(ep.ip), ep.ip)
        ptrs.append((ep.ip, ep_name))
        if headless:
            _add(names, base, _family(ep.ip), ep.ip)
    if headless and not endpoints:
        names.setdefault(base, {})  # a headless service without endpoints exists: NODATA
    for port_name, proto, port in _srv_ports(svc, slices):
        srv_name = f"_{port_name}._{proto}.{base}"
        targets = [f"{ep.name}.{base}" for ep in endpoints] if headless else [base]
        weight = max(1, 100 // len(targets)) if targets else 0
        for target in sorted(set(targets)):
            _add(names, srv_name, SRV, Srv(0, weight, port, target))
    return _freeze(names, base, ptrs)


def _freeze(names: dict[str, dict[int, list[RecordValue]]], base: str,
            ptrs: list[tuple[str, str]]) -> ServiceRecords:
    frozen = {n: {t: tuple(v) for t, v in recs.items()} for n, recs in names.items()}
    # Every name between a record's owner and the service name exists too (RFC 8020: a
    # name with children is never NXDOMAIN), e.g. `_tcp.<svc>...` above an SRV name.
    empty = set()
    for name in frozen:
        while name != base and name.endswith("." + base):
            name = name.split(".", 1)[1]
            if name not in frozen:
                empty.add(name)
    return ServiceRecords(frozen, frozenset(empty), tuple(sorted(set(ptrs))))


class PodRecord(NamedTuple):
    namespace: str
    ips: tuple[str, ...]


def pod_record(pod: Pod) -> PodRecord | None:
    """What a pod contributes: its namespace and IPs (its `a-b-c-d.<ns>.pod.<zone>` names,
    and whose search path a query from those IPs follows); None without an IP or on the
    host's network (the host's IP is not the pod's own)."""
    if pod.spec.host_network:
        return None
    ips = [p.ip for p in pod.status.pod_ips if p.ip] or ([pod.status.pod_ip] if pod.status.pod_ip else [])
    valid = []
    for ip in ips:
        try:
            valid.append(str(ipaddress.ip_address(ip)))
        except ValueError:
            continue
    if not valid or pod.status.phase in ("Succeeded", "Failed"):
        return None
    return PodRecord(pod.namespace or "default", tuple(valid))
