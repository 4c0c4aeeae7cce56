"""iptables mode against the real kernel: pods reach services through kube-proxy's chains,
new connections spread evenly, UDP clients follow a replaced endpoint (conntrack cleared),
a restart loses no established connection and duplicates nothing, --cleanup leaves no
KUBE-* chain."""

from __future__ import annotations

import collections
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from netplane.kernel import netns
from tests.integration.proxy.conftest import (
    HTTP,
    SLICE_HTTP,
    ProxyNode,
    endpoint_slice,
    eventually,
    http_get,
    service,
    udp_client_follows_replaced_endpoint,
)

pytestmark = pytest.mark.root

WEB_IP, DNS_IP, STICKY_IP = "10.96.1.20", "10.96.1.21", "10.96.1.22"
EMPTY_IP, NP_IP = "10.96.1.23", "10.96.1.24"
NETPLANE = [sys.executable, "-m", "netplane.cli.main"]


@pytest.fixture(scope="module")
def proxy(node: ProxyNode, api: k8s.ApiClient) -> Iterator[ProxyNode]:
    core, discovery = k8s.CoreV1Api(api), k8s.DiscoveryV1Api(api)
    core.create_namespaced_service("default", service("web", WEB_IP, HTTP))
    discovery.create_namespaced_endpoint_slice("default", endpoint_slice(
        "web", [b.endpoint() for b in node.backends], SLICE_HTTP))
    node.start_proxy(mode="iptables")
    yield node
    node.stop_proxy()


def _answers(node: ProxyNode, ip: str, port: int, n: int) -> list[str]:
    assert node.client is not None
    return [node.client.run(http_get, ip, port) for _ in range(n)]


def test_a_pod_reaches_every_backend_through_the_cluster_ip(proxy: ProxyNode) -> None:
    names = {b.name for b in proxy.backends}
    eventually(lambda: set(_answers(proxy, WEB_IP, 80, 30)) == names, "all backends to answer")


def test_3000_new_connections_spread_within_ten_percent_of_even(proxy: ProxyNode) -> None:
    assert proxy.client is not None

    def many() -> collections.Counter[str]:
        return collections.Counter(http_get(WEB_IP, 80) for _ in range(3000))

    counts = proxy.client.run(many)
    assert set(counts) == {b.name for b in proxy.backends}
    for name, count in counts.items():
        assert 900 <= count <= 1100, f"{name} got {count} of 3000 connections: {dict(counts)}"


def test_the_node_itself_reaches_the_cluster_ip(proxy: ProxyNode) -> None:
    answers = {netns.run_in(proxy.netns, http_get, WEB_IP, 80) for _ in range(30)}
    assert answers == {b.name for b in proxy.backends}


def test_a_node_port_reaches_the_service(proxy: ProxyNode, api: k8s.ApiClient) -> None:
    core, discovery = k8s.CoreV1Api(api), k8s.DiscoveryV1Api(api)
    svc = core.create_namespaced_service("default", service("np", NP_IP, HTTP, type="NodePort"))
    discovery.create_namespaced_endpoint_slice("default", endpoint_slice(
        "np", [b.endpoint() for b in proxy.backends], SLICE_HTTP))
    node_port = svc.spec.ports[0].node_port
    eventually(lambda: set(_answers(proxy, proxy.gateway, node_port, 30)) == {b.name for b in proxy.backends},
               "every backend through the node port")


def test_client_ip_affinity_pins_a_client(proxy: ProxyNode, api: k8s.ApiClient) -> None:
    core, discovery = k8s.CoreV1Api(api), k8s.DiscoveryV1Api(api)
    core.create_namespaced_service("default", service(
        "sticky", STICKY_IP, HTTP, sessionAffinity="ClientIP",
        sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}))
    discovery.create_namespaced_endpoint_slice("default", endpoint_slice(
        "sticky", [b.endpoint() for b in proxy.backends], SLICE_HTTP))
    first = eventually(lambda: _answers(proxy, STICKY_IP, 80, 1)[0], "the sticky service")
    assert set(_answers(proxy, STICKY_IP, 80, 12)) == {first}


