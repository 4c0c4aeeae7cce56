"""HTTP/1.1 as the real gateway speaks it on real sockets: smuggling guards, size limits,
slow clients, pipelining, HEAD, chunked bodies both ways, streaming without buffering,
and kept-alive upstream connections."""

from __future__ import annotations

import hashlib
import socket
import time

import psutil
import pytest

from tests.ingress_backend import CLOSE_DELIMITED, expected_download
from tests.integration.ingress.conftest import (
    BACKENDS,
    GATEWAY,
    HTTP,
    RAW_PORT,
    Env,
    endpoints,
    eventually,
    host_rule,
    ingress,
    service,
)

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def host(env: Env) -> str:
    """A host routed to one backend, with a 64 MiB body limit."""
    ns = env.namespace()
    env.create(service("echo", ns))
    env.create(endpoints("echo", ns, [BACKENDS[0]]))
    env.create(ingress("echo", ns, [host_rule(f"{ns}.test", ("Prefix", "/", "echo"))],
                       annotations={"nginx.ingress.kubernetes.io/proxy-body-size": "64m"}))
    eventually(lambda: env.request(f"{ns}.test", "/").status == 200, "the Ingress")
    return f"{ns}.test"


def status_of(raw: bytes) -> int:
    assert raw.startswith(b"HTTP/1.1 "), raw[:100]
    return int(raw[9:12])


@pytest.mark.parametrize("request_head", [
    b"POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: {h}\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
    b"POST / HTTP/1.1\r\nHost: {h}\r\nTransfer-Encoding: gzip\r\n\r\nabcd",
    b"GET / HTTP/1.1\r\nHost: {h}\r\nX: a\r\n b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost : {h}\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: {h}\r\nHost: other.test\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",
], ids=["cl-then-te", "te-then-cl", "two-lengths", "te-not-chunked", "obs-fold", "space-before-colon",
        "two-hosts", "no-host"])
def test_ambiguous_requests_are_refused_with_400_and_the_connection_closed(env: Env, host: str,
                                                                          request_head: bytes) -> None:
    answer = env.raw(request_head.replace(b"{h}", host.encode()))
    assert status_of(answer) == 400
    assert answer.count(b"HTTP/1.1 ") == 1  # nothing after it reached a backend


def test_oversized_headers_target_and_body_are_refused(env: Env, host: str) -> None:
    big_header = b"GET / HTTP/1.1\r\nHost: %b\r\nX-Big: %b\r\n\r\n" % (host.encode(), b"a" * 40000)
    assert status_of(env.raw(big_header)) == 431
    long_target = b"GET /%b HTTP/1.1\r\nHost: %b\r\n\r\n" % (b"a" * 9000, host.encode())
    assert status_of(env.raw(long_target)) == 414
    chunked = (b"POST /upload HTTP/1.1\r\nHost: %b\r\nTransfer-Encoding: chunked\r\n\r\n" % host.encode()
               + b"".join(b"100000\r\n" + b"x" * 0x100000 + b"\r\n" for _ in range(66)) + b"0\r\n\r\n")
    assert status_of(env.raw(chunked)) == 413


def test_a_client_that_sends_its_head_too_slowly_gets_408(env: Env, host: str) -> None:
    def slowloris() -> bytes:
        with socket.create_connection((GATEWAY, HTTP), timeout=15) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: " + host.encode() + b"\r\n")
            for _ in range(8):
                time.sleep(0.5)
                try:
                    s.sendall(b"X-Drip: 1\r\n")
                except OSError:
                    break
            return s.recv(65536)
    assert status_of(env.run(slowloris)) == 408


def test_a_client_that_stops_sending_its_body_gets_408(env: Env, host: str) -> None:
    def stalled() -> bytes:
        with socket.create_connection((GATEWAY, HTTP), timeout=15) as s:
            s.sendall(b"POST /upload HTTP/1.1\r\nHost: %b\r\nContent-Length: 100\r\n\r\nab" % host.encode())
            return s.recv(65536)
    assert status_of(env.run(stalled)) == 408


def test_pipelined_requests_are_answered_in_order_on_one_connection(env: Env, host: str) -> None:
    h = host.encode()
    answer = env.raw(b"GET /first HTTP/1.1\r\nHost: %b\r\n\r\n" % h
                     + b"GET /sleep?s=0.2 HTTP/1.1\r\nHost: %b\r\n\r\n" % h
                     + b"GET /third HTTP/1.1\r\nHost: %b\r\nConnection: close\r\n\r\n" % h)
    assert answer.count(b"HTTP/1.1 200") == 3
    assert answer.index(b"/first") < answer.index(b"slept") < answer.index(b"/third")


