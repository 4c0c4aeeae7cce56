"""The Gateway API front end over the same routing core: matches (path, header, query,
method), precedence, weighted backendRefs and the filters."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from netplane.ingress.headers import redirect_location, rewrite_path
from netplane.ingress.httproutes import parse_duration
from netplane.ingress.routes import HeaderEdits, PathKind
from netplane.model.validation.gateway import validate_http_route
from tests.unit.ingress.objects import config, http_route, ingress, path, rule, served_by, service


def ref(name: str, port: int = 80, weight: int = 1) -> dict[str, object]:
    return {"name": name, "port": port, "weight": weight}


def headers_of(values: dict[str, str]) -> Callable[[str], str | None]:
    return lambda name: values.get(name)


def test_routes_attach_only_to_the_gateways_name() -> None:
    mine = http_route("mine", [{"backendRefs": [ref("web")]}], ["a.test"])
    other = http_route("other", [{"backendRefs": [ref("web")]}], ["b.test"], parent="someone-else")
    cfg = config(mine, other, service("web"))
    assert served_by(cfg, "a.test", "/") == "web"
    assert served_by(cfg, "b.test", "/") is None


def test_a_rule_without_matches_matches_every_path() -> None:
    cfg = config(http_route("r", [{"backendRefs": [ref("web")]}]), service("web"))
    assert served_by(cfg, "anything.test", "/deep/path") == "web"


def test_path_header_query_and_method_matches_with_gateway_precedence() -> None:
    rules = [
        {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "backendRefs": [ref("root")]},
        {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}], "backendRefs": [ref("api")]},
        {"matches": [{"path": {"type": "PathPrefix", "value": "/api"},
                      "headers": [{"name": "X-Version", "value": "2"}]}], "backendRefs": [ref("api2")]},
        {"matches": [{"path": {"type": "PathPrefix", "value": "/api"},
                      "queryParams": [{"name": "beta", "value": "yes"}]}], "backendRefs": [ref("beta")]},
        {"matches": [{"path": {"type": "Exact", "value": "/api/login"}, "method": "POST"}],
         "backendRefs": [ref("login")]},
        {"matches": [{"path": {"type": "RegularExpression", "value": "/img/[a-z]+\\.png"}}],
         "backendRefs": [ref("img")]},
    ]
    cfg = config(http_route("r", rules, ["shop.test"]),
                 *(service(s) for s in ("root", "api", "api2", "beta", "login", "img")))

    def to(p: str, method: str = "GET", hdrs: dict[str, str] | None = None,
           query: dict[str, str] | None = None) -> str | None:
        return served_by(cfg, "shop.test", p, method=method, headers=headers_of(hdrs or {}),
                         query=headers_of(query or {}))

    assert to("/") == "root"
    assert to("/api/items") == "api"
    assert to("/api/items", hdrs={"x-version": "2"}) == "api2"
    assert to("/api/items", query={"beta": "yes"}) == "beta"
    assert to("/api/login", method="POST") == "login"
    assert to("/api/login", method="GET") == "api"
    assert to("/img/cat.png") == "img"
    assert to("/img/cat.png/x") == "root"  # regular expressions match the whole path


def test_gateway_wildcards_match_several_labels_and_exact_hostnames_win() -> None:
    cfg = config(http_route("w", [{"backendRefs": [ref("wild")]}], ["*.example.com"]),
                 http_route("e", [{"backendRefs": [ref("exact")]}], ["api.example.com"]),
                 service("wild"), service("exact"))
    assert served_by(cfg, "a.b.example.com", "/") == "wild"
    assert served_by(cfg, "api.example.com", "/") == "exact"
    assert served_by(cfg, "example.com", "/") is None


def test_ingress_and_httproute_share_one_table() -> None:
    cfg = config(ingress("i", [rule("mixed.test", path("/ing", "from-ingress"))]),
                 http_route("r", [{"matches": [{"path": {"type": "PathPrefix", "value": "/gw"}}],
                                   "backendRefs": [ref("from-route")]}], ["mixed.test"]),
                 service("from-ingress"), service("from-route"))
    assert served_by(cfg, "mixed.test", "/ing/x") == "from-ingress"
    assert served_by(cfg, "mixed.test", "/gw/x") == "from-route"


def test_weighted_backend_refs_are_kept_with_their_weights() -> None:
    cfg = config(http_route("r", [{"backendRefs": [ref("a", weight=90), ref("b", weight=10)]}]),
                 service("a"), service("b"))
    route = cfg.table.lookup("x", "/")
    assert route is not None
    assert [(b.service, b.weight) for b in route.backends] == [("a", 90), ("b", 10)]


def test_invalid_backends_answer_500_as_the_gateway_api_says() -> None:
    cfg = config(http_route("r", [{"backendRefs": [ref("ghost")]}]))
    route = cfg.table.lookup("x", "/")
    assert route is not None and route.no_backend_status == 500
    cross = config(http_route("c", [{"backendRefs": [{"name": "web", "port": 80, "namespace": "other"}]}]),
                   service("web", ns="other"))
    assert "ReferenceGrant" in cross.table.lookup("x", "/").backends[0].problem  # type: ignore[union-attr]


def test_filters_become_header_edits_redirects_and_rewrites() -> None:
    rules = [
        {"matches": [{"path": {"type": "PathPrefix", "value": "/old"}}],
         "filters": [{"type": "RequestRedirect", "requestRedirect": {
             "scheme": "https", "hostname": "new.test", "statusCode": 301,
             "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/new"}}}]},
        {"matches": [{"path": {"type": "PathPrefix", "value": "/v1"}}],
         "filters": [{"type": "URLRewrite", "urlRewrite": {
             "hostname": "internal.test", "path": {"type": "ReplacePrefixMatch",
                                                   "replacePrefixMatch": "/v2"}}},
             {"type": "RequestHeaderModifier", "requestHeaderModifier": {
                 "set": [{"name": "X-Env", "value": "prod"}], "add": [{"name": "X-Tag", "value": "a"}],
                 "remove": ["X-Debug"]}},
             {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"remove": ["Server"]}}],
         "backendRefs": [ref("web")]},
    ]
    cfg = config(http_route("r", rules, ["site.test"]), service("web"))
    old = cfg.table.lookup("site.test", "/old/page")
    assert old is not None and old.redirect is not None
    assert redirect_location(old.redirect, old, scheme="http", host_header="site.test:8080", path="/old/page",
                             query="a=1") == "https://new.test/new/page?a=1"
    v1 = cfg.table.lookup("site.test", "/v1/users")
    assert v1 is not None and v1.rewrite is not None
    assert rewrite_path(v1, v1.rewrite, "/v1/users") == "/v2/users"
    assert rewrite_path(v1, v1.rewrite, "/v1") == "/v2"
    assert v1.rewrite_host == "internal.test"
    assert v1.request_headers == HeaderEdits(set=(("X-Env", "prod"),), add=(("X-Tag", "a"),),
                                             remove=("x-debug",))
    assert v1.response_headers == HeaderEdits(remove=("server",))


@pytest.mark.parametrize(("redirect", "host", "expected"), [
    ({"scheme": "https"}, "a.test:8080", "https://a.test/p"),  # the scheme's port, left out
    ({"port": 8443, "scheme": "https"}, "a.test", "https://a.test:8443/p"),
    ({"hostname": "b.test"}, "a.test:8080", "http://b.test:8080/p"),  # the client's port stays
    ({"path": {"type": "ReplaceFullPath", "replaceFullPath": "/x"}}, "a.test", "http://a.test/x"),
])
def test_redirect_locations_follow_the_gateway_api_port_rules(redirect: dict[str, object], host: str,
                                                              expected: str) -> None:
    cfg = config(http_route("r", [{"filters": [{"type": "RequestRedirect", "requestRedirect": redirect}]}]))
    route = cfg.table.lookup("a.test", "/p")
    assert route is not None and route.redirect is not None
    assert redirect_location(route.redirect, route, scheme="http", host_header=host, path="/p",
                             query="") == expected


def test_timeouts_come_from_the_rule() -> None:
    cfg = config(http_route("r", [{"backendRefs": [ref("web")], "timeouts": {"request": "10s",
                                                                            "backendRequest": "1m30s"}}]),
                 service("web"))
    policy = cfg.table.lookup("x", "/").policy  # type: ignore[union-attr]
    assert policy.request_timeout == 10.0 and policy.read_timeout == 90.0
    assert parse_duration("500ms") == 0.5
    with pytest.raises(ValueError, match="not a Gateway API duration"):
        parse_duration("10 s")


def test_route_kind_and_cacheability() -> None:
    cfg = config(http_route("r", [{"matches": [{"headers": [{"name": "x", "value": "1"}]}],
                                   "backendRefs": [ref("web")]}], ["h.test"]), service("web"))
    route = cfg.table.lookup("h.test", "/", headers=headers_of({"x": "1"}))
    assert route is not None and route.kind == "HTTPRoute" and route.path_kind == PathKind.PREFIX
    assert not cfg.table.exact["h.test"].cacheable
    assert cfg.table.lookup("h.test", "/", headers=headers_of({})) is None


def test_validation_rejects_what_the_gateway_api_crd_rejects() -> None:
    bad = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
           "metadata": {"name": "r", "namespace": "default"},
           "spec": {"parentRefs": [{"name": "netplane"}], "hostnames": ["10.0.0.1"], "rules": [
               {"matches": [{"path": {"type": "Exact", "value": "relative"}, "method": "FETCH"}],
                "filters": [{"type": "RequestRedirect", "requestRedirect": {"statusCode": 307}}],
                "backendRefs": [{"name": "web"}]}]}}
    fields = {e.field for e in validate_http_route(bad)}
    assert {"spec.hostnames[0]", "spec.rules[0].matches[0].path.value", "spec.rules[0].matches[0].method",
            "spec.rules[0].filters[0].requestRedirect.statusCode", "spec.rules[0].backendRefs",
            "spec.rules[0].backendRefs[0].port"} <= fields
    good = {**bad, "spec": {"parentRefs": [{"name": "netplane"}], "hostnames": ["*.a.test"],
                            "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}}
    assert validate_http_route(good) == []

