"""Connections to endpoints: a response-parsing protocol per connection and keep-alive pools.

Hand-written on asyncio's Protocol (with llhttp through httptools) rather than aiohttp's
client: bench/ingress.py measured a ClientSession-based proxy at ~0.2x nginx, and most of
that is the per-request objects (request, response, stream readers, multidicts) this
avoids. Response heads are forwarded as the bytes they came in, hop-by-hop lines cut out
in one regex pass; bodies are handed over chunk by chunk with backpressure both ways.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

from netplane.ingress.routes import Upstream

PAUSE_UPSTREAM = 1  # the downstream's pause reason for a congested upstream

if TYPE_CHECKING:
    from netplane.ingress.downstream import Downstream

log = logging.getLogger(__name__)


class _HeadDone(Exception):
    """Raised from the head callback to stop the parser where a response has no body that
    llhttp could know of (the answer to a HEAD request)."""


class UpstreamConnection(asyncio.Protocol):
    __slots__ = ("closed", "downstream", "endpoint", "idle_since", "in_head", "no_body", "parser", "pool",
                 "raw",
                 "received", "reused", "transport", "tunnel")

    def __init__(self, pool: Pool, endpoint: Upstream) -> None:
        self.pool = pool
        self.endpoint = endpoint
        self.transport: asyncio.Transport | None = None
        self.parser = HttpResponseParser(self)
        self.downstream: Downstream | None = None
        self.raw = b""
        self.in_head = True
        self.no_body = False
        self.received = False
        self.reused = False
        self.tunnel = False
        self.closed = False
        self.idle_since = 0.0

    # -- asyncio

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        ds = self.downstream
        if self.tunnel:
            if ds is not None:
                ds.tunnel_from_upstream(data)
            return
        if ds is None:
            # Bytes nobody asked for, on an idle connection: it cannot be trusted again.
            self.close()
            return
        self.received = True
        if self.in_head:
            self.raw = self.raw + data if self.raw else data
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade as exc:
            ds.upstream_upgraded(self, data[exc.args[0]:])
        except HttpParserError as exc:
            if isinstance(exc.__context__, _HeadDone):
                # Not kept alive: servers that send a body with a HEAD answer exist, and
                # those bytes would be read as the next response.
                self.in_head = True
                self.raw = b""
                ds.response_complete(self, keep_alive=False)
            else:
                ds.upstream_failed(self, f"bad response: {exc}")
        ds.flush()

    def on_headers_complete(self) -> None:
        raw = self.raw
        end = raw.find(b"\r\n\r\n")
        head, self.raw = raw[:end], raw[end + 4:]
        status = self.parser.get_status_code()
        ds = self.downstream
        assert ds is not None
        if status < 200:
            # 1xx: forwarded as it is; the final response follows (a 101 ends the parsing
            # with HttpParserUpgrade instead: the connection becomes a tunnel).
            ds.informational(status, head)
            return
        self.in_head = False
        self.raw = b""
        ds.response_head(status, head)
        if self.no_body:
            raise _HeadDone()

    def on_body(self, body: bytes) -> None:
        ds = self.downstream
        if ds is not None:
            ds.response_body(body)

    def on_message_complete(self) -> None:
        if self.in_head:
            return  # the end of a 1xx: the final response follows
        self.in_head = True
        ds = self.downstream
        if ds is not None:
            ds.response_complete(self, keep_alive=self.parser.should_keep_alive())

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        ds = self.downstream
        if ds is not None:
            ds.upstream_lost(self, exc)
        else:
            self.pool.discard(self)

    def pause_writing(self) -> None:
        # The upstream reads a request body slower than the client sends it.
        if self.downstream is not None:
            self.downstream.pause_reading(PAUSE_UPSTREAM)

    def resume_writing(self) -> None:
        if self.downstream is not None:
            self.downstream.resume_reading(PAUSE_UPSTREAM)

    def eof_received(self) -> bool:
        return False  # close: HTTP/1.1 upstreams do not half-close mid-exchange

    # -- the proxy

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def expect(self, downstream: Downstream, *, no_body: bool) -> None:
        """The next response on this connection belongs to `downstream`'s exchange."""
        self.downstream = downstream
        self.no_body = no_body
        self.received = False

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def close(self, *, abort: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        self.downstream = None
        self.pool.discard(self)
        if self.transport is not None:
            self.transport.abort() if abort else self.transport.close()


class Pool:
    """Idle keep-alive connections per endpoint, most recently used first (the warm ones
    are reused and the others age out)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, max_idle_per_endpoint: int = 128,
                 idle_timeout: float = 60.0) -> None:
        self.loop = loop
        self.max_idle = max_idle_per_endpoint
        self.idle_timeout = idle_timeout
        self._idle: dict[Upstream, list[UpstreamConnection]] = {}

    def take(self, endpoint: Upstream) -> UpstreamConnection | None:
        idle = self._idle.get(endpoint)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                conn.reused = True
                return conn
        return None

    def put(self, conn: UpstreamConnection) -> None:
        conn.downstream = None
        if conn.closed:
            return
        idle = self._idle.get(conn.endpoint)
        if idle is None:
            idle = self._idle[conn.endpoint] = []
        if len(idle) >= self.max_idle:
            conn.close()
            return
        conn.idle_since = self.loop.time()
        idle.append(conn)

    def discard(self, conn: UpstreamConnection) -> None:
        idle = self._idle.get(conn.endpoint)
        if idle and conn in idle:
            idle.remove(conn)

    def sweep(self, now: float) -> None:
        """Closes connections idle longer than the idle time-out."""
        for endpoint, idle in list(self._idle.items()):
            old = [c for c in idle if now - c.idle_since > self.idle_timeout]
            for conn in old:
                conn.close()
            if not self._idle.get(endpoint):
                self._idle.pop(endpoint, None)

    def retain(self, endpoints: set[Upstream]) -> None:
        """Closes the idle connections of endpoints that left the configuration; requests
        in flight on them finish first."""
        for endpoint in [e for e in self._idle if e not in endpoints]:
            for conn in list(self._idle.get(endpoint, ())):
                conn.close()
            self._idle.pop(endpoint, None)

    @property
    def idle_count(self) -> int:
        return sum(len(v) for v in self._idle.values())

    def close(self) -> None:
        self.retain(set())
