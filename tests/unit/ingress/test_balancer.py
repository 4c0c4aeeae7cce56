"""Load balancing: round robin, smooth weighted backends, canary by header, cookie and
weight, cookie affinity, and passive outlier ejection with its panic mode."""

from __future__ import annotations

import re
from collections import Counter

from netplane.ingress.balancer import Balancer, affinity_token, cookie_value
from netplane.ingress.routes import Backend, Canary, Route, Upstream

EPS = tuple(Upstream(f"10.0.0.{i}", 8080) for i in range(1, 4))


def web(weight: int = 1, eps: tuple[Upstream, ...] = EPS, name: str = "web") -> Backend:
    return Backend("default", name, "80", weight, eps)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_round_robin_visits_every_endpoint_in_turn() -> None:
    b = Balancer()
    picks = [b.pick(web()) for _ in range(9)]
    assert picks == list(EPS) * 3


def test_weighted_backends_split_exactly_by_weight_and_interleave() -> None:
    b = Balancer()
    backends = (web(3, name="a"), web(1, name="b"), web(0, name="never"))
    picks = [b.pick_backend(backends).service for _ in range(400)]  # type: ignore[union-attr]
    assert Counter(picks) == {"a": 300, "b": 100}
    assert "b" in picks[:4]  # smooth: not 300 a's in a row first


def test_canary_by_header_cookie_and_weight_in_ingress_nginx_order() -> None:
    b = Balancer()
    canary = Canary(backends=(web(name="next"),), source="c", header="x-canary", cookie="canary", weight=25)
    route = Route("Ingress default/i", "default", "i", "h", backends=(web(name="stable"),), canary=canary)

    def chosen(headers: dict[str, str]) -> str:
        return b.backends_for(route, lambda n: headers.get(n))[0].service

    assert chosen({"x-canary": "always"}) == "next"
    assert chosen({"x-canary": "never", "cookie": "canary=always"}) == "stable"  # header first
    assert chosen({"cookie": "a=b; canary=always"}) == "next"
    assert chosen({"cookie": "canary=never"}) == "stable"
    weighted = Counter(chosen({}) for _ in range(100))
    assert weighted == {"next": 25, "stable": 75}


def test_canary_header_value_and_pattern() -> None:
    b = Balancer()
    by_value = Canary(backends=(web(name="next"),), source="v", header="x-user", header_value="tester")
    by_pattern = Canary(backends=(web(name="next"),), source="p", header="x-user",
                        header_pattern=re.compile("^qa-"))
    for canary, yes, no in ((by_value, "tester", "someone"), (by_pattern, "qa-7", "dev-7")):
        route = Route("Ingress default/i", "default", "i", "h", backends=(web(name="stable"),), canary=canary)
        assert b.backends_for(route, lambda n, v=yes: v if n == "x-user" else None)[0].service == "next"
        assert b.backends_for(route, lambda n, v=no: v if n == "x-user" else None)[0].service == "stable"


def test_cookie_affinity_keeps_a_client_on_its_endpoint_and_moves_it_when_it_leaves() -> None:
    b = Balancer()
    first, new = b.pick_affine(web(), None)
    assert first is not None and new
    token = affinity_token(first)
    for _ in range(5):
        assert b.pick_affine(web(), token) == (first, False)
    others = tuple(e for e in EPS if e != first)
    moved, new = b.pick_affine(web(eps=others), token)
    assert moved in others and new


def test_cookie_values_are_read_from_a_cookie_header() -> None:
    assert cookie_value('a=1; INGRESSCOOKIE="abc"; b=2', "INGRESSCOOKIE") == "abc"
    assert cookie_value("XINGRESSCOOKIE=1", "INGRESSCOOKIE") is None
    assert cookie_value(None, "x") is None


def test_consecutive_failures_eject_an_endpoint_for_a_growing_time() -> None:
    clock = Clock()
    b = Balancer(eject_after=3, base_ejection=10, clock=clock)
    bad = EPS[0]
    assert not b.failed(bad) and not b.failed(bad)
    assert b.failed(bad)
    assert bad not in {b.pick(web()) for _ in range(10)}
    clock.now += 10.5
    assert bad in {b.pick(web()) for _ in range(10)}
    for _ in range(3):
        b.failed(bad)
    clock.now += 10.5  # the second ejection lasts 20 s
    assert bad not in {b.pick(web()) for _ in range(10)}
    assert b.ejections_total == 2


def test_a_success_resets_the_failure_count() -> None:
    b = Balancer(eject_after=2)
    b.failed(EPS[0])
    b.succeeded(EPS[0])
    assert not b.failed(EPS[0])


def test_with_every_endpoint_ejected_ejection_is_ignored() -> None:
    b = Balancer(eject_after=1)
    for ep in EPS:
        b.failed(ep)
    assert b.pick(web()) in EPS


def test_excluded_endpoints_are_skipped_for_retries() -> None:
    b = Balancer()
    assert b.pick(web(), exclude={EPS[0], EPS[1]}) == EPS[2]
    assert b.pick(web(), exclude=set(EPS)) is None


def test_state_of_endpoints_that_left_is_forgotten() -> None:
    b = Balancer(eject_after=1)
    b.failed(EPS[0])
    b.forget({EPS[1]})
    assert b.ejected() == []
