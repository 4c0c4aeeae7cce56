"""The proxy view: service ports, merged endpoints, state diffs, endpoint categories —
with kube-proxy's semantics."""

from __future__ import annotations

from typing import Any

import pytest

from netplane.model import (
    Endpoint,
    ProxyState,
    ServicePort,
    ServicePortName,
    build_endpoints_map,
    build_service_map,
    categorize_endpoints,
    diff,
)


def svc(name: str = "web", ns: str = "default", **spec: Any) -> dict[str, Any]:
    base = {"type": "ClusterIP", "clusterIP": "10.0.0.10", "clusterIPs": ["10.0.0.10"],
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}
    return {"metadata": {"name": name, "namespace": ns}, "spec": {**base, **spec}}


def eps(name: str = "web", ns: str = "default", *, endpoints: list[dict[str, Any]],
        ports: list[dict[str, Any]] | None = None, address_type: str = "IPv4",
        slice_name: str = "") -> dict[str, Any]:
    return {"metadata": {"name": slice_name or f"{name}-x", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": address_type, "endpoints": endpoints,
            "ports": ports if ports is not None else [
                {"name": "http", "port": 8080, "protocol": "TCP"}]}


def ep(ip: str, **fields: Any) -> dict[str, Any]:
    return {"addresses": [ip], **fields}


HTTP = ServicePortName("default", "web", "http", "TCP")


def test_service_port_names_print_like_kube_proxy() -> None:
    assert str(HTTP) == "default/web:http"
    assert str(ServicePortName("ns", "dns", "", "UDP")) == "ns/dns"
    assert hash(HTTP) == hash(ServicePortName("default", "web", "http", "TCP"))
    assert sorted([ServicePortName("b", "a", ""), ServicePortName("a", "z", "")])[0].namespace \
        == "a"


def test_a_cluster_ip_service_becomes_one_service_port_per_port() -> None:
    smap = build_service_map([svc(ports=[
        {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
        {"name": "dns", "port": 53, "targetPort": "dns", "protocol": "UDP"}])])
    assert set(smap) == {HTTP, ServicePortName("default", "web", "dns", "UDP")}
    port = smap[HTTP]
    assert port == ServicePort(cluster_ips=("10.0.0.10",), port=80, protocol="TCP",
                               target_port=8080, service_type="ClusterIP")
    assert port.cluster_ip == "10.0.0.10"
    assert not port.externally_accessible
    assert smap[ServicePortName("default", "web", "dns", "UDP")].target_port == "dns"


@pytest.mark.parametrize("spec", [
    {"type": "ExternalName", "externalName": "example.com", "clusterIP": "", "clusterIPs": []},
    {"clusterIP": "None", "clusterIPs": ["None"]},
    {"clusterIP": "", "clusterIPs": []},
])
def test_kube_proxy_skips_external_name_headless_and_unallocated_services(
    spec: dict[str, Any]
) -> None:
    assert dict(build_service_map([svc(**spec)])) == {}


def test_service_port_carries_affinity_policies_and_external_addresses() -> None:
    smap = build_service_map([{
        **svc(type="LoadBalancer", externalIPs=["192.0.2.1"], sessionAffinity="ClientIP",
              sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}},
              externalTrafficPolicy="Local", internalTrafficPolicy="Local",
              healthCheckNodePort=32000, loadBalancerSourceRanges=["203.0.113.0/24"],
              ports=[{"name": "http", "port": 80, "nodePort": 30080, "protocol": "TCP"}]),
        "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.7"}, {"hostname": "x"}]}},
    }])
    port = smap[HTTP]
    assert port.session_affinity_client_ip and port.sticky_max_age_seconds == 60
    assert port.external_ips == ("192.0.2.1",)
    assert port.load_balancer_ips == ("198.51.100.7",)
    assert port.load_balancer_source_ranges == ("203.0.113.0/24",)
    assert port.node_port == 30080
    assert port.external_policy_local and port.internal_policy_local
    assert port.health_check_node_port == 32000
    assert port.target_port == 80


