"""HTTP/1.1 message rules the proxy applies, as pure functions: hop-by-hop headers
(RFC 9110 section 7.6.1), response heads as forwarded, path rewrites, redirect targets and
local responses."""

from __future__ import annotations

import re
from collections.abc import Iterable
from http import HTTPStatus
from urllib.parse import quote

from netplane.ingress.paths import prefix_key
from netplane.ingress.routes import HeaderEdits, PathRewrite, Redirect, Route

# Connection-specific: never forwarded (RFC 9110 7.6.1, plus the de-facto Proxy-Connection).
HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"te",
                        b"trailer", b"upgrade", b"proxy-authenticate", b"proxy-authorization"})
# One regex pass strips them from a response head in C (the benchmark's hot path; a
# per-line Python loop cost ~2 us per response more).
_RESPONSE_HOP = re.compile(rb"\r\n(?:connection|keep-alive|proxy-connection|transfer-encoding|te|trailer|"
                           rb"upgrade|proxy-authenticate):[^\r\n]*", re.IGNORECASE)
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_TOKENS_KEPT = frozenset({"keep-alive", "close", "upgrade"})
_DOLLAR = re.compile(r"\$(\d)")


def connection_tokens(value: bytes) -> list[bytes]:
    """The header names listed in a Connection header (besides keep-alive, close and
    upgrade), which are hop-by-hop too."""
    tokens = (p.strip().lower() for p in value.split(b","))
    return [t for t in tokens if t and t.decode("latin-1") not in _TOKENS_KEPT]


_CONNECTION_VALUE = re.compile(rb"\r\nconnection:[ \t]*([^\r\n]*)", re.IGNORECASE)
_PLAIN_CONNECTION = frozenset({b"keep-alive", b"close", b"upgrade", b""})


def response_head(raw: bytes, *, keep_upgrade: bool = False) -> bytes:
    """The upstream's response head (status line and headers, without the final blank
    line) with hop-by-hop headers removed; a 101's Upgrade and Connection stay."""
    if keep_upgrade:
        return raw
    m = _CONNECTION_VALUE.search(raw)
    head = _RESPONSE_HOP.sub(b"", raw)
    if m is not None and m.group(1).strip().lower() not in _PLAIN_CONNECTION:
        # Names the upstream listed in Connection are hop-by-hop for this message only.
        for token in connection_tokens(m.group(1)):
            head = re.sub(rb"\r\n" + re.escape(token) + rb":[^\r\n]*", b"", head, flags=re.IGNORECASE)
    return head


def edit_head(head: bytes, edits: HeaderEdits) -> bytes:
    """Gateway API header modifiers on a message head: remove, then set (replace), then add."""
    lines = head.split(b"\r\n")
    first, fields = lines[0], lines[1:]
    drop = {n.encode().lower() for n in edits.remove} | {n.encode().lower() for n, _v in edits.set}
    kept = [f for f in fields if f.partition(b":")[0].strip().lower() not in drop]
    kept += [f"{n}: {v}".encode("latin-1") for n, v in (*edits.set, *edits.add)]
    return b"\r\n".join([first, *kept])


def header_lines(edits: Iterable[tuple[str, str]]) -> bytes:
    return b"".join(f"{n}: {v}\r\n".encode("latin-1") for n, v in edits)


def quote_path(path: str) -> str:
    return quote(path, safe=_PATH_SAFE)


def rewrite_path(route: Route, rewrite: PathRewrite, path: str) -> str:
    """The upstream path after a rewrite, from the (normalized) request path."""
    if rewrite.kind == "full":
        return rewrite.value or "/"
    if rewrite.kind == "prefix":
        # Gateway API ReplacePrefixMatch: element-wise, so "/foo" -> "/xyz" maps "/foo/bar"
        # to "/xyz/bar" and "/foo" to "/xyz".
        key = prefix_key(route.path)
        rest = path[len(key):] if key != "/" else path
        if rest and not rest.startswith("/"):
            rest = "/" + rest
        new = rewrite.value.rstrip("/") + rest
        return new or "/"
    m = route.regex.match(path) if route.regex is not None else None
    if m is None:
        return rewrite.value
    # ingress-nginx's rewrite-target: $1..$9 are the path regex's groups; the result is
    # the whole new path, as nginx's `rewrite` makes it.
    new = _DOLLAR.sub(lambda g: (m.group(int(g.group(1))) or "") if int(g.group(1)) <= (m.re.groups or 0)
                      else "", rewrite.value)
    return new if new.startswith("/") else "/" + new


def split_host_port(host_header: str) -> tuple[str, int | None]:
    host = host_header.strip()
    if host.startswith("["):
        end = host.find("]")
        name, rest = host[: end + 1], host[end + 1:]
        return name, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    name, sep, port = host.rpartition(":")
    if sep and port.isdigit():
        return name, int(port)
    return host, None


def redirect_location(redirect: Redirect, route: Route, *, scheme: str, host_header: str, path: str,
                      query: str) -> str:
    """Gateway API RequestRedirect: the request URL with the filter's parts replaced; the
    port follows the spec (the scheme's well-known port, left out of the URL, when the
    scheme is set; else the port the client used)."""
    if redirect.url is not None:
        return redirect.url
    host, port = split_host_port(host_header)
    new_scheme = redirect.scheme or scheme
    if redirect.hostname:
        host = redirect.hostname
    if redirect.port is not None:
        port = redirect.port
    elif redirect.scheme:
        port = None
    if (new_scheme, port) in (("http", 80), ("https", 443)):
        port = None
    new_path = quote_path(rewrite_path(route, redirect.path, path)) if redirect.path is not None else path
    authority = f"{host}:{port}" if port is not None else host
    return f"{new_scheme}://{authority}{new_path}" + (f"?{query}" if query else "")


def https_location(host_header: str, target: str, https_port: int) -> str:
    """Where ssl-redirect sends a plain HTTP request (ingress-nginx: 308, same URI)."""
    host, _port = split_host_port(host_header)
    authority = host if https_port == 443 else f"{host}:{https_port}"
    return f"https://{authority}{target}"


def local_response(status: int, body: bytes = b"", *, close: bool = False,
                   extra: Iterable[tuple[str, str]] = (),
                   content_type: str = "text/plain; charset=utf-8") -> bytes:
    """A complete response the gateway answers itself (errors, redirects)."""
    reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Unknown"
    if not body and status >= 300:
        body = f"{status} {reason}\n".encode()
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    lines += [f"{n}: {v}" for n, v in extra]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

