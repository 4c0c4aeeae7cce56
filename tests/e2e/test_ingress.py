"""HTTP from outside the cluster reaches services by host and path: the ingress gateway that
`netplane up` runs as a pod behind a NodePort, reached through the host's forwarded
loopback port with curl, as a user would. Checked: every row of the Kubernetes Ingress
docs' path-matching table across two Ingresses with hosts, wildcard hosts and a default
backend; TLS certificates chosen by SNI; a WebSocket echo; 100 MB each way without the
gateway's memory growing; a rolling update under load without a 5xx; 503 without
endpoints."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import websocket
from cryptography import x509
from cryptography.x509.oid import NameOID
from kubernetes import client as k8s

from control.cluster import hostports
from control.cluster.layout import Layout
from netplane.ingress.tls import DEFAULT_CN, self_signed
from tests.e2e.conftest import ctl, eventually
from tests.ingress_backend import expected_download
from tests.ingress_cases import ROWS, row_host, row_rule

BACKEND = str(Path(__file__).resolve().parents[1] / "ingress_backend.py")
NS = "ingress-e2e"
PORTS = (8001, 8002, 8003, 8004)  # paths 0..2 of a table row, and the default backend


def _deployment(name: str, replicas: int = 2, ports: tuple[int, ...] = PORTS,
                revision: str = "1") -> dict[str, Any]:
    command = [sys.executable, BACKEND, *(a for p in ports for a in ("--port", str(p)))]
    container = {"name": "backend", "image": "netplane/ingress-backend", "command": command,
                 "ports": [{"containerPort": p} for p in ports],
                 "readinessProbe": {"httpGet": {"path": "/ready", "port": ports[0]}, "periodSeconds": 1}}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NS},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0,
                                                                             "maxSurge": 1}},
                     "template": {"metadata": {"labels": {"app": name},
                                               "annotations": {"revision": revision}},
                                  "spec": {"containers": [container], "terminationGracePeriodSeconds": 5}}}}


def _service(name: str, ports: tuple[int, ...] = PORTS) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
            "spec": {"selector": {"app": name}, "ports": [
                {"name": f"p{k}", "port": 80 + k, "targetPort": p, "protocol": "TCP"} for k,
                                                          p in enumerate(ports)]}}


def _ingress(name: str, rules: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    annotations = spec.pop("annotations", {})
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": NS, "annotations": annotations},
            "spec": {"rules": rules, **spec}}  # no class: netplane is the cluster's default


def _to(service: str, port: int = 80) -> dict[str, Any]:
    return {"service": {"name": service, "port": {"number": port}}}


def _ready(apps: k8s.AppsV1Api, name: str, replicas: int) -> bool:
    d = apps.read_namespaced_deployment(name, NS)
    s = d.status
    if s is None:
        return False
    return (s.updated_replicas or 0) == replicas and (s.available_replicas or 0) == replicas \
        and (s.replicas or 0) == replicas and (s.observed_generation or 0) >= d.metadata.generation


class Curl:
    """curl on the host, through `netplane up`'s forwarded ports."""

    def __init__(self, layout: Layout) -> None:
        urls = hostports.urls(layout)
        self.http, self.https = urls["http"], urls["https"]
        self.port = int(urllib.parse.urlsplit(self.http).port or 0)
        self.tls_port = int(urllib.parse.urlsplit(self.https).port or 0)

    def __call__(self, host: str, path: str, *args: str, https: bool = False,
                 timeout: float = 30) -> tuple[int, str]:
        base = self.https if https else self.http
        out = subprocess.run(["curl", "-sk", "-o", "-", "-w", "\n%{http_code}", "-H", f"Host: {host}", *args,
                              f"{base}{path}"], capture_output=True, text=True, timeout=timeout)
        body, _, code = out.stdout.rpartition("\n")
        return int(code or 0), body

    def json(self, host: str, path: str) -> dict[str, Any]:
        code, body = self(host, path)
        assert code == 200, (host, path, code, body[:200])
        return dict(json.loads(body))


