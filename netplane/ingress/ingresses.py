"""The Ingress front end: networking.k8s.io/v1 Ingresses of this gateway's class compiled to
routes, with ingress-nginx's annotations. Pure: objects in, routes out."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from netplane.ingress import annotations as ann
from netplane.ingress.backends import Cluster, resolve
from netplane.ingress.paths import prefix_key
from netplane.ingress.routes import Backend, Canary, PathKind, PathRewrite, Policy, Redirect, Route
from netplane.model import Ingress, IngressClass
from netplane.model.networking import IngressBackend

CLASS_ANNOTATION = "kubernetes.io/ingress.class"  # deprecated, still honoured as Kubernetes does


@dataclass(frozen=True)
class IngressOptions:
    ingress_class: str = "netplane"
    # Ingresses without any class: served only when this gateway's IngressClass is the
    # cluster's default (Kubernetes' rule), or always with this flag (ingress-nginx's
    # --watch-ingress-without-class).
    watch_without_class: bool = False
    defaults: Policy = field(default_factory=Policy)


@dataclass
class Compiled:
    """An Ingress set's contribution to the table."""

    routes: list[Route] = field(default_factory=list)
    host_defaults: dict[str, Route] = field(default_factory=dict)
    catch_all: Route | None = None
    tls: list[tuple[str, str, str]] = field(default_factory=list)  # (host pattern, namespace, secret)
    problems: list[str] = field(default_factory=list)


def is_ours(ing: Ingress, classes: Iterable[IngressClass], options: IngressOptions) -> bool:
    """IngressClass selection: spec.ingressClassName, else the deprecated annotation, else
    the default class."""
    name = ing.spec.ingress_class_name
    if name is None:
        name = ing.metadata.annotations.get(CLASS_ANNOTATION)
    if name is not None:
        return name == options.ingress_class
    if options.watch_without_class:
        return True
    return any(c.metadata.name == options.ingress_class and c.is_default for c in classes)


def _source(ing: Ingress) -> str:
    return f"Ingress {ing.metadata.namespace}/{ing.metadata.name}"


def _backends(ing: Ingress, backend: IngressBackend | None, cluster: Cluster) -> tuple[Backend, ...]:
    ns = ing.metadata.namespace
    if backend is None:
        return ()
    if backend.service is None:
        what = backend.resource.kind if backend.resource else "empty"
        return (Backend(ns, "", "", problem=f"{_source(ing)}: {what} resource backends are not supported"),)
    port = backend.service.port
    return (resolve(cluster, ns, backend.service.name, port.number if port.number else port.name),)


def _order(ing: Ingress, rule: int, path: int) -> tuple[str, str, int, int]:
    meta = ing.metadata
    return (meta.creation_timestamp or "", f"{meta.namespace}/{meta.name}", rule, path)


def _path_route(ing: Ingress, host: str, path: str, path_type: str, settings: ann.IngressAnnotations,
                backends: tuple[Backend, ...], order: tuple[str, str, int, int]) -> Route:
    kind = PathKind.EXACT if path_type == "Exact" else PathKind.PREFIX  # ImplementationSpecific: Prefix
    regex = None
    rewrite = None
    if settings.use_regex and kind == PathKind.PREFIX:
        # ingress-nginx: a case-insensitive regular expression anchored at the start.
        regex = re.compile(path, re.IGNORECASE)
        kind = PathKind.REGEX
    if settings.rewrite_target is not None:
        rewrite = PathRewrite("regex" if regex is not None else "full", settings.rewrite_target)
    redirect = None
    if settings.redirect_url:
        redirect = Redirect(url=settings.redirect_url, status=settings.redirect_code)
    return Route(source=_source(ing), namespace=ing.metadata.namespace, name=ing.metadata.name, host=host,
                 path_kind=kind, path=path, regex=regex, backends=backends, rewrite=rewrite,
                 redirect=redirect, policy=settings.policy, order=order)


