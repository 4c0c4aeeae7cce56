"""The proxier's health as kube-proxy defines it, and the health-check node ports of
externalTrafficPolicy: Local services."""

from __future__ import annotations

import json
from typing import Any

from netplane.model import Node, ProxyState, Service, decode
from netplane.model.servicemap import Endpoint, ServicePortName
from netplane.proxy.health import ProxierHealth
from netplane.proxy.proxier import health_check_ports, parse_bind_address


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_healthy_while_starting_and_while_updates_are_applied_in_time() -> None:
    clock = Clock()
    h = ProxierHealth(timeout=60, now=clock)
    assert h.healthy()
    h.queued_update()
    clock.t += 59
    assert h.healthy(), "a queued update is not late yet"
    h.updated()
    clock.t += 1000
    assert h.healthy(), "nothing queued: a quiet cluster is healthy"


def test_unhealthy_when_a_queued_update_waits_longer_than_the_timeout() -> None:
    clock = Clock()
    h = ProxierHealth(timeout=60, now=clock)
    h.queued_update()
    clock.t += 30
    h.queued_update()  # a later update does not reset the oldest one's clock
    clock.t += 31
    assert not h.healthy()


async def test_a_node_being_deleted_is_not_eligible_which_only_healthz_reports() -> None:
    h = ProxierHealth(timeout=60)
    h.sync_node(decode(Node, {"metadata": {"name": "n", "deletionTimestamp": "2026-01-01T00:00:00Z"}}))
    healthz = await h.healthz(None)  # type: ignore[arg-type]
    livez = await h.livez(None)  # type: ignore[arg-type]
    assert healthz.status == 503 and json.loads(healthz.text)["nodeEligible"] is False
    assert livez.status == 200
    h.sync_node(decode(Node, {"metadata": {"name": "n"}, "spec": {"taints": [
        {"key": "ToBeDeletedByClusterAutoscaler", "effect": "NoSchedule"}]}}))
    assert not h.node_eligible


def _lb(local: str) -> dict[str, Any]:
    return {"metadata": {"name": "lb", "namespace": "default"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5"],
                     "externalTrafficPolicy": local, "healthCheckNodePort": 32000,
                     "ports": [{"name": "http", "port": 80, "nodePort": 31000, "protocol": "TCP"}]}}


def test_health_check_ports_count_this_nodes_ready_endpoints() -> None:
    name = ServicePortName("default", "lb", "http", "TCP")
    eps = (Endpoint("10.244.1.2", 80, node_name="me"), Endpoint("10.244.2.2", 80, node_name="other"),
           Endpoint("10.244.1.3", 80, ready=False, node_name="me"))
    state = ProxyState.build([decode(Service, _lb("Local"))], [])
    state = ProxyState(state.services, {name: eps})
    assert health_check_ports(state, "me") == {"default/lb": (32000, 1)}
    assert health_check_ports(state, "elsewhere") == {"default/lb": (32000, 0)}
    cluster = ProxyState.build([decode(Service, _lb("Cluster"))], [])
    assert health_check_ports(cluster, "me") == {}


def test_bind_addresses_parse_as_kube_proxys_flags() -> None:
    assert parse_bind_address("0.0.0.0:10256", 1) == ("0.0.0.0", 10256)
    assert parse_bind_address(":9000", 1) == ("0.0.0.0", 9000)
    assert parse_bind_address("127.0.0.1", 10249) == ("127.0.0.1", 10249)
    assert parse_bind_address("[::1]:10249", 1) == ("::1", 10249)