@pytest.fixture(scope="module")
def curl(cluster: Layout, api: k8s.ApiClient) -> Iterator[Curl]:
    core = k8s.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": NS}})
    try:
        yield Curl(cluster)
    finally:
        core.delete_namespace(NS)


@pytest.fixture(scope="module")
def backends(curl: Curl, api: k8s.ApiClient) -> str:
    """A Deployment "paths" (2 pods, answering on 4 ports) behind a Service of 4 ports."""
    apps, core = k8s.AppsV1Api(api), k8s.CoreV1Api(api)
    apps.create_namespaced_deployment(NS, _deployment("paths"))
    core.create_namespaced_service(NS, _service("paths"))
    eventually(lambda: _ready(apps, "paths", 2), "the backends to be available", timeout=120)
    return "paths"


def test_two_ingresses_route_every_row_of_the_kubernetes_path_table(curl: Curl, backends: str,
                                                                    api: k8s.ApiClient) -> None:
    net = k8s.NetworkingV1Api(api)
    half = len(ROWS) // 2
    rows_a = [row_rule(i, paths, lambda k: _to(backends, 80 + k)) for i, (paths, _r,
                                                                          _e) in enumerate(ROWS[:half])]
    rows_b = [row_rule(i + half, paths, lambda k: _to(backends, 80 + k))
              for i, (paths, _r, _e) in enumerate(ROWS[half:])]
    wild = [{"host": "*.wild.test", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                                                        "backend": _to(backends, 80)}]}},
            {"host": "exact.wild.test", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                                                            "backend": _to(backends, 81)}]}}]
    net.create_namespaced_ingress(NS, _ingress("paths-a", rows_a + wild))
    net.create_namespaced_ingress(NS, _ingress("paths-b", rows_b, defaultBackend=_to(backends, 83)))
    try:
        eventually(lambda: curl(row_host(len(ROWS) - 1), ROWS[-1][1])[0] == 200
                   and curl(row_host(0), "/")[0] == 200, "both Ingresses to be served", timeout=60)
        for i, (paths, request_path, expected) in enumerate(ROWS):
            answer = curl.json(row_host(i), request_path)
            want = PORTS[3] if expected is None else PORTS[expected]
            rule_text = ", ".join(f"{k} {p}" for k, p in paths)
            assert answer["port"] == want, f"row {i}: [{rule_text}] {request_path} went to {answer['port']}"
            assert answer["path"] == request_path
        assert curl.json("any.wild.test", "/x")["port"] == PORTS[0]
        assert curl.json("exact.wild.test", "/x")["port"] == PORTS[1]  # the exact host wins
        assert curl.json("a.b.wild.test", "/")["port"] == PORTS[3]  # one label only: the default backend
        assert curl.json("unknown.test", "/")["port"] == PORTS[3]
        names = {curl.json(row_host(0), "/")["name"] for _ in range(6)}
        assert len(names) == 2  # both pods, round robin
    finally:
        net.delete_namespaced_ingress("paths-a", NS)
        net.delete_namespaced_ingress("paths-b", NS)  # its default backend would answer other tests
    eventually(lambda: curl("unknown.test", "/")[0] == 404, "the default backend to go")


def _tls_secret(name: str, cn: str) -> dict[str, Any]:
    cert, key = self_signed(cn)
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls", "metadata": {"name": name},
            "data": {"tls.crt": base64.b64encode(cert).decode(), "tls.key": base64.b64encode(key).decode()}}


