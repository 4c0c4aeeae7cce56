"""The routing table both front ends (Ingress, HTTPRoute) compile to, and the lookup that
picks a route for a request. Pure and, but for memoized answers, immutable: a new
configuration is a new table, which the proxy swaps in with one assignment.

Precedence, one rule set for both front ends:
- hosts: an exact host, then wildcards (longest suffix first), then rules without a host;
  a host whose routes do not match the request falls through to the next (Gateway API);
- within a host: Exact paths, then the longest path (Kubernetes Ingress: "longest matching
  path first, Exact over Prefix on a tie", which is the same order), then a method match,
  the most header matches, the most query matches, then the oldest object, its
  namespace/name and the rule's position (Gateway API's tie-breakers);
- nothing matched: the defaultBackend of an Ingress that owns the request's host, else
  the catch-all defaultBackend, else 404.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum

from netplane.ingress.paths import exact_matches, prefix_key, prefix_matches, wildcard_matches

EXACT_CACHE_LIMIT = 8192


class PathKind(IntEnum):
    EXACT = 0
    PREFIX = 1
    REGEX = 2


@dataclass(frozen=True, slots=True)
class Upstream:
    """One endpoint address of a backend."""

    ip: str
    port: int

    def __str__(self) -> str:
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


@dataclass(frozen=True, slots=True)
class Backend:
    """One service port a route sends to, with its ready endpoints resolved. `problem`
    says why there are none (no such service, no such port, no ready endpoint)."""

    namespace: str
    service: str
    port: str  # as the object named it: "80" or "http"
    weight: int = 1
    endpoints: tuple[Upstream, ...] = ()
    problem: str = ""
    # Derived once, not per request (read on the proxy's hot path).
    key: str = field(init=False, repr=False, compare=False)  # "namespace/service:port"
    latency_key: tuple[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{self.namespace}/{self.service}:{self.port}")
        object.__setattr__(self, "latency_key", (self.namespace, self.service))


@dataclass(frozen=True, slots=True)
class ValueMatch:
    """A header or query parameter condition (header names are lower case)."""

    name: str
    value: str
    regex: re.Pattern[str] | None = None

    def matches(self, actual: str | None) -> bool:
        if actual is None:
            return False
        if self.regex is not None:
            return self.regex.search(actual) is not None
        return actual == self.value


@dataclass(frozen=True, slots=True)
class PathRewrite:
    """`full`: replace the path; `prefix`: replace the matched prefix (Gateway API
    ReplacePrefixMatch); `regex`: expand $1..$9 of the route's regex (ingress-nginx
    rewrite-target)."""

    kind: str
    value: str


@dataclass(frozen=True, slots=True)
class Redirect:
    """Gateway API RequestRedirect (parts of the request URL replaced), or a whole `url`
    (ingress-nginx permanent-redirect / temporal-redirect)."""

    url: str | None = None
    scheme: str | None = None
    hostname: str | None = None
    port: int | None = None
    path: PathRewrite | None = None
    status: int = 302


@dataclass(frozen=True, slots=True)
class HeaderEdits:
    set: tuple[tuple[str, str], ...] = ()
    add: tuple[tuple[str, str], ...] = ()
    remove: tuple[str, ...] = ()  # lower case

    @property
    def empty(self) -> bool:
        return not (self.set or self.add or self.remove)


@dataclass(frozen=True, slots=True)
class Canary:
    """ingress-nginx's canary: an alternative set of backends for the same host and path,
    chosen by header, then cookie, then weight."""

    backends: tuple[Backend, ...]
    source: str
    header: str = ""  # lower case
    header_value: str = ""
    header_pattern: re.Pattern[str] | None = None
    cookie: str = ""
    weight: int = 0
    weight_total: int = 100


@dataclass(frozen=True, slots=True)
class Policy:
    """Per-route proxy settings (ingress-nginx annotations; Gateway API timeouts)."""

    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    send_timeout: float = 60.0
    request_timeout: float = 0.0  # whole request; 0 = none (Gateway API timeouts.request)
    max_body_size: int = 1 << 20  # ingress-nginx's proxy-body-size default (1m); 0 = unlimited
    affinity_cookie: str = ""  # cookie name when affinity is "cookie"
    cookie_path: str = "/"
    cookie_max_age: int = 0
    ssl_redirect: bool = True  # applies where the host has TLS
    force_ssl_redirect: bool = False
    forwarded_prefix: str = ""  # X-Forwarded-Prefix, with rewrite-target


@dataclass(frozen=True, slots=True)
class Route:
    source: str  # "Ingress ns/name" or "HTTPRoute ns/name": metrics and logs
    namespace: str
    name: str
    host: str  # the table host it is filed under ("" = any host)
    kind: str = "Ingress"  # or "HTTPRoute"
    path_kind: PathKind = PathKind.PREFIX
    path: str = "/"
    regex: re.Pattern[str] | None = None
    method: str | None = None
    headers: tuple[ValueMatch, ...] = ()
    query: tuple[ValueMatch, ...] = ()
    backends: tuple[Backend, ...] = ()
    canary: Canary | None = None
    redirect: Redirect | None = None
    rewrite: PathRewrite | None = None
    rewrite_host: str | None = None
    request_headers: HeaderEdits | None = None
    response_headers: HeaderEdits | None = None
    policy: Policy = field(default_factory=Policy)
    tls: bool = False  # the host is served over TLS too: HTTP may be redirected
    multi_label_wildcard: bool = False  # Gateway API's "*." matches several labels
    # The answer when no backend can take the request: 503 for Ingress (ingress-nginx),
    # 500 for HTTPRoute (the Gateway API spec).
    no_backend_status: int = 503
    # Tie-breakers: (creation timestamp, "namespace/name", rule index, match index).
    order: tuple[str, str, int, int] = ("", "", 0, 0)

    @property
    def conditional(self) -> bool:
        """Matches on more than host and path, so a (host, path) answer cannot be cached."""
        return bool(self.method or self.headers or self.query)

    @property
    def rank(self) -> tuple[object, ...]:
        return (self.path_kind != PathKind.EXACT, -len(self.path), self.method is None,
                -len(self.headers), -len(self.query), self.order)

    def matches_path(self, path: str) -> re.Match[str] | bool:
        if self.path_kind == PathKind.EXACT:
            return exact_matches(self.path, path)
        if self.path_kind == PathKind.PREFIX:
            return prefix_matches(prefix_key(self.path), path)
        assert self.regex is not None
        return self.regex.match(path) or False

    def matches(self, path: str, method: str, headers: Callable[[str], str | None],
                query: Callable[[str], str | None]) -> bool:
        if not self.matches_path(path):
            return False
        if self.method is not None and method != self.method:
            return False
        return all(h.matches(headers(h.name)) for h in self.headers) and all(
            q.matches(query(q.name)) for q in self.query)


def _no_value(_name: str) -> str | None:
    return None


class HostRoutes:
    """The routes of one table host, in precedence order, with a cache of (path -> route)
    for hosts whose routes match on the path alone (the common case: one dict lookup per
    request instead of a scan; the benchmark's hot path)."""

    __slots__ = ("_cache", "cacheable", "default", "host", "routes")

    def __init__(self, host: str, routes: list[Route], default: Route | None = None) -> None:
        self.host = host
        self.routes = tuple(sorted(routes, key=lambda r: r.rank))
        self.default = default
        self.cacheable = not any(r.conditional for r in self.routes)
        self._cache: dict[str, Route | None] = {}

    def match(self, path: str, method: str = "GET", headers: Callable[[str], str | None] = _no_value,
              query: Callable[[str], str | None] = _no_value, *, depth_ok: bool = True) -> Route | None:
        if self.cacheable and depth_ok:
            try:
                return self._cache[path]
            except KeyError:
                pass
        found = None
        for route in self.routes:
            if not depth_ok and not route.multi_label_wildcard:
                continue
            if route.matches(path, method, headers, query):
                found = route
                break
        if self.cacheable and depth_ok:
            if len(self._cache) >= EXACT_CACHE_LIMIT:
                self._cache.clear()  # bounded: paths are chosen by clients
            self._cache[path] = found
        return found


@dataclass
class RouteTable:
    """Every host's routes plus the default backends; built by netplane/ingress/config.py."""

    exact: dict[str, HostRoutes] = field(default_factory=dict)
    wildcard: dict[str, HostRoutes] = field(default_factory=dict)  # keyed by suffix ".foo.com"
    any_host: HostRoutes | None = None
    default: Route | None = None  # the catch-all defaultBackend
    tls_hosts: frozenset[str] = frozenset()  # hosts (and "*.x" patterns) that have TLS
    # host -> path -> answer (None for a 404), for tables where no route matches on more
    # than host and path; None otherwise. Read inline by the proxy's hot path.
    cache: dict[str, dict[str, Route | None]] | None = None

    def _entries(self) -> list[HostRoutes]:
        entries = [*self.exact.values(), *self.wildcard.values()]
        if self.any_host is not None:
            entries.append(self.any_host)
        return entries

    def cacheable(self) -> bool:
        """No route matches on more than host and path: whole answers can be remembered."""
        return all(e.cacheable for e in self._entries())

    def cached_lookup(self, host: str, path: str) -> Route | None:
        """`lookup` for a table without conditional routes, remembered per (host, path)."""
        assert self.cache is not None
        paths = self.cache.get(host)
        if paths is None:
            if len(self.cache) >= EXACT_CACHE_LIMIT:
                self.cache.clear()  # bounded: hosts are chosen by clients
            paths = self.cache[host] = {}
        elif len(paths) >= EXACT_CACHE_LIMIT:
            paths.clear()
        route = paths[path] = self.lookup(host, path)
        return route

    def _wildcards(self, host: str) -> list[tuple[HostRoutes, bool]]:
        """Wildcard host entries that may match `host`, longest suffix first, with whether
        `host` is exactly one label deeper (which Ingress wildcards require)."""
        out = []
        dot = host.find(".")
        depth_one = True
        while dot >= 0:
            entry = self.wildcard.get(host[dot:])
            if entry is not None:
                out.append((entry, depth_one))
            depth_one = False
            dot = host.find(".", dot + 1)
        return out

    def lookup(self, host: str, path: str, method: str = "GET",
               headers: Callable[[str], str | None] = _no_value,
               query: Callable[[str], str | None] = _no_value) -> Route | None:
        """The route for a request (host normalized, path normalized), or None for 404."""
        owner = self.exact.get(host)
        if owner is not None:
            route = owner.match(path, method, headers, query)
            if route is not None:
                return route
        wildcards = self._wildcards(host) if self.wildcard else ()
        for entry, depth_one in wildcards:
            route = entry.match(path, method, headers, query, depth_ok=depth_one)
            if route is not None:
                return route
        if self.any_host is not None:
            route = self.any_host.match(path, method, headers, query)
            if route is not None:
                return route
        if owner is not None and owner.default is not None:
            return owner.default
        for entry, depth_one in wildcards:
            if depth_one and entry.default is not None:
                return entry.default
        return self.default

    def host_has_tls(self, host: str) -> bool:
        if host in self.tls_hosts:
            return True
        dot = host.find(".")
        return dot > 0 and "*" + host[dot:] in self.tls_hosts

    def endpoints(self) -> set[Upstream]:
        """Every endpoint some route (canaries and default backends included) may use."""
        routes = [*self.routes(), *(e.default for e in self._entries() if e.default)]
        if self.default is not None:
            routes.append(self.default)
        return {ep for r in routes for b in (*r.backends, *(r.canary.backends if r.canary else ()))
                for ep in b.endpoints}

    def routes(self) -> list[Route]:
        """Every route, for status pages and tests."""
        out: list[Route] = []
        for entry in self._entries():
            out.extend(entry.routes)
        return out


def build_table(routes: list[Route], defaults: Mapping[str, Route], catch_all: Route | None,
                tls_hosts: frozenset[str]) -> RouteTable:
    """Files `routes` under their hosts. `defaults`: host -> the defaultBackend route of
    the Ingress owning that host."""
    by_host: dict[str, list[Route]] = {}
    for route in routes:
        by_host.setdefault(route.host, []).append(route)
    for host in defaults:
        by_host.setdefault(host, [])
    table = RouteTable(default=catch_all, tls_hosts=tls_hosts, cache={})
    for host, members in by_host.items():
        entry = HostRoutes(host, members, defaults.get(host))
        if host == "":
            table.any_host = entry
        elif host.startswith("*."):
            table.wildcard[host[1:]] = entry
        else:
            table.exact[host] = entry
    if not table.cacheable():
        table.cache = None
    return table


def host_matches(pattern: str, host: str, *, multi_label: bool = False) -> bool:
    """Whether a table host (exact, "*.suffix" or "") covers `host` (tests and TLS)."""
    if not pattern:
        return True
    if pattern.startswith("*."):
        return wildcard_matches(pattern, host, multi_label=multi_label)
    return pattern == host
