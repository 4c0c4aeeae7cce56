"""`netplane ctl port-forward` as a user runs it, through the real kubelet's /portForward: the
host, which cannot route into the node's namespaces, reaches a pod, a service's pod and a
deployment's pod over loopback, in both directions and with large bodies; failures are one
line, and a refused connection does not stop the forwarding."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from kubernetes import client as k8s

from control.apiserver.process import ApiServerProcess
from tests.integration.kubelet.conftest import Node, eventually

pytestmark = [pytest.mark.root, pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0,
                                 reason="the kubelet creates network namespaces: needs root")]

NETEXEC = [sys.executable, "-m", "netplane.cli.main", "agnhost", "netexec", "--http-port", "8080",
           "--udp-port", "-1", "--allow-shell"]
# Echoes every byte back; when the client half-closes, finishes echoing and closes too.
ECHO_SERVER = """
import socket, threading
srv = socket.create_server(("", 7000))
def serve(conn):
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)
while True:
    conn, _ = srv.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""
FORWARDING = re.compile(r"^Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)$")


def _pod(name: str, command: list[str], node: Node, *, labels: dict[str, str] | None = None,
         ports: list[dict[str, Any]] | None = None, probe: dict[str, Any] | None = None,
         **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "c", "image": "registry.example/test:1", "command": command,
                                 "ports": ports or []}
    if probe is not None:
        container["readinessProbe"] = {**probe, "periodSeconds": 1}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"nodeName": node.name, "terminationGracePeriodSeconds": 1, **spec,
                     "containers": [container]}}


def _running_ready(api: k8s.CoreV1Api, name: str) -> bool:
    pod = api.read_namespaced_pod(name, "default")
    return pod.status.phase == "Running" and any(c.type == "Ready" and c.status == "True"
                                                 for c in pod.status.conditions or [])


@pytest.fixture(scope="module")
def pods(node: Node, api: k8s.CoreV1Api) -> Iterator[None]:
    """netexec (port 8080, named "web"), a TCP echo server (7000), a pod that has finished,
    a service that reaches netexec through the named port, one without a selector and one
    that selects nothing, and a deployment whose selector matches netexec."""
    api.create_namespaced_pod("default", _pod(
        "pf-web", NETEXEC, node, labels={"app": "pf-web"}, ports=[{"name": "web", "containerPort": 8080}],
        probe={"httpGet": {"path": "/healthz", "port": "web"}}))
    api.create_namespaced_pod("default", _pod(
        "pf-echo", [sys.executable, "-c", ECHO_SERVER], node, probe={"tcpSocket": {"port": 7000}}))
    api.create_namespaced_pod("default", _pod("pf-done", ["true"], node, restartPolicy="Never"))
    services = {
        "pf-web": {"selector": {"app": "pf-web"},
                   "ports": [{"name": "http", "port": 80, "targetPort": "web"},
                             {"name": "dns", "port": 53, "protocol": "UDP"}]},
        "pf-manual": {"ports": [{"port": 80}]},
        "pf-nobody": {"selector": {"app": "nobody"}, "ports": [{"port": 80}]},
    }
    for name, spec in services.items():
        api.create_namespaced_service("default", {"apiVersion": "v1", "kind": "Service",
                                                  "metadata": {"name": name}, "spec": spec})
    k8s.AppsV1Api(api.api_client).create_namespaced_deployment("default", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "pf-web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "pf-web"}},
                 "template": {"metadata": {"labels": {"app": "pf-web"}},
                              "spec": {"containers": [{"name": "c", "image": "registry.example/test:1",
                                                       "command": NETEXEC}]}}}})
    eventually(lambda: _running_ready(api, "pf-web"), "netexec to be Running and Ready")
    eventually(lambda: _running_ready(api, "pf-echo"), "the echo server to be Running and Ready")
    eventually(lambda: api.read_namespaced_pod("pf-done", "default").status.phase == "Succeeded",
               "the finished pod to succeed")
    yield
    for name in ("pf-web", "pf-echo", "pf-done"):
        try:
            api.delete_namespaced_pod(name, "default", grace_period_seconds=0)
        except k8s.ApiException as exc:
            if exc.status != 404:
                raise


