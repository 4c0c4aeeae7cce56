"""The change tracker folds Service and EndpointSlice events into one update per sync, and
its incremental state always equals the state built from scratch."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from netplane.model import EndpointSlice, ProxyState, Service, decode
from netplane.model.discovery import TRIGGER_TIME_ANNOTATION
from netplane.model.servicemap import ServicePortName
from netplane.proxy.tracker import ChangeTracker

WEB = ServicePortName("default", "web", "http", "TCP")


def svc(name: str = "web", ip: str = "10.96.0.10", port: int = 80, **spec: Any) -> Service:
    return decode(Service, {"metadata": {"name": name, "namespace": "default"},
                            "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip],
                                     "ports": [{"name": "http", "port": port, "protocol": "TCP",
                                                "targetPort": 8080}], **spec}})


def es(service: str = "web", name: str = "", ips: tuple[str, ...] = ("10.244.1.2",),
       annotations: dict[str, str] | None = None, protocol: str = "TCP") -> EndpointSlice:
    labels = {"kubernetes.io/service-name": service} if service else {}
    return decode(EndpointSlice, {
        "metadata": {"name": name or f"{service}-a", "namespace": "default", "labels": labels,
                     "annotations": annotations or {}},
        "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": protocol}],
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips]})


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_a_burst_of_events_becomes_one_update_with_the_final_state() -> None:
    t = ChangeTracker()
    t.service_changed(svc())
    for n in range(1, 6):
        t.slice_changed(es(ips=tuple(f"10.244.1.{i}" for i in range(2, 2 + n))))
    assert t.has_pending and t.pending_endpoint_events == 5
    update = t.take()
    assert update.changes.services_added == {WEB} and update.changes.endpoints_changed == {WEB}
    assert len(update.state.endpoints_for(WEB)) == 5
    assert update.service_events == 1 and update.endpoint_events == 5
    assert not t.has_pending and t.take().changes.is_empty


def test_only_what_changed_is_reported() -> None:
    t = ChangeTracker()
    t.service_changed(svc())
    t.service_changed(svc("other", "10.96.0.11"))
    t.slice_changed(es())
    t.take()
    t.slice_changed(es(ips=("10.244.1.9",)))
    change = t.take().changes
    assert change.changed == {WEB} and not change.services_updated and change.endpoints_changed == {WEB}
    t.service_changed(svc(port=81))
    assert t.take().changes.services_updated == {WEB}


def test_an_update_that_changes_nothing_reports_nothing() -> None:
    t = ChangeTracker()
    t.service_changed(svc())
    t.take()
    t.service_changed(svc())
    assert t.take().changes.is_empty


def test_deleting_a_service_and_its_slices_removes_them() -> None:
    t = ChangeTracker()
    t.service_changed(svc())
    slice_ = es()
    t.slice_changed(slice_)
    t.take()
    t.service_deleted(svc())
    t.slice_deleted(slice_)
    update = t.take()
    assert update.changes.services_removed == {WEB}
    assert dict(update.state.services) == {} and dict(update.state.endpoints) == {}


def test_a_slice_that_moves_to_another_service_leaves_the_first() -> None:
    t = ChangeTracker()
    t.service_changed(svc())
    t.service_changed(svc("api", "10.96.0.11"))
    t.slice_changed(es("web", name="shared"))
    t.take()
    t.slice_changed(es("api", name="shared"))
    update = t.take()
    api = ServicePortName("default", "api", "http", "TCP")
    assert update.changes.endpoints_changed == {WEB, api}
    assert update.state.endpoints_for(WEB) == () and len(update.state.endpoints_for(api)) == 1


def test_slices_without_the_service_name_label_are_ignored() -> None:
    t = ChangeTracker()
    t.slice_changed(es(service=""))
    assert not t.has_pending


def test_the_trigger_time_is_the_earliest_change_of_the_update() -> None:
    clock = Clock()
    clock.t = 1767225700.0  # 100 s after the annotation below
    t = ChangeTracker(now=clock)
    t.service_changed(svc())
    t.slice_changed(es(annotations={TRIGGER_TIME_ANNOTATION: "2026-01-01T00:00:00Z"}))
    trigger = t.take().trigger_times["default/web"]
    assert trigger == 1767225600.0, "the controller's annotation is older than the service event"
    clock.t = 1767229999.0
    t.slice_changed(es(ips=("10.244.1.7",)))
    assert t.take().trigger_times == {"default/web": 1767229999.0}, "no annotation: when it arrived"


def test_udp_endpoints_that_go_away_are_reported_for_conntrack_cleanup() -> None:
    t = ChangeTracker()
    dns = decode(Service, {"metadata": {"name": "dns", "namespace": "default"},
                           "spec": {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                                    "ports": [{"name": "http", "port": 53, "protocol": "UDP"}]}})
    t.service_changed(dns)
    t.slice_changed(es("dns", ips=("10.244.1.2", "10.244.1.3"), protocol="UDP"))
    assert t.take().changes.newly_active_udp_services
    t.slice_changed(es("dns", ips=("10.244.1.2",), protocol="UDP"))
    gone = t.take().changes.deleted_udp_endpoints
    assert [ep.ip for _, ep in gone] == ["10.244.1.3"]


# -- property: incremental == from scratch ---------------------------------------------------

NAMES = ["a", "b", "c"]
events = st.lists(st.tuples(
    st.sampled_from(["svc", "svc-del", "slice", "slice-del"]),
    st.sampled_from(NAMES),          # service
    st.sampled_from(["s1", "s2"]),   # slice suffix
    st.integers(0, 3),               # endpoints in the slice / the service's port
), max_size=40)


@settings(max_examples=200, deadline=None)
@given(events, st.lists(st.integers(1, 39), max_size=5))
def test_the_tracked_state_equals_the_state_built_from_scratch(
        evs: list[tuple[str, str, str, int]], take_after: list[int]) -> None:
    t = ChangeTracker()
    services: dict[str, Service] = {}
    slices: dict[str, EndpointSlice] = {}
    state = ProxyState()
    for i, (kind, name, suffix, n) in enumerate(evs):
        if kind == "svc":
            services[name] = svc(name, f"10.96.0.{NAMES.index(name) + 1}", port=80 + n)
            t.service_changed(services[name])
        elif kind == "svc-del" and name in services:
            t.service_deleted(services.pop(name))
        elif kind == "slice":
            key = f"{name}-{suffix}"
            slices[key] = es(name, name=key, ips=tuple(f"10.244.{NAMES.index(name)}.{j}" for j in range(n)))
            t.slice_changed(slices[key])
        elif kind == "slice-del" and f"{name}-{suffix}" in slices:
            t.slice_deleted(slices.pop(f"{name}-{suffix}"))
        if i in take_after:
            update = t.take()
            assert update.changes.changed >= _diff_names(state, update.state)
            state = update.state
    final = t.take().state
    expected = ProxyState.build(services.values(), slices.values())
    assert dict(final.services) == dict(expected.services)
    assert {k: v for k, v in final.endpoints.items() if v} == {
        k: v for k, v in expected.endpoints.items() if v}


def _diff_names(old: ProxyState, new: ProxyState) -> set[ServicePortName]:
    names = set(old.services) | set(new.services)
    return {n for n in names if old.services.get(n) != new.services.get(n)
            or old.endpoints_for(n) != new.endpoints_for(n)}
