"""The `kubernetes` Service: at the first service address, with the apiservers' advertised
addresses as its endpoints (EndpointSlice and Endpoints), kept by kube-apiserver's lease
reconciler: several apiservers on one etcd are all listed, one that stops is taken out at
once, one that crashes when its lease expires."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from control.apiserver.process import ApiServerProcess
from control.store.etcd_process import EtcdCluster
from tests.integration.store.etcd_fixtures import require_etcd
from tests.polling import poll


def _published(kubeconfig: Path) -> tuple[list[str], list[int], list[str]]:
    api = k8s_config.new_client_from_config(config_file=str(kubeconfig))
    try:
        svc = k8s.CoreV1Api(api).read_namespaced_service("kubernetes", "default")
        es = k8s.DiscoveryV1Api(api).read_namespaced_endpoint_slice("kubernetes", "default")
        ep = k8s.CoreV1Api(api).read_namespaced_endpoints("kubernetes", "default")
    finally:
        api.close()
    assert svc.spec.cluster_ip == "10.96.0.1" and svc.spec.ports[0].port == 443
    assert es.metadata.labels["kubernetes.io/service-name"] == "kubernetes"
    assert [p.port for p in es.ports] == [p.port for p in ep.subsets[0].ports]
    return ([a for e in es.endpoints for a in e.addresses], [p.port for p in es.ports],
            [a.ip for a in ep.subsets[0].addresses])


def test_the_advertised_address_becomes_the_kubernetes_services_endpoint(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with ApiServerProcess(data, extra_args=["--advertise-address", "10.255.0.1:6443"]) as server:
        assert _published(server.kubeconfig) == (["10.255.0.1"], [6443], ["10.255.0.1"])
    # A restart with another address rewrites both (a moved apiserver is not left stale).
    with ApiServerProcess(data, extra_args=["--advertise-address", "10.255.0.7"]) as server:
        addresses, ports, legacy = _published(server.kubeconfig)
        assert addresses == legacy == ["10.255.0.7"] and ports == [server.port]


def test_a_bad_advertise_address_is_one_line_and_exit_code_2(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "netplane.cli.main", "apiserver", "--data-dir",
                           str(tmp_path), "--advertise-address", "apiserver.local"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "not an IPv4 address" in done.stderr


def _eventually(check: Callable[[], bool], what: str) -> None:
    poll(check, what, timeout=30.0, interval=0.2, not_yet=())


def test_every_live_apiserver_on_one_etcd_is_an_endpoint(tmp_path: Path) -> None:
    require_etcd()
    etcd = EtcdCluster(tmp_path / "etcd", size=1)
    etcd.start()
    quick = ["--endpoint-lease-ttl", "3", "--endpoint-reconcile-interval", "0.5"]
    one = ApiServerProcess(tmp_path / "api1", extra_args=[
        "--store", etcd.url(), "--advertise-address", "10.255.0.1:6443", *quick])
    two = ApiServerProcess(tmp_path / "api2", extra_args=[
        "--store", etcd.url(), "--advertise-address", "10.255.0.2:6443", *quick])
    try:
        one.start()
        two.start()
        both = (["10.255.0.1", "10.255.0.2"], [6443], ["10.255.0.1", "10.255.0.2"])
        _eventually(lambda: _published(one.kubeconfig) == both, "both apiservers in the endpoints")
        two.stop()  # SIGTERM: it gives its lease up and takes itself out
        alone = (["10.255.0.1"], [6443], ["10.255.0.1"])
        _eventually(lambda: _published(one.kubeconfig) == alone, "the stopped apiserver to go")
        two.start()
        _eventually(lambda: _published(one.kubeconfig) == both, "the restarted apiserver to come back")
        two.stop(signal.SIGKILL)  # no goodbye: its lease expires after 3 s
        _eventually(lambda: _published(one.kubeconfig) == alone, "the crashed apiserver's lease to expire")
    finally:
        two.stop()
        one.stop()
        etcd.stop()