class Forwarding:
    """A running `netplane ctl port-forward`, its output read line by line as it comes."""

    def __init__(self, apiserver: ApiServerProcess, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "netplane.cli.main", "ctl", "--kubeconfig", str(apiserver.kubeconfig),
             "port-forward", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.stdout: queue.Queue[str] = queue.Queue()
        self.stderr: queue.Queue[str] = queue.Queue()
        for stream, lines in ((self.proc.stdout, self.stdout), (self.proc.stderr, self.stderr)):
            threading.Thread(target=self._pump, args=(stream, lines), daemon=True).start()

    @staticmethod
    def _pump(stream: Any, lines: queue.Queue[str]) -> None:
        for line in stream:
            lines.put(line.rstrip("\n"))

    def line(self, which: str = "stdout") -> str:
        lines = self.stdout if which == "stdout" else self.stderr
        try:
            return lines.get(timeout=60)
        except queue.Empty:
            raise AssertionError(f"port-forward printed no more on {which} (exit code "
                                 f"{self.proc.poll()})") from None

    def ports(self, count: int = 1) -> list[tuple[int, int]]:
        """The (local, remote) pairs of its first `count` `Forwarding from` lines."""
        found = []
        for _ in range(count):
            line = self.line()
            match = FORWARDING.match(line)
            assert match, f"not kubectl's Forwarding line: {line!r}"
            found.append((int(match[1]), int(match[2])))
        return found

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def forward(apiserver: ApiServerProcess, pods: None) -> Iterator[Callable[..., Forwarding]]:
    started: list[Forwarding] = []

    def start(*args: str) -> Forwarding:
        started.append(Forwarding(apiserver, *args))
        return started[-1]

    yield start
    for f in started:
        f.close()


def ctl(apiserver: ApiServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netplane.cli.main", "ctl", "--kubeconfig",
                           str(apiserver.kubeconfig), "port-forward", *args],
                          capture_output=True, text=True, timeout=60)


def http_get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


# -- forwarding -----------------------------------------------------------------------------


def test_a_pod_port_is_reached_from_host_loopback_over_many_connections(
        forward: Callable[..., Forwarding]) -> None:
    pf = forward("pod/pf-web", ":8080")
    [(local, remote)] = pf.ports()
    assert remote == 8080 and local != 8080

    assert http_get(local, "/hostname") == (200, b"pf-web")
    assert pf.line() == f"Handling connection for {local}"
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: http_get(local, f"/echo?msg=hello-{i}"), range(16)))
    assert answers == [(200, f"hello-{i}".encode()) for i in range(16)]
    assert sorted(pf.line() for _ in range(16)) == [f"Handling connection for {local}"] * 16

    # A response of about 5 MB, whose order is checked to the byte.
    status, body = http_get(local, "/shell?cmd=seq%201%20750000")
    expected = "".join(f"{i}\n" for i in range(1, 750001))
    assert status == 200 and len(expected) > 5_000_000
    assert json.loads(body)["output"] == expected

    assert pf.stop() == 0


