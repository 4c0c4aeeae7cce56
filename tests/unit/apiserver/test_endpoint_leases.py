"""The `kubernetes` Service's endpoints from apiserver leases: which leases are live, and
the objects written for them."""

from __future__ import annotations

import datetime as dt

from control.apiserver.endpoints import endpoint_objects, lease_body, lease_name, live_addresses

NOW = dt.datetime(2026, 11, 30, 12, 0, 0, tzinfo=dt.UTC)


def _lease(address: str, port: int, seconds_ago: float, ttl: float = 15) -> dict:  # type: ignore[type-arg]
    return lease_body(address, port, ttl, NOW - dt.timedelta(seconds=seconds_ago))


def test_a_lease_names_its_address_and_holds_ip_and_port() -> None:
    body = _lease("10.255.0.1", 6443, 0)
    assert body["metadata"]["name"] == lease_name("10.255.0.1") == "apiserver-endpoint-10-255-0-1"
    assert body["spec"] == {"holderIdentity": "10.255.0.1:6443", "leaseDurationSeconds": 15,
                            "renewTime": "2026-11-30T12:00:00.000000Z"}


def test_only_unexpired_leases_on_the_services_port_count() -> None:
    leases = [_lease("10.255.0.2", 6443, 3), _lease("10.255.0.1", 6443, 14.9),
              _lease("10.255.0.3", 6443, 15), _lease("10.255.0.4", 8443, 1),
              {"spec": {"holderIdentity": "garbage", "renewTime": "yesterday"}}, {}]
    assert live_addresses(leases, 6443, NOW) == ["10.255.0.1", "10.255.0.2"]
    assert live_addresses([_lease("10.255.0.1", 6443, 1), _lease("10.255.0.1", 6443, 2)], 6443, NOW) == [
        "10.255.0.1"]


def test_the_objects_list_every_address_and_none_when_no_apiserver_is_left() -> None:
    slice_, endpoints = endpoint_objects(["10.255.0.1", "10.255.0.2"], 6443)
    assert [e["addresses"] for e in slice_["endpoints"]] == [["10.255.0.1"], ["10.255.0.2"]]
    assert slice_["metadata"]["labels"]["kubernetes.io/service-name"] == "kubernetes"
    assert endpoints["subsets"] == [{"addresses": [{"ip": "10.255.0.1"}, {"ip": "10.255.0.2"}],
                                     "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]
    empty_slice, empty = endpoint_objects([], 6443)
    assert empty_slice["endpoints"] == [] and empty["subsets"] == []
