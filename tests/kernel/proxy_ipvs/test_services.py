"""IPVS mode against a real kernel's IPVS, inside user-mode Linux: the same node as the
other modes' integration tests (a real apiserver, a node namespace, three backend pods and
a client pod), with `netplane proxy --mode ipvs`. TCP, UDP, NodePort, ClientIP
persistence, scaling, endpoint loss, the spread over three real servers, graceful
termination of a removed endpoint, a flushed table repaired, and --cleanup."""

from __future__ import annotations

import collections
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from tests.integration.proxy.conftest import (
    DNS,
    HTTP,
    HTTP_PORT,
    SLICE_DNS,
    SLICE_HTTP,
    ProxyNode,
    endpoint_slice,
    eventually,
    http_get,
    service,
    udp_ask,
    udp_client_follows_replaced_endpoint,
)

pytestmark = [pytest.mark.uml, pytest.mark.root, pytest.mark.slow]

WEB_IP, DNS_IP, STICKY_IP, EMPTY_IP, NP_IP, SCALE_IP, DNS2_IP = (
    "10.96.2.20", "10.96.2.21", "10.96.2.22", "10.96.2.23", "10.96.2.24", "10.96.2.25", "10.96.2.26")
NETPLANE = [sys.executable, "-m", "netplane.cli.main"]
GRACE = 20  # --ipvs-termination-grace-period of the test proxy, seconds


def in_node(proxy: ProxyNode, *argv: str) -> str:
    return subprocess.run(["ip", "netns", "exec", proxy.netns, *argv], capture_output=True, text=True,
                          check=True).stdout


def ipvsadm(proxy: ProxyNode) -> str:
    return in_node(proxy, "ipvsadm", "-Ln")


def real_servers(proxy: ProxyNode, vip: str, port: int) -> dict[str, tuple[int, int, int]]:
    """ipvsadm's real servers of one virtual server: "ip:port" -> (weight, active, inactive)."""
    found = subprocess.run(["ip", "netns", "exec", proxy.netns, "ipvsadm", "-Ln", "-t", f"{vip}:{port}"],
                           capture_output=True, text=True)
    if found.returncode != 0:
        return {}  # no such virtual server
    out = found.stdout
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if parts[:1] == ["->"] and parts[1][0].isdigit():
            rows[parts[1]] = (int(parts[3]), int(parts[4]), int(parts[5]))
    return rows


@pytest.fixture(scope="module")
def proxy(node: ProxyNode, api: k8s.ApiClient) -> Iterator[ProxyNode]:
    core, discovery = k8s.CoreV1Api(api), k8s.DiscoveryV1Api(api)
    core.create_namespaced_service("default", service("web", WEB_IP, HTTP))
    discovery.create_namespaced_endpoint_slice("default", endpoint_slice(
        "web", [b.endpoint() for b in node.backends], SLICE_HTTP))
    # Debian's user-mode Linux kernel has no nf_tables NAT: legacy iptables.
    node.start_proxy("--iptables-variant", "legacy", "--ipvs-termination-grace-period", f"{GRACE}s",
                     mode="ipvs")
    yield node
    node.stop_proxy()
    subprocess.run(["ip", "netns", "exec", node.netns, *NETPLANE, "proxy", "--cleanup"], check=False)


def _answers(node: ProxyNode, ip: str, port: int, n: int) -> list[str]:
    assert node.client is not None
    return [node.client.run(http_get, ip, port) for _ in range(n)]


def test_the_cluster_ip_is_an_ipvs_virtual_server_bound_to_kube_ipvs0(proxy: ProxyNode) -> None:
    assert set(real_servers(proxy, WEB_IP, 80)) == {f"{b.ip}:{HTTP_PORT}" for b in proxy.backends}
    assert f"inet {WEB_IP}/32" in in_node(proxy, "ip", "-4", "addr", "show", "dev", "kube-ipvs0")
    assert f"{WEB_IP},tcp:80" in in_node(proxy, "ipset", "list", "KUBE-CLUSTER-IP")
    rules = [line for line in in_node(proxy, "iptables-legacy-save").splitlines()
             if "KUBE-CLUSTER-IP dst,dst" in line and "KUBE-MARK-MASQ" in line]
    assert len(rules) == 1 and "! -s 10.244.1.0/24" in rules[0], rules


def test_a_pod_reaches_every_backend_through_the_cluster_ip(proxy: ProxyNode) -> None:
    names = {b.name for b in proxy.backends}
    eventually(lambda: set(_answers(proxy, WEB_IP, 80, 9)) == names, "all backends to answer")


