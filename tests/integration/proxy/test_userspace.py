"""Userspace mode against the real kernel: pods reach services through REDIRECT portals
and the proxy's listeners, over TCP and UDP, with kube-proxy's semantics."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from tests.integration.proxy.conftest import (
    HTTP,
    HTTP_PORT,
    SLICE_HTTP,
    UDP_PORT,
    ProxyNode,
    endpoint_slice,
    eventually,
    http_get,
    service,
    udp_ask,
)

pytestmark = pytest.mark.root

WEB_IP, DNS_IP, STICKY_IP, EMPTY_IP, NODEPORT_IP, LOCAL_IP, EXT_CLUSTER_IP = (
    "10.96.0.20", "10.96.0.21", "10.96.0.22", "10.96.0.23", "10.96.0.24", "10.96.0.25", "10.96.0.26")
LB_IP = "10.96.0.27"
EXTERNAL_IP = "192.0.2.10"  # TEST-NET-1: routed to the node by the client pod's default route


@pytest.fixture(scope="module")
def proxy(node: ProxyNode, api: k8s.ApiClient) -> Iterator[ProxyNode]:
    core, discovery = k8s.CoreV1Api(api), k8s.DiscoveryV1Api(api)
    core.create_namespaced_service("default", service("web", WEB_IP, HTTP))
    discovery.create_namespaced_endpoint_slice("default", endpoint_slice(
        "web", [b.endpoint() for b in node.backends], SLICE_HTTP))
    node.start_proxy()
    yield node
    assert node.stop_proxy() == 0, node.log_tail()


def _answers(node: ProxyNode, ip: str, port: int, n: int) -> list[str]:
    assert node.client is not None
    return [node.client.run(http_get, ip, port) for _ in range(n)]


def test_a_pod_reaches_a_service_by_cluster_ip_and_every_backend_answers_in_turn(proxy: ProxyNode) -> None:
    names = {b.name for b in proxy.backends}
    first = eventually(lambda: _answers(proxy, WEB_IP, 80, 3), "the service to answer")
    assert set(first) == names, "three connections in a row go to three different backends"
    assert _answers(proxy, WEB_IP, 80, 3) == first, "the rotation repeats in the same order"


def test_status_lists_the_listeners_the_running_proxy_holds(proxy: ProxyNode) -> None:
    out = subprocess.run(["ip", "netns", "exec", proxy.netns, sys.executable, "-m", "netplane.cli.main",
                          "proxy", "status"], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    assert lines[0].startswith("userspace mode: ") and lines[1].split()[:3] == ["SERVICE", "KIND", "ADDRESS"]
    row = next(line.split() for line in lines if line.startswith("default/web:http "))
    assert row[1:6] == ["cluster-IP", WEB_IP, "80", "TCP", "-"]
    assert sorted(row[6].split(",")) == sorted(f"{b.ip}:{HTTP_PORT}" for b in proxy.backends)


def test_the_node_itself_reaches_the_cluster_ip(proxy: ProxyNode) -> None:
    from netplane.kernel import netns

    answers = {netns.run_in(proxy.netns, http_get, WEB_IP, 80) for _ in range(3)}
    assert answers == {b.name for b in proxy.backends}


def test_udp_datagrams_reach_every_backend_in_turn(proxy: ProxyNode, api: k8s.ApiClient) -> None:
    core, discovery = k8s.CoreV1Api(api), k8s.DiscoveryV1Api(api)
    core.create_namespaced_service("default", service(
        "dns", DNS_IP, [{"name": "dns", "port": 53, "targetPort": UDP_PORT, "protocol": "UDP"}]))
    slice_ports = [{"name": "dns", "port": UDP_PORT, "protocol": "UDP"}]
    discovery.create_namespaced_endpoint_slice("default", endpoint_slice(
        "dns", [b.endpoint() for b in proxy.backends], slice_ports))
    assert proxy.client is not None
    client = proxy.client
    eventually(lambda: client.run(udp_ask, DNS_IP, 53), "the UDP service to answer")
    answers = {client.run(udp_ask, DNS_IP, 53) for _ in range(3)}
    assert answers == {b.name for b in proxy.backends}


def test_a_udp_client_keeps_its_backend_while_its_association_lives(proxy: ProxyNode) -> None:
    assert proxy.client is not None

    def conversation() -> list[str]:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(2)
            out = []
            for _ in range(4):
                s.sendto(b"hostname", (DNS_IP, 53))
                out.append(s.recv(100).decode())
            return out

    answers = proxy.client.run(conversation)
    assert len(set(answers)) == 1, "datagrams of one client socket stay on one backend"


def test_client_ip_affinity_pins_a_client_until_the_timeout(proxy: ProxyNode, api: k8s.ApiClient) -> None:
    core, discovery = k8s.CoreV1Api(api), k8s.DiscoveryV1Api(api)
    core.create_namespaced_service("default", service(
        "sticky", STICKY_IP, HTTP, sessionAffinity="ClientIP",
        sessionAffinityConfig={"clientIP": {"timeoutSeconds": 2}}))
    discovery.create_namespaced_endpoint_slice("default", endpoint_slice(
        "sticky", [b.endpoint() for b in proxy.backends], SLICE_HTTP))
    first = eventually(lambda: _answers(proxy, STICKY_IP, 80, 1)[0], "the sticky service to answer")
    assert set(_answers(proxy, STICKY_IP, 80, 5)) == {first}
    time.sleep(2.5)  # the affinity timeout passes without a connection
    assert _answers(proxy, STICKY_IP, 80, 1)[0] != first, "after the timeout the rotation moves on"


def test_a_service_without_endpoints_refuses_connections(proxy: ProxyNode, api: k8s.ApiClient) -> None:
    k8s.CoreV1Api(api).create_namespaced_service("default", service("empty", EMPTY_IP, HTTP))
    assert proxy.client is not None
    client = proxy.client

    def refused() -> bool:
        try:
            client.run(http_get, EMPTY_IP, 80)
        except ConnectionResetError:
            return True
        except OSError:
            return False
        return False

    # Before the proxy knows the service the connection times out or is refused by the
    # kernel; once it does, the proxy accepts and resets at once.
    eventually(refused, "the connection to be reset")


def test_a_node_port_reaches_the_service_from_a_pod(proxy: ProxyNode, api: k8s.ApiClient) -> None:
    core, discovery = k8s.CoreV1Api(api), k8s.DiscoveryV1Api(api)
    svc = core.create_namespaced_service("default", service(
        "np", NODEPORT_IP, HTTP, type="NodePort"))
    node_port = svc.spec.ports[0].node_port
    discovery.create_namespaced_endpoint_slice("default", endpoint_slice(
        "np", [b.endpoint() for b in proxy.backends], SLICE_HTTP))
    eventually(lambda: _answers(proxy, proxy.gateway, node_port, 1), "the node port to answer")
    assert set(_answers(proxy, proxy.gateway, node_port, 3)) == {b.name for b in proxy.backends}


def test_internal_traffic_policy_local_uses_only_this_nodes_endpoints(
        proxy: ProxyNode, api: k8s.ApiClient) -> None:
    core, discovery = k8s.CoreV1Api(api), k8s.DiscoveryV1Api(api)
    core.create_namespaced_service("default", service("local", LOCAL_IP, HTTP, internalTrafficPolicy="Local"))
    b = proxy.backends
    discovery.create_namespaced_endpoint_slice("default", endpoint_slice(
        "local", [b[0].endpoint(), b[1].endpoint(node="node-2"), b[2].endpoint(node="node-2")], SLICE_HTTP))
    eventually(lambda: _answers(proxy, LOCAL_IP, 80, 1), "the local service to answer")
    assert set(_answers(proxy, LOCAL_IP, 80, 4)) == {b[0].name}


def test_external_traffic_policy_local_serves_node_ports_from_local_endpoints_and_says_so(
        proxy: ProxyNode, api: k8s.ApiClient) -> None:
    core, discovery = k8s.CoreV1Api(api), k8s.DiscoveryV1Api(api)
    svc = core.create_namespaced_service("default", service(
        "lb", LB_IP, HTTP, type="LoadBalancer", externalTrafficPolicy="Local"))
    node_port, health_port = svc.spec.ports[0].node_port, svc.spec.health_check_node_port
    assert health_port, "the apiserver allocates a health-check node port"
    b = proxy.backends
    discovery.create_namespaced_endpoint_slice("default", endpoint_slice(
        "lb", [b[0].endpoint(), b[1].endpoint(node="node-2"), b[2].endpoint(node="node-2")], SLICE_HTTP))
    eventually(lambda: _answers(proxy, proxy.gateway, node_port, 1), "the node port to answer")
    assert set(_answers(proxy, proxy.gateway, node_port, 4)) == {b[0].name}, "external traffic: local only"
    assert set(_answers(proxy, LB_IP, 80, 3)) == {x.name for x in b}, "cluster traffic: every endpoint"
    status, body = eventually(lambda: proxy.http(health_port, "/"), "the health-check node port")
    assert status == 200 and '"localEndpoints": 1' in body
    _slice_endpoints(api, "lb", [b[1].endpoint(node="node-2")])
    eventually(lambda: proxy.http(health_port, "/")[0] == 503, "503 once no endpoint is local")


def _slice_endpoints(api: k8s.ApiClient, name: str, endpoints: list[dict[str, Any]]) -> None:
    k8s.DiscoveryV1Api(api).patch_namespaced_endpoint_slice(f"{name}-1", "default", {"endpoints": endpoints})


def test_removing_an_endpoint_closes_only_its_connections(proxy: ProxyNode, api: k8s.ApiClient) -> None:
    assert proxy.client is not None
    b = proxy.backends

    def open_kept_alive() -> list[tuple[socket.socket, str]]:
        conns = []
        for _ in range(3):
            s = socket.create_connection((WEB_IP, 80), timeout=5)
            s.sendall(b"GET /hostname HTTP/1.1\r\nHost: t\r\n\r\n")
            data = s.recv(65536)
            conns.append((s, data.rsplit(b"\r\n\r\n", 1)[1].decode()))
        return conns

    conns = proxy.client.run(open_kept_alive)
    by_backend = {name: s for s, name in conns}
    assert set(by_backend) == {x.name for x in b}
    try:
        _slice_endpoints(api, "web", [b[0].endpoint(), b[1].endpoint()])

        def closed(s: socket.socket) -> bool:
            s.settimeout(0.2)
            try:
                return s.recv(1) == b""
            except TimeoutError:
                return False
            except ConnectionResetError:
                return True

        eventually(lambda: closed(by_backend[b[2].name]), "the removed endpoint's connection to close")
        for kept in (b[0].name, b[1].name):
            s = by_backend[kept]
            s.settimeout(5)
            s.sendall(b"GET /hostname HTTP/1.1\r\nHost: t\r\n\r\n")
            assert s.recv(65536).endswith(kept.encode()), "connections to remaining endpoints keep working"
        assert set(_answers(proxy, WEB_IP, 80, 4)) == {b[0].name, b[1].name}
    finally:
        for s, _ in conns:
            s.close()
        _slice_endpoints(api, "web", [x.endpoint() for x in b])
    eventually(lambda: set(_answers(proxy, WEB_IP, 80, 3)) == {x.name for x in b}, "all three back")


def test_terminating_but_serving_endpoints_serve_when_none_is_ready(
        proxy: ProxyNode, api: k8s.ApiClient) -> None:
    b = proxy.backends
    try:
        _slice_endpoints(api, "web", [b[0].endpoint(ready=False, serving=True, terminating=True),
                                      b[1].endpoint(ready=False, serving=False, terminating=True)])
        eventually(lambda: set(_answers(proxy, WEB_IP, 80, 3)) == {b[0].name},
                   "only the serving terminating endpoint to answer")
    finally:
        _slice_endpoints(api, "web", [x.endpoint() for x in b])
    eventually(lambda: set(_answers(proxy, WEB_IP, 80, 3)) == {x.name for x in b}, "all three back")


def test_healthz_and_metrics_speak_kube_proxys_language(proxy: ProxyNode) -> None:
    status, body = proxy.http(10256, "/healthz")
    assert status == 200 and '"nodeEligible": true' in body
    assert proxy.http(10256, "/livez")[0] == 200
    assert proxy.metric("kubeproxy_sync_proxy_rules_duration_seconds_count") >= 1
    assert proxy.metric("kubeproxy_network_programming_duration_seconds_count") >= 1
    assert proxy.metric("kubeproxy_sync_proxy_rules_endpoint_changes_total") >= 1


def test_cluster_ips_are_labelled_local_addresses_and_external_ips_have_portals(
        proxy: ProxyNode, api: k8s.ApiClient) -> None:
    assert f"inet {WEB_IP}/32 scope host lo:netplane" in proxy.addresses()
    core, discovery = k8s.CoreV1Api(api), k8s.DiscoveryV1Api(api)
    core.create_namespaced_service("default", service("ext", EXT_CLUSTER_IP, HTTP, externalIPs=[EXTERNAL_IP]))
    discovery.create_namespaced_endpoint_slice("default", endpoint_slice(
        "ext", [b.endpoint() for b in proxy.backends], SLICE_HTTP))
    eventually(lambda: _answers(proxy, EXTERNAL_IP, 80, 1), "the external IP to answer")
    assert set(_answers(proxy, EXTERNAL_IP, 80, 3)) == {b.name for b in proxy.backends}
    rules = proxy.iptables_save()
    assert "-A PREROUTING -m comment --comment \"handle ClusterIPs; NOTE: this must be before the " \
           "NodePort rules\" -j KUBE-PORTALS-CONTAINER" in rules
    assert f"-A KUBE-PORTALS-CONTAINER -d {EXTERNAL_IP}/32 -p tcp -m comment --comment \"default/ext:http " \
           "external IP\" -m tcp --dport 80 -j REDIRECT --to-ports" in rules
    assert WEB_IP not in rules, "ClusterIPs need no rule: they are local addresses"


def test_a_restarted_proxy_replaces_its_state_and_cleanup_removes_it(proxy: ProxyNode) -> None:
    before = proxy.iptables_save()
    assert proxy.stop_proxy() == 0
    assert "KUBE-PORTALS-CONTAINER -d" not in proxy.iptables_save(), "a stopped proxy leaves no portals"
    assert "lo:netplane" not in proxy.addresses(), "...and no ClusterIP addresses"
    proxy.start_proxy()
    eventually(lambda: len(set(_answers(proxy, WEB_IP, 80, 3))) == 3, "the service to answer again")
    after = proxy.iptables_save()
    assert after.count("KUBE-PORTALS-CONTAINER -d") == before.count("KUBE-PORTALS-CONTAINER -d")
    assert proxy.stop_proxy(9) == -9  # a crash leaves its state...
    assert "KUBE-PORTALS-CONTAINER -d" in proxy.iptables_save() and "lo:netplane" in proxy.addresses()
    cleanup = subprocess.run(["ip", "netns", "exec", proxy.netns, *proxy_cli(), "proxy", "--cleanup"],
                             capture_output=True, text=True)
    assert cleanup.returncode == 0, cleanup.stderr
    assert "KUBE-PORTALS" not in proxy.iptables_save(), "...and --cleanup removes the portals"
    assert "lo:netplane" not in proxy.addresses(), "...and the addresses"
    proxy.start_proxy()


def proxy_cli() -> list[str]:
    import sys

    return [sys.executable, "-m", "netplane.cli.main"]
