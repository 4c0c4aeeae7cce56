"""The kubelet's address when --node-ip is not given: a global IPv4 address of its own
namespace, preferring the interface that leads to the apiserver, then the default route's;
never loopback, link-local, a down interface or the pod bridge's gateway."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from control.kubelet import nodeip
from control.kubelet.nodeip import HostAddress, HostRoute, choose_node_ip
from netplane.cli import kubelet as cli
from netplane.cli.kubelet import default_node_ip
from netplane.cli.main import CliError, main

POD_CIDR = "10.244.1.0/24"
LOOPBACK = HostAddress("lo", "127.0.0.1", scope=254)

# What `netplane up` builds in a node namespace: the underlay on eth0, the pod bridge on cbr0,
# routes to the other nodes' pod CIDRs, no default route.
NODE_NETNS = (
    [LOOPBACK, HostAddress("eth0", "10.255.0.11"), HostAddress("cbr0", "10.244.1.1")],
    [HostRoute("10.255.0.0/24", "eth0"), HostRoute("10.244.1.0/24", "cbr0"),
     HostRoute("10.244.2.0/24", "eth0")],
)


def test_a_node_namespace_offers_its_underlay_address_not_the_pod_bridges() -> None:
    addresses, routes = NODE_NETNS
    assert choose_node_ip(addresses, routes, apiserver_host="10.255.0.1", pod_cidr=POD_CIDR) == "10.255.0.11"
    # Listed first, the bridge still loses: the pod CIDR's gateway is the pods' address.
    bridge_first = [addresses[2], addresses[1]]
    assert choose_node_ip(bridge_first, routes, pod_cidr=POD_CIDR) == "10.255.0.11"


def test_the_interface_of_the_route_to_the_apiserver_wins_over_the_default_routes() -> None:
    addresses = [HostAddress("eth0", "192.0.2.5"), HostAddress("eth1", "10.0.0.5")]
    routes = [HostRoute("0.0.0.0/0", "eth0"), HostRoute("10.0.0.0/8", "eth1"),
              HostRoute("10.9.0.0/16", "eth0")]
    assert choose_node_ip(addresses, routes, apiserver_host="10.1.2.3") == "10.0.0.5"
    assert choose_node_ip(addresses, routes, apiserver_host="10.9.0.1") == "192.0.2.5"  # longest prefix


def test_without_a_usable_apiserver_address_the_default_routes_interface_wins() -> None:
    addresses = [HostAddress("eth1", "10.0.0.5"), HostAddress("eth0", "192.0.2.5")]
    routes = [HostRoute("10.0.0.0/8", "eth1"), HostRoute("0.0.0.0/0", "eth0")]
    for host in ("127.0.0.1", "api.example", "", "::1", "2001:db8::1"):
        assert choose_node_ip(addresses, routes, apiserver_host=host) == "192.0.2.5", host


def test_without_any_preferred_interface_the_first_usable_address_wins() -> None:
    addresses = [LOOPBACK, HostAddress("eth1", "10.0.0.5"), HostAddress("eth0", "192.0.2.5")]
    assert choose_node_ip(addresses, []) == "10.0.0.5"


def test_loopback_link_local_host_scoped_and_down_interfaces_are_never_chosen() -> None:
    addresses = [LOOPBACK, HostAddress("eth0", "169.254.3.4"), HostAddress("eth1", "10.0.0.5", scope=253),
                 HostAddress("eth2", "10.0.0.6", up=False), HostAddress("eth3", "127.0.0.2")]
    routes = [HostRoute("0.0.0.0/0", "eth2")]
    assert choose_node_ip(addresses, routes) is None
    assert choose_node_ip([*addresses, HostAddress("eth4", "10.0.0.7")], routes) == "10.0.0.7"


def test_a_preferred_interface_without_a_usable_address_falls_back_to_the_first_usable_one() -> None:
    addresses = [HostAddress("eth0", "169.254.1.1"), HostAddress("eth1", "10.0.0.5")]
    routes = [HostRoute("0.0.0.0/0", "eth0")]
    assert choose_node_ip(addresses, routes) == "10.0.0.5"


def test_the_apiserver_host_is_taken_from_the_kubeconfigs_server_url() -> None:
    addresses = [HostAddress("eth0", "192.0.2.5"), HostAddress("eth1", "10.0.0.5")]
    routes = [HostRoute("0.0.0.0/0", "eth0"), HostRoute("10.0.0.0/8", "eth1")]
    assert default_node_ip("https://10.1.2.3:6443", "", read=lambda: (addresses, routes)) == "10.0.0.5"


def test_no_address_is_one_line_that_says_to_pass_node_ip() -> None:
    with pytest.raises(CliError, match=r"--node-ip not given .* pass --node-ip") as info:
        default_node_ip("https://10.255.0.1:6443", POD_CIDR, read=lambda: ([LOOPBACK], []))
    assert "\n" not in str(info.value)


def test_an_unreadable_network_is_one_line_too() -> None:
    def broken() -> Any:
        raise PermissionError(1, "Operation not permitted")

    with pytest.raises(CliError, match=r"cannot be read \(Operation not permitted\); pass --node-ip"):
        default_node_ip("https://10.255.0.1:6443", POD_CIDR, read=broken)


# -- the flag ------------------------------------------------------------------------------


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "node.kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: node\n"
        "clusters: [{name: c, cluster: {server: 'https://10.255.0.1:6443',\n"
        "                               insecure-skip-tls-verify: true}}]\n"
        "users: [{name: u, user: {token: secret}}]\n"
        "contexts: [{name: node, context: {cluster: c, user: u}}]\n")
    return path


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Stands in for the kubelet itself: records the config it would have run with."""
    configs: list[Any] = []

    async def serve(cfg: Any, _client: Any) -> None:
        configs.append(cfg)

    monkeypatch.setattr(cli, "serve", serve)
    return configs


def _kubelet(kubeconfig: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["kubelet", "--kubeconfig", str(kubeconfig), "--node-name", "node-1", "--pod-cidr", POD_CIDR,
            "--root-dir", str(tmp_path / "root"), "--resolv-conf", "", *extra]


def test_the_documented_command_line_needs_no_node_ip(kubeconfig: Path, tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(_kubelet(kubeconfig, tmp_path))
    assert args.node_ip is None


def test_without_node_ip_the_kubelet_runs_with_the_namespaces_address(
        kubeconfig: Path, tmp_path: Path, served: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nodeip, "read_host_network", lambda: NODE_NETNS)
    assert main(_kubelet(kubeconfig, tmp_path)) == 0
    assert [cfg.node_ip for cfg in served] == ["10.255.0.11"]


def test_an_explicit_node_ip_is_used_without_looking_at_the_network(
        kubeconfig: Path, tmp_path: Path, served: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_read() -> Any:
        raise AssertionError("the network was read although --node-ip was given")

    monkeypatch.setattr(nodeip, "read_host_network", must_not_read)
    assert main(_kubelet(kubeconfig, tmp_path, "--node-ip", "10.255.0.99")) == 0
    assert [cfg.node_ip for cfg in served] == ["10.255.0.99"]


def test_without_node_ip_or_an_address_the_kubelet_stops_with_one_line(
        kubeconfig: Path, tmp_path: Path, served: list[Any], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(nodeip, "read_host_network", lambda: ([LOOPBACK], []))
    assert main(_kubelet(kubeconfig, tmp_path)) == 1
    err = capsys.readouterr().err
    assert err.startswith("netplane kubelet: --node-ip not given") and err.count("\n") == 1
    assert served == []
