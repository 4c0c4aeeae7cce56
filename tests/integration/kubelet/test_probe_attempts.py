"""One probe attempt of each kind against real sockets and processes on loopback: a
tcpSocket probe needs a listening port, an httpGet or exec probe that takes longer than
timeoutSeconds fails (and an exec probe's processes are killed), whatever the server or
command would have answered later. No pod and no root: the attempt is what the kubelet runs."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from control.kubelet.probes import ProbeTarget, attempt
from netplane.model import Container, Probe, decode

TARGET = ProbeTarget(pod_ip="127.0.0.1", exec_argv=lambda argv: argv, env=dict(os.environ))


def _probe(**fields: Any) -> Probe:
    return decode(Probe, fields)


def _container(**fields: Any) -> Container:
    return decode(Container, {"name": "c", **fields})


class _Server:
    """An HTTP server whose `/slow` answers only once the test releases it, so that "slower
    than timeoutSeconds" never depends on how fast this machine is."""

    def __init__(self) -> None:
        self.release = threading.Event()
        release = self.release

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/slow":
                    release.wait()
                status = int(self.path.removeprefix("/status/")) if self.path.startswith("/status/") else 200
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "http://192.0.2.1/elsewhere")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=10)


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port nobody listens on: bound (so that no one else takes it meanwhile) but never
    listening, so a connection to it is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


async def test_a_tcp_socket_probe_succeeds_on_a_listening_port(server: _Server,
                                                               session: aiohttp.ClientSession) -> None:
    probe = _probe(tcpSocket={"port": server.port})
    assert await attempt(probe, _container(), TARGET, session) is True


async def test_a_tcp_socket_probe_fails_on_a_closed_port(closed_port: int,
                                                         session: aiohttp.ClientSession) -> None:
    probe = _probe(tcpSocket={"port": closed_port})
    assert await attempt(probe, _container(), TARGET, session) is False


async def test_a_tcp_socket_probe_finds_a_named_port_and_may_name_its_host(
        server: _Server, session: aiohttp.ClientSession) -> None:
    container = _container(ports=[{"name": "web", "containerPort": server.port}])
    target = ProbeTarget(pod_ip="192.0.2.1", exec_argv=TARGET.exec_argv, env=TARGET.env)  # never dialled
    probe = _probe(tcpSocket={"port": "web", "host": "127.0.0.1"})
    assert await attempt(probe, container, target, session) is True


@pytest.mark.parametrize(("status", "ok"), [(200, True), (302, True), (404, False), (500, False)])
async def test_an_http_probe_passes_on_2xx_and_3xx_without_following_redirects(
        server: _Server, session: aiohttp.ClientSession, status: int, ok: bool) -> None:
    probe = _probe(httpGet={"path": f"/status/{status}", "port": server.port}, timeoutSeconds=5)
    assert await attempt(probe, _container(), TARGET, session) is ok


async def test_an_http_probe_fails_when_the_server_answers_slower_than_timeout_seconds(
        server: _Server, session: aiohttp.ClientSession) -> None:
    probe = _probe(httpGet={"path": "/slow", "port": server.port}, timeoutSeconds=1)
    assert await attempt(probe, _container(), TARGET, session) is False
    server.release.set()  # the same server, once it answers, passes the same probe
    assert await attempt(probe, _container(), TARGET, session) is True


async def test_an_exec_probe_passes_or_fails_with_its_exit_code(session: aiohttp.ClientSession) -> None:
    assert await attempt(_probe(exec={"command": ["true"]}), _container(), TARGET, session) is True
    assert await attempt(_probe(exec={"command": ["sh", "-c", "exit 3"]}), _container(), TARGET,
                         session) is False


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"  # killed, waiting for init to reap it


def _dies(pid: int) -> bool:
    """Whether `pid` is gone within a generous while (a SIGKILL lands when it is next scheduled)."""
    deadline = time.monotonic() + 30
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return _gone(pid)


async def test_an_exec_probe_that_outlives_timeout_seconds_fails_and_is_killed_with_its_children(
        tmp_path: Path, session: aiohttp.ClientSession) -> None:
    pidfile = tmp_path / "child.pid"
    # sh waits for a child that would sleep far past the timeout.
    command = ["sh", "-c", f"sleep 600 & echo $! > {pidfile}; wait"]
    probe = _probe(exec={"command": command}, timeoutSeconds=1)
    assert await attempt(probe, _container(), TARGET, session) is False
    assert _dies(int(pidfile.read_text())), "the timed-out probe's child kept running"
