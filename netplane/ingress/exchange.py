"""One request/response exchange as the proxy carries it: what the client sent (method,
target, headers in arrival order, framing), what routing chose, and how far it got."""

from __future__ import annotations

import random
from urllib.parse import parse_qs

from netplane.ingress.routes import Backend, Route, Upstream
from netplane.ingress.upstream import UpstreamConnection

# Request headers the proxy handles itself rather than copying; every other header is
# forwarded as it came, in its order.
HOST, LENGTH, CHUNKED, CONNECTION, UPGRADE, XFF, REQUEST_ID, DROP, COOKIE = range(9)
SPECIAL = {
    b"host": HOST, b"content-length": LENGTH, b"transfer-encoding": CHUNKED, b"connection": CONNECTION,
    b"upgrade": UPGRADE, b"x-forwarded-for": XFF, b"x-request-id": REQUEST_ID, b"cookie": COOKIE,
    # hop-by-hop (RFC 9110 7.6.1) and the forwarding headers the gateway sets itself: a
    # client must not be able to claim another scheme, host or address.
    b"keep-alive": DROP, b"proxy-connection": DROP, b"te": DROP, b"trailer": DROP,
    b"proxy-authorization": DROP, b"x-forwarded-proto": DROP, b"x-forwarded-host": DROP,
    b"x-forwarded-port": DROP, b"x-real-ip": DROP, b"x-forwarded-prefix": DROP,
}
# Methods a stale keep-alive connection may be retried with (RFC 9110 9.2.2, idempotent).
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})

NO_FRAMING, LENGTH_FRAMING, CHUNKED_FRAMING, CLOSE_FRAMING = range(4)
_random_bits = random.Random().getrandbits  # seeded from os.urandom once


def new_request_id() -> bytes:
    # 128 random bits in hex, as nginx's $request_id. Not from os.urandom: a syscall per
    # request showed in the benchmark, and an id needs to be unique, not secret.
    return b"%032x" % _random_bits(128)


class Exchange:
    """Fields default at class level and an exchange sets only what differs: a request
    touches a handful of them, and the benchmark showed ~1.5 us per request spent
    initializing all of them in __init__."""

    url = b""
    method = b""
    version11 = True
    keep_alive = True
    header_bytes = 0
    host: bytes | None = None
    content_length: int | None = None
    chunked = False
    has_te = False
    connection = b""
    upgrade = b""
    xff = b""
    request_id = b""
    cookie = b""
    path = ""
    query = ""
    route: Route | None = None
    backend: Backend | None = None
    endpoint: Upstream | None = None
    conn: UpstreamConnection | None = None
    head = b""
    pending: list[bytes] | None = None  # body bytes waiting for the upstream connection
    pending_bytes = 0
    early = b""  # bytes after an upgrade request, before the upstream said 101
    body_bytes = 0
    bytes_out = 0
    complete = False  # the whole request was read from the client
    done = False  # answered; later parser events of this request are ignored
    response_started = False
    sent_at = 0.0
    status = 0
    framing = NO_FRAMING
    ends_at_eof = False  # the upstream's body is close-delimited
    set_cookie = b""
    close_after = False
    tried: set[Upstream] | None = None

    def __init__(self, started: float) -> None:
        self.started = started
        self.headers: list[tuple[bytes, bytes]] = []  # (lower-case name, value)
        self.parts: list[bytes] = [b""]  # the upstream head; [0] becomes the request line

    def header(self, name: str) -> str | None:
        """The first value of a request header (for matches, canary and affinity)."""
        key = name.lower().encode("latin-1")
        for n, v in self.headers:
            if n == key:
                return v.decode("latin-1")
        return None

    def query_param(self, name: str) -> str | None:
        values = parse_qs(self.query, keep_blank_values=True).get(name)
        return values[0] if values else None

    @property
    def replayable(self) -> bool:
        """May go again on another connection: nothing of a body was streamed away."""
        return self.method in IDEMPOTENT and not self.chunked and not self.content_length and not self.upgrade