def _served_cn(port: int, server_name: str) -> str:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname=server_name) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    subject = x509.load_der_x509_certificate(der).subject
    return str(subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def test_tls_with_sni_chooses_the_certificate_of_the_host(curl: Curl, backends: str,
                                                          api: k8s.ApiClient) -> None:
    core, net = k8s.CoreV1Api(api), k8s.NetworkingV1Api(api)
    for name, cn in (("a-tls", "a.tls.test"), ("b-tls", "b.tls.test")):
        core.create_namespaced_secret(NS, _tls_secret(name, cn))
    rules = [{"host": h, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": _to(backends)}]}}
             for h in ("a.tls.test", "b.tls.test")]
    net.create_namespaced_ingress(NS, _ingress("tls", rules, tls=[{"hosts": ["a.tls.test"],
                                                                   "secretName": "a-tls"},
                                                                 {"hosts": ["b.tls.test"],
                                                                  "secretName": "b-tls"}]))
    eventually(lambda: _served_cn(curl.tls_port, "a.tls.test") == "a.tls.test", "a's certificate", timeout=60)
    assert _served_cn(curl.tls_port, "b.tls.test") == "b.tls.test"
    assert _served_cn(curl.tls_port, "nobody.tls.test") == DEFAULT_CN
    resolve = ["--resolve", f"b.tls.test:{curl.tls_port}:127.0.0.1"]
    out = subprocess.run(["curl", "-sk", *resolve, f"https://b.tls.test:{curl.tls_port}/over-tls"],
                         capture_output=True, text=True, timeout=30)
    assert json.loads(out.stdout)["headers"]["X-Forwarded-Proto"] == "https"
    code, _ = curl("a.tls.test", "/plain", "-D", "-")
    assert code == 308  # plain HTTP to a TLS host is redirected
    headers = subprocess.run(["curl", "-s", "-D", "-", "-o", "/dev/null", "-H", "Host: a.tls.test",
                              f"{curl.http}/plain?q=1"], capture_output=True, text=True, timeout=30).stdout
    assert f"https://a.tls.test:{curl.tls_port}/plain?q=1" in headers  # to the host's forwarded port


def test_a_websocket_echoes_through_the_gateway(curl: Curl, backends: str, api: k8s.ApiClient) -> None:
    net = k8s.NetworkingV1Api(api)
    net.create_namespaced_ingress(NS, _ingress("ws", [{"host": "ws.test", "http": {"paths": [
        {"path": "/ws", "pathType": "Exact", "backend": _to(backends)}]}}]))
    eventually(lambda: curl("ws.test", "/ws")[0] in (400, 426, 405), "the WebSocket route", timeout=60)
    ws = websocket.create_connection(f"ws://127.0.0.1:{curl.port}/ws", host="ws.test", timeout=20)
    try:
        for i in range(5):
            ws.send(f"ping {i}")
            assert str(ws.recv()).endswith(f": ping {i}")
        blob = bytes(range(256)) * 1024
        ws.send_binary(blob)
        assert ws.recv() == blob
    finally:
        ws.close()


def _gateway_process(layout: Layout) -> psutil.Process:
    """The gateway pod's process on this machine: the one `netplane ingress` of this cluster."""
    kubeconfig = str(layout.node_kubeconfig)
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if "ingress" in cmd and "--ingress-class" in cmd and kubeconfig in cmd:
            return proc
    raise AssertionError("the gateway's process was not found")


def test_100_mb_up_and_down_stream_without_the_gateway_growing(curl: Curl, backends: str, cluster: Layout,
                                                               api: k8s.ApiClient, tmp_path: Path) -> None:
    net = k8s.NetworkingV1Api(api)
    net.create_namespaced_ingress(NS, _ingress("bulk", [{"host": "bulk.test", "http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": _to(backends)}]}}],
        annotations={"nginx.ingress.kubernetes.io/proxy-body-size": "0"}))
    eventually(lambda: curl("bulk.test", "/")[0] == 200, "the bulk route", timeout=60)
    gateway = _gateway_process(cluster)
    size = 100 << 20
    upload = tmp_path / "upload.bin"
    with upload.open("wb") as f:
        block = hashlib.sha256(b"seed").digest() * (1 << 15)  # 1 MiB
        for _ in range(size >> 20):
            f.write(block)
    rss_before = gateway.memory_info().rss
    code, body = curl("bulk.test", "/upload", "-X", "POST", "-T", str(upload), timeout=300)
    assert code == 200, body
    sent = json.loads(body)
    assert sent["bytes"] == size and sent["sha256"] == hashlib.sha256(upload.read_bytes()).hexdigest()
    download = tmp_path / "download.bin"
    out = subprocess.run(["curl", "-s", "-o", str(download), "-w", "%{http_code}", "-H", "Host: bulk.test",
                          f"{curl.http}/download?bytes={size}"], capture_output=True, text=True, timeout=300)
    assert out.stdout == "200"
    assert download.stat().st_size == size
    assert hashlib.sha256(download.read_bytes()).hexdigest() == expected_download(size)
    growth = gateway.memory_info().rss - rss_before
    assert growth < 20 << 20, f"the gateway's RSS grew by {growth / (1 << 20):.1f} MiB"