def compile_ingresses(ingresses: Iterable[Ingress], cluster: Cluster, options: IngressOptions) -> Compiled:
    """Routes of the given (already selected) Ingresses."""
    out = Compiled()
    canaries: list[tuple[Route, ann.CanarySettings]] = []
    ordered = sorted(ingresses, key=lambda i: (i.metadata.creation_timestamp or "",
                                               i.metadata.namespace, i.metadata.name))
    tls_hosts: set[str] = set()
    for ing in ordered:
        settings = ann.parse(ing.metadata.annotations, options.defaults)
        out.problems.extend(f"{_source(ing)}: {p}" for p in settings.problems)
        rule_hosts = {r.host for r in ing.spec.rules}
        for tls in ing.spec.tls:
            # hosts may be omitted: then the TLS entry covers the Ingress's own hosts.
            for host in tls.hosts or sorted(h for h in rule_hosts if h):
                tls_hosts.add(host.lower())
                if tls.secret_name:
                    out.tls.append((host.lower(), ing.metadata.namespace, tls.secret_name))
        default_backends = _backends(ing, ing.spec.default_backend, cluster)
        default_route = None
        if default_backends:
            default_route = Route(source=f"{_source(ing)} defaultBackend", namespace=ing.metadata.namespace,
                                  name=ing.metadata.name, host="", backends=default_backends,
                                  policy=settings.policy, order=_order(ing, -1, 0))
        mine: list[Route] = []
        for i, rule in enumerate(ing.spec.rules):
            host = rule.host.lower()
            if default_route is not None and host:
                out.host_defaults.setdefault(host, replace(default_route, host=host))
            if rule.http is None:
                continue
            for j, p in enumerate(rule.http.paths):
                path = p.path or "/"
                route = _path_route(ing, host, path, p.path_type, settings, _backends(ing, p.backend,
                                                                                      cluster),
                                    _order(ing, i, j))
                mine.append(route)
        if settings.canary is not None:
            canaries.extend((r, settings.canary) for r in mine)
            continue  # a canary Ingress only adds alternatives to another Ingress's routes
        out.routes.extend(mine)
        if default_route is not None and out.catch_all is None:
            out.catch_all = default_route  # oldest Ingress's defaultBackend wins
    out.routes = [replace(r, tls=_covered(r.host, tls_hosts)) for r in out.routes]
    out.host_defaults = {h: replace(r, tls=_covered(h, tls_hosts)) for h, r in out.host_defaults.items()}
    _attach_canaries(out, canaries)
    return out


def _covered(host: str, tls_hosts: set[str]) -> bool:
    if not host:
        return False
    if host in tls_hosts:
        return True
    dot = host.find(".")
    return dot > 0 and not host.startswith("*") and "*" + host[dot:] in tls_hosts


def _canary_key(route: Route) -> tuple[str, str]:
    return (route.host, prefix_key(route.path) if route.path_kind != PathKind.EXACT else route.path)


def _attach_canaries(out: Compiled, canaries: list[tuple[Route, ann.CanarySettings]]) -> None:
    """ingress-nginx: a canary Ingress's path joins the main Ingress's path of the same host
    and path; one without such a main path is ignored (and reported)."""
    index = {_canary_key(r): k for k, r in enumerate(out.routes)}
    for route, s in canaries:
        k = index.get(_canary_key(route))
        if k is None:
            out.problems.append(f"{route.source}: canary for {route.host or '*'}{route.path} has no main "
                                "Ingress with the same host and path; ignored")
            continue
        main = out.routes[k]
        if main.canary is not None:
            continue  # ingress-nginx allows one canary per path: the oldest stays
        out.routes[k] = replace(main, canary=Canary(
            backends=route.backends, source=route.source, header=s.header, header_value=s.header_value,
            header_pattern=s.header_pattern, cookie=s.cookie, weight=s.weight, weight_total=s.weight_total))