def test_client_ip_affinity_without_timeout_uses_three_hours() -> None:
    port = build_service_map([svc(sessionAffinity="ClientIP")])[HTTP]
    assert port.sticky_max_age_seconds == 10800


def test_external_policy_local_needs_an_externally_reachable_service() -> None:
    port = build_service_map([svc(externalTrafficPolicy="Local",
                                  healthCheckNodePort=1)])[HTTP]
    assert not port.external_policy_local
    assert port.health_check_node_port == 0


def test_a_node_port_service_has_no_health_check_port() -> None:
    port = build_service_map([svc(type="NodePort", externalTrafficPolicy="Local",
                                  healthCheckNodePort=32000)])[HTTP]
    assert port.external_policy_local
    assert port.health_check_node_port == 0


def test_endpoints_of_all_slices_of_a_service_are_merged_and_deduplicated() -> None:
    emap = build_endpoints_map([
        eps(endpoints=[ep("10.1.0.2", nodeName="n1"), ep("10.1.0.1")], slice_name="a"),
        eps(endpoints=[ep("10.1.0.2"), ep("10.1.0.10", zone="z1", hostname="h")],
            slice_name="b"),
    ])
    assert [str(e) for e in emap[HTTP]] == ["10.1.0.1:8080", "10.1.0.2:8080", "10.1.0.10:8080"]
    assert emap[HTTP][1].node_name == "n1"
    assert emap[HTTP][2].zone == "z1" and emap[HTTP][2].hostname == "h"


def test_slice_ports_map_to_service_ports_by_name_and_protocol() -> None:
    emap = build_endpoints_map([eps(
        endpoints=[ep("10.1.0.1")],
        ports=[{"name": "http", "port": 8080, "protocol": "TCP"},
               {"name": "dns", "port": 53, "protocol": "UDP"},
               {"name": "dns", "port": 53, "protocol": "TCP"},
               {"name": "none", "port": None, "protocol": "TCP"}])])
    assert set(emap) == {HTTP, ServicePortName("default", "web", "dns", "UDP"),
                         ServicePortName("default", "web", "dns", "TCP")}


def test_fqdn_slices_and_slices_without_a_service_are_ignored() -> None:
    orphan = eps(endpoints=[ep("10.1.0.1")])
    orphan["metadata"]["labels"] = {}
    fqdn = eps(endpoints=[ep("db.example.com")], address_type="FQDN")
    assert dict(build_endpoints_map([orphan, fqdn])) == {}


def test_endpoint_conditions_follow_the_api_nil_rules() -> None:
    emap = build_endpoints_map([eps(endpoints=[
        ep("10.1.0.1"),
        ep("10.1.0.2", conditions={"ready": False}),
        ep("10.1.0.3", conditions={"ready": False, "serving": True, "terminating": True}),
    ])])
    flags = [(e.ready, e.serving, e.terminating) for e in emap[HTTP]]
    assert flags == [(True, True, False), (False, True, False), (False, True, True)]


def test_ipv6_endpoints_print_bracketed() -> None:
    emap = build_endpoints_map([eps(endpoints=[ep("fd00::0001")], address_type="IPv6")])
    assert str(emap[HTTP][0]) == "[fd00::1]:8080"


def test_an_endpoint_is_local_only_on_its_own_node() -> None:
    assert Endpoint("10.1.0.1", 80, node_name="n1").is_local("n1")
    assert not Endpoint("10.1.0.1", 80, node_name="n1").is_local("n2")
    assert not Endpoint("10.1.0.1", 80).is_local("")


# ---- diff ------------------------------------------------------------------------------

UDP = ServicePortName("default", "dns", "dns", "UDP")


def _dns_svc(**spec: Any) -> dict[str, Any]:
    return svc("dns", clusterIP="10.0.0.53", clusterIPs=["10.0.0.53"],
               ports=[{"name": "dns", "port": 53, "protocol": "UDP"}], **spec)