def test_five_megabytes_go_up_and_come_back_and_a_half_close_still_gets_the_whole_answer(
        forward: Callable[..., Forwarding]) -> None:
    pf = forward("pf-echo", "0:7000")
    [(local, _)] = pf.ports()
    payload = hashlib.sha256(b"seed").digest() * (5 * 1024 * 1024 // 32)
    with socket.create_connection(("127.0.0.1", local), timeout=60) as conn:
        def send() -> None:
            conn.sendall(payload)
            conn.shutdown(socket.SHUT_WR)  # done sending; the echo must still arrive whole

        sender = threading.Thread(target=send)
        sender.start()
        received = bytearray()
        while chunk := conn.recv(1 << 20):
            received += chunk
        sender.join()
    assert len(received) == len(payload) and bytes(received) == payload
    assert pf.stop(signal.SIGINT) == 0


def test_a_service_port_reaches_the_named_target_port_of_a_selected_pod(
        forward: Callable[..., Forwarding]) -> None:
    pf = forward("svc/pf-web", ":80", ":http")
    (first, remote), (second, remote_by_name) = pf.ports(2)
    assert (remote, remote_by_name) == (8080, 8080)
    assert http_get(first, "/hostname") == (200, b"pf-web")
    assert http_get(second, "/echo?msg=by-name") == (200, b"by-name")
    assert pf.stop() == 0


def test_a_deployment_forwards_to_a_ready_pod_its_selector_picks(forward: Callable[..., Forwarding]) -> None:
    pf = forward("deploy/pf-web", ":web")
    [(local, remote)] = pf.ports()
    assert remote == 8080
    assert http_get(local, "/hostname") == (200, b"pf-web")
    assert pf.stop() == 0


def test_a_port_nothing_listens_on_closes_the_connection_and_forwarding_goes_on(
        forward: Callable[..., Forwarding]) -> None:
    pf = forward("pod/pf-web", ":9999", ":8080")
    (closed, _), (open_, _) = pf.ports(2)
    # Closed either way (EOF or reset); what matters is that nothing hangs.
    with socket.create_connection(("127.0.0.1", closed), timeout=60) as conn, \
            contextlib.suppress(ConnectionResetError):
        assert conn.recv(1) == b""
    error = pf.line("stderr")
    assert f"an error occurred forwarding {closed} -> 9999" in error and "port 9999" in error
    assert "refused" in error.lower()
    assert pf.proc.poll() is None, "one refused connection must not stop the forwarding"
    assert http_get(open_, "/hostname") == (200, b"pf-web")
    assert pf.stop() == 0


# -- failures -------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "words"), [
    (["pod/nope", "80"], 'pods "nope" not found'),
    (["svc/nope", "80"], 'services "nope" not found'),
    (["pod/pf-done", "80"], "pod is not running. Current status=Succeeded"),
    (["svc/pf-manual", "80"], "Service is defined without a selector"),
    (["svc/pf-nobody", "80"], "service/pf-nobody has no running and ready pod"),
    (["svc/pf-web", "8080"], "Service pf-web does not have a service port 8080"),
    (["svc/pf-web", "dns"], "UDP protocol is not supported for dns"),
    (["pod/pf-web", "metrics"], "Pod 'pf-web' does not have a named port 'metrics'"),
])
def test_what_cannot_be_forwarded_fails_in_one_line(apiserver: ApiServerProcess, pods: None,
                                                    args: list[str], words: str) -> None:
    out = ctl(apiserver, *args)
    assert out.returncode == 1 and out.stdout == ""
    assert len(out.stderr.splitlines()) == 1 and words in out.stderr, out.stderr


def test_a_local_port_in_use_fails_in_one_line(apiserver: ApiServerProcess, pods: None) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        out = ctl(apiserver, "pod/pf-web", f"{port}:8080")
    assert out.returncode == 1
    assert out.stderr.splitlines() == [f"netplane ctl: unable to listen on port {port}: listen tcp "
                                       f"127.0.0.1:{port}: bind: address already in use"]


def test_the_kubelet_answers_before_the_upgrade_why_it_cannot_forward(node: Node, pods: None) -> None:
    assert node.get("/portForward/default/nope?port=80") == (
        404, b'pod "nope" in namespace "default" is not on this node')
    status, body = node.get("/portForward/default/pf-done?port=80")
    assert status == 409 and b"is not running" in body
    status, body = node.get("/portForward/default/pf-web?port=http")
    assert status == 400 and b"port must be a number" in body
    status, body = node.get("/portForward/default/pf-web?port=8080")
    assert status == 400 and b"needs a WebSocket upgrade" in body


def test_a_stopping_kubelet_closes_its_forwardings_instead_of_waiting_for_them(
        forward: Callable[..., Forwarding], node: Node, api: k8s.CoreV1Api) -> None:
    pf = forward("pod/pf-echo", ":7000")
    [(local, _)] = pf.ports()
    with socket.create_connection(("127.0.0.1", local), timeout=60) as conn:
        conn.sendall(b"still there?")
        assert conn.recv(100) == b"still there?"
        kubelet = node.proc
        assert kubelet is not None
        try:
            node.stop()
            assert kubelet.returncode == 0, "the kubelet had to be killed"
            assert conn.recv(100) == b""
        finally:
            node.start()
    assert "the kubelet is stopping" in pf.line("stderr")
    assert pf.proc.poll() is None
    # The restarted kubelet adopts the pods, and the same forwarding reaches them again.
    eventually(lambda: _running_ready(api, "pf-echo"), "the echo server to be adopted")

    def echo() -> bytes:
        with socket.create_connection(("127.0.0.1", local), timeout=60) as conn:
            conn.sendall(b"back")
            return conn.recv(100)

    assert eventually(echo, "the echo through the new kubelet") == b"back"
    assert pf.stop() == 0
