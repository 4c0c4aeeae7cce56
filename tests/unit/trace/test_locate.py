"""Which service port VIP:PORT/PROTO names, and how many endpoints it has."""

from __future__ import annotations

from typing import Any

from netplane.model import EndpointSlice, Service, decode
from netplane.trace.locate import count_endpoints, match_service_port


def svc(name: str, **spec: Any) -> Service:
    return decode(Service, {"apiVersion": "v1", "kind": "Service",
                            "metadata": {"name": name, "namespace": "default"}, "spec": spec})


SERVICES = [
    svc("web", clusterIP="10.96.0.20", type="NodePort",
        ports=[{"name": "http", "port": 80, "nodePort": 30080, "protocol": "TCP"}]),
    svc("dns", clusterIP="10.96.0.10", externalIPs=["192.0.2.10"],
        ports=[{"name": "dns", "port": 53, "protocol": "UDP"}]),
]
NODES = {"10.255.0.11", "10.255.0.12"}


def test_cluster_ips_node_ports_and_external_ips_name_their_service_port() -> None:
    match, _ = match_service_port(SERVICES, NODES, "10.96.0.20", 80, "tcp")
    assert match is not None and (match.service_port, match.kind) == ("default/web:http", "cluster IP")
    match, _ = match_service_port(SERVICES, NODES, "10.255.0.12", 30080, "tcp")
    assert match is not None and match.kind == "node port"
    match, _ = match_service_port(SERVICES, NODES, "192.0.2.10", 53, "udp")
    assert match is not None and match.kind == "external IP"


def test_the_wrong_protocol_is_no_match_but_says_which_one_is_served() -> None:
    assert match_service_port(SERVICES, NODES, "10.96.0.10", 53, "tcp") == (None, "UDP")
    assert match_service_port(SERVICES, NODES, "10.96.0.99", 53, "udp") == (None, None)


def test_endpoints_of_one_port_are_counted_with_the_ready_ones() -> None:
    slices = [decode(EndpointSlice, {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
        "metadata": {"name": "web-1", "namespace": "default"}, "ports": [{"name": "http", "port": 8080}],
        "endpoints": [{"addresses": ["10.244.1.3"], "conditions": {"ready": True}},
                      {"addresses": ["10.244.2.3"], "conditions": {"ready": False}}]})]
    assert count_endpoints(slices, "http") == (2, 1)
    assert count_endpoints(slices, "other") == (0, 0)
