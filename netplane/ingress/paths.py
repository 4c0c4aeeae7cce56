"""Request paths and hosts as routing sees them: normalization, the Kubernetes Ingress
path-matching rules (Exact, element-wise Prefix), and host patterns (exact and wildcard)."""

from __future__ import annotations

import posixpath
from urllib.parse import unquote


def normalize_path(raw: str) -> str:
    """The path routing matches on: percent-decoded, dot segments resolved, repeated
    slashes merged (as nginx normalizes a URI before it picks a location), so that
    `/public/../admin` cannot reach a route it does not match. The query is not part of it."""
    path = raw.partition("?")[0]
    if not path.startswith("/"):
        path = "/" + path
    if "%" not in path and "/." not in path and "//" not in path:
        return path
    decoded = unquote(path, errors="strict") if "%" in path else path
    trailing = decoded.endswith("/") or decoded.endswith("/.") or decoded.endswith("/..")
    clean = posixpath.normpath(decoded)
    if clean.startswith("//"):
        clean = "/" + clean.lstrip("/")  # POSIX keeps a leading "//"; HTTP does not
    if trailing and clean != "/":
        clean += "/"
    return clean


def prefix_key(path: str) -> str:
    """A Prefix path with its trailing slash dropped: Kubernetes matches element-wise and
    ignores a trailing slash ("/foo/" matches "/foo")."""
    return path.rstrip("/") or "/"


def exact_matches(rule_path: str, request_path: str) -> bool:
    """pathType Exact: the whole path, case-sensitive, trailing slash significant."""
    return rule_path == request_path


def prefix_matches(key: str, request_path: str) -> bool:
    """pathType Prefix with `key` = prefix_key(path): every element of the rule's path is
    the same element of the request's path ("/aaa/bb" does not match "/aaa/bbb")."""
    if key == "/":
        return True
    return request_path == key or (request_path.startswith(key) and request_path[len(key)] == "/")


def normalize_host(raw: str) -> str:
    """A Host header (or SNI name) as a routing key: lower case, without port or final dot."""
    host = raw.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end > 0 else host
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def wildcard_matches(pattern: str, host: str, *, multi_label: bool) -> bool:
    """`*.foo.com` against `host`. Ingress: the `*` is exactly one label ("bar.foo.com",
    not "baz.bar.foo.com" nor "foo.com"). Gateway API: one or more labels."""
    suffix = pattern[1:]  # ".foo.com"
    if not host.endswith(suffix) or len(host) == len(suffix):
        return False
    label = host[: -len(suffix)]
    return multi_label or "." not in label
