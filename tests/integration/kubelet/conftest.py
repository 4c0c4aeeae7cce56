"""A node for the kubelet's integration tests: a real apiserver on host loopback, a network
namespace for the node, a relay that makes that apiserver reachable from inside the node
namespace at the same address, and the real `netplane kubelet` running in it. Everything
is removed afterwards, also when a test fails; nothing is added to the host namespace."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from control.apiserver.process import ApiServerProcess
from control.kubelet.runtime import processes_in_netns
from netplane.kernel import links
from netplane.kernel import netns as ns
from tests.apiserver_relay import Relay
from tests.polling import poll

T = TypeVar("T")
POD_CIDR = "10.244.7.0/24"
NODE_IP = "10.255.0.17"
CLUSTER_DNS = "10.96.0.10"


# What counts as "not yet" while waiting here.
_NOT_YET = (k8s.ApiException, AssertionError, AttributeError, KeyError, IndexError, OSError, TypeError)


def eventually(check: Callable[[], T | None], what: str, timeout: float = 60.0) -> T:
    """Polls `check` until it returns something truthy; no timing is asserted."""
    return poll(check, what, timeout=timeout, interval=0.2, not_yet=_NOT_YET)


@dataclass
class Node:
    """The node under test and its kubelet."""

    name: str
    cluster_id: str
    netns: str
    root: Path
    kubeconfig: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    extra: list[str] = field(default_factory=list)

    @property
    def socket(self) -> Path:
        return self.root / "kubelet.sock"

    def pod_netns(self, uid: str) -> str:
        return f"np-{self.cluster_id}-p-{uid[:8]}"

    def start(self) -> None:
        argv = ["nsenter", f"--net={ns.path(self.netns)}", "--", sys.executable, "-m", "netplane.cli.main",
                "-v", "kubelet", "--kubeconfig", str(self.kubeconfig), "--node-name", self.name,
                "--pod-cidr", POD_CIDR, "--root-dir", str(self.root), "--cluster-dns", CLUSTER_DNS,
                "--cluster-domain", "cluster.local", "--node-ip", NODE_IP, "--cluster-id", self.cluster_id,
                "--node-status-update-frequency", "1", "--lease-renew-interval", "1",
                "--crashloop-backoff-initial", "0.5", "--crashloop-backoff-max", "2", *self.extra]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log_tail(self) -> str:
        try:
            return self.log.read_text()[-6000:]
        except OSError:
            return ""

    # -- the kubelet's API -----------------------------------------------------------------

    def request(self, method: str, path: str, body: bytes | None = None) -> http.client.HTTPResponse:
        conn = _UnixHTTPConnection(str(self.socket))
        conn.request(method, path, body=body)
        return conn.getresponse()

    def get(self, path: str) -> tuple[int, bytes]:
        resp = self.request("GET", path)
        return resp.status, resp.read()

    def exec(self, pod: str, container: str, *command: str, stdin: bytes = b"",
             namespace: str = "default") -> tuple[bytes, bytes, int]:
        query = "&".join(f"command={_quote(c)}" for c in command)
        resp = self.request("POST", f"/exec/{namespace}/{pod}/{container}?{query}", body=stdin)
        if resp.status != 200:
            raise AssertionError(f"exec: {resp.status} {resp.read()!r}")
        out, err = b"", b""
        while True:
            header = resp.read(5)
            assert len(header) == 5, "the exec stream ended without an exit code"
            channel, size = struct.unpack(">BI", header)
            data = resp.read(size)
            if channel == 1:
                out += data
            elif channel == 2:
                err += data
            elif channel == 3:
                return out, err, int(json.loads(data)["exitCode"])


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("kubelet", timeout=60)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(60)
        sock.connect(self._path)
        self.sock = sock


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
def api(apiserver: ApiServerProcess) -> Iterator[k8s.CoreV1Api]:
    client = k8s_config.new_client_from_config(config_file=str(apiserver.kubeconfig))
    yield k8s.CoreV1Api(client)
    client.close()


@pytest.fixture(scope="module")
def node(apiserver: ApiServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    if os.geteuid() != 0:
        pytest.skip("the kubelet creates network namespaces: needs root")
    links_before = _host_links()
    cid = "kt" + uuid.uuid4().hex[:4]
    tmp = tmp_path_factory.mktemp("kubelet")
    node = Node(name="node-1", cluster_id=cid, netns=f"np-{cid}-node-1", root=tmp / "root",
                kubeconfig=apiserver.kubeconfig, log=tmp / "kubelet.log")
    relay = None
    try:
        ns.create(node.netns)
        with ns.ipr(node.netns) as h:
            links.up(h, "lo")
        relay = Relay(ns.listen_tcp(node.netns, "127.0.0.1", apiserver.port), ("127.0.0.1", apiserver.port))
        node.start()
        yield node
    finally:
        node.stop()
        print("---- kubelet log (tail) ----\n" + node.log_tail())
        if os.environ.get("KUBELET_TEST_LOG"):
            shutil.copyfile(node.log, os.environ["KUBELET_TEST_LOG"])
        if relay is not None:
            relay.close()
        _remove_namespaces(f"np-{cid}-")
        shutil.rmtree(tmp, ignore_errors=True)
    assert not ns.names(f"np-{cid}-"), "network namespaces were left behind"
    assert _host_links() == links_before, "the host's links changed"
