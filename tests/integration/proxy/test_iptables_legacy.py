"""iptables mode on the legacy backend (--iptables-variant legacy): the same rules in the
legacy tables, read back in-process through python-iptables (libiptc), and removed by
--cleanup."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s

from tests.integration.proxy.conftest import (
    HTTP_PORT,
    ProxyNode,
    endpoint_slice,
    eventually,
    http_get,
    service,
)

pytestmark = pytest.mark.root

WEB_IP = "10.96.2.20"
NETPLANE = [sys.executable, "-m", "netplane.cli.main"]


@pytest.fixture(scope="module")
def proxy(node: ProxyNode, api: k8s.ApiClient) -> Iterator[ProxyNode]:
    k8s.CoreV1Api(api).create_namespaced_service("default", service(
        "web", WEB_IP, [{"name": "http", "port": 80, "targetPort": HTTP_PORT, "protocol": "TCP"}]))
    ports = [{"name": "http", "port": HTTP_PORT, "protocol": "TCP"}]
    k8s.DiscoveryV1Api(api).create_namespaced_endpoint_slice("default", endpoint_slice(
        "web", [b.endpoint() for b in node.backends], ports))
    node.start_proxy("--iptables-variant", "legacy", mode="iptables")
    yield node
    node.stop_proxy()


def _legacy_save(node: ProxyNode) -> str:
    return subprocess.run(["ip", "netns", "exec", node.netns, "iptables-legacy-save"], capture_output=True,
                          text=True, check=True).stdout


def test_the_legacy_tables_carry_the_rules_and_serve(proxy: ProxyNode) -> None:
    assert proxy.client is not None
    client = proxy.client
    names = {b.name for b in proxy.backends}
    eventually(lambda: {client.run(http_get, WEB_IP, 80) for _ in range(30)} == names, "every backend")
    assert "KUBE-SERVICES" in _legacy_save(proxy)
    assert "KUBE-SERVICES" not in proxy.iptables_save(), "nothing went to the nft tables"


def test_status_reads_the_legacy_tables_through_libiptc(proxy: ProxyNode) -> None:
    assert proxy.client is not None
    client = proxy.client

    def row() -> list[str] | None:
        for _ in range(5):
            client.run(http_get, WEB_IP, 80)
        out = subprocess.run(["ip", "netns", "exec", proxy.netns, *NETPLANE, "proxy", "status",
                              "--iptables-variant", "legacy"],
                             capture_output=True, text=True, check=True).stdout
        assert out.startswith("iptables mode (legacy)")
        found = next(line.split() for line in out.splitlines() if line.startswith("default/web:http"))
        return found if int(found[4]) > 0 else None

    assert eventually(row, "counted packets")[1:4] == [WEB_IP, "80", "3"]


def test_cleanup_empties_the_legacy_tables_of_kube_chains(proxy: ProxyNode) -> None:
    assert proxy.stop_proxy() == 0
    out = subprocess.run(["ip", "netns", "exec", proxy.netns, *NETPLANE, "proxy", "--cleanup"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "KUBE-" not in _legacy_save(proxy)
