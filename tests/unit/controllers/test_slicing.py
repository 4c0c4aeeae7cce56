"""The EndpointSlice reconciler's pure core, case by case against Kubernetes' rules."""

from __future__ import annotations

import itertools
from typing import Any

import msgspec

from control.controllers.slicing import (
    CONTROLLER_NAME,
    HEADLESS_LABEL,
    SlicePlan,
    address_types,
    reconcile,
)
from netplane.model import EndpointSlice, Node, Pod, Service, decode
from netplane.model.discovery import MANAGED_BY_LABEL, SERVICE_NAME_LABEL

_rv = itertools.count(1)


def service(name: str = "web", *, selector: dict[str, str] | None = None, ports: Any = None,
            **spec: Any) -> Service:
    return decode(Service, {
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "labels": {"tier": "front"}},
        "spec": {"selector": selector if selector is not None else {"app": "web"},
                 "ports": ports if ports is not None else [
                     {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
                 "clusterIP": "10.96.0.10", "ipFamilies": ["IPv4"], **spec}})


def pod(name: str, ip: str | list[str] | None = "10.244.1.1", *, ready: bool = True, node: str = "n1",
        ports: Any = None, terminating: bool = False, phase: str = "Running", **spec: Any) -> Pod:
    ips = [ip] if isinstance(ip, str) else (ip or [])
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "labels": {"app": "web"}}
    if terminating:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return decode(Pod, {
        "metadata": meta,
        "spec": {"nodeName": node, "containers": [{"name": "c", "ports": ports or []}], **spec},
        "status": {"phase": phase, "podIP": ips[0] if ips else "", "podIPs": [{"ip": i} for i in ips],
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}})


NODES = {"n1": decode(Node, {"metadata": {"name": "n1", "labels": {"topology.kubernetes.io/zone": "z1"}}}),
         "n2": decode(Node, {"metadata": {"name": "n2"}})}


def run(svc: Service, pods: list[Pod], existing: list[EndpointSlice] | None = None,
        max_eps: int = 100) -> SlicePlan:
    return reconcile(svc, pods, existing or [], NODES.get, max_eps)


def stored(plan: SlicePlan, existing: list[EndpointSlice] | None = None) -> list[EndpointSlice]:
    """What the apiserver would hold after the plan: creates named, updates replaced."""
    by_name = {s.metadata.name: s for s in existing or []}
    for s in plan.delete:
        del by_name[s.metadata.name]
    for s in plan.update:
        assert s.metadata.name in by_name
        by_name[s.metadata.name] = s
    for s in plan.create:
        name = f"{s.metadata.generate_name}{next(_rv)}"
        meta = msgspec.structs.replace(s.metadata, name=name, resource_version="1")
        by_name[name] = msgspec.structs.replace(s, metadata=meta)
    return list(by_name.values())


def addresses(slices: list[EndpointSlice]) -> list[str]:
    return sorted(a for s in slices for e in s.endpoints for a in e.addresses)


def test_one_slice_holds_the_pods_of_a_service_with_ports_labels_and_owner() -> None:
    plan = run(service(), [pod("a", "10.244.1.1"), pod("b", "10.244.1.2", node="n2")])
    assert not plan.update and not plan.delete
    [s] = plan.create
    assert s.metadata.generate_name == "web-"
    assert s.address_type == "IPv4"
    assert s.metadata.labels == {"tier": "front", SERVICE_NAME_LABEL: "web",
                                 MANAGED_BY_LABEL: CONTROLLER_NAME}
    [owner] = s.metadata.owner_references
    assert (owner.kind, owner.name, owner.uid, owner.controller, owner.block_owner_deletion) == \
        ("Service", "web", "uid-web", True, True)
    assert [(p.name, p.port, p.protocol) for p in s.ports] == [("http", 8080, "TCP")]
    a, b = s.endpoints
    assert a.addresses == ["10.244.1.1"]
    assert (a.conditions.ready, a.conditions.serving, a.conditions.terminating) == (True, True, False)
    assert (a.node_name, a.zone) == ("n1", "z1")
    assert (b.node_name, b.zone) == ("n2", None)
    assert a.target_ref is not None
    assert (a.target_ref.kind, a.target_ref.name, a.target_ref.uid) == ("Pod", "a", "uid-a")


def test_a_not_ready_pod_is_listed_not_ready_and_not_serving() -> None:
    [s] = run(service(), [pod("a", ready=False)]).create
    c = s.endpoints[0].conditions
    assert (c.ready, c.serving, c.terminating) == (False, False, False)


