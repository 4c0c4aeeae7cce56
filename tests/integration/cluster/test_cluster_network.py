"""The one-machine cluster network in real namespaces: two nodes on the underlay, a pod on
each, pods that reach each other and the control plane's underlay listener, and a teardown
that leaves the host as it was."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from control.cluster.network import ClusterNetwork, NodeSpec, listen_in_netns
from control.kubelet.network import NodeNetworkConfig, PodNetInfo, PodNetwork
from netplane.kernel import addresses, links, netns, routes, sysctl
from netplane.kernel.exec import in_netns, in_pod

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="creates network namespaces: needs root"),
              pytest.mark.root]

NODES = [NodeSpec("node-1", 1, "10.244.1.0/24"), NodeSpec("node-2", 2, "10.244.2.0/24")]

# Echoes every line back; says "up" once listening.
ECHO_SERVER = """
import socket
s = socket.create_server(("0.0.0.0", 7000))
print("up", flush=True)
c, peer = s.accept()
f = c.makefile("rwb")
for line in f:
    f.write(peer[0].encode() + b" " + line)
    f.flush()
"""
ECHO_CLIENT = """
import socket, sys
c = socket.create_connection((sys.argv[1], 7000), timeout=5)
f = c.makefile("rwb")
f.write(b"hello\\n")
f.flush()
print(f.readline().decode().strip())
"""


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True).stdout


def _ours(cid: str) -> list[str]:
    return [n for n in _ip("netns", "list").split() if n.startswith(f"np-{cid}-")]


@pytest.fixture
def cluster() -> Iterator[ClusterNetwork]:
    cid = uuid.uuid4().hex[:6]
    host_links, mine = _ip("-o", "link", "show"), _ours(cid)
    net = ClusterNetwork(cid, NODES)
    try:
        net.create()
        yield net
    finally:
        ClusterNetwork(cid, []).destroy()
        # Other test runs may add and remove namespaces of their own meanwhile: ours are
        # compared, and the host's links in full.
        assert _ours(cid) == mine == []
        assert _ip("-o", "link", "show") == host_links, "the host's links changed"


def _pod(net: ClusterNetwork, node: NodeSpec, state: Path) -> PodNetInfo:
    pods = PodNetwork(NodeNetworkConfig(net.cluster_id, node.pod_cidr, state / node.name))
    node_ns = net.node_netns(node.name)
    netns.run_in(node_ns, pods.ensure_node_bridge)
    return netns.run_in(node_ns, pods.setup, str(uuid.uuid4()), "default", f"pod-on-{node.name}")


def test_create_wires_every_node_to_the_underlay_with_routes_to_the_others(cluster: ClusterNetwork) -> None:
    cluster.create()  # a second time: idempotent
    with netns.ipr(cluster.underlay_netns) as u:
        assert addresses.list_ipv4(u, "br0") == ["10.255.0.1/24"]
        assert [links.master(u, p) for p in ("u1", "u2")] == ["br0", "br0"]
        assert routes.gateway(u, "10.244.2.0/24") == "10.255.0.12"
    for node, other in ((NODES[0], NODES[1]), (NODES[1], NODES[0])):
        name = cluster.node_netns(node.name)
        with netns.ipr(name) as n:
            assert links.names(n) == ["eth0", "lo"] and links.is_up(n, "eth0") and links.is_up(n, "lo")
            assert addresses.list_ipv4(n, "eth0") == [f"{node.underlay_ip}/24"]
            assert routes.gateway(n, other.pod_cidr) == other.underlay_ip
        assert sysctl.read(name, "net.ipv4.ip_forward") == "1"
    assert cluster.all_netns() == sorted(
        [cluster.underlay_netns, cluster.node_netns("node-1"), cluster.node_netns("node-2")])


def test_pods_on_two_nodes_talk_over_tcp_without_nat(cluster: ClusterNetwork, tmp_path: Path) -> None:
    a, b = _pod(cluster, NODES[0], tmp_path), _pod(cluster, NODES[1], tmp_path)
    assert a.ip.startswith("10.244.1.") and b.ip.startswith("10.244.2.")
    (tmp_path / "resolv.conf").write_text("nameserver 10.96.0.10\n")
    server = subprocess.Popen(in_pod(b.netns, [sys.executable, "-c", ECHO_SERVER],
                                     {str(tmp_path / "resolv.conf"): "/etc/resolv.conf"}, "pod-b"),
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "up"
        client = subprocess.run(in_pod(a.netns, [sys.executable, "-c", ECHO_CLIENT, b.ip]),
                                capture_output=True, text=True, timeout=30)
        assert client.stdout.strip() == f"{a.ip} hello", client.stderr
    finally:
        server.kill()
        server.wait()


@pytest.mark.skipif(shutil.which("ping") is None, reason="needs ping (apt-get install iputils-ping)")
def test_a_pod_pings_a_pod_on_the_other_node(cluster: ClusterNetwork, tmp_path: Path) -> None:
    a, b = _pod(cluster, NODES[0], tmp_path), _pod(cluster, NODES[1], tmp_path)
    out = subprocess.run(in_netns(a.netns, ["ping", "-c", "1", "-W", "5", b.ip]),
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_listener_made_in_the_underlay_accepts_nodes_and_pods(
        cluster: ClusterNetwork, tmp_path: Path) -> None:
    pod = _pod(cluster, NODES[1], tmp_path)
    listener = listen_in_netns(cluster.underlay_netns, "10.255.0.1", 6443)
    try:
        assert listener.get_inheritable()
        conn = netns.run_in(cluster.node_netns("node-1"), socket.create_connection, ("10.255.0.1", 6443), 5)
        conn.close()
        accepted, (peer, _) = listener.accept()
        accepted.close()
        assert peer == NODES[0].underlay_ip
        code = "import socket; socket.create_connection(('10.255.0.1', 6443), timeout=5)"
        out = subprocess.run(in_netns(pod.netns, [sys.executable, "-c", code]),
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        accepted, (peer, _) = listener.accept()
        accepted.close()
        assert peer == pod.ip  # routed back to the pod directly, no NAT
    finally:
        listener.close()


def test_destroy_from_the_cluster_id_alone_removes_nodes_and_the_pods_left_behind(
        cluster: ClusterNetwork, tmp_path: Path) -> None:
    pods = [_pod(cluster, node, tmp_path) for node in NODES]
    removed = ClusterNetwork(cluster.cluster_id, []).destroy()
    assert sorted(removed) == sorted([cluster.underlay_netns, *(cluster.node_netns(n.name) for n in NODES),
                                      *(p.netns for p in pods)])
    assert _ours(cluster.cluster_id) == []
    assert ClusterNetwork(cluster.cluster_id, []).destroy() == []


@pytest.mark.parametrize(("cid", "nodes"), [
    ("a-b", NODES),
    ("abc", [NodeSpec("underlay", 1, "10.244.1.0/24")]),
    ("abc", [NodeSpec("p-1", 1, "10.244.1.0/24")]),
    ("abc", [NodeSpec("node-1", 1, "10.244.1.0/24"), NodeSpec("node-2", 1, "10.244.2.0/24")]),
    ("abc", [NodeSpec("node-1", 1, "10.244.1.5/24")]),
])
def test_names_and_addresses_that_would_clash_are_refused(cid: str, nodes: list[NodeSpec]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        ClusterNetwork(cid, nodes)