def test_300_new_connections_spread_evenly_over_the_three_real_servers(proxy: ProxyNode) -> None:
    assert proxy.client is not None
    counts = proxy.client.run(lambda: collections.Counter(http_get(WEB_IP, 80) for _ in range(300)))
    assert set(counts) == {b.name for b in proxy.backends}
    for name, count in counts.items():  # rr: exactly even, unless a retry slipped in
        assert 90 <= count <= 110, f"{name} got {count} of 300 connections: {dict(counts)}"


def test_status_lists_the_virtual_servers_with_their_connections(proxy: ProxyNode) -> None:
    _answers(proxy, WEB_IP, 80, 6)
    out = in_node(proxy, *NETPLANE, "proxy", "status")
    assert out.splitlines()[0].startswith("ipvs mode: ") and "VIRTUAL-SERVER" in out.splitlines()[1]
    row = next(line.split() for line in out.splitlines() if line.startswith(f"{WEB_IP}:80 "))
    assert row[1:5] == ["TCP", "rr", "-", "3"]
    assert int(row[5]) + int(row[6]) >= 1  # the connections just made, as ipvsadm counts them


def test_the_node_itself_reaches_the_cluster_ip(proxy: ProxyNode) -> None:
    from netplane.kernel import netns

    answers = {netns.run_in(proxy.netns, http_get, WEB_IP, 80) for _ in range(9)}
    assert answers == {b.name for b in proxy.backends}


def test_a_udp_service_answers(proxy: ProxyNode, api: k8s.ApiClient) -> None:
    core, discovery = k8s.CoreV1Api(api), k8s.DiscoveryV1Api(api)
    core.create_namespaced_service("default", service("dns", DNS_IP, DNS))
    discovery.create_namespaced_endpoint_slice("default", endpoint_slice(
        "dns", [b.endpoint() for b in proxy.backends], SLICE_DNS))
    assert proxy.client is not None
    client = proxy.client
    names = {b.name for b in proxy.backends}
    eventually(lambda: {client.run(udp_ask, DNS_IP, 53) for _ in range(9)} == names, "every backend over UDP")
    assert "UDP  10.96.2.21:53 rr" in ipvsadm(proxy)


def test_a_udp_client_follows_its_endpoint_when_it_is_replaced(proxy: ProxyNode, api: k8s.ApiClient) -> None:
    udp_client_follows_replaced_endpoint(proxy, api, "dns2", DNS2_IP)


def test_a_node_port_reaches_the_service(proxy: ProxyNode, api: k8s.ApiClient) -> None:
    core, discovery = k8s.CoreV1Api(api), k8s.DiscoveryV1Api(api)
    svc = core.create_namespaced_service("default", service("np", NP_IP, HTTP, type="NodePort"))
    discovery.create_namespaced_endpoint_slice("default", endpoint_slice(
        "np", [b.endpoint() for b in proxy.backends], SLICE_HTTP))
    node_port = svc.spec.ports[0].node_port
    eventually(lambda: set(_answers(proxy, proxy.gateway, node_port, 9)) == {b.name for b in proxy.backends},
               "every backend through the node port")
    assert f"{proxy.gateway}:{node_port}" in ipvsadm(proxy)
    assert str(node_port) in in_node(proxy, "ipset", "list", "KUBE-NODE-PORT-TCP")


def test_client_ip_persistence_pins_a_client(proxy: ProxyNode, api: k8s.ApiClient) -> None:
    core, discovery = k8s.CoreV1Api(api), k8s.DiscoveryV1Api(api)
    core.create_namespaced_service("default", service(
        "sticky", STICKY_IP, HTTP, sessionAffinity="ClientIP",
        sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}))
    discovery.create_namespaced_endpoint_slice("default", endpoint_slice(
        "sticky", [b.endpoint() for b in proxy.backends], SLICE_HTTP))
    first = eventually(lambda: _answers(proxy, STICKY_IP, 80, 1)[0], "the sticky service")
    assert set(_answers(proxy, STICKY_IP, 80, 12)) == {first}
    assert "TCP  10.96.2.22:80 rr persistent 60" in ipvsadm(proxy)


def test_scaling_down_and_up_follows_the_endpoints(proxy: ProxyNode, api: k8s.ApiClient) -> None:
    core, discovery = k8s.CoreV1Api(api), k8s.DiscoveryV1Api(api)
    b = proxy.backends
    core.create_namespaced_service("default", service("scale", SCALE_IP, HTTP))
    discovery.create_namespaced_endpoint_slice("default", endpoint_slice(
        "scale", [p.endpoint() for p in b], SLICE_HTTP))
    eventually(lambda: set(_answers(proxy, SCALE_IP, 80, 9)) == {p.name for p in b}, "three backends")
    discovery.patch_namespaced_endpoint_slice("scale-1", "default", {"endpoints": [b[0].endpoint()]})
    eventually(lambda: set(_answers(proxy, SCALE_IP, 80, 6)) == {b[0].name}, "only backend-0 (scaled to 1)")
    discovery.patch_namespaced_endpoint_slice("scale-1", "default", {"endpoints": [p.endpoint() for p in b]})
    eventually(lambda: set(_answers(proxy, SCALE_IP, 80, 9)) == {p.name for p in b}, "three again")