def test_rolling_a_deployment_under_load_gives_no_5xx(curl: Curl, api: k8s.ApiClient) -> None:
    apps, core, net = k8s.AppsV1Api(api), k8s.CoreV1Api(api), k8s.NetworkingV1Api(api)
    apps.create_namespaced_deployment(NS, _deployment("roll", ports=(8001,)))
    core.create_namespaced_service(NS, _service("roll", ports=(8001,)))
    net.create_namespaced_ingress(NS, _ingress("roll", [{"host": "roll.test", "http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": _to("roll")}]}}]))
    eventually(lambda: _ready(apps, "roll", 2) and curl("roll.test", "/")[0] == 200, "the roll route",
               timeout=120)
    statuses: dict[int, int] = {}
    names: set[str] = set()
    stop = threading.Event()

    def load() -> None:
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", curl.port, timeout=30)
        while not stop.is_set():
            try:
                conn.request("GET", "/", headers={"Host": "roll.test"})
                resp = conn.getresponse()
                body = resp.read()
                statuses[resp.status] = statuses.get(resp.status, 0) + 1
                if resp.status == 200:
                    names.add(json.loads(body)["name"])
            except (OSError, http.client.HTTPException):
                statuses[-1] = statuses.get(-1, 0) + 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", curl.port, timeout=30)
            time.sleep(0.005)
        conn.close()

    workers = [threading.Thread(target=load) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        time.sleep(1)
        before = set(names)
        apps.patch_namespaced_deployment("roll", NS, {"spec": {"template": {"metadata": {
            "annotations": {"revision": "2"}}}}})
        eventually(lambda: _ready(apps, "roll", 2) and len(
            [p for p in core.list_namespaced_pod(NS, label_selector="app=roll").items]) == 2,
            "the rollout to finish", timeout=180)
        time.sleep(2)
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=40)
    assert statuses.get(200, 0) > 100, statuses
    assert {s: n for s, n in statuses.items() if s != 200} == {}, f"answers during the rollout: {statuses}"
    assert names - before, "no request reached a new pod"


def test_removing_every_endpoint_answers_503(curl: Curl, api: k8s.ApiClient) -> None:
    apps, core, net = k8s.AppsV1Api(api), k8s.CoreV1Api(api), k8s.NetworkingV1Api(api)
    apps.create_namespaced_deployment(NS, _deployment("gone", replicas=1, ports=(8001,)))
    core.create_namespaced_service(NS, _service("gone", ports=(8001,)))
    net.create_namespaced_ingress(NS, _ingress("gone", [{"host": "gone.test", "http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": _to("gone")}]}}]))
    eventually(lambda: curl("gone.test", "/")[0] == 200, "the route", timeout=120)
    apps.patch_namespaced_deployment_scale("gone", NS, {"spec": {"replicas": 0}})
    eventually(lambda: curl("gone.test", "/")[0] == 503, "503 once no endpoint is left", timeout=60)


def test_the_ingress_example_serves_the_web_example_on_the_hosts_port(cluster: Layout, curl: Curl) -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    applied = ctl(cluster, "apply", "-f", str(examples / "web.yaml"), "-f", str(examples / "ingress.yaml"))
    assert applied.returncode == 0, applied.stderr
    try:
        def answered() -> set[str] | None:
            if curl("web.test", "/")[0] != 200:
                return None
            return {curl("web.test", "/")[1].strip() for _ in range(4)} - {""}
        names = eventually(answered, "the web example through the gateway", timeout=120)
        assert all(name.startswith("web-") for name in names)
    finally:
        ctl(cluster, "delete", "-f", str(examples / "ingress.yaml"), "-f", str(examples / "web.yaml"),
            "--wait=false")
