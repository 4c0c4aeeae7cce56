"""The Ingress front end: class selection, backends by port number or name, default
backends, conflicts, TLS hosts, ingress-nginx annotations and canaries."""

from __future__ import annotations

import pytest

from netplane.ingress.annotations import parse, parse_size
from netplane.ingress.config import Options
from netplane.ingress.ingresses import IngressOptions
from netplane.ingress.routes import PathKind, Policy
from tests.unit.ingress.objects import (
    backend,
    config,
    endpoints,
    ingress,
    ingress_class,
    path,
    rule,
    served_by,
    service,
)

NGINX = "nginx.ingress.kubernetes.io/"


def test_only_ingresses_of_the_gateways_class_are_served() -> None:
    mine = ingress("mine", [rule("a.test", path("/", "web"))])
    other = ingress("other", [rule("b.test", path("/", "web"))], cls="nginx")
    legacy = ingress("legacy", [rule("c.test", path("/", "web"))], cls=None,
                     annotations={"kubernetes.io/ingress.class": "netplane"})
    classless = ingress("classless", [rule("d.test", path("/", "web"))], cls=None)
    cfg = config(mine, other, legacy, classless, service("web"), ingress_class())
    assert served_by(cfg, "a.test", "/") == "web"
    assert served_by(cfg, "b.test", "/") is None
    assert served_by(cfg, "c.test", "/") == "web"
    assert served_by(cfg, "d.test", "/") is None  # the class is not the default


def test_ingresses_without_class_are_served_when_the_class_is_the_default() -> None:
    classless = ingress("classless", [rule("d.test", path("/", "web"))], cls=None)
    assert served_by(config(classless, service("web"), ingress_class(default=True)), "d.test", "/") == "web"
    options = Options(IngressOptions(watch_without_class=True))
    assert served_by(config(classless, service("web"), options=options), "d.test", "/") == "web"


def test_backends_resolve_by_service_port_number_or_name_to_ready_endpoints() -> None:
    svc = service("multi", {"http": 80, "admin": 81})
    eps = endpoints("multi", ["10.1.0.1", "10.1.0.2"], {"http": 80, "admin": 81})
    ing = ingress("i", [rule("h", path("/a", "multi", port=81), path("/b", "multi", port="http"))])
    cfg = config(ing, svc, eps)
    a = cfg.table.lookup("h", "/a")
    b = cfg.table.lookup("h", "/b")
    assert a is not None and b is not None
    assert {str(e) for e in a.backends[0].endpoints} == {"10.1.0.1:8081", "10.1.0.2:8081"}
    assert {str(e) for e in b.backends[0].endpoints} == {"10.1.0.1:8080", "10.1.0.2:8080"}


def test_missing_services_ports_and_endpoints_leave_a_route_without_endpoints_and_say_why() -> None:
    ing = ingress("i", [rule("h", path("/none", "ghost"), path("/port", "web", port=99), path("/down",
                                                                                              "down"))])
    cfg = config(ing, service("web"), service("down"), endpoints("down", ["10.1.0.1"], ready=False))
    problems = {p: cfg.table.lookup("h", p).backends[0].problem for p in ("/none", "/port",
                                                                          "/down")}  # type: ignore[union-attr]
    assert "not found" in problems["/none"]
    assert "no TCP port 99" in problems["/port"]
    assert "no ready endpoints" in problems["/down"]


def test_terminating_but_serving_endpoints_are_used_when_none_is_ready() -> None:
    import msgspec

    from netplane.model import EndpointSlice

    eps = msgspec.convert({"metadata": {"name": "web-x", "namespace": "default",
                                        "labels": {"kubernetes.io/service-name": "web"}},
                           "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
                           "endpoints": [{"addresses": ["10.1.0.9"],
                                          "conditions": {"ready": False, "serving": True,
                                                         "terminating": True}}]},
                          EndpointSlice)
    cfg = config(ingress("i", [rule("h", path("/", "web"))]), service("web"), eps)
    route = cfg.table.lookup("h", "/")
    assert route is not None and [str(e) for e in route.backends[0].endpoints] == ["10.1.0.9:8080"]


def test_default_backend_of_the_ingress_owning_the_host_beats_the_catch_all() -> None:
    old = ingress("old", default=backend("catchall"), created="2025-01-01T00:00:00Z")
    owner = ingress("owner", [rule("h.test", path("/api", "api"))], default=backend("owner-default"))
    cfg = config(old, owner, service("catchall"), service("owner-default"), service("api"))
    assert served_by(cfg, "h.test", "/api") == "api"
    assert served_by(cfg, "h.test", "/other") == "owner-default"
    assert served_by(cfg, "elsewhere.test", "/") == "catchall"  # the oldest defaultBackend


def test_no_rule_and_no_default_backend_is_a_404() -> None:
    cfg = config(ingress("i", [rule("h", path("/api", "web"))]), service("web"))
    assert served_by(cfg, "h", "/other") is None
    assert served_by(cfg, "x", "/api") is None


def test_the_oldest_ingress_wins_a_conflict_on_host_and_path() -> None:
    young = ingress("young", [rule("h", path("/", "young"))], created="2026-05-01T00:00:00Z")
    old = ingress("old", [rule("h", path("/", "old"))], created="2026-01-01T00:00:00Z")
    assert served_by(config(young, old, service("young"), service("old")), "h", "/") == "old"