def test_a_service_that_loses_its_endpoints_refuses_connections(proxy: ProxyNode, api: k8s.ApiClient) -> None:
    core, discovery = k8s.CoreV1Api(api), k8s.DiscoveryV1Api(api)
    core.create_namespaced_service("default", service("empty", EMPTY_IP, HTTP))
    discovery.create_namespaced_endpoint_slice("default", endpoint_slice(
        "empty", [proxy.backends[0].endpoint()], SLICE_HTTP))
    eventually(lambda: _answers(proxy, EMPTY_IP, 80, 1) == [proxy.backends[0].name], "the service")
    discovery.patch_namespaced_endpoint_slice("empty-1", "default", {"endpoints": []})
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

    # No real server to schedule to: IPVS lets the packet through to the VIP, where nothing listens.
    eventually(refused, "connections to be refused")
    # What is left is the old real server draining its closed connections, weight 0.
    assert all(weight == 0 for weight, _, _ in real_servers(proxy, EMPTY_IP, 80).values())


def test_a_removed_endpoint_keeps_its_established_connection_until_it_closes(
        proxy: ProxyNode, api: k8s.ApiClient) -> None:
    discovery = k8s.DiscoveryV1Api(api)
    assert proxy.client is not None
    client = proxy.client

    def open_conn() -> tuple[socket.socket, str]:
        s = socket.create_connection((WEB_IP, 80), timeout=5)
        s.sendall(b"GET /hostname HTTP/1.1\r\nHost: t\r\n\r\n")
        return s, s.recv(65536).decode().rpartition("\r\n\r\n")[2]

    conn, served_by = client.run(open_conn)
    try:
        gone = next(b for b in proxy.backends if b.name == served_by)
        kept = [b for b in proxy.backends if b is not gone]
        discovery.patch_namespaced_endpoint_slice("web-1", "default",
                                                  {"endpoints": [b.endpoint() for b in kept]})
        key = f"{gone.ip}:{HTTP_PORT}"
        eventually(lambda: real_servers(proxy, WEB_IP, 80).get(key, (1,))[0] == 0, "the real server drained")
        time.sleep(6)  # past a drain check: an active connection keeps it
        weight, active, _ = real_servers(proxy, WEB_IP, 80)[key]
        assert (weight, active) == (0, 1)
        conn.sendall(b"GET /hostname HTTP/1.1\r\nHost: t\r\n\r\n")
        assert conn.recv(65536).decode().endswith(gone.name), "the established connection still works"
        assert gone.name not in _answers(proxy, WEB_IP, 80, 9), "no new connection goes to it"
    finally:
        conn.close()
    eventually(lambda: real_servers(proxy, WEB_IP, 80).get(key, (0, 1, 0))[1] == 0, "the connection to close")
    # Closed connections linger as inactive for the kernel's FIN/TIME_WAIT timeouts; the
    # grace period bounds the wait.
    eventually(lambda: key not in real_servers(proxy, WEB_IP, 80), "the drained real server deleted",
               timeout=GRACE + 30)
    everyone = {"endpoints": [b.endpoint() for b in proxy.backends]}
    discovery.patch_namespaced_endpoint_slice("web-1", "default", everyone)
    eventually(lambda: len(real_servers(proxy, WEB_IP, 80)) == 3, "the endpoint back")


def test_a_flushed_ipvs_table_is_rebuilt(proxy: ProxyNode) -> None:
    in_node(proxy, "ipvsadm", "-C")
    # The next periodic sync (--sync-period 10s) finds its virtual servers gone: a full sync.
    eventually(lambda: len(real_servers(proxy, WEB_IP, 80)) == 3, "the table rebuilt", timeout=60)
    assert set(_answers(proxy, WEB_IP, 80, 6)) == {b.name for b in proxy.backends}


def test_cleanup_after_a_crash_leaves_no_virtual_server_ipset_or_rule(proxy: ProxyNode) -> None:
    proxy.stop_proxy(signal.SIGKILL)
    assert WEB_IP in ipvsadm(proxy), "a dead IPVS proxy's table keeps serving"
    out = subprocess.run(["ip", "netns", "exec", proxy.netns, *NETPLANE, "proxy", "--cleanup"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "IPVS virtual servers" in out.stdout
    assert "TCP" not in ipvsadm(proxy) and "UDP" not in ipvsadm(proxy)
    assert in_node(proxy, "ipset", "list", "-n").strip() == ""
    assert "KUBE-" not in in_node(proxy, "iptables-legacy-save")
    assert "kube-ipvs0" not in in_node(proxy, "ip", "link")
