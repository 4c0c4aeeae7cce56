"""The legacy Endpoints object, computed as Kubernetes' endpoints controller does."""

from __future__ import annotations

from typing import Any

import msgspec

from control.controllers.endpoints import (
    HEADLESS_LABEL,
    OVER_CAPACITY,
    desired_endpoints,
    endpoint_subsets,
    truncate,
)
from netplane.model import Endpoints, Pod, Service, decode
from netplane.model.core import EndpointAddress, EndpointSubset


def service(**spec: Any) -> Service:
    return decode(Service, {
        "metadata": {"name": "web", "namespace": "ns", "uid": "uid-web", "labels": {"app": "web"}},
        "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.10", "ipFamilies": ["IPv4"],
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}], **spec}})


def pod(name: str, ip: str | None, *, ready: bool = True, terminating: bool = False, ports: Any = None,
        **spec: Any) -> Pod:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "labels": {"app": "web"}}
    if terminating:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return decode(Pod, {
        "metadata": meta,
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": ports or []}], **spec},
        "status": {"phase": "Running", "podIP": ip or "", "podIPs": [{"ip": ip}] if ip else [],
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}})


def ips(addresses: list[EndpointAddress]) -> list[str]:
    return [a.ip for a in addresses]


def test_ready_and_not_ready_pods_share_one_subset_per_port_set() -> None:
    [s] = endpoint_subsets(service(), [pod("b", "10.0.0.2"), pod("a", "10.0.0.1"),
                                       pod("c", "10.0.0.3", ready=False)])
    assert ips(s.addresses) == ["10.0.0.1", "10.0.0.2"]
    assert ips(s.not_ready_addresses) == ["10.0.0.3"]
    assert [(p.name, p.port, p.protocol) for p in s.ports] == [("http", 8080, "TCP")]
    a = s.addresses[0]
    assert (a.node_name, a.target_ref.kind, a.target_ref.name, a.target_ref.uid) == \
        ("n1", "Pod", "a", "uid-a")


def test_terminating_pods_and_pods_without_ip_are_left_out() -> None:
    subsets = endpoint_subsets(service(), [pod("a", "10.0.0.1", terminating=True), pod("b", None)])
    assert subsets == []


def test_publish_not_ready_addresses_lists_every_pod_as_ready_even_terminating() -> None:
    svc = service(publishNotReadyAddresses=True)
    [s] = endpoint_subsets(svc, [pod("a", "10.0.0.1", ready=False), pod("b", "10.0.0.2", terminating=True)])
    assert ips(s.addresses) == ["10.0.0.1", "10.0.0.2"]
    assert s.not_ready_addresses == []


def test_pods_resolving_a_named_port_differently_get_separate_subsets() -> None:
    svc = service(ports=[{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"}])
    subsets = endpoint_subsets(svc, [
        pod("a", "10.0.0.1", ports=[{"name": "web", "containerPort": 8080}]),
        pod("b", "10.0.0.2", ports=[{"name": "web", "containerPort": 9090}]),
        pod("c", "10.0.0.3", ports=[{"name": "other", "containerPort": 1}])])
    assert [(ips(s.addresses), [p.port for p in s.ports]) for s in subsets] == \
        [(["10.0.0.1"], [8080]), (["10.0.0.2"], [9090])]


def test_multiple_service_ports_are_repacked_into_one_subset() -> None:
    svc = service(ports=[{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                         {"name": "dns", "port": 53, "targetPort": 5353, "protocol": "UDP"}])
    [s] = endpoint_subsets(svc, [pod("a", "10.0.0.1"), pod("b", "10.0.0.2")])
    assert [(p.name, p.port, p.protocol) for p in s.ports] == [("dns", 5353, "UDP"), ("http", 8080, "TCP")]
    assert ips(s.addresses) == ["10.0.0.1", "10.0.0.2"]


def test_a_headless_service_without_ports_lists_addresses_with_hostnames() -> None:
    svc = service(clusterIP="None", ports=[])
    [s] = endpoint_subsets(svc, [pod("a", "10.0.0.1", hostname="db-0", subdomain="web")])
    assert s.ports == []
    assert [(a.ip, a.hostname) for a in s.addresses] == [("10.0.0.1", "db-0")]
    # A service with a cluster IP and no ports has no endpoints.
    assert endpoint_subsets(service(ports=[]), [pod("a", "10.0.0.1")]) == []


def test_the_address_is_the_pod_ip_of_the_service_family() -> None:
    p = decode(Pod, {**msgspec.to_builtins(pod("a", "10.0.0.1")),
                     "status": {"phase": "Running", "podIP": "10.0.0.1",
                                "podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}],
                                "conditions": [{"type": "Ready", "status": "True"}]}})
    [s] = endpoint_subsets(service(ipFamilies=["IPv6"], clusterIP="fd00::a"), [p])
    assert ips(s.addresses) == ["fd00::1"]


def test_over_1000_addresses_are_truncated_and_annotated() -> None:
    pods = [pod(f"p{i}", f"10.0.{i // 250}.{i % 250 + 1}", ready=i % 3 != 0) for i in range(1500)]
    want = desired_endpoints(service(), pods, None)
    assert want is not None
    assert want.metadata.annotations[OVER_CAPACITY] == "truncated"
    [s] = want.subsets
    # 1000 ready pods fill the capacity: the not-ready ones go first.
    assert (len(s.addresses), len(s.not_ready_addresses)) == (1000, 0)


def test_truncation_keeps_all_ready_and_a_share_of_not_ready_addresses() -> None:
    addr = [EndpointAddress(ip=f"10.0.0.{i}") for i in range(10)]
    subsets = [EndpointSubset(addresses=addr[:4], not_ready_addresses=addr[4:8]),
               EndpointSubset(addresses=addr[8:9], not_ready_addresses=addr[9:])]
    out, truncated = truncate(subsets, max_capacity=7)
    assert truncated
    assert [len(s.addresses) for s in out] == [4, 1]
    assert sum(len(s.not_ready_addresses) for s in out) == 2
    assert truncate(subsets, max_capacity=10) == (subsets, False)


def test_desired_endpoints_mirrors_labels_and_writes_nothing_when_unchanged() -> None:
    svc = service(clusterIP="None")
    want = desired_endpoints(svc, [pod("a", "10.0.0.1")], None)
    assert want is not None
    assert (want.metadata.name, want.metadata.namespace) == ("web", "ns")
    assert want.metadata.labels == {"app": "web", HEADLESS_LABEL: ""}
    stored = decode(Endpoints, msgspec.to_builtins(want))
    assert desired_endpoints(svc, [pod("a", "10.0.0.1")], stored) is None
    changed = desired_endpoints(svc, [pod("a", "10.0.0.1", ready=False)], stored)
    assert changed is not None
    assert ips(changed.subsets[0].not_ready_addresses) == ["10.0.0.1"]


def test_the_over_capacity_annotation_goes_when_back_under_capacity() -> None:
    stored = Endpoints(metadata=msgspec.structs.replace(
        Endpoints().metadata, name="web", namespace="ns", labels={"app": "web"},
        annotations={OVER_CAPACITY: "truncated", "keep": "me"}))
    want = desired_endpoints(service(), [pod("a", "10.0.0.1")], stored)
    assert want is not None
    assert want.metadata.annotations == {"keep": "me"}
