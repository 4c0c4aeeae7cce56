"""HTTP message rules as the proxy applies them: hop-by-hop headers, header modifiers,
local responses and redirect targets."""

from __future__ import annotations

from netplane.ingress.headers import edit_head, https_location, local_response, response_head, split_host_port
from netplane.ingress.routes import HeaderEdits

HEAD = (b"HTTP/1.1 200 OK\r\nServer: x\r\nConnection: keep-alive, X-Secret\r\nKeep-Alive: timeout=5\r\n"
        b"Transfer-Encoding: chunked\r\nX-Secret: 1\r\nTE: trailers\r\nTrailer: X-T\r\n"
        b"Proxy-Authenticate: Basic\r\nUpgrade: h2c\r\nContent-Type: text/plain")


def test_hop_by_hop_headers_and_those_named_in_connection_are_removed() -> None:
    head = response_head(HEAD)
    assert head == b"HTTP/1.1 200 OK\r\nServer: x\r\nContent-Type: text/plain"


def test_a_plain_head_passes_unchanged() -> None:
    raw = b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nX-Keep-Alive-Note: stays"
    assert response_head(raw) == raw


def test_a_switching_protocols_head_keeps_upgrade_and_connection() -> None:
    raw = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade"
    assert response_head(raw, keep_upgrade=True) == raw


def test_header_modifiers_remove_then_set_then_add() -> None:
    raw = b"HTTP/1.1 200 OK\r\nServer: x\r\nX-Env: dev\r\nX-Tag: a"
    edits = HeaderEdits(set=(("X-Env", "prod"),), add=(("X-Tag", "b"),), remove=("server",))
    assert edit_head(raw, edits) == b"HTTP/1.1 200 OK\r\nX-Tag: a\r\nX-Env: prod\r\nX-Tag: b"


def test_local_responses_are_complete_messages() -> None:
    resp = local_response(503, close=True)
    head, _, body = resp.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"Content-Length: %d" % len(body) in head and b"Connection: close" in head
    assert body == b"503 Service Unavailable\n"
    redirect = local_response(308, extra=(("Location", "https://a/"),))
    assert b"Location: https://a/" in redirect


def test_https_redirects_keep_the_uri_and_add_a_non_default_port() -> None:
    assert https_location("a.test:8080", "/p?q=1", 443) == "https://a.test/p?q=1"
    assert https_location("a.test", "/", 8443) == "https://a.test:8443/"
    assert split_host_port("[::1]:80") == ("[::1]", 80)
