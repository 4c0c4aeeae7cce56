"""--node-ip's default, read from a real network namespace built like a `netplane up` node
(underlay on eth0, pod bridge cbr0, no default route), and the one line `netplane kubelet`
stops with in a namespace that has no address to offer. The namespaces are removed after."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from control.kubelet.nodeip import HostAddress, choose_node_ip, read_host_network
from netplane.kernel import addresses, links, routes
from netplane.kernel import netns as ns

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0,
                                                   reason="builds network namespaces: needs root")]

POD_CIDR = "10.244.7.0/24"


@pytest.fixture
def prefix() -> Iterator[str]:
    name = f"np-ni{uuid.uuid4().hex[:4]}-"
    try:
        yield name
    finally:
        for leftover in ns.names(name):
            ns.delete(leftover)
    assert not ns.names(name), "network namespaces were left behind"


@pytest.fixture
def node_netns(prefix: str) -> str:
    name = prefix + "node"
    ns.create(name)
    with ns.ipr(name) as h:
        links.up(h, "lo")
        links.veth(h, "eth0", "peer0")
        addresses.ensure(h, "eth0", "10.255.0.11", 24)
        links.bridge(h, "cbr0")
        addresses.ensure(h, "cbr0", "10.244.7.1", 24)
        for ifname in ("eth0", "peer0"):
            links.up(h, ifname)
        routes.replace(h, "10.244.8.0/24", "10.255.0.12")  # another node's pods
    return name


def test_a_node_namespace_is_read_and_its_underlay_address_chosen(node_netns: str) -> None:
    found, table = ns.run_in(node_netns, read_host_network)
    assert HostAddress("lo", "127.0.0.1", scope=254) in found
    assert {a.ifname: a.address for a in found if a.scope == 0} == {"eth0": "10.255.0.11",
                                                                    "cbr0": "10.244.7.1"}
    assert {(r.dst, r.ifname) for r in table} >= {("10.255.0.0/24", "eth0"), ("10.244.8.0/24", "eth0")}
    assert choose_node_ip(found, table, apiserver_host="10.255.0.1", pod_cidr=POD_CIDR) == "10.255.0.11"


def test_the_kubelet_without_node_ip_in_a_namespace_without_addresses_stops_with_one_line(
        prefix: str, tmp_path: Path) -> None:
    name = prefix + "bare"
    ns.create(name)
    with ns.ipr(name) as h:
        links.up(h, "lo")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: node\n"
        "clusters: [{name: c, cluster: {server: 'https://10.255.0.1:6443',\n"
        "                               insecure-skip-tls-verify: true}}]\n"
        "users: [{name: u, user: {token: secret}}]\n"
        "contexts: [{name: node, context: {cluster: c, user: u}}]\n")
    argv = ["nsenter", f"--net={ns.path(name)}", "--", sys.executable, "-m", "netplane.cli.main", "kubelet",
            "--kubeconfig", str(kubeconfig), "--node-name", "node-1", "--pod-cidr", POD_CIDR,
            "--root-dir", str(tmp_path / "root")]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.startswith("netplane kubelet: --node-ip not given") and done.stderr.count("\n") == 1
