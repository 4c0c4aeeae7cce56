"""A node for the proxy's integration tests: a real apiserver on host loopback (reached
from the node through a relay), a node network namespace with the kubelet's pod network
(bridge, veths, pod namespaces), backend pods running the built-in test server, a client
pod, and the real `netplane proxy` running in the node namespace. Services and
EndpointSlices are written straight to the API (no controllers), so that each test says
exactly what the proxy sees. Everything is removed afterwards, also when a test fails."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from control.apiserver.process import ApiServerProcess
from control.kubelet.network import NodeNetworkConfig, PodNetwork
from control.kubelet.runtime import processes_in_netns
from netplane.kernel import links, sysctl
from netplane.kernel import netns as ns
from tests.apiserver_relay import Relay
from tests.polling import poll

T = TypeVar("T")
POD_CIDR = "10.244.1.0/24"
NODE_NAME = "node-1"
HTTP_PORT, UDP_PORT = 8080, 8081
# The service ports every mode's tests use, and their EndpointSlice ports.
HTTP = [{"name": "http", "port": 80, "targetPort": HTTP_PORT, "protocol": "TCP"}]
SLICE_HTTP = [{"name": "http", "port": HTTP_PORT, "protocol": "TCP"}]
DNS = [{"name": "dns", "port": 53, "targetPort": UDP_PORT, "protocol": "UDP"}]
SLICE_DNS = [{"name": "dns", "port": UDP_PORT, "protocol": "UDP"}]


# What counts as "not yet" while waiting here.
_NOT_YET = (OSError, AssertionError, k8s.ApiException)


def eventually(check: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    """Polls `check` until it returns something truthy; no timing is asserted."""
    return poll(check, what, timeout=timeout, interval=0.1, not_yet=_NOT_YET)


def http_get(ip: str, port: int, path: str = "/hostname", timeout: float = 5.0) -> str:
    """One HTTP/1.0 request on a new connection; the body."""
    with socket.create_connection((ip, port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: test\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1."):
        raise OSError(f"not an HTTP answer: {data[:80]!r}")
    return body.decode()


def udp_ask(ip: str, port: int, message: str = "hostname", timeout: float = 2.0) -> str:
    """One datagram from a new socket (so a new association); the answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(message.encode(), (ip, port))
        return s.recv(65536).decode()


@dataclass
class Pod:
    name: str
    uid: str
    ip: str
    netns: str
    proc: subprocess.Popen[bytes] | None = None

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Calls `fn` on a thread inside this pod's network namespace."""
        return ns.run_in(self.netns, fn, *args)

    def endpoint(self, *, ready: bool = True, serving: bool | None = None, terminating: bool = False,
                 node: str = NODE_NAME) -> dict[str, Any]:
        conditions: dict[str, Any] = {"ready": ready, "terminating": terminating}
        if serving is not None:
            conditions["serving"] = serving
        return {"addresses": [self.ip], "conditions": conditions, "nodeName": node,
                "targetRef": {"kind": "Pod", "namespace": "default", "name": self.name, "uid": self.uid}}