def test_head_answers_have_no_body_and_keep_the_connection(env: Env, host: str) -> None:
    h = host.encode()
    answer = env.raw(b"HEAD /download?bytes=1000 HTTP/1.1\r\nHost: %b\r\n\r\n" % h
                     + b"GET /after HTTP/1.1\r\nHost: %b\r\nConnection: close\r\n\r\n" % h)
    first, _, rest = answer.partition(b"\r\n\r\n")
    assert b"Content-Length: 1000" in first
    assert rest.startswith(b"HTTP/1.1 200") and b"/after" in rest


def test_chunked_bodies_pass_both_ways(env: Env, host: str) -> None:
    body = b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in (b"hello ", b"chunked ", b"world")) + b"0\r\n\r\n"
    head = b"POST /upload HTTP/1.1\r\nHost: %b\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    answer = env.raw(head % host.encode() + body)
    assert status_of(answer) == 200
    assert hashlib.sha256(b"hello chunked world").hexdigest().encode() in answer
    resp = env.request(host, "/download?bytes=300000&chunked=1")
    assert resp.status == 200 and resp.headers.get("transfer-encoding") == "chunked"
    assert hashlib.sha256(resp.body).hexdigest() == expected_download(300000)


def test_an_http10_client_gets_a_close_delimited_answer(env: Env, host: str) -> None:
    answer = env.raw(b"GET /download?bytes=5000&chunked=1 HTTP/1.0\r\nHost: %b\r\n\r\n" % host.encode())
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding" not in head and b"Connection: close" in head
    assert len(body) == 5000


def test_a_close_delimited_upstream_body_is_chunked_for_http11_and_passed_as_is_to_http10(env: Env) -> None:
    ns = env.namespace()
    env.create(service("old", ns))
    env.create(endpoints("old", ns, [BACKENDS[1]], port=RAW_PORT))
    env.create(ingress("old", ns, [host_rule(f"{ns}.test", ("Prefix", "/", "old"))]))
    eventually(lambda: env.request(f"{ns}.test", "/").status == 200, "the Ingress")
    resp = env.request(f"{ns}.test", "/")
    assert resp.headers.get("transfer-encoding") == "chunked" and resp.body == CLOSE_DELIMITED
    answer = env.raw(b"GET / HTTP/1.0\r\nHost: %b\r\n\r\n" % f"{ns}.test".encode())
    assert answer.partition(b"\r\n\r\n")[2] == CLOSE_DELIMITED


def test_upstream_connections_are_kept_alive_and_reused(env: Env, host: str) -> None:
    peers = {env.request(host, "/").json()["peer_port"] for _ in range(20)}
    assert len(peers) <= 2  # 20 requests from new client connections, over one or two upstream ones
    assert env.metric("netplane_ingress_upstream_idle_connections") >= 1


def test_a_refused_body_is_drained_so_the_client_reads_its_answer(env: Env, host: str) -> None:
    assert env.request(host, "/upload", method="POST", body=b"x" * (65 << 20)).status == 413


@pytest.mark.slow
def test_large_bodies_stream_through_without_the_gateway_buffering_them(env: Env, host: str) -> None:
    assert env.gateway is not None
    gateway = psutil.Process(env.gateway.pid)
    rss_before = gateway.memory_info().rss
    size = 60 << 20

    def upload() -> bytes:
        with socket.create_connection((GATEWAY, HTTP), timeout=30) as s:
            s.sendall(b"POST /upload HTTP/1.1\r\nHost: %b\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                      % (host.encode(), size))
            block = b"u" * (1 << 20)
            for _ in range(size >> 20):
                s.sendall(block)
            out = b""
            while chunk := s.recv(65536):
                out += chunk
            return out
    answer = env.run(upload)
    assert status_of(answer) == 200 and b'"bytes": %d' % size in answer
    resp = env.request(host, f"/download?bytes={size}", timeout=60)
    assert len(resp.body) == size and hashlib.sha256(resp.body).hexdigest() == expected_download(size)
    growth = gateway.memory_info().rss - rss_before
    assert growth < 20 << 20, f"the gateway grew by {growth >> 20} MiB moving {size >> 20} MiB each way"
