"""The Gateway API front end: HTTPRoutes attached to this gateway compiled to the same
routes as Ingresses (path, header, query and method matches; weighted backendRefs;
RequestHeaderModifier, ResponseHeaderModifier, RequestRedirect and URLRewrite filters;
timeouts). Pure: objects in, routes out.

The gateway plays one Gateway, named by --gateway-name, that accepts routes from every
namespace: a route attaches with a parentRef of kind Gateway and that name. Gateway and
GatewayClass objects themselves are not read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from netplane.ingress.backends import Cluster, resolve
from netplane.ingress.routes import (
    Backend,
    HeaderEdits,
    PathKind,
    PathRewrite,
    Policy,
    Redirect,
    Route,
    ValueMatch,
)
from netplane.model.gateway import (
    GATEWAY_GROUP,
    HTTPHeaderFilter,
    HTTPPathModifier,
    HTTPRoute,
    HTTPRouteMatch,
    HTTPRouteRule,
)

_DURATION = re.compile(r"(\d+)(h|ms|m|s)")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(text: str) -> float:
    """Gateway API's Duration ("10s", "1m30s", "500ms"); 0s means none."""
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += int(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"{text!r} is not a Gateway API duration such as 10s or 1m30s")
    return total


@dataclass(frozen=True)
class GatewayOptions:
    gateway_name: str = "netplane"
    defaults: Policy = field(default_factory=Policy)


@dataclass
class CompiledRoutes:
    routes: list[Route] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def is_attached(route: HTTPRoute, options: GatewayOptions) -> bool:
    return any(ref.kind == "Gateway" and ref.group == GATEWAY_GROUP and ref.name == options.gateway_name
               for ref in route.spec.parent_refs)


def _edits(f: HTTPHeaderFilter | None) -> HeaderEdits | None:
    if f is None:
        return None
    return HeaderEdits(set=tuple((h.name, h.value) for h in f.set), add=tuple((h.name,
                                                                               h.value) for h in f.add),
                       remove=tuple(n.lower() for n in f.remove))


def _modifier(mod: HTTPPathModifier | None) -> PathRewrite | None:
    if mod is None:
        return None
    if mod.type == "ReplaceFullPath":
        return PathRewrite("full", mod.replace_full_path or "/")
    return PathRewrite("prefix", mod.replace_prefix_match if mod.replace_prefix_match is not None else "/")


def _value(kind: str, name: str, value: str) -> ValueMatch:
    regex = re.compile(value) if kind == "RegularExpression" else None
    return ValueMatch(name, value, regex)


def _backends(route: HTTPRoute, rule: HTTPRouteRule, cluster: Cluster) -> tuple[Backend, ...]:
    ns = route.metadata.namespace
    out = []
    for ref in rule.backend_refs:
        if ref.kind != "Service" or ref.group not in ("", "core"):
            out.append(Backend(ns, ref.name, "", ref.weight,
                               problem=f"backendRef kind {ref.kind} is not supported"))
        elif ref.namespace not in (None, ns):
            out.append(Backend(ref.namespace, ref.name, str(ref.port), ref.weight,
                               problem="a backendRef to another namespace needs a ReferenceGrant, "
                               "which netplane does not serve"))
        else:
            out.append(resolve(cluster, ns, ref.name, ref.port or 0, ref.weight))
    return tuple(out)


def _policy(rule: HTTPRouteRule, defaults: Policy, problems: list[str], source: str) -> Policy:
    # Gateway API has no body limit or redirect-to-HTTPS switch: the gateway's defaults stay,
    # and HTTP is served as HTTP (a RequestRedirect filter does redirects).
    policy = replace(defaults, ssl_redirect=False)
    if rule.timeouts is None:
        return policy
    try:
        request = parse_duration(rule.timeouts.request) if rule.timeouts.request else 0.0
        backend = parse_duration(rule.timeouts.backend_request) if rule.timeouts.backend_request else 0.0
    except ValueError as exc:
        problems.append(f"{source}: timeouts: {exc}")
        return policy
    return replace(policy, read_timeout=backend or policy.read_timeout, request_timeout=request)


def _route(route: HTTPRoute, host: str, rule: HTTPRouteRule, match: HTTPRouteMatch, order: tuple[str, str,
                                                                                                 int, int],
           backends: tuple[Backend, ...], policy: Policy) -> Route:
    path = match.path
    kind, value, regex = PathKind.PREFIX, "/", None
    if path is not None:
        value = path.value
        if path.type == "Exact":
            kind = PathKind.EXACT
        elif path.type == "RegularExpression":
            # Envoy and most implementations match the whole path.
            kind, regex = PathKind.REGEX, re.compile(f"(?:{value})\\Z")
    redirect = rewrite = rewrite_host = None
    request_headers = response_headers = None
    for f in rule.filters:
        if f.type == "RequestHeaderModifier":
            request_headers = _edits(f.request_header_modifier)
        elif f.type == "ResponseHeaderModifier":
            response_headers = _edits(f.response_header_modifier)
        elif f.type == "RequestRedirect" and f.request_redirect is not None:
            r = f.request_redirect
            redirect = Redirect(scheme=r.scheme, hostname=r.hostname, port=r.port, path=_modifier(r.path),
                                status=r.status_code)
        elif f.type == "URLRewrite" and f.url_rewrite is not None:
            rewrite, rewrite_host = _modifier(f.url_rewrite.path), f.url_rewrite.hostname
    meta = route.metadata
    return Route(source=f"HTTPRoute {meta.namespace}/{meta.name}", namespace=meta.namespace, name=meta.name,
                 host=host, kind="HTTPRoute", path_kind=kind, path=value, regex=regex, method=match.method,
                 headers=tuple(_value(h.type, h.name.lower(), h.value) for h in match.headers),
                 query=tuple(_value(q.type, q.name, q.value) for q in match.query_params),
                 backends=backends, redirect=redirect, rewrite=rewrite, rewrite_host=rewrite_host,
                 request_headers=request_headers, response_headers=response_headers, policy=policy,
                 multi_label_wildcard=True, order=order, no_backend_status=500)


def compile_http_routes(routes: Iterable[HTTPRoute], cluster: Cluster,
                        options: GatewayOptions) -> CompiledRoutes:
    """Routes of the given (already attached) HTTPRoutes."""
    out = CompiledRoutes()
    for route in routes:
        meta = route.metadata
        source = f"HTTPRoute {meta.namespace}/{meta.name}"
        hosts = [h.lower() for h in route.spec.hostnames] or [""]
        for i, rule in enumerate(route.spec.rules):
            try:
                backends = _backends(route, rule, cluster)
                policy = _policy(rule, options.defaults, out.problems, source)
                matches = rule.matches or [HTTPRouteMatch()]
                for j, match in enumerate(matches):
                    order = (meta.creation_timestamp or "", f"{meta.namespace}/{meta.name}", i, j)
                    for host in hosts:
                        out.routes.append(_route(route, host, rule, match, order, backends, policy))
            except re.error as exc:
                out.problems.append(f"{source}: rule {i}: bad regular expression: {exc}; rule ignored")
    return out
