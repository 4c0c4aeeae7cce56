"""Pod networks in real namespaces. Each test makes node namespaces of its own cluster id and
calls PodNetwork on a thread inside one, as the kubelet runs inside its node's namespace."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from control.kubelet.network import NodeNetworkConfig, PodNetInfo, PodNetwork, PodNetworkError
from netplane.kernel import addresses, links, netns, routes
from netplane.kernel.exec import in_netns

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="creates network namespaces: needs root"),
              pytest.mark.root]

T = TypeVar("T")


def _host_network() -> list[str]:
    return [subprocess.run(["ip", "-o", *cmd], capture_output=True, text=True, check=True).stdout
            for cmd in (["link", "show"], ["addr", "show"], ["route", "show", "table", "all"])]


@pytest.fixture(autouse=True)
def host_untouched() -> Iterator[None]:
    before = _host_network()
    yield
    assert _host_network() == before, "the host namespace's links, addresses or routes changed"


class Node:
    """A node namespace and the PodNetwork that a kubelet inside it would have."""

    def __init__(self, cid: str, name: str, pod_cidr: str, state_dir: Path, bridge: str = "cbr0") -> None:
        self.netns = f"np-{cid}-{name}"
        netns.create(self.netns)
        self.net = PodNetwork(NodeNetworkConfig(cid, pod_cidr, state_dir, bridge))

    def call(self, fn: Callable[..., T], *args: object) -> T:
        return netns.run_in(self.netns, fn, *args)


@pytest.fixture
def cid() -> Iterator[str]:
    cid = uuid.uuid4().hex[:6]
    try:
        yield cid
    finally:
        for name in netns.names(f"np-{cid}-"):
            netns.delete(name)
        assert netns.names(f"np-{cid}-") == []


@pytest.fixture
def node(cid: str, tmp_path: Path) -> Node:
    n = Node(cid, "node-1", "10.244.1.0/24", tmp_path / "node-1")
    n.call(n.net.ensure_node_bridge)
    return n


# Answers the first connection with the address it came from; says "up" once listening.
WHO_AM_I_SERVER = ("import socket; s = socket.create_server(('0.0.0.0', 7000)); print('up', flush=True); "
                   "c, peer = s.accept(); c.sendall(peer[0].encode()); c.close()")
WHO_AM_I_CLIENT = ("import socket, sys; "
                   "print(socket.create_connection((sys.argv[1], 7000), timeout=5).recv(64).decode())")


def _uid() -> str:
    return str(uuid.uuid4())


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def test_a_pod_gets_eth0_with_its_address_lo_and_a_default_route_via_the_bridge(node: Node) -> None:
    uid = _uid()
    info = node.call(node.net.setup, uid, "default", "web-0")
    cid = node.net.node.cluster_id
    assert info == PodNetInfo(f"np-{cid}-p-{uid[:8]}", "10.244.1.2", "10.244.1.1", f"veth{uid[:8]}")
    with netns.ipr(info.netns) as pod:
        assert links.names(pod) == ["eth0", "lo"]
        assert links.is_up(pod, "eth0") and links.is_up(pod, "lo")
        assert addresses.list_ipv4(pod, "eth0") == ["10.244.1.2/24"]
        assert routes.gateway(pod, "default") == "10.244.1.1"

    def node_side() -> tuple[str | None, bool, bool, list[str]]:
        with netns.ipr(None) as h:
            return (links.master(h, info.veth_host), links.is_up(h, info.veth_host),
                    links.hairpin(h, info.veth_host), addresses.list_ipv4(h, "cbr0"))

    assert node.call(node_side) == ("cbr0", True, True, ["10.244.1.1/24"])
    assert node.net.ipam.held() == {"10.244.1.2": uid}


def test_setup_again_returns_the_same_network_and_puts_back_what_went_missing(node: Node) -> None:
    uid = _uid()
    info = node.call(node.net.setup, uid, "default", "web-0")
    assert node.call(node.net.setup, uid, "default", "web-0") == info
    with netns.ipr(info.netns) as pod:
        routes.delete(pod, "default")
        addresses.delete(pod, "eth0", info.ip, 24)
        links.down(pod, "lo")

    def detach() -> None:
        with netns.ipr(None) as h:
            links.detach(h, info.veth_host)

    node.call(detach)
    assert node.call(node.net.setup, uid) == info
    with netns.ipr(info.netns) as pod:
        assert addresses.list_ipv4(pod, "eth0") == ["10.244.1.2/24"]
        assert routes.gateway(pod, "default") == "10.244.1.1" and links.is_up(pod, "lo")
    assert node.call(_master, info.veth_host) == "cbr0"


def _master(ifname: str) -> str | None:
    with netns.ipr(None) as h:
        return links.master(h, ifname)


def test_two_pods_on_a_node_reach_each_other_without_nat(node: Node) -> None:
    a = node.call(node.net.setup, _uid())
    b = node.call(node.net.setup, _uid())
    assert a.ip != b.ip
    server = subprocess.Popen(in_netns(b.netns, [sys.executable, "-c", WHO_AM_I_SERVER]),
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "up"
        client = _run(in_netns(a.netns, [sys.executable, "-c", WHO_AM_I_CLIENT, b.ip]))
        assert client.stdout.strip() == a.ip, client.stderr
    finally:
        server.kill()
        server.wait()


@pytest.mark.skipif(shutil.which("ping") is None, reason="needs ping (apt-get install iputils-ping)")
def test_a_pod_pings_its_gateway(node: Node) -> None:
    info = node.call(node.net.setup, _uid())
    out = _run(in_netns(info.netns, ["ping", "-c", "1", "-W", "5", info.gateway]))
    assert out.returncode == 0, out.stdout + out.stderr


def test_teardown_removes_the_namespace_the_veth_and_the_address(node: Node) -> None:
    uid = _uid()
    info = node.call(node.net.setup, uid)
    node.call(node.net.teardown, uid)
    node.call(node.net.teardown, uid)  # idempotent
    assert not netns.exists(info.netns)
    assert node.call(_exists, info.veth_host) is False
    assert node.net.ipam.held() == {}
    assert node.call(node.net.list_pod_netns) == set()


def _exists(ifname: str) -> bool:
    with netns.ipr(None) as h:
        return links.exists(h, ifname)


def test_setup_makes_the_node_bridge_if_it_is_missing(cid: str, tmp_path: Path) -> None:
    n = Node(cid, "node-1", "10.244.5.0/24", tmp_path)
    info = n.call(n.net.setup, _uid())
    assert n.call(_master, info.veth_host) == "cbr0"


def test_a_failed_first_setup_leaves_nothing_behind(cid: str, tmp_path: Path) -> None:
    n = Node(cid, "node-1", "10.244.1.0/24", tmp_path, bridge="a-bridge-name-too-long")
    uid = _uid()
    with pytest.raises(ValueError, match="interface name"):
        n.call(n.net.setup, uid)
    assert not netns.exists(n.net.netns_name(uid))
    assert n.net.ipam.held() == {}


def test_each_node_lists_its_own_pods_only(cid: str, tmp_path: Path) -> None:
    one = Node(cid, "node-1", "10.244.1.0/24", tmp_path / "1")
    two = Node(cid, "node-2", "10.244.2.0/24", tmp_path / "2")
    uid1, uid2, uid3 = _uid(), _uid(), _uid()
    one.call(one.net.setup, uid1)
    one.call(one.net.setup, uid3)
    two.call(two.net.setup, uid2)
    assert one.call(one.net.list_pod_netns) == {uid1, uid3}
    assert two.call(two.net.list_pod_netns) == {uid2}
    # IPAM state lost (say, a wiped root dir): the namespace is still this node's, by its veth.
    one.net.ipam.release(uid3)
    assert one.call(one.net.list_pod_netns) == {uid1, uid3[:8]}
    assert one.call(one.net.leaked, {uid1}) == {uid3[:8]}
    assert one.call(one.net.leaked, {uid1, uid3}) == set()
    for leaked in one.call(one.net.leaked, {uid1}):
        one.call(one.net.teardown, leaked)
    assert one.call(one.net.list_pod_netns) == {uid1}
    assert netns.exists(two.net.netns_name(uid2))


def test_a_namespace_that_is_not_this_nodes_is_not_taken_over(cid: str, tmp_path: Path) -> None:
    one = Node(cid, "node-1", "10.244.1.0/24", tmp_path / "1")
    two = Node(cid, "node-2", "10.244.2.0/24", tmp_path / "2")
    theirs = two.call(two.net.setup, "abcdefgh-0000-0000-0000-000000000002")
    with pytest.raises(PodNetworkError, match="is not this node's"):
        one.call(one.net.setup, "abcdefgh-0000-0000-0000-000000000001", "default", "clash")
    assert one.net.ipam.held() == {}
    with netns.ipr(theirs.netns) as pod:
        assert addresses.list_ipv4(pod, "eth0") == [f"{theirs.ip}/24"]
