"""The one-machine cluster network, in real namespaces: pods on two nodes reach each other
and the control plane's underlay listener; teardown leaves the host as it was."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from control.cluster.network import ClusterNetwork, NodeSpec, listen_in_netns

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="creates network namespaces: needs root"),
              pytest.mark.root]

SETUP_POD = """
import sys
from pathlib import Path
from control.kubelet.network import NodeNetworkConfig, PodNetwork
net = PodNetwork(NodeNetworkConfig(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
net.ensure_node_bridge()
info = net.setup(sys.argv[4])
assert net.setup(sys.argv[4]) == info  # idempotent
print(info.ip, info.netns)
"""


def _host() -> tuple[str, str]:
    return (subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout,
            subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout.count("\n"))


@pytest.fixture
def network() -> Iterator[ClusterNetwork]:
    before = _host()
    net = ClusterNetwork(uuid.uuid4().hex[:6], [NodeSpec("node-1", 1, "10.244.1.0/24"),
                                                NodeSpec("node-2", 2, "10.244.2.0/24")])
    try:
        net.create()
        yield net
    finally:
        net.destroy()
        assert _host() == before, "the host's namespaces or links changed"


def _in_node(net: ClusterNetwork, node: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nsenter", f"--net=/run/netns/{net.node_netns(node)}", "--", *argv],
                          capture_output=True, text=True, timeout=30, cwd=Path(__file__).parents[3])


def _in_ns(name: str, code: str) -> list[str]:
    return ["nsenter", f"--net=/run/netns/{name}", "--", sys.executable, "-c", code]


def test_pods_on_two_nodes_and_the_underlay_reach_each_other(network: ClusterNetwork, tmp_path: Path) -> None:
    pods = []
    for node, cidr in (("node-1", "10.244.1.0/24"), ("node-2", "10.244.2.0/24")):
        out = _in_node(network, node, sys.executable, "-c", SETUP_POD, network.cluster_id, cidr,
                       str(tmp_path / node), f"{node}-uid-{uuid.uuid4().hex[:8]}")
        assert out.returncode == 0, out.stderr
        pods.append(out.stdout.split())
    (ip_a, ns_a), (ip_b, ns_b) = pods
    assert ip_a.startswith("10.244.1.") and ip_b.startswith("10.244.2.")
    server = subprocess.Popen(_in_ns(ns_b, "import socket; s = socket.create_server(('0.0.0.0', 7000)); "
                                     "c, a = s.accept(); c.sendall(a[0].encode())"))
    try:
        code = (f"import socket, time\nfor _ in range(50):\n    try:\n"
                f"        c = socket.create_connection(('{ip_b}', 7000), timeout=2)\n"
                f"        print(c.recv(64).decode()); break\n"
                f"    except OSError: time.sleep(0.1)")
        client = subprocess.run(_in_ns(ns_a, code), capture_output=True, text=True, timeout=30)
        assert client.stdout.strip() == ip_a, client.stderr  # no NAT between pods
    finally:
        server.kill()
        server.wait()
    listener = listen_in_netns(network.underlay_netns, "10.255.0.1", 6443)
    try:
        reach = subprocess.run(_in_ns(ns_b, "import socket; socket.create_connection(('10.255.0.1', 6443), "
                                      "timeout=5); print('ok')"), capture_output=True, text=True, timeout=30)
        assert reach.stdout.strip() == "ok", reach.stderr
    finally:
        listener.close()
