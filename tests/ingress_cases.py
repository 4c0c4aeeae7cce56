"""The path-matching table of the Kubernetes Ingress documentation (concepts/services-
networking/ingress, "Examples"), row by row, as data: the unit tests check the routing core
against it and the e2e test checks a real gateway in a cluster against it.

Each row: the rule's paths as (pathType, path), the request path, and the index of the
path that must answer, or None when no path matches (the default backend answers)."""

from __future__ import annotations

from typing import Any

PathRule = tuple[str, str]

ROWS: list[tuple[list[PathRule], str, int | None]] = [
    ([("Prefix", "/")], "/anything/at/all", 0),
    ([("Exact", "/foo")], "/foo", 0),
    ([("Exact", "/foo")], "/bar", None),
    ([("Exact", "/foo")], "/foo/", None),
    ([("Exact", "/foo/")], "/foo", None),
    ([("Prefix", "/foo")], "/foo", 0),
    ([("Prefix", "/foo")], "/foo/", 0),
    ([("Prefix", "/foo/")], "/foo", 0),
    ([("Prefix", "/foo/")], "/foo/", 0),
    ([("Prefix", "/aaa/bb")], "/aaa/bbb", None),
    ([("Prefix", "/aaa/bbb")], "/aaa/bbb", 0),
    ([("Prefix", "/aaa/bbb/")], "/aaa/bbb", 0),  # ignores the trailing slash
    ([("Prefix", "/aaa/bbb")], "/aaa/bbb/", 0),  # matches the trailing slash
    ([("Prefix", "/aaa/bbb")], "/aaa/bbb/ccc", 0),  # matches a subpath
    ([("Prefix", "/aaa/bbb")], "/aaa/bbbxyz", None),  # not a string prefix
    ([("Prefix", "/"), ("Prefix", "/aaa")], "/aaa/ccc", 1),
    ([("Prefix", "/"), ("Prefix", "/aaa"), ("Prefix", "/aaa/bbb")], "/aaa/bbb", 2),
    ([("Prefix", "/"), ("Prefix", "/aaa"), ("Prefix", "/aaa/bbb")], "/ccc", 0),
    ([("Prefix", "/aaa")], "/ccc", None),  # uses the default backend
    ([("Prefix", "/foo"), ("Exact", "/foo")], "/foo", 1),  # Exact is preferred
]


def row_host(i: int, domain: str = "paths.test") -> str:
    return f"row{i}.{domain}"


def row_rule(i: int, paths: list[PathRule], backend: Any) -> dict[str, Any]:
    """The Ingress rule of row `i`; `backend(k)` gives path k's backend object."""
    return {"host": row_host(i), "http": {"paths": [
        {"path": path, "pathType": kind, "backend": backend(k)} for k, (kind, path) in enumerate(paths)]}}