def test_a_service_without_endpoints_is_rejected_at_once(proxy: ProxyNode, api: k8s.ApiClient) -> None:
    k8s.CoreV1Api(api).create_namespaced_service("default", service("empty", EMPTY_IP, HTTP))
    assert proxy.client is not None
    client = proxy.client

    def refused() -> bool:
        try:
            client.run(http_get, EMPTY_IP, 80, "/", 2.0)
        except ConnectionRefusedError:
            return True
        except OSError:
            return False
        return False

    eventually(refused, "connections to be refused (the filter table's REJECT)")
    assert '"default/empty:http has no endpoints"' in proxy.iptables_save()


def status_row(node: ProxyNode, service: str, *args: str) -> list[str]:
    """The status row of `service` right after some traffic to it (a sync rewrites
    KUBE-SERVICES and so resets its counters, in kube-proxy too)."""
    _answers(node, WEB_IP, 80, 5)
    out = subprocess.run(["ip", "netns", "exec", node.netns, *NETPLANE, "proxy", "status", *args],
                         capture_output=True, text=True, check=True).stdout
    return next(line.split() for line in out.splitlines() if line.startswith(service))


def test_status_reads_the_rules_back_with_their_counters(proxy: ProxyNode) -> None:
    row = eventually(lambda: (r := status_row(proxy, "default/web:http")) and int(r[4]) > 0 and r,
                     "counted packets")
    assert row[1:4] == [WEB_IP, "80", "3"]


def test_a_udp_client_follows_its_endpoint_when_it_is_replaced(proxy: ProxyNode, api: k8s.ApiClient) -> None:
    udp_client_follows_replaced_endpoint(proxy, api, "dns", DNS_IP)


def test_tables_flushed_behind_the_proxys_back_are_rebuilt(proxy: ProxyNode) -> None:
    names = {b.name for b in proxy.backends}
    for args in (["-t", "nat", "-F"], ["-t", "mangle", "-X", "KUBE-PROXY-CANARY"]):
        subprocess.run(["ip", "netns", "exec", proxy.netns, "iptables", *args], check=True)
    # The next periodic sync (--sync-period 10s here) finds the canary gone: a full sync.
    eventually(lambda: set(_answers(proxy, WEB_IP, 80, 30)) == names, "the service to answer again",
               timeout=60)


def test_a_restart_keeps_established_connections_and_duplicates_nothing(proxy: ProxyNode) -> None:
    assert proxy.client is not None
    before = proxy.iptables_save()

    def open_conn() -> socket.socket:
        s = socket.create_connection((WEB_IP, 80), timeout=5)
        s.sendall(b"GET /hostname HTTP/1.1\r\nHost: t\r\n\r\n")
        s.recv(65536)
        return s

    conn = proxy.client.run(open_conn)
    try:
        assert proxy.stop_proxy() == 0
        conn.sendall(b"GET /hostname HTTP/1.1\r\nHost: t\r\n\r\n")
        assert conn.recv(65536).startswith(b"HTTP/1.1 200"), "the rules serve while the proxy is down"
        proxy.start_proxy(mode="iptables")
        conn.sendall(b"GET /hostname HTTP/1.1\r\nHost: t\r\n\r\n")
        assert conn.recv(65536).startswith(b"HTTP/1.1 200"), "...and after it is back"
    finally:
        conn.close()
    after = proxy.iptables_save()
    assert sorted(before.splitlines()) == sorted(after.splitlines()) or _same_rules(before, after)
    for jump in ("-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES",
                 "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING"):
        assert after.count(jump) == 1, f"{jump!r} appears {after.count(jump)} times"


def _same_rules(a: str, b: str) -> bool:
    """Equal but for counters and comment lines."""
    def rules(text: str) -> list[str]:
        return sorted(line for line in text.splitlines() if line.startswith(("-A", ":")))
    return [r.split(" [")[0] for r in rules(a)] == [r.split(" [")[0] for r in rules(b)]


def test_cleanup_leaves_no_kube_chain(proxy: ProxyNode) -> None:
    assert proxy.stop_proxy() == 0
    assert "KUBE-SERVICES" in proxy.iptables_save(), "a stopped iptables proxy keeps its rules"
    out = subprocess.run(["ip", "netns", "exec", proxy.netns, *NETPLANE, "proxy", "--cleanup"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "KUBE-" not in proxy.iptables_save()
    assert "removed" in out.stdout
