"""The dispatching layer of a client connection (netplane/ingress/downstream.py): a
request whose head is read is routed (the table, redirects, limits, canary, balancing)
and its head rewritten for the upstream, then sent on a kept-alive connection or a new
one, retrying other endpoints when connections are refused.

Parts are inlined on purpose (the routing cache lookup, round robin, attaching a pooled
connection): bench/ingress.py showed each call saved here in the per-request cost."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit

from netplane.ingress import headers as h
from netplane.ingress.balancer import affinity_token, cookie_value
from netplane.ingress.connstate import BODY, PAUSE_PENDING, UPSTREAM, ConnectionState
from netplane.ingress.exchange import Exchange, new_request_id
from netplane.ingress.paths import normalize_path
from netplane.ingress.routes import Upstream
from netplane.ingress.upstream import UpstreamConnection

log = logging.getLogger(__name__)

_CRLF = b"\r\n"
_MISS = object()  # not in the routing cache (None there is a cached 404)


class Dispatch(ConnectionState):
    __slots__ = ()

    def _start(self, ex: Exchange) -> None:
        """Routes a request whose head is read, answers it here (404, redirects, 413, no
        backend) or sends its head upstream."""
        gw = self.gw
        if ex.host is None and ex.version11:
            return self._answer(ex, 400, b"missing Host header\n")
        url = ex.url
        host = ex.host or b""
        if not url.startswith(b"/"):
            if not url.lower().startswith((b"http://", b"https://")):
                return self._answer(ex, 400, b"bad request target\n")
            # absolute-form (RFC 9112 3.2.2): its authority replaces the Host header
            parts = urlsplit(url.decode("latin-1"))
            host = parts.netloc.encode("latin-1")
            url = ((parts.path or "/") + (f"?{parts.query}" if parts.query else "")).encode("latin-1")
            ex.host = host
        target = url.decode("latin-1")
        path, _, ex.query = target.partition("?")
        if "%" in path or "/." in path or "//" in path:
            try:
                path = normalize_path(path)
            except ValueError:
                return self._answer(ex, 400, b"bad request path\n")
        ex.path = path
        table = gw.config.table  # the configuration is read once per request: swaps are atomic
        name = gw.hosts.get(host)
        if name is None:
            name = gw.normalized_host(host)
        cache = table.cache
        if cache is not None:
            # Inlined (host, path) answer: two dict lookups, the benchmark's common case.
            paths = cache.get(name)
            route = paths.get(path, _MISS) if paths is not None else _MISS
            if route is _MISS:
                route = table.cached_lookup(name, path)
        else:
            route = table.lookup(name, path, ex.method.decode("latin-1"), ex.header, ex.query_param)
        if route is None:
            return self._answer(ex, 404, b"404 page not found\n")
        ex.route = route
        policy = route.policy
        if self.scheme == "http" and (policy.force_ssl_redirect or (policy.ssl_redirect and route.tls)):
            location = h.https_location(host.decode("latin-1"), target, gw.settings.https_port)
            return self._answer(ex, 308, extra=(("Location", location),))
        if route.redirect is not None:
            location = h.redirect_location(route.redirect, route, scheme=self.scheme,
                                           host_header=host.decode("latin-1"),
                                           path=target.partition("?")[0], query=ex.query)
            return self._answer(ex, route.redirect.status, extra=(("Location", location),))
        limit = policy.max_body_size
        if limit and ex.content_length is not None and ex.content_length > limit:
            return self._answer(ex, 413, close=True)
        balancer = gw.balancer
        backends = route.backends
        if route.canary is not None:
            backends = balancer.backends_for(route, ex.header)
        backend = backends[0] if len(backends) == 1 else balancer.pick_backend(backends)
        if backend is None or not backend.endpoints or not backend.weight:
            if backend is not None and backend.problem:
                log.debug("%s: %s", route.source, backend.problem)
            return self._answer(ex, route.no_backend_status)
        ex.backend = backend
        if not policy.affinity_cookie and not balancer.ejected_until:
            # Balancer.pick's round robin, inlined for the common case (no affinity, no
            # ejected endpoint): a call less per request.
            eps = backend.endpoints
            key = backend.key
            position = balancer.positions.get(key, 0)
            balancer.positions[key] = position + 1
            ep: Upstream | None = eps[position % len(eps)]
        elif policy.affinity_cookie:
            ep, new = balancer.pick_affine(backend, cookie_value(ex.cookie.decode("latin-1"),
                                                                 policy.affinity_cookie))
            if new and ep is not None:
                cookie = f"{policy.affinity_cookie}={affinity_token(ep)}; Path={policy.cookie_path}; HttpOnly"
                if policy.cookie_max_age:
                    cookie += f"; Max-Age={policy.cookie_max_age}"
                ex.set_cookie = cookie.encode("latin-1")
        else:
            ep = balancer.pick(backend)
        if ep is None:
            return self._answer(ex, route.no_backend_status)
        ex.head = self._upstream_head(ex, host, url, path)
        self._dispatch(ex, ep, fresh=bool(ex.upgrade))

    def _upstream_head(self, ex: Exchange, host: bytes, url: bytes, path: str) -> bytes:
        route = ex.route
        assert route is not None
        if route.rewrite is not None:
            new = h.quote_path(h.rewrite_path(route, route.rewrite, path))
            url = (new + (f"?{ex.query}" if ex.query else "")).encode("latin-1")
        if route.rewrite_host:
            host = route.rewrite_host.encode("latin-1")
        if not ex.request_id:
            ex.request_id = new_request_id()
        parts = ex.parts
        parts[0] = ex.method + b" " + url + b" HTTP/1.1\r\n"
        xff = ex.xff + b", " + self.client_ip if ex.xff else self.client_ip
        parts += (b"Host: ", host, b"\r\nX-Forwarded-For: ", xff, b"\r\nX-Forwarded-Host: ", ex.host or b"",
                  b"\r\nX-Request-ID: ", ex.request_id, b"\r\n", self.forwarded)
        if ex.chunked:
            parts.append(b"Transfer-Encoding: chunked\r\n")
        elif ex.content_length is not None:
            parts.append(b"Content-Length: %d\r\n" % ex.content_length)
        if ex.upgrade:
            parts += (b"Connection: upgrade\r\nUpgrade: ", ex.upgrade, b"\r\n")
        if route.policy.forwarded_prefix:
            parts.append(f"X-Forwarded-Prefix: {route.policy.forwarded_prefix}\r\n".encode("latin-1"))
        if route.request_headers is not None and not route.request_headers.empty:
            return h.edit_head(b"".join(parts)[:-2], route.request_headers) + b"\r\n\r\n"
        parts.append(_CRLF)
        return b"".join(parts)

    def _dispatch(self, ex: Exchange, ep: Upstream, *, fresh: bool = False) -> None:
        ex.endpoint = ep
        conn = None if fresh else self.gw.pool.take(ep)
        if conn is not None and ex.pending is None:
            # _attach, inlined for a kept-alive connection and a request without a waiting body
            ex.conn = conn
            conn.downstream = self
            conn.no_body = ex.method == b"HEAD"
            conn.received = False
            ex.sent_at = self.gw.loop.time()
            conn.transport.write(ex.head)  # type: ignore[union-attr]
        elif conn is not None:
            self._attach(ex, conn)
        else:
            if ex.pending is None:
                ex.pending = []
            self.gw.spawn(self._connect(ex, ep))
        if ex.complete:
            assert ex.route is not None
            self._set_deadline(UPSTREAM, ex.route.policy.read_timeout, ex)
        elif ex.content_length or ex.chunked:
            self._set_deadline(BODY, self.gw.settings.body_timeout)
        # else the request ends right after its head: on_message_complete sets the deadline

    def _attach(self, ex: Exchange, conn: UpstreamConnection) -> None:
        ex.conn = conn
        conn.expect(self, no_body=ex.method == b"HEAD")
        ex.sent_at = self.gw.loop.time()
        if ex.pending:
            conn.write(ex.head + b"".join(ex.pending))
        else:
            conn.write(ex.head)
        ex.pending = None
        ex.pending_bytes = 0
        if self.paused & PAUSE_PENDING:
            self.resume_reading(PAUSE_PENDING)

    async def _connect(self, ex: Exchange, ep: Upstream | None) -> None:
        gw = self.gw
        route = ex.route
        assert route is not None and ex.backend is not None
        timed_out = False
        tries = 0
        while ep is not None:
            try:
                _t, conn = await asyncio.wait_for(
                    gw.loop.create_connection(lambda e=ep: UpstreamConnection(gw.pool, e), ep.ip, ep.port),
                    route.policy.connect_timeout)
            except (OSError, TimeoutError) as exc:
                timed_out = isinstance(exc, TimeoutError)
                log.debug("%s: connecting to %s failed: %r", route.source, ep, exc)
                gw.balancer.failed(ep)
                if ex.done:
                    return
                ex.tried = (ex.tried or set()) | {ep}
                tries += 1
                # A refused or timed-out connection sent nothing: any request may go elsewhere.
                ep = gw.balancer.pick(ex.backend, ex.tried) if tries < gw.settings.max_tries else None
                if ep is not None:
                    gw.metrics.retries += 1
                    ex.endpoint = ep
                continue
            if ex.done or self.closed or ex is not self.active:
                gw.pool.put(conn)
                return
            self._attach(ex, conn)
            return
        if not ex.done:
            self._answer(ex, 504 if timed_out else 502, close=not ex.complete)
            self.flush()
