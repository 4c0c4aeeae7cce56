"""A real gateway for the ingress integration tests: `netplane ingress` in a network
namespace the fixture creates (addresses on its loopback: the gateway 10.0.0.1, backends
10.0.0.2-4), fed by a real apiserver on the host's loopback (reached through a relay),
with real backend servers (tests/ingress_backend.py). Requests are made from inside the
namespace; objects are written straight to the API, so each test says exactly what the
gateway sees. Everything is removed afterwards, also when a test fails."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import urllib.error
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
from netplane.kernel import links
from netplane.kernel import netns as ns
from tests.apiserver_relay import Relay
from tests.polling import poll

T = TypeVar("T")
GATEWAY = "10.0.0.1"
BACKENDS = ("10.0.0.2", "10.0.0.3", "10.0.0.4")
HTTP, HTTPS, METRICS = 8080, 8443, 10254
BACKEND_PORTS = (8080, 8081)
RAW_PORT = 8090  # the backends' close-delimited answers
BACKEND_SCRIPT = str(Path(__file__).resolve().parents[2] / "ingress_backend.py")
NETPLANE = [sys.executable, "-m", "netplane.cli.main"]


# What counts as "not yet" while waiting here.
_NOT_YET = (OSError, AssertionError, KeyError, ValueError, http.client.HTTPException)


def eventually(check: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    """Polls `check` until it returns something truthy; no timing is asserted."""
    return poll(check, what, timeout=timeout, interval=0.1, not_yet=_NOT_YET)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Env:
    netns: str
    tmp: Path
    apiserver: ApiServerProcess
    api: k8s.ApiClient
    gateway: subprocess.Popen[bytes] | None = None
    backends: list[subprocess.Popen[bytes]] = field(default_factory=list)

    # -- running things in the namespace

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        return ns.run_in(self.netns, fn, *args)

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{name}.log").open("ab")
        return subprocess.Popen(["nsenter", f"--net={ns.path(self.netns)}", "--", *argv], stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def log(self, name: str) -> str:
        with contextlib.suppress(OSError):
            return (self.tmp / f"{name}.log").read_text()[-8000:]
        return ""

    # -- HTTP from inside the namespace

    def request(self, host: str, path: str, *, method: str = "GET", headers: dict[str, str] | None = None,
                body: bytes | None = None, port: int = HTTP, tls: bool = False,
                timeout: float = 10.0) -> Response:
        def go() -> Response:
            if tls:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                    GATEWAY, port, timeout=timeout, context=ctx)
            else:
                conn = http.client.HTTPConnection(GATEWAY, port, timeout=timeout)
            try:
                conn.request(method, path, body=body, headers={"Host": host, **(headers or {})})
                resp = conn.getresponse()
                return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
            finally:
                conn.close()
        return self.run(go)

    def raw(self, data: bytes, *, port: int = HTTP, timeout: float = 10.0, wait_close: bool = True) -> bytes:
        """Sends `data` as it is on a new connection; all that comes back until the gateway
        closes (or until the first pause, without `wait_close`)."""
        def go() -> bytes:
            with socket.create_connection((GATEWAY, port), timeout=timeout) as s:
                s.sendall(data)
                out = b""
                while True:
                    try:
                        chunk = s.recv(65536)
                    except TimeoutError:
                        break
                    if not chunk:
                        break
                    out += chunk
                    if not wait_close:
                        s.settimeout(0.5)
                return out
        return self.run(go)

    def metrics(self) -> str:
        def go() -> str:
            with urllib.request.urlopen(f"http://{GATEWAY}:{METRICS}/metrics", timeout=5) as resp:
                return resp.read().decode()
        return self.run(go)

    def metric(self, metric: str, /, **labels: str) -> float:
        total = 0.0
        for line in self.metrics().splitlines():
            if not line.startswith(metric) or line[len(metric)] not in " {":
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    # -- objects

    def create(self, obj: dict[str, Any]) -> None:
        group_version, kind = obj["apiVersion"], obj["kind"]
        ns_ = obj["metadata"].get("namespace", "default")
        if kind == "Service":
            k8s.CoreV1Api(self.api).create_namespaced_service(ns_, obj)
        elif kind == "Secret":
            k8s.CoreV1Api(self.api).create_namespaced_secret(ns_, obj)
        elif kind == "EndpointSlice":
            k8s.DiscoveryV1Api(self.api).create_namespaced_endpoint_slice(ns_, obj)
        elif kind == "Ingress":
            k8s.NetworkingV1Api(self.api).create_namespaced_ingress(ns_, obj)
        elif kind == "IngressClass":
            k8s.NetworkingV1Api(self.api).create_ingress_class(obj)
        else:
            group, version = group_version.split("/")
            k8s.CustomObjectsApi(self.api).create_namespaced_custom_object(
                group, version, ns_, kind.lower() + "s", obj)

    def delete_ingress(self, namespace: str, name: str) -> None:
        k8s.NetworkingV1Api(self.api).delete_namespaced_ingress(name, namespace)

    def namespace(self) -> str:
        name = f"t-{uuid.uuid4().hex[:8]}"
        k8s.CoreV1Api(self.api).create_namespace({"metadata": {"name": name}})
        return name


@pytest.fixture(scope="package")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    if os.geteuid() != 0:
        pytest.skip("the gateway's test network is a network namespace: needs root")
    tmp = tmp_path_factory.mktemp("ingress")
    name = f"npi-{uuid.uuid4().hex[:6]}"
    apiserver = ApiServerProcess(tmp / "apiserver")
    relay = None
    env_: Env | None = None
    try:
        apiserver.start()
        api = k8s_config.new_client_from_config(config_file=str(apiserver.kubeconfig))
        ns.create(name)
        with ns.ipr(name) as h:
            links.up(h, "lo")
        for address in (GATEWAY, *BACKENDS):
            subprocess.run(["ip", "-n", name, "addr", "add", f"{address}/32", "dev", "lo"], check=True)
        relay = Relay(ns.listen_tcp(name, "127.0.0.1", apiserver.port), ("127.0.0.1", apiserver.port))
        env_ = Env(name, tmp, apiserver, api)
        for i, ip in enumerate(BACKENDS):
            argv = [sys.executable, BACKEND_SCRIPT, "--host", ip, "--name", f"b{i}", "--raw-port",
                    str(RAW_PORT),
                    *(a for p in BACKEND_PORTS for a in ("--port", str(p)))]
            env_.backends.append(env_.start(f"backend-{i}", argv))
        env_.gateway = env_.start("gateway", [
            *NETPLANE, "-v", "ingress", "--kubeconfig", str(apiserver.kubeconfig),
            "--listen", f"{GATEWAY}:{HTTP}", "--tls-listen", f"{GATEWAY}:{HTTPS}",
            "--metrics-listen", f"{GATEWAY}:{METRICS}", "--https-port", str(HTTPS),
            "--access-log", str(tmp / "access.log"), "--client-header-timeout", "2s",
            "--client-body-timeout", "2s"])
        e = env_
        for ip in BACKENDS:
            eventually(lambda ip=ip: e.run(socket.create_connection, (ip, BACKEND_PORTS[0]), 1),
                       f"backend {ip}")
        eventually(lambda: e.request("nothing.test", "/").status == 404, "the gateway to serve")
        yield env_
    finally:
        if env_ is not None:
            for proc in [env_.gateway, *env_.backends]:
                if proc is not None and proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            print("---- gateway log (tail) ----\n" + env_.log("gateway"))
        if relay is not None:
            relay.close()
        ns.delete(name)
        apiserver.stop()
    assert not ns.exists(name), "the test namespace was left behind"


def service(name: str, namespace: str, ports: dict[str, int] | None = None) -> dict[str, Any]:
    ports = ports or {"http": 80}
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
            "spec": {"ports": [{"name": n, "port": p, "targetPort": 8080, "protocol": "TCP"}
                               for n, p in ports.items()]}}


def endpoints(name: str, namespace: str, ips: list[str], port: int = 8080, port_name: str = "http",
              ready: bool = True) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{name}-1", "namespace": namespace,
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}} for ip in ips],
            "ports": [{"name": port_name, "port": port, "protocol": "TCP"}]}


def ingress(name: str, namespace: str, rules: list[dict[str, Any]], *, annotations: dict[str,
                                                                                         str] | None = None,
            tls: list[dict[str, Any]] | None = None, default: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"ingressClassName": "netplane", "rules": rules}
    if tls:
        spec["tls"] = tls
    if default:
        spec["defaultBackend"] = default
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
            "spec": spec}


def to(svc: str, port: int = 80) -> dict[str, Any]:
    return {"service": {"name": svc, "port": {"number": port}}}


def host_rule(host: str, *paths: tuple[str, str, str]) -> dict[str, Any]:
    """paths: (pathType, path, service)."""
    return {"host": host, "http": {"paths": [{"path": p, "pathType": kind, "backend": to(svc)}
                                             for kind, p, svc in paths]}}


def urlopen_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