def test_publish_not_ready_addresses_makes_every_endpoint_ready() -> None:
    svc = service(publishNotReadyAddresses=True)
    [s] = run(svc, [pod("a", ready=False), pod("b", "10.244.1.2", terminating=True)]).create
    assert [(e.conditions.ready, e.conditions.serving) for e in s.endpoints] == [(True, False), (True, True)]


def test_a_terminating_pod_stays_listed_not_ready_with_serving_from_readiness() -> None:
    [s] = run(service(), [pod("a", terminating=True), pod("b", "10.244.1.2", ready=False,
                                                          terminating=True)]).create
    assert [(e.conditions.ready, e.conditions.serving, e.conditions.terminating) for e in s.endpoints] == \
        [(False, True, True), (False, False, True)]


def test_pods_without_ip_and_finished_pods_are_left_out() -> None:
    [s] = run(service(), [pod("a", None), pod("b", "10.244.1.2", phase="Succeeded"),
                          pod("c", "10.244.1.3", phase="Failed"), pod("d", "10.244.1.4")]).create
    assert addresses([s]) == ["10.244.1.4"]


def test_a_pod_on_an_unknown_node_is_skipped_and_reported() -> None:
    plan = run(service(), [pod("a", node="gone"), pod("b", "10.244.1.2")])
    assert plan.skipped_pods == ["a"]
    assert addresses(plan.create) == ["10.244.1.2"]
    # ... unless the service publishes not-ready addresses.
    plan = run(service(publishNotReadyAddresses=True), [pod("a", node="gone")])
    assert addresses(plan.create) == ["10.244.1.1"]
    assert not plan.skipped_pods


def test_a_service_without_endpoints_gets_one_empty_placeholder_slice() -> None:
    plan = run(service(), [])
    [s] = plan.create
    assert (s.endpoints, s.ports, s.address_type) == ([], [], "IPv4")
    # The placeholder is kept, not recreated, on the next sync.
    assert run(service(), [], stored(plan)).empty


def test_the_placeholder_becomes_the_real_slice_in_place() -> None:
    slices = stored(run(service(), []))
    plan = run(service(), [pod("a")], slices)
    assert not plan.create and not plan.delete
    [s] = plan.update
    assert s.metadata.name == slices[0].metadata.name
    assert addresses([s]) == ["10.244.1.1"]
    assert [p.port for p in s.ports] == [8080]


def test_the_last_pod_going_turns_the_slice_back_into_a_placeholder() -> None:
    slices = stored(run(service(), [pod("a")]))
    plan = run(service(), [], slices)
    [s] = plan.update
    assert (s.metadata.name, s.endpoints, s.ports) == (slices[0].metadata.name, [], [])


def test_an_unchanged_world_writes_nothing() -> None:
    pods = [pod(f"p{i}", f"10.244.1.{i}") for i in range(1, 6)]
    slices = stored(run(service(), pods))
    assert run(service(), pods, slices).empty


def test_150_pods_make_two_slices_of_at_most_100() -> None:
    pods = [pod(f"p{i:03}", f"10.244.{i // 200}.{i % 200 + 1}") for i in range(150)]
    plan = run(service(), pods)
    assert sorted(len(s.endpoints) for s in plan.create) == [50, 100]
    assert len(addresses(plan.create)) == 150


def test_max_endpoints_per_slice_is_honoured() -> None:
    pods = [pod(f"p{i}", f"10.244.1.{i + 1}") for i in range(7)]
    assert sorted(len(s.endpoints) for s in run(service(), pods, max_eps=3).create) == [1, 3, 3]


def test_one_changed_pod_updates_only_its_slice() -> None:
    pods = [pod(f"p{i:03}", f"10.244.{i // 200}.{i % 200 + 1}") for i in range(150)]
    slices = stored(run(service(), pods))
    pods[120] = pod("p120", "10.244.0.121", ready=False)
    plan = run(service(), pods, slices)
    assert not plan.create and not plan.delete
    [s] = plan.update
    assert sum(1 for e in s.endpoints if e.conditions.ready is False) == 1


def test_new_pods_fill_the_unchanged_slice_closest_to_full_before_creating_one() -> None:
    pods = [pod(f"p{i:03}", f"10.244.{i // 200}.{i % 200 + 1}") for i in range(150)]
    slices = stored(run(service(), pods))
    more = [*pods, pod("q1", "10.244.5.1"), pod("q2", "10.244.5.2")]
    plan = run(service(), more, slices)
    assert not plan.create and not plan.delete
    [s] = plan.update
    assert len(s.endpoints) == 52


def test_removed_pods_leave_their_slice_and_an_emptied_slice_is_deleted() -> None:
    pods = [pod(f"p{i}", f"10.244.1.{i + 1}") for i in range(4)]
    slices = stored(run(service(), pods, max_eps=2))
    keep = [p for p in pods if p.name in ("p0", "p1")]
    plan = run(service(), keep, slices, max_eps=2)
    assert len(plan.delete) == 1 and not plan.create
    assert addresses(stored(plan, slices)) == ["10.244.1.1", "10.244.1.2"]