def _dns_eps(*endpoints: dict[str, Any]) -> dict[str, Any]:
    return eps("dns", endpoints=list(endpoints),
               ports=[{"name": "dns", "port": 53, "protocol": "UDP"}])


def test_identical_states_have_no_changes() -> None:
    state = ProxyState.build([svc()], [eps(endpoints=[ep("10.1.0.1")])])
    change = diff(state, state)
    assert change.is_empty
    assert change.changed == frozenset()


def test_added_removed_and_updated_service_ports_are_reported() -> None:
    old = ProxyState.build([svc(), svc("gone")], [])
    new = ProxyState.build([svc(sessionAffinity="ClientIP"), svc("fresh")], [])
    change = diff(old, new)
    assert change.services_added == {ServicePortName("default", "fresh", "http", "TCP")}
    assert change.services_removed == {ServicePortName("default", "gone", "http", "TCP")}
    assert change.services_updated == {HTTP}


def test_endpoint_changes_are_reported_per_service_port() -> None:
    old = ProxyState.build([svc()], [eps(endpoints=[ep("10.1.0.1")])])
    new = ProxyState.build([svc()], [eps(endpoints=[ep("10.1.0.2")])])
    change = diff(old, new)
    assert change.endpoints_changed == {HTTP}
    assert change.changed == {HTTP}
    assert change.deleted_udp_endpoints == frozenset()


def test_removed_udp_endpoints_are_reported_for_conntrack_cleanup() -> None:
    old = ProxyState.build([_dns_svc()], [_dns_eps(ep("10.1.0.1"), ep("10.1.0.2"))])
    new = ProxyState.build([_dns_svc()], [_dns_eps(ep("10.1.0.2"))])
    change = diff(old, new)
    assert [(n, str(e)) for n, e in change.deleted_udp_endpoints] == [(UDP, "10.1.0.1:53")]
    assert change.newly_active_udp_services == frozenset()


def test_a_udp_endpoint_that_stops_serving_counts_as_deleted() -> None:
    old = ProxyState.build([_dns_svc()], [_dns_eps(ep("10.1.0.1"))])
    new = ProxyState.build([_dns_svc()], [_dns_eps(
        ep("10.1.0.1", conditions={"ready": False, "serving": False}))])
    assert {str(e) for _, e in diff(old, new).deleted_udp_endpoints} == {"10.1.0.1:53"}


def test_a_udp_endpoint_that_was_not_serving_leaves_nothing_to_clean() -> None:
    old = ProxyState.build([_dns_svc()], [_dns_eps(
        ep("10.1.0.1", conditions={"ready": False, "serving": False}))])
    new = ProxyState.build([_dns_svc()], [])
    assert diff(old, new).deleted_udp_endpoints == frozenset()


def test_a_udp_service_that_gains_its_first_endpoint_is_newly_active() -> None:
    old = ProxyState.build([_dns_svc()], [])
    new = ProxyState.build([_dns_svc()], [_dns_eps(ep("10.1.0.1"))])
    assert diff(old, new).newly_active_udp_services == {UDP}
    assert diff(new, new).newly_active_udp_services == frozenset()


def test_tcp_services_never_need_conntrack_cleanup() -> None:
    old = ProxyState.build([svc()], [eps(endpoints=[ep("10.1.0.1")])])
    new = ProxyState.build([svc()], [])
    change = diff(old, new)
    assert change.deleted_udp_endpoints == frozenset()
    assert diff(new, old).newly_active_udp_services == frozenset()


def test_removed_udp_services_report_their_cluster_ips() -> None:
    old = ProxyState.build([_dns_svc(), svc()], [])
    new = ProxyState.build([], [])
    assert diff(old, new).deleted_udp_cluster_ips == {"10.0.0.53"}


# ---- categorize_endpoints --------------------------------------------------------------

