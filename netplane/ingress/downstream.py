"""The client side of the gateway: one asyncio Protocol per client connection (plain or
TLS), reading requests with llhttp (httptools); routing and sending them is the Dispatch
layer's (dispatch.py), answering the ResponseRelay's (responses.py). Backpressure both
ways, deadlines, lingering close and the connection's end live here.

Hand-written rather than aiohttp.web: bench/ingress.py measured an aiohttp.web handler
with a ClientSession at ~0.2x nginx's requests/s, this at more than 0.5x. What the
benchmark showed matters: no per-request task or timer (deadlines are floats the
sweeper checks), the upstream head built as one join of the bytes the client sent, the
routing answer cached per (host, path), and one write per read (`out` is flushed after
each upstream read).
"""

from __future__ import annotations

import asyncio
import logging

from httptools import HttpParserCallbackError, HttpParserError, HttpParserUpgrade, HttpRequestParser

from netplane.ingress import headers as h
from netplane.ingress.connstate import (
    BODY,
    HEADER,
    IDLE,
    LINGER,
    PAUSE_PENDING,
    PAUSE_QUEUE,
    PAUSE_UPGRADE,
    PENDING_LIMIT,
    SEND,
    TUNNEL,
    UPSTREAM,
)
from netplane.ingress.dispatch import Dispatch
from netplane.ingress.exchange import (
    CHUNKED,
    CONNECTION,
    COOKIE,
    HOST,
    LENGTH,
    REQUEST_ID,
    SPECIAL,
    UPGRADE,
    XFF,
    Exchange,
)
from netplane.ingress.proxy import Proxy
from netplane.ingress.responses import ResponseRelay
from netplane.ingress.upstream import PAUSE_UPSTREAM, UpstreamConnection

log = logging.getLogger(__name__)

_LINGER_SECONDS = 5.0
_COLON, _CRLF = b": ", b"\r\n"


class _Reject(Exception):
    """Raised inside a parser callback: answer `status` and close."""

    def __init__(self, status: int, detail: str = "") -> None:
        super().__init__(detail)
        self.status = status