def test_a_named_target_port_is_resolved_per_pod_and_pods_without_it_get_their_own_slice() -> None:
    svc = service(ports=[{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"}])
    pods = [pod("a", "10.244.1.1", ports=[{"name": "web", "containerPort": 8080}]),
            pod("b", "10.244.1.2", ports=[{"name": "web", "containerPort": 9090}]),
            pod("c", "10.244.1.3", ports=[{"name": "other", "containerPort": 7070}])]
    plan = run(svc, pods)
    got = sorted(([p.port for p in s.ports], addresses([s])) for s in plan.create)
    assert got == [([], ["10.244.1.3"]), ([8080], ["10.244.1.1"]), ([9090], ["10.244.1.2"])]


def test_a_named_port_must_match_the_protocol_too() -> None:
    svc = service(ports=[{"name": "dns", "port": 53, "targetPort": "dns", "protocol": "UDP"}])
    p = pod("a", ports=[{"name": "dns", "containerPort": 53, "protocol": "TCP"}])
    [s] = run(svc, [p]).create
    assert s.ports == []


def test_changing_the_service_port_rewrites_the_slice_in_place() -> None:
    slices = stored(run(service(), [pod("a")]))
    svc = service(ports=[{"name": "http", "port": 80, "targetPort": 9000, "protocol": "TCP"}])
    plan = run(svc, [pod("a")], slices)
    assert not plan.create and not plan.delete
    [s] = plan.update
    assert (s.metadata.name, [p.port for p in s.ports]) == (slices[0].metadata.name, [9000])


def test_service_label_changes_are_mirrored_to_slices() -> None:
    slices = stored(run(service(), [pod("a")]))
    svc = decode(Service, {**msgspec.to_builtins(service()),
                           "metadata": {"name": "web", "namespace": "ns", "uid": "uid-web",
                                        "labels": {"tier": "back"}}})
    [s] = run(svc, [pod("a")], slices).update
    assert s.metadata.labels["tier"] == "back"


def test_a_headless_service_gets_the_headless_label_and_hostnames_for_its_subdomain() -> None:
    svc = service("db", clusterIP="None")
    pods = [pod("a", "10.244.1.1", hostname="db-0", subdomain="db"),
            pod("b", "10.244.1.2", hostname="x", subdomain="other")]
    [s] = run(svc, pods).create
    assert s.metadata.labels[HEADLESS_LABEL] == ""
    assert [e.hostname for e in s.endpoints] == ["db-0", None]


def test_a_dual_stack_service_gets_one_slice_set_per_family() -> None:
    svc = service(ipFamilies=["IPv4", "IPv6"], clusterIPs=["10.96.0.10", "fd00::10"])
    pods = [pod("a", ["10.244.1.1", "fd00:244::1"]), pod("b", "10.244.1.2")]
    plan = run(svc, pods)
    by_family = {s.address_type: addresses([s]) for s in plan.create}
    assert by_family == {"IPv4": ["10.244.1.1", "10.244.1.2"], "IPv6": ["fd00:244::1"]}


def test_address_types_follow_ip_families_then_cluster_ip() -> None:
    assert address_types(service(ipFamilies=["IPv6"])) == ["IPv6"]
    assert address_types(service(ipFamilies=[], clusterIP="fd00::1")) == ["IPv6"]
    assert address_types(service(ipFamilies=[], clusterIP="None")) == ["IPv4", "IPv6"]


def test_slices_of_a_dropped_family_and_slices_not_owned_by_the_service_are_deleted() -> None:
    svc = service(ipFamilies=["IPv4", "IPv6"])
    slices = stored(run(svc, [pod("a", ["10.244.1.1", "fd00::1"])]))
    plan = run(service(), [pod("a", ["10.244.1.1", "fd00::1"])], slices)
    assert [s.address_type for s in plan.delete] == ["IPv6"]
    assert not plan.create and not plan.update


def test_a_not_owned_slice_is_replaced_by_an_owned_one() -> None:
    # A slice left over from an older service of the same name: not owned by this uid.
    [mine] = stored(run(service(), [pod("a")]))
    orphan = msgspec.structs.replace(mine, metadata=msgspec.structs.replace(
        mine.metadata, name="web-orphan", owner_references=[]))
    plan = run(service(), [pod("a")], [orphan])
    assert [s.metadata.name for s in plan.delete] == ["web-orphan"]
    assert addresses(plan.create) == ["10.244.1.1"]
