"""Kubernetes objects for the DNS unit tests, built the way the apiserver returns them."""

from __future__ import annotations

from typing import Any

from dnslib import DNSRecord

from netplane.dns.records import pod_record, service_records
from netplane.dns.zone import Zone, ZoneConfig
from netplane.model import EndpointSlice, Pod, Service, decode

ZONE = "cluster.local"


def service(name: str, namespace: str = "default", *, cluster_ip: str = "10.96.0.20",
            ports: list[dict[str, Any]] | None = None, **spec: Any) -> Service:
    body: dict[str, Any] = {"clusterIP": cluster_ip, **spec}
    if cluster_ip not in ("", "None"):
        body.setdefault("clusterIPs", [cluster_ip])
    body["ports"] = ports if ports is not None else [{"name": "http", "port": 80, "protocol": "TCP"}]
    return decode(Service, {"metadata": {"name": name, "namespace": namespace}, "spec": body})


def endpoint(ip: str, *, ready: bool | None = True, hostname: str | None = None) -> dict[str, Any]:
    ep: dict[str, Any] = {"addresses": [ip], "conditions": {} if ready is None else {"ready": ready}}
    if hostname:
        ep["hostname"] = hostname
    return ep


def endpoint_slice(service_name: str, endpoints: list[dict[str, Any]], namespace: str = "default", *,
                   ports: list[dict[str, Any]] | None = None, address_type: str = "IPv4",
                   name: str | None = None) -> EndpointSlice:
    return decode(EndpointSlice, {
        "metadata": {"name": name or f"{service_name}-abc", "namespace": namespace,
                     "labels": {"kubernetes.io/service-name": service_name}},
        "addressType": address_type, "endpoints": endpoints,
        "ports": ports if ports is not None else [{"name": "http", "port": 8080, "protocol": "TCP"}]})


def pod(name: str, ip: str, namespace: str = "default", **status: Any) -> Pod:
    return decode(Pod, {"metadata": {"name": name, "namespace": namespace},
                        "spec": {"containers": [{"name": "c", "image": "x"}]},
                        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], **status}})


def zone_with(*items: tuple[Service, list[EndpointSlice]], pods: tuple[Pod, ...] = (),
              config: ZoneConfig | None = None) -> Zone:
    zone = Zone(config or ZoneConfig(domain=ZONE), serial=100)
    for svc, slices in items:
        zone.set_service(svc.namespace, svc.name, service_records(svc, slices, zone.domain))
    for p in pods:
        zone.set_pod(f"{p.namespace}/{p.name}", pod_record(p))
    return zone


def ask(name: str, qtype: str = "A") -> DNSRecord:
    return DNSRecord.question(name, qtype)


def answers(response: DNSRecord) -> list[tuple[str, str, int, str]]:
    """(owner, type, ttl, rdata) of the answer section, as text."""
    from dnslib import QTYPE

    return [(str(rr.rname), QTYPE[rr.rtype], rr.ttl, str(rr.rdata)) for rr in response.rr]