READY_LOCAL = Endpoint("10.1.0.1", 80, node_name="me")
READY_REMOTE = Endpoint("10.1.0.2", 80, node_name="other")
TERM_LOCAL = Endpoint("10.1.0.3", 80, ready=False, serving=True, terminating=True,
                      node_name="me")
TERM_REMOTE = Endpoint("10.1.0.4", 80, ready=False, serving=True, terminating=True,
                       node_name="other")
NOT_READY = Endpoint("10.1.0.5", 80, ready=False, serving=False, node_name="me")

CLUSTER = ServicePort(cluster_ips=("10.0.0.1",), port=80)
ITP_LOCAL = ServicePort(cluster_ips=("10.0.0.1",), port=80, internal_policy_local=True)
ETP_LOCAL = ServicePort(cluster_ips=("10.0.0.1",), port=80, node_port=30000,
                        external_policy_local=True)


def _cat(endpoints: list[Endpoint], port: ServicePort) -> tuple[set[str], set[str], set[str],
                                                                bool]:
    c = categorize_endpoints(endpoints, port, "me")
    return ({str(e) for e in c.cluster}, {str(e) for e in c.local},
            {str(e) for e in c.all_reachable}, c.has_any_endpoints)


def test_cluster_policy_uses_every_ready_endpoint() -> None:
    assert _cat([READY_LOCAL, READY_REMOTE, TERM_LOCAL, NOT_READY], CLUSTER) == (
        {"10.1.0.1:80", "10.1.0.2:80"}, set(), {"10.1.0.1:80", "10.1.0.2:80"}, True)


def test_cluster_policy_falls_back_to_serving_terminating_endpoints() -> None:
    assert _cat([TERM_LOCAL, TERM_REMOTE, NOT_READY], CLUSTER) == (
        {"10.1.0.3:80", "10.1.0.4:80"}, set(), {"10.1.0.3:80", "10.1.0.4:80"}, True)


def test_no_usable_endpoints_means_none_anywhere() -> None:
    assert _cat([NOT_READY], CLUSTER) == (set(), set(), set(), False)
    assert _cat([], ITP_LOCAL) == (set(), set(), set(), False)


def test_internal_local_policy_uses_only_this_nodes_ready_endpoints() -> None:
    assert _cat([READY_LOCAL, READY_REMOTE, TERM_LOCAL], ITP_LOCAL) == (
        set(), {"10.1.0.1:80"}, {"10.1.0.1:80"}, True)


def test_internal_local_policy_falls_back_to_local_terminating_endpoints() -> None:
    assert _cat([READY_REMOTE, TERM_LOCAL], ITP_LOCAL) == (
        set(), {"10.1.0.3:80"}, {"10.1.0.3:80"}, True)


def test_local_policy_never_falls_back_to_remote_endpoints() -> None:
    assert _cat([READY_REMOTE, TERM_REMOTE], ITP_LOCAL) == (set(), set(), set(), True)


def test_external_local_policy_keeps_cluster_endpoints_for_internal_traffic() -> None:
    assert _cat([READY_LOCAL, READY_REMOTE], ETP_LOCAL) == (
        {"10.1.0.1:80", "10.1.0.2:80"}, {"10.1.0.1:80"}, {"10.1.0.1:80", "10.1.0.2:80"}, True)


def test_external_local_with_only_terminating_local_endpoints_merges_both_sets() -> None:
    assert _cat([READY_REMOTE, TERM_LOCAL], ETP_LOCAL) == (
        {"10.1.0.2:80"}, {"10.1.0.3:80"}, {"10.1.0.2:80", "10.1.0.3:80"}, True)


def test_external_local_policy_without_external_access_behaves_as_cluster() -> None:
    port = ServicePort(cluster_ips=("10.0.0.1",), port=80, external_policy_local=True)
    assert _cat([READY_LOCAL, READY_REMOTE], port)[1] == set()