@dataclass
class ProxyNode:
    cluster_id: str
    netns: str
    tmp: Path
    apiserver: ApiServerProcess
    network: PodNetwork
    backends: list[Pod] = field(default_factory=list)
    client: Pod | None = None
    proxy: subprocess.Popen[bytes] | None = None
    proxy_log: Path | None = None

    @property
    def gateway(self) -> str:
        return self.network.gateway

    def add_pod(self, name: str, serve: bool) -> Pod:
        uid = str(uuid.uuid4())
        info = ns.run_in(self.netns, self.network.setup, uid, "default", name)
        pod = Pod(name, uid, info.ip, info.netns)
        if serve:
            argv = ["ip", "netns", "exec", info.netns, "env", f"HOSTNAME={name}", sys.executable, "-m",
                    "netplane.cli.main", "agnhost", "netexec", "--http-port", str(HTTP_PORT),
                    "--udp-port", str(UDP_PORT)]
            log = (self.tmp / f"{name}.log").open("ab")
            pod.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            eventually(lambda: pod.run(http_get, pod.ip, HTTP_PORT) == name, f"backend {name} to serve")
        return pod

    def start_proxy(self, *extra: str, mode: str = "userspace") -> None:
        self.proxy_log = self.tmp / "proxy.log"
        argv = ["nsenter", f"--net={ns.path(self.netns)}", "--", sys.executable, "-m", "netplane.cli.main",
                "-v", "proxy", "--mode", mode, "--kubeconfig", str(self.apiserver.kubeconfig),
                "--node-name", NODE_NAME, "--min-sync-period", "0", "--sync-period", "10s",
                "--cluster-cidr", POD_CIDR, *extra]
        with self.proxy_log.open("ab") as out:
            self.proxy = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                          env={**os.environ, "PYTHONUNBUFFERED": "1"})
        eventually(lambda: self.metric("kubeproxy_sync_proxy_rules_last_timestamp_seconds") > 0,
                   "the proxy's first sync")

    def stop_proxy(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proxy is None:
            return None
        if self.proxy.poll() is None:
            self.proxy.send_signal(sig)
            try:
                self.proxy.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proxy.kill()
                self.proxy.wait()
        code = self.proxy.returncode
        self.proxy = None
        return code

    def http(self, port: int, path: str) -> tuple[int, str]:
        def get() -> tuple[int, str]:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
                    return resp.status, resp.read().decode()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read().decode()
        return ns.run_in(self.netns, get)

    def metric(self, name: str) -> float:
        _, text = self.http(10249, "/metrics")
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and (line[len(name)] in " {"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def iptables_save(self) -> str:
        return subprocess.run(["ip", "netns", "exec", self.netns, "iptables-save"], capture_output=True,
                              text=True, check=True).stdout

    def addresses(self) -> str:
        return subprocess.run(["ip", "-n", self.netns, "-4", "addr", "show", "dev", "lo"],
                              capture_output=True, text=True, check=True).stdout

    def log_tail(self) -> str:
        if self.proxy_log is None:
            return ""
        with contextlib.suppress(OSError):
            return self.proxy_log.read_text()[-6000:]
        return ""


def _host_links() -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return sorted(line.split(":")[1].strip() for line in out.splitlines())


def _remove_namespaces(prefix: str) -> None:
    for name in ns.names(prefix):
        for pid in processes_in_netns(ns.path(name)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        ns.delete(name)


@pytest.fixture(scope="module")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServerProcess]:
    with ApiServerProcess(tmp_path_factory.mktemp("apiserver") / "data") as server:
        yield server


@pytest.fixture(scope="module")
def api(apiserver: ApiServerProcess) -> Iterator[k8s.ApiClient]:
    client = k8s_config.new_client_from_config(config_file=str(apiserver.kubeconfig))
    yield client
    client.close()


@pytest.fixture(scope="module")
def node(apiserver: ApiServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyNode]:
    """One node with three backend pods (backend-0..2, HTTP on 8080 and UDP on 8081 answering
    their name) and a client pod; the proxy is started by each test module's fixture."""
    if os.geteuid() != 0:
        pytest.skip("the proxy test node is made of network namespaces and iptables rules: needs root")
    links_before = _host_links()
    cid = "px" + uuid.uuid4().hex[:4]
    tmp = tmp_path_factory.mktemp("proxy")
    node_ns = f"np-{cid}-{NODE_NAME}"
    network = PodNetwork(NodeNetworkConfig(cid, POD_CIDR, tmp / "state"))
    node = ProxyNode(cid, node_ns, tmp, apiserver, network)
    relay = None
    try:
        ns.create(node_ns)
        with ns.ipr(node_ns) as h:
            links.up(h, "lo")
        relay = Relay(ns.listen_tcp(node_ns, "127.0.0.1", apiserver.port), ("127.0.0.1", apiserver.port))
        node.backends = [node.add_pod(f"backend-{i}", serve=True) for i in range(3)]
        # As on any host, the node has a default route: the node's own traffic to a
        # ClusterIP is routed before the nat OUTPUT hook redirects it to the proxy.
        subprocess.run(["ip", "-n", node_ns, "route", "replace", "default", "dev", network.node.bridge],
                       check=True)
        sysctl.write(node_ns, "net.ipv4.ip_forward", "1")  # a node routes its pods' traffic
        node.client = node.add_pod("client", serve=False)
        yield node
    finally:
        node.stop_proxy(signal.SIGKILL)
        print("---- proxy log (tail) ----\n" + node.log_tail())
        for pod in node.backends:
            if pod.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pod.proc.pid, signal.SIGKILL)
                pod.proc.wait()
        if relay is not None:
            relay.close()
        _remove_namespaces(f"np-{cid}-")
        shutil.rmtree(tmp, ignore_errors=True)
    assert not ns.names(f"np-{cid}-"), "network namespaces were left behind"
    assert _host_links() == links_before, "the host's links changed"


def service(name: str, cluster_ip: str, ports: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"clusterIP": cluster_ip, "ports": ports, **spec}}


def endpoint_slice(service_name: str, endpoints: list[dict[str, Any]], ports: list[dict[str, Any]],
                   name: str = "") -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name or f"{service_name}-1", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": "IPv4", "endpoints": endpoints, "ports": ports}


def udp_client_follows_replaced_endpoint(proxy: ProxyNode, api: k8s.ApiClient, name: str, vip: str) -> None:
    """A UDP service `name` at `vip` with backend-0, then backend-1 in its place: the same
    client socket (one conntrack or IPVS flow) must reach backend-1. backend-0 keeps
    running, so only a flow the proxy let go moves the client (kube-proxy's UDP bug)."""
    core, discovery = k8s.CoreV1Api(api), k8s.DiscoveryV1Api(api)
    b = proxy.backends
    core.create_namespaced_service("default", service(name, vip, DNS))
    discovery.create_namespaced_endpoint_slice("default", endpoint_slice(name, [b[0].endpoint()], SLICE_DNS))
    client = proxy.client
    assert client is not None
    eventually(lambda: client.run(udp_ask, vip, 53) == b[0].name, "the UDP service")
    sock = client.run(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    sock.settimeout(1)

    def ask() -> str:
        sock.sendto(b"hostname", (vip, 53))
        return str(sock.recv(100).decode())

    def moved() -> bool:
        try:
            return ask() == b[1].name
        except TimeoutError:
            return False

    try:
        assert ask() == b[0].name
        discovery.patch_namespaced_endpoint_slice(f"{name}-1", "default", {"endpoints": [b[1].endpoint()]})
        eventually(moved, "the same client socket to reach the new endpoint")
    finally:
        sock.close()