def test_tls_hosts_mark_their_routes_for_https_redirect_and_pick_certificates() -> None:
    ing = ingress("i", [rule("secure.test", path("/", "web")), rule("plain.test", path("/", "web"))],
                  tls=[{"hosts": ["secure.test"], "secretName": "missing"}])
    cfg = config(ing, service("web"))
    assert cfg.table.lookup("secure.test", "/").tls  # type: ignore[union-attr]
    assert not cfg.table.lookup("plain.test", "/").tls  # type: ignore[union-attr]
    assert any("missing" in p and "not found" in p for p in cfg.problems)
    assert cfg.certificates == {}


def test_tls_entries_without_hosts_cover_the_ingress_rules() -> None:
    ing = ingress("i", [rule("a.test", path("/", "web"))], tls=[{"secretName": "s"}])
    assert config(ing, service("web")).table.lookup("a.test", "/").tls  # type: ignore[union-attr]


@pytest.mark.parametrize(("text", "size"), [("0", 0), ("100", 100), ("8k", 8192), ("8m", 8 << 20),
                                            ("1G", 1 << 30)])
def test_sizes_read_like_nginx(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_annotations_set_the_routes_policy() -> None:
    ann = {f"{NGINX}proxy-body-size": "200m", f"{NGINX}proxy-read-timeout": "5",
           f"{NGINX}ssl-redirect": "false",
           f"{NGINX}proxy-connect-timeout": "2", f"{NGINX}affinity": "cookie",
           f"{NGINX}session-cookie-name": "route", f"{NGINX}session-cookie-max-age": "60"}
    cfg = config(ingress("i", [rule("h", path("/", "web"))], annotations=ann), service("web"))
    policy = cfg.table.lookup("h", "/").policy  # type: ignore[union-attr]
    assert policy.max_body_size == 200 << 20
    assert policy.read_timeout == 5.0 and policy.connect_timeout == 2.0
    assert not policy.ssl_redirect
    assert policy.affinity_cookie == "route" and policy.cookie_max_age == 60
    assert not cfg.problems


def test_bad_annotation_values_keep_defaults_and_are_reported() -> None:
    settings = parse({f"{NGINX}proxy-body-size": "lots", f"{NGINX}proxy-read-timeout": "-3",
                      f"{NGINX}affinity": "ip"}, Policy())
    assert settings.policy == Policy()
    assert len(settings.problems) == 3


def test_rewrite_target_makes_paths_regular_expressions_with_capture_groups() -> None:
    ann = {f"{NGINX}rewrite-target": "/$2"}
    ing = ingress("i", [rule("h", path("/something(/|$)(.*)", "web", kind="ImplementationSpecific"))],
                  annotations=ann)
    route = config(ing, service("web")).table.lookup("h", "/something/new")
    assert route is not None and route.path_kind == PathKind.REGEX
    from netplane.ingress.headers import rewrite_path

    assert route.rewrite is not None
    assert rewrite_path(route, route.rewrite, "/something/new") == "/new"
    assert rewrite_path(route, route.rewrite, "/something") == "/"


def test_use_regex_matches_case_insensitively_from_the_start() -> None:
    ing = ingress("i", [rule("h", path("/api/v[0-9]+", "web"))], annotations={f"{NGINX}use-regex": "true"})
    cfg = config(ing, service("web"))
    assert served_by(cfg, "h", "/API/V2/users") == "web"
    assert served_by(cfg, "h", "/x/api/v2") is None


def test_a_canary_ingress_joins_the_main_path_of_the_same_host_and_path() -> None:
    main = ingress("main", [rule("h", path("/", "stable"))])
    canary = ingress("canary", [rule("h", path("/", "next"))], annotations={
        f"{NGINX}canary": "true", f"{NGINX}canary-by-header": "X-Canary", f"{NGINX}canary-weight": "10"})
    stray = ingress("stray", [rule("other", path("/", "next"))], annotations={f"{NGINX}canary": "true"})
    cfg = config(main, canary, stray, service("stable"), service("next"))
    route = cfg.table.lookup("h", "/")
    assert route is not None and route.backends[0].service == "stable"
    assert route.canary is not None and route.canary.backends[0].service == "next"
    assert route.canary.header == "x-canary" and route.canary.weight == 10
    assert served_by(cfg, "other", "/") is None  # a canary alone serves nothing
    assert any("stray" in p for p in cfg.problems)


def test_permanent_redirect_answers_without_a_backend() -> None:
    ing = ingress("i", [rule("old.test", path("/", "web"))],
                  annotations={f"{NGINX}permanent-redirect": "https://new.test/"})
    route = config(ing, service("web")).table.lookup("old.test", "/x")
    assert route is not None and route.redirect is not None
    assert route.redirect.url == "https://new.test/" and route.redirect.status == 301


def test_resource_backends_are_reported_as_unsupported() -> None:
    ing = ingress("i", [rule("h", {"path": "/", "pathType": "Prefix",
                                   "backend": {"resource": {"kind": "Bucket", "name": "b"}}})])
    route = config(ing).table.lookup("h", "/")
    assert route is not None and "not supported" in route.backends[0].problem