class Downstream(Dispatch, ResponseRelay, asyncio.Protocol):
    __slots__ = ("active", "client_eof", "client_ip", "closed", "deadline", "deadline_kind", "forwarded",
                 "gw", "lingering", "out", "parser", "parsing", "paused", "port", "queue", "scheme",
                 "transport", "tunnel", "upgrading")

    def __init__(self, gw: Proxy, *, tls: bool, port: int) -> None:
        self.gw = gw
        self.scheme = "https" if tls else "http"
        self.transport: asyncio.Transport | None = None
        self.parser = HttpRequestParser(self)
        self.active: Exchange | None = None  # the exchange being answered
        self.parsing: Exchange | None = None  # the request being read (a later one when pipelined)
        self.queue: list[Exchange] = []
        self.out: list[bytes] = []
        self.closed = False
        self.paused = 0
        self.tunnel: UpstreamConnection | None = None
        self.upgrading = False
        self.lingering = False
        self.client_eof = False
        self.client_ip = b""
        self.forwarded = b""
        self.deadline = 0.0
        self.deadline_kind = IDLE
        self.port = port

    # -- asyncio: the client connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.client_ip = (peer[0] if peer else "").encode()
        # Per connection, not per request: the forwarding headers that do not change.
        self.forwarded = (b"X-Forwarded-Proto: " + self.scheme.encode() + b"\r\nX-Forwarded-Port: "
                          + str(self.port).encode() + b"\r\nX-Real-IP: " + self.client_ip + b"\r\n")
        self.gw.connections.add(self)
        self._set_deadline(IDLE, self.gw.settings.keepalive_timeout)

    def data_received(self, data: bytes) -> None:
        if self.closed or self.lingering:
            return
        if self.tunnel is not None:
            self.tunnel.write(data)
            self.deadline = self.gw.loop.time() + self._tunnel_timeout()
            return
        if self.upgrading:
            ex = self.active
            if ex is not None:
                ex.early += data
                if len(ex.early) > PENDING_LIMIT:
                    self.pause_reading(PAUSE_UPGRADE)
            return
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade as exc:
            ex = self.active
            if ex is not None and not ex.done:
                ex.early = data[exc.args[0]:]
                self.upgrading = True
        except HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _Reject):
                if cause.status:
                    self._refuse(cause.status, str(cause))
            else:
                log.error("request handling failed", exc_info=cause or exc)
                self._refuse(500, "internal error")
        except HttpParserError as exc:
            self._refuse(400, f"bad request: {exc}")
        if self.out:
            self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.gw.connections.discard(self)
        if self.tunnel is not None:
            self.tunnel.close()
            self.tunnel = None
        ex = self.active
        if ex is not None and not ex.done:
            ex.done = True
            if ex.conn is not None:
                ex.conn.close()  # its response can no longer be delivered, nor the connection reused
                ex.conn = None
            self._record(ex, 499)  # nginx's "client closed request"

    def pause_writing(self) -> None:
        # The client reads slower than the upstream sends: stop reading the upstream.
        conn = self.tunnel or (self.active.conn if self.active is not None else None)
        if conn is not None:
            conn.pause_reading()
        self._set_deadline(SEND, self.gw.settings.send_timeout)

    def resume_writing(self) -> None:
        conn = self.tunnel or (self.active.conn if self.active is not None else None)
        if conn is not None:
            conn.resume_reading()
        if self.tunnel is not None:
            self._set_deadline(TUNNEL, self._tunnel_timeout())
        elif self.active is not None and self.active.route is not None:
            self._set_deadline(UPSTREAM, self.active.route.policy.read_timeout)

    def eof_received(self) -> bool:
        # A client that half-closes while its request is in flight still gets its answer;
        # the connection closes after it.
        self.client_eof = True
        return self.active is not None and not self.active.done and self.tunnel is None

    def pause_reading(self, reason: int) -> None:
        if not self.paused and self.transport is not None and not self.closed:
            self.transport.pause_reading()
        self.paused |= reason
        ex = self.active
        if reason == PAUSE_UPSTREAM and ex is not None and ex.route is not None and not ex.response_started:
            # The upstream stopped reading the request body: proxy-send-timeout runs
            # (nginx's proxy_send_timeout, answered with 504).
            self._set_deadline(UPSTREAM, ex.route.policy.send_timeout, ex)

    def resume_reading(self, reason: int) -> None:
        was = self.paused
        self.paused &= ~reason
        if was and not self.paused and self.transport is not None and not self.closed:
            self.transport.resume_reading()
        if reason == PAUSE_UPSTREAM and self.deadline_kind == UPSTREAM and self.active is not None \
                and not self.active.complete:
            self._set_deadline(BODY, self.gw.settings.body_timeout)

    # -- llhttp callbacks: reading a request

    def _begin(self) -> Exchange:
        """A request starts (from on_url, its first callback: llhttp's on_message_begin
        would be one more Python call per request)."""
        if self.closed:
            raise _Reject(0)  # answered and closing: the rest of the bytes are not read
        loop_time = self.gw.loop.time()
        ex = Exchange(loop_time)
        self.parsing = ex
        if self.active is None:
            self.active = ex
            self.deadline_kind = HEADER
            self.deadline = loop_time + self.gw.settings.header_timeout
        else:
            self.queue.append(ex)  # pipelined: answered in order, after the active one
            self.pause_reading(PAUSE_QUEUE)
        return ex

    def on_url(self, url: bytes) -> None:
        ex = self.parsing
        if ex is None:
            ex = self._begin()
        ex.url += url
        if len(ex.url) > self.gw.settings.max_url_bytes:
            raise _Reject(414, "request target too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        ex = self.parsing
        assert ex is not None
        ex.header_bytes += len(name) + len(value) + 4
        lname = name.lower()
        headers = ex.headers
        headers.append((lname, value))
        if ex.header_bytes > self.gw.settings.max_header_bytes or len(headers) > self.gw.settings.max_headers:
            raise _Reject(431, "request headers too large")
        kind = SPECIAL.get(lname)
        if kind is None:
            ex.parts += (name, _COLON, value, _CRLF)
        elif kind == HOST:
            if ex.host is not None:
                raise _Reject(400, "more than one Host header")
            ex.host = value
        elif kind == LENGTH:
            # llhttp refuses repeated or conflicting lengths and a length beside
            # Transfer-Encoding; checked here too, so the guard does not hang on a flag.
            if ex.content_length is not None or ex.has_te:
                raise _Reject(400, "conflicting Content-Length / Transfer-Encoding")
            try:
                ex.content_length = int(value)
            except ValueError:
                raise _Reject(400, "bad Content-Length") from None
        elif kind == CHUNKED:
            if ex.content_length is not None:
                raise _Reject(400, "conflicting Content-Length / Transfer-Encoding")
            ex.has_te = True
            ex.chunked = value.strip().lower().endswith(b"chunked")
        elif kind == CONNECTION:
            ex.connection = value.lower()
        elif kind == UPGRADE:
            ex.upgrade = value
        elif kind == XFF:
            ex.xff = value
        elif kind == REQUEST_ID:
            if 0 < len(value) <= 200 and value.isascii() and b" " not in value:
                ex.request_id = value
        elif kind == COOKIE:
            ex.cookie = value
            ex.parts += (name, _COLON, value, _CRLF)

    def on_headers_complete(self) -> None:
        ex = self.parsing
        assert ex is not None
        parser = self.parser
        ex.method = parser.get_method()
        ex.version11 = parser.get_http_version() == "1.1"
        ex.keep_alive = parser.should_keep_alive()
        if not ex.chunked and not ex.content_length:
            ex.complete = True  # no body: llhttp's message end follows at once
        if b"upgrade" not in ex.connection:
            ex.upgrade = b""
        else:
            ex.close_after = True  # the connection is a tunnel, or done after a refused upgrade
        if ex is self.active:
            self._start(ex)

    def on_body(self, body: bytes) -> None:
        ex = self.parsing
        if ex is None or ex.done:
            return
        ex.body_bytes += len(body)
        route = ex.route
        if route is not None and route.policy.max_body_size and ex.body_bytes > route.policy.max_body_size:
            raise _Reject(413, "request body too large")
        if ex.chunked:
            body = b"%x\r\n%b\r\n" % (len(body), body)
        if ex.conn is not None and ex.pending is None:
            ex.conn.write(body)
        else:
            if ex.pending is None:
                ex.pending = []
            ex.pending.append(body)
            ex.pending_bytes += len(body)
            if ex.pending_bytes > PENDING_LIMIT:
                self.pause_reading(PAUSE_PENDING)
        if ex is self.active and self.deadline_kind == BODY:
            self.deadline = self.gw.loop.time() + self.gw.settings.body_timeout

    def on_message_complete(self) -> None:
        ex = self.parsing
        self.parsing = None
        if ex is None:
            return
        ex.complete = True
        if ex.done:
            return
        if ex.chunked:
            self.on_body_end(ex)
        route = ex.route
        if ex is self.active and route is not None and not ex.response_started:
            self.deadline_kind = UPSTREAM
            self.deadline = self.gw.loop.time() + route.policy.read_timeout
            if route.policy.request_timeout:
                self.deadline = min(self.deadline, ex.started + route.policy.request_timeout)

    def on_body_end(self, ex: Exchange) -> None:
        end = b"0\r\n\r\n"
        if ex.conn is not None and ex.pending is None:
            ex.conn.write(end)
        else:
            if ex.pending is None:
                ex.pending = []
            ex.pending.append(end)

    # -- finishing

    def _answer(self, ex: Exchange, status: int, body: bytes = b"", *, close: bool = False,
                extra: tuple[tuple[str, str], ...] = ()) -> None:
        """A response of the gateway's own (errors, redirects)."""
        if ex.done:
            return
        if ex.conn is not None:
            ex.conn.close(abort=True)
            ex.conn = None
        close = close or not ex.keep_alive or ex.close_after or (not ex.complete and status >= 400)
        ex.status = status
        self.out.append(h.local_response(status, body, close=close, extra=extra))
        ex.close_after = close
        self._finish(ex, status)

    def _refuse(self, status: int, detail: str) -> None:
        """A request that cannot be read on: answer and close the connection."""
        ex = self.active or self.parsing or Exchange(self.gw.loop.time())
        log.debug("refusing a request from %s: %d %s", self.client_ip.decode(), status, detail)
        if ex.done or ex.response_started:
            self._abort_after_flush(ex)
            return
        ex.keep_alive = False
        self._answer(ex, status, (detail + "\n").encode())

    def _finish(self, ex: Exchange, status: int) -> None:
        ex.done = True
        self._record(ex, status)
        transport = self.transport
        if not ex.complete and transport is not None and transport.can_write_eof() and not self.closed:
            # Answered before the request's body was read (413, 404 to a POST): nginx's
            # lingering close. The answer ends with a FIN, what the client still sends is
            # read and dropped for a while, so that its TCP stack does not reset the
            # connection and destroy the answer before the client has read it.
            self.flush()
            transport.write_eof()
            self.lingering = True
            self.paused = 0
            transport.resume_reading()
            self.deadline_kind = LINGER
            self.deadline = self.gw.loop.time() + _LINGER_SECONDS
            return
        if ex.close_after or not ex.keep_alive or not ex.complete or self.client_eof:
            self.flush()
            self._close()
            return
        self.active = None
        if self.queue:
            nxt = self.queue.pop(0)
            self.active = nxt
            if not self.queue:
                self.resume_reading(PAUSE_QUEUE)
            if nxt.method:  # its head is complete: start it (its body waits in pending)
                self._start(nxt)
            return
        self.deadline_kind = IDLE
        self.deadline = self.gw.loop.time() + self.gw.settings.keepalive_timeout

    def _record(self, ex: Exchange, status: int) -> None:
        route = ex.route
        gw = self.gw
        key = (route.namespace, route.kind, route.name, route.host, status) if route is not None \
            else ("", "", "", "", status)
        counts = gw.metrics.requests
        counts[key] = counts.get(key, 0) + 1
        if gw.access_log.enabled:
            gw.access_log.write({
                "request_id": ex.request_id.decode("latin-1"), "remote_addr": self.client_ip.decode(),
                "method": ex.method.decode("latin-1"), "host": (ex.host or b"").decode("latin-1"),
                "path": ex.url.decode("latin-1"), "scheme": self.scheme, "status": status,
                "request_bytes": ex.body_bytes, "response_bytes": ex.bytes_out,
                "duration_s": round(gw.loop.time() - ex.started, 6),
                "route": route.source if route else "", "upstream": str(ex.endpoint) if ex.endpoint else "",
            })

    def flush(self) -> None:
        out = self.out
        if out:
            if self.transport is not None and not self.closed:
                self.transport.write(out[0] if len(out) == 1 else b"".join(out))
            out.clear()

    def _abort_after_flush(self, ex: Exchange) -> None:
        ex.done = True
        self.flush()
        if self.transport is not None:
            self.transport.abort()
        self.closed = True

    def _close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # -- deadlines (checked by Proxy.sweep)

    def _set_deadline(self, kind: int, seconds: float, ex: Exchange | None = None) -> None:
        self.deadline_kind = kind
        deadline = self.gw.loop.time() + seconds
        if ex is not None and ex.route is not None and ex.route.policy.request_timeout:
            deadline = min(deadline, ex.started + ex.route.policy.request_timeout)
        self.deadline = deadline

    def _tunnel_timeout(self) -> float:
        ex = self.active
        return ex.route.policy.read_timeout if ex is not None and ex.route is not None else 60.0

    def expire(self, _now: float) -> None:
        kind = self.deadline_kind
        self.deadline = 0.0
        ex = self.active
        if kind in (IDLE, TUNNEL, SEND, LINGER) or ex is None or ex.done:
            if self.tunnel is not None:
                self.tunnel.close()
            self.flush()
            self._close()
            return
        if kind in (HEADER, BODY):
            ex.keep_alive = False
            self._answer(ex, 408, b"request timed out\n", close=True)
        elif ex.response_started:
            self._abort_after_flush(ex)
        else:
            if ex.endpoint is not None:
                self.gw.balancer.failed(ex.endpoint)
            self._answer(ex, 504, b"upstream timed out\n", close=not ex.complete)
        self.flush()
