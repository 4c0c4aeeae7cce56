"""The answering layer of a client connection (netplane/ingress/downstream.py): what the
upstream connection hands over (heads, body chunks, the end, a switch to a tunnel, a
failure) becomes the client's response, re-framed where needed (chunked for a
close-delimited body, Connection for HTTP/1.0 clients), hop-by-hop headers removed."""

from __future__ import annotations

import logging
from bisect import bisect_left

from netplane.ingress import headers as h
from netplane.ingress.connstate import TUNNEL, UPSTREAM, ConnectionState
from netplane.ingress.exchange import CHUNKED_FRAMING, CLOSE_FRAMING, LENGTH_FRAMING, NO_FRAMING
from netplane.ingress.metrics import BUCKETS
from netplane.ingress.upstream import UpstreamConnection

log = logging.getLogger(__name__)


class ResponseRelay(ConnectionState):
    __slots__ = ()

    def informational(self, status: int, head: bytes) -> None:
        ex = self.active
        if ex is None:
            return
        if status == 101:
            if not ex.upgrade:
                return
            ex.status = 101
            self.out.append(head + b"\r\n\r\n")
        elif ex.version11:
            self.out.append(h.response_head(head) + b"\r\n\r\n")

    def response_head(self, status: int, head: bytes) -> None:
        ex = self.active
        if ex is None or ex.done:
            return
        ex.status = status
        ex.response_started = True
        route = ex.route
        assert route is not None and ex.backend is not None
        # IngressMetrics.upstream_latency, inlined (a call per request less).
        latency = self.gw.metrics.latency
        row = latency.get(ex.backend.latency_key)
        if row is None:
            row = latency[ex.backend.latency_key] = [0.0] * (len(BUCKETS) + 2)
        took = self.gw.loop.time() - ex.sent_at
        row[bisect_left(BUCKETS, took)] += 1
        row[-1] += took
        lower = head.lower()
        head = h.response_head(head)
        if ex.method == b"HEAD" or status in (204, 304):
            ex.framing = NO_FRAMING
        elif b"\r\ncontent-length:" in lower:
            ex.framing = LENGTH_FRAMING
        else:
            # Without a length, a body the upstream does not chunk ends when it closes.
            ex.ends_at_eof = b"\r\ntransfer-encoding:" not in lower
            if ex.version11:
                head += b"\r\nTransfer-Encoding: chunked"
                ex.framing = CHUNKED_FRAMING
            else:
                ex.framing = CLOSE_FRAMING
                ex.close_after = True
        if route.response_headers is not None:
            head = h.edit_head(head, route.response_headers)
        if ex.set_cookie:
            head += b"\r\nSet-Cookie: " + ex.set_cookie
        if ex.close_after or not ex.keep_alive:
            ex.close_after = True
            head += b"\r\nConnection: close\r\n\r\n"
        elif not ex.version11:
            head += b"\r\nConnection: keep-alive\r\n\r\n"
        else:
            head += b"\r\n\r\n"
        self.out.append(head)

    def response_body(self, body: bytes) -> None:
        ex = self.active
        if ex is None or ex.done:
            return
        ex.bytes_out += len(body)
        if ex.framing == CHUNKED_FRAMING:
            self.out.append(b"%x\r\n%b\r\n" % (len(body), body))
        else:
            self.out.append(body)
        if self.deadline_kind == UPSTREAM:
            self.deadline = self.gw.loop.time() + ex.route.policy.read_timeout  # type: ignore[union-attr]

    def response_complete(self, conn: UpstreamConnection, *, keep_alive: bool) -> None:
        ex = self.active
        if ex is None or ex.conn is not conn:
            return
        if ex.framing == CHUNKED_FRAMING:
            self.out.append(b"0\r\n\r\n")
        ex.conn = None
        if keep_alive and ex.complete:
            self.gw.pool.put(conn)
        else:
            conn.close()
        if self.gw.balancer.failures:
            assert ex.endpoint is not None
            self.gw.balancer.succeeded(ex.endpoint)
        self._finish(ex, ex.status)

    def upstream_upgraded(self, conn: UpstreamConnection, rest: bytes) -> None:
        ex = self.active
        if ex is None or ex.conn is not conn or ex.status != 101:
            self.upstream_failed(conn, "switched protocols unasked")
            return
        conn.tunnel = True
        self.tunnel = conn
        self.upgrading = False
        ex.done = True
        self._record(ex, 101)
        if rest:
            self.out.append(rest)
        if ex.early:
            conn.write(ex.early)
        self.paused = 0
        if self.transport is not None:
            self.transport.resume_reading()
        self._set_deadline(TUNNEL, self._tunnel_timeout())

    def tunnel_from_upstream(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)
            self.deadline = self.gw.loop.time() + self._tunnel_timeout()

    def upstream_failed(self, conn: UpstreamConnection, why: str) -> None:
        ex = self.active
        conn.close(abort=True)
        if ex is None or ex.done:
            return
        log.info("%s: upstream %s: %s", ex.route.source if ex.route else "?", conn.endpoint, why)
        ex.conn = None
        if ex.response_started:
            self._abort_after_flush(ex)
        else:
            self._answer(ex, 502, close=True)

    def upstream_lost(self, conn: UpstreamConnection, exc: Exception | None) -> None:
        if conn is self.tunnel:
            self.tunnel = None
            self.flush()
            self._close()
            return
        ex = self.active
        if ex is None or ex.conn is not conn or ex.done:
            return
        ex.conn = None
        if ex.response_started:
            if ex.ends_at_eof:
                # The close was the end of the body (llhttp is not told of EOFs here).
                if ex.framing == CHUNKED_FRAMING:
                    self.out.append(b"0\r\n\r\n")
                ex.close_after = ex.close_after or ex.framing == CLOSE_FRAMING
                self.flush()
                self._finish(ex, ex.status)
            else:
                self._abort_after_flush(ex)  # truncated: the client must not take it as whole
            return
        if conn.reused and not conn.received and ex.replayable and ex.endpoint is not None:
            # The keep-alive race: the upstream closed an idle connection as the request
            # went out on it. Nothing was processed; send it again on a new connection.
            self.gw.metrics.retries += 1
            ex.pending = []
            self._dispatch(ex, ex.endpoint, fresh=True)
            return
        if ex.endpoint is not None:
            self.gw.balancer.failed(ex.endpoint)
        log.info("%s: upstream %s closed before answering: %r", ex.route.source if ex.route else "?",
                 conn.endpoint, exc)
        self._answer(ex, 502, close=not ex.complete)
        self.flush()
