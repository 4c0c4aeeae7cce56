"""The real `netplane dns` process fed by a real apiserver, and a real upstream resolver
(dnsmasq) for names outside the zone, all on loopback ports; objects are written straight to
the API (no controllers), so each test says exactly what the DNS sees."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from dnslib import EDNS0, DNSRecord
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from control.apiserver.process import ApiServerProcess, free_port
from tests.polling import poll

T = TypeVar("T")
UPSTREAM_HOSTS = {"www.example.test": "192.0.2.10", "api.example.test": "192.0.2.11"}


# What counts as "not yet" while waiting here.
_NOT_YET = (OSError, AssertionError)


def eventually(check: Callable[[], T | None], what: str, timeout: float = 20.0) -> T:
    """Polls `check` until it returns something truthy; no timing is asserted."""
    return poll(check, what, timeout=timeout, interval=0.05, not_yet=_NOT_YET)


def query(port: int, name: str, qtype: str = "A", *, tcp: bool = False, edns: EDNS0 | None = None,
          host: str = "127.0.0.1", timeout: float = 3.0) -> DNSRecord:
    """One query over a fresh socket; the parsed reply."""
    q = DNSRecord.question(name, qtype)
    if edns is not None:
        q.add_ar(edns)
    return DNSRecord.parse(exchange(port, bytes(q.pack()), tcp=tcp, host=host, timeout=timeout))


def exchange(port: int, wire: bytes, *, tcp: bool = False, host: str = "127.0.0.1",
             timeout: float = 3.0) -> bytes:
    if tcp:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(struct.pack("!H", len(wire)) + wire)
            head = _read(s, 2)
            return _read(s, struct.unpack("!H", head)[0])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(wire, (host, port))
        return s.recv(65535)


def _read(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionResetError("closed early")
        data += chunk
    return data


def addresses(reply: DNSRecord) -> list[str]:
    return sorted(str(rr.rdata) for rr in reply.rr if rr.rtype in (1, 28))


@dataclass
class Dnsmasq:
    """A real resolver for the names outside the cluster zone, logging each query."""

    tmp: Path
    hosts: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.tmp / f"dnsmasq-{self.port}.log"

    def start(self) -> None:
        hosts = self.tmp / f"hosts-{self.port}"
        hosts.write_text("".join(f"{ip} {name}\n" for name, ip in self.hosts.items()))
        argv = ["dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                f"--addn-hosts={hosts}", "--local=/example.test/", "--listen-address=127.0.0.1",
                "--bind-interfaces", f"--port={self.port}", "--local-ttl=60", "--log-queries",
                f"--log-facility={self.log}", "--pid-file="]
        if os.geteuid() == 0:
            argv.append("--user=root")  # else it drops to nobody, who cannot write the log here
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        eventually(lambda: self.proc.poll() is None and query(self.port, "www.example.test", timeout=0.5).rr,
                   "dnsmasq to answer")

    def queries_for(self, name: str) -> int:
        with contextlib.suppress(OSError):
            return sum(1 for line in self.log.read_text().splitlines() if f"query[A] {name} " in line)
        return 0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@dataclass
class DnsProcess:
    kubeconfig: Path
    tmp: Path
    upstreams: list[int]
    extra: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.tmp / f"dns-{self.port}.log"

    def start(self) -> None:
        argv = [sys.executable, "-m", "netplane.cli.main", "-v", "dns", "--kubeconfig", str(self.kubeconfig),
                "--listen", f"127.0.0.1:{self.port}", "--health-listen", f"127.0.0.1:{self.http_port}",
                "--metrics-listen", "127.0.0.1:0", "--resolv-conf", "/dev/null",
                *(a for p in self.upstreams for a in ("--upstream", f"127.0.0.1:{p}")), *self.extra]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
        eventually(lambda: self.http("/ready")[0] == 200, "the DNS to be ready", timeout=30)

    def http(self, path: str) -> tuple[int, str]:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"netplane dns exited with {self.proc.returncode}:\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def metric(self, name: str, **labels: str) -> float:
        total = 0.0
        want = [f'{k}="{v}"' for k, v in labels.items()]
        for line in self.http("/metrics")[1].splitlines():
            if line.startswith(name) and line[len(name)] in " {" and all(w in line for w in want):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text()[-4000:]
        return ""

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@dataclass
class Api:
    core: k8s.CoreV1Api
    discovery: k8s.DiscoveryV1Api

    def service(self, name: str, namespace: str = "default", **spec: Any) -> Any:
        spec.setdefault("ports", [{"name": "http", "port": 80, "protocol": "TCP"}])
        return self.core.create_namespaced_service(namespace, {"metadata": {"name": name}, "spec": spec})

    def endpoint_slice(self, service: str, ips: list[str], namespace: str = "default", *,
                       name: str | None = None, port: int = 8080) -> Any:
        labels = {"kubernetes.io/service-name": service}
        body = {"metadata": {"name": name or f"{service}-1", "labels": labels},
                "addressType": "IPv4", "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
                "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips]}
        return self.discovery.create_namespaced_endpoint_slice(namespace, body)


@pytest.fixture(scope="module")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServerProcess]:
    srv = ApiServerProcess(tmp_path_factory.mktemp("apiserver"))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def api(apiserver: ApiServerProcess) -> Iterator[Api]:
    client = k8s_config.new_client_from_config(config_file=str(apiserver.kubeconfig))
    try:
        yield Api(k8s.CoreV1Api(client), k8s.DiscoveryV1Api(client))
    finally:
        client.close()


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dnsmasq]:
    if shutil.which("dnsmasq") is None:
        pytest.skip("dnsmasq is not installed (Debian package dnsmasq-base; `make deps` installs it)")
    resolver = Dnsmasq(tmp_path_factory.mktemp("upstream"), UPSTREAM_HOSTS)
    try:
        resolver.start()
        yield resolver
    finally:
        resolver.stop()


@pytest.fixture(scope="module")
def dns(apiserver: ApiServerProcess, upstream: Dnsmasq,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnsProcess]:
    proc = DnsProcess(apiserver.kubeconfig, tmp_path_factory.mktemp("dns"), [upstream.port], ["--autopath"])
    try:
        proc.start()
        yield proc
    finally:
        code = proc.stop()
        assert code == 0, f"netplane dns did not stop cleanly ({code}):\n{proc.log_tail()}"
