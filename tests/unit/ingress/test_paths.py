"""Path and host matching: every row of the Kubernetes Ingress docs' path-matching table
through the compiled routing table, wildcard hosts, and path normalization."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netplane.ingress.paths import normalize_host, normalize_path, prefix_matches, wildcard_matches
from tests.ingress_cases import ROWS, row_host, row_rule
from tests.unit.ingress.objects import backend, config, ingress, rule, served_by, service


@pytest.mark.parametrize(("paths", "request_path", "expected"), ROWS,
                         ids=[f"{'+'.join(f'{k}:{p}' for k, p in r[0])}->{r[1]}" for r in ROWS])
def test_every_row_of_the_kubernetes_path_table_routes_as_documented(
        paths: list[tuple[str, str]], request_path: str, expected: int | None) -> None:
    services = [service(f"p{k}") for k in range(len(paths))] + [service("fallback")]
    ing = ingress("table", [row_rule(0, paths, lambda k: backend(f"p{k}"))], default=backend("fallback"))
    cfg = config(ing, *services)
    want = "fallback" if expected is None else f"p{expected}"
    assert served_by(cfg, row_host(0), request_path) == want


def test_all_rows_at_once_in_two_ingresses_keep_their_answers() -> None:
    """The e2e layout: the table's rows as hosts of two Ingresses, one with the default backend."""
    half = len(ROWS) // 2
    svcs = [service(f"p{k}") for k in range(3)] + [service("fallback")]
    first = ingress("a", [row_rule(i, p, lambda k: backend(f"p{k}")) for i, (p, _r,
                                                                             _e) in enumerate(ROWS[:half])])
    second = ingress("b", [row_rule(i + half, p, lambda k: backend(f"p{k}"))
                           for i, (p, _r, _e) in enumerate(ROWS[half:])], default=backend("fallback"))
    cfg = config(first, second, *svcs)
    for i, (_paths, request_path, expected) in enumerate(ROWS):
        want = "fallback" if expected is None else f"p{expected}"
        assert served_by(cfg, row_host(i), request_path) == want, (i, request_path)


def test_prefix_matching_is_element_wise() -> None:
    assert prefix_matches("/aaa/bbb", "/aaa/bbb/ccc")
    assert not prefix_matches("/aaa/bbb", "/aaa/bbbxyz")
    assert prefix_matches("/", "/anything")


@pytest.mark.parametrize(("pattern", "host", "ingress_match", "gateway_match"), [
    ("*.foo.com", "bar.foo.com", True, True),
    ("*.foo.com", "baz.bar.foo.com", False, True),  # Ingress: exactly one label
    ("*.foo.com", "foo.com", False, False),
    ("*.foo.com", "barfoo.com", False, False),
])
def test_wildcard_hosts_match_one_label_for_ingress_and_several_for_gateway_api(
        pattern: str, host: str, ingress_match: bool, gateway_match: bool) -> None:
    assert wildcard_matches(pattern, host, multi_label=False) == ingress_match
    assert wildcard_matches(pattern, host, multi_label=True) == gateway_match


def test_wildcard_host_rules_route_only_one_label_deep() -> None:
    cfg = config(ingress("w", [rule("*.foo.com", {"path": "/", "pathType": "Prefix",
                                                  "backend": backend("wild")})]),
                 service("wild"))
    assert served_by(cfg, "bar.foo.com", "/") == "wild"
    assert served_by(cfg, "baz.bar.foo.com", "/") is None
    assert served_by(cfg, "foo.com", "/") is None


def test_exact_host_wins_over_wildcard_and_wildcard_over_no_host() -> None:
    p = {"path": "/", "pathType": "Prefix"}
    cfg = config(ingress("i", [rule("", {**p, "backend": backend("any")}),
                               rule("*.foo.com", {**p, "backend": backend("wild")}),
                               rule("bar.foo.com", {**p, "backend": backend("exact")})]),
                 service("any"), service("wild"), service("exact"))
    assert served_by(cfg, "bar.foo.com", "/x") == "exact"
    assert served_by(cfg, "qux.foo.com", "/x") == "wild"
    assert served_by(cfg, "other.org", "/x") == "any"


def test_a_host_without_a_matching_path_falls_through_to_wildcard_and_catch_all_rules() -> None:
    cfg = config(ingress("i", [rule("bar.foo.com", {"path": "/api", "pathType": "Prefix",
                                                    "backend": backend("api")}),
                               rule("", {"path": "/", "pathType": "Prefix", "backend": backend("any")})]),
                 service("api"), service("any"))
    assert served_by(cfg, "bar.foo.com", "/api/v1") == "api"
    assert served_by(cfg, "bar.foo.com", "/web") == "any"


@pytest.mark.parametrize(("raw", "normalized"), [
    ("/a/b", "/a/b"), ("/a//b", "/a/b"), ("/a/./b", "/a/b"), ("/a/../b", "/b"), ("/../../etc", "/etc"),
    ("/a/b/", "/a/b/"), ("/a%2Fb", "/a/b"), ("/a%20b?x=1", "/a b"), ("/a/b/..", "/a/"), ("", "/"),
    ("//x", "/x"),
])
def test_paths_are_normalized_before_matching(raw: str, normalized: str) -> None:
    assert normalize_path(raw) == normalized


def test_dot_segments_cannot_escape_a_prefix_route() -> None:
    cfg = config(ingress("i", [rule("h", {"path": "/public", "pathType": "Prefix",
                                          "backend": backend("pub")})]),
                 service("pub"))
    assert served_by(cfg, "h", normalize_path("/public/../admin")) is None


@given(st.text(alphabet="/.%2Fab", max_size=30))
def test_a_normalized_path_is_absolute_and_has_no_dot_segments(raw: str) -> None:
    try:
        path = normalize_path(raw)
    except ValueError:
        return  # undecodable percent-encoding: the proxy answers 400
    assert path.startswith("/")
    assert "/../" not in path and "/./" not in path and "//" not in path
    assert not path.endswith("/..") and not path.endswith("/.")


@pytest.mark.parametrize(("raw", "host"), [("Foo.COM", "foo.com"), ("foo.com:8080", "foo.com"),
                                           ("foo.com.", "foo.com"), ("[::1]:80", "[::1]")])
def test_hosts_are_lower_case_without_port_or_final_dot(raw: str, host: str) -> None:
    assert normalize_host(raw) == host
