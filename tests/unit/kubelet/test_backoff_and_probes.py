"""CrashLoopBackOff timing and the probers' threshold logic, without processes."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control.kubelet.backoff import Backoff, backoff_message
from control.kubelet.probes import LIVENESS, READINESS, ProbeTracker, resolve_port, run_prober
from netplane.model import Container, Probe, decode


def test_the_first_restart_is_immediate_then_10s_doubling_to_5_minutes() -> None:
    b = Backoff()
    t, delays = 0.0, []
    for _ in range(8):
        d = b.delay(t)
        delays.append(d)
        t += d
        b.restarted(t - d)  # restarted, counting from when it finished
        t += 1.0  # then it runs a second and crashes again
    assert delays == [0, 10, 20, 40, 80, 160, 300, 300]


def test_a_long_healthy_run_starts_the_back_off_over() -> None:
    b = Backoff()
    for t in (0.0, 1.0, 12.0):
        b.restarted(t)
    assert b.delay(13.0) == 40
    assert b.delay(12.0 + 601) == 0


def test_the_back_off_can_be_shrunk_for_tests() -> None:
    b = Backoff(initial=0.1, cap=0.4)
    b.restarted(0.0)
    assert b.delay(0.5) == pytest.approx(0.1)


@given(st.lists(st.floats(0, 1000), max_size=30))
def test_the_delay_never_exceeds_the_cap(gaps: list[float]) -> None:
    b, t = Backoff(), 0.0
    for gap in gaps:
        t += gap
        assert 0 <= b.delay(t) <= 300
        b.restarted(t)


def test_the_back_off_message_reads_as_kubernetes() -> None:
    assert backoff_message(40, "c", "web", "shop", "u1") == \
        "back-off 40s restarting failed container=c pod=web_shop(u1)"
    assert backoff_message(300, "c", "web", "shop", "u1").startswith("back-off 5m0s ")


def _probe(**fields: int) -> Probe:
    return decode(Probe, {"exec": {"command": ["true"]}, **fields})


def test_readiness_needs_success_threshold_successes_in_a_row() -> None:
    t = ProbeTracker(READINESS, _probe(successThreshold=2, failureThreshold=2))
    assert t.result is False
    assert [t.observe(x) for x in (True, False, True, True, True)] == [None, None, None, True, None]
    assert [t.observe(x) for x in (False, True, False, False)] == [None, None, None, False]


def test_liveness_starts_healthy_and_fails_after_failure_threshold() -> None:
    t = ProbeTracker(LIVENESS, _probe(failureThreshold=3))
    assert t.result is True
    assert [t.observe(x) for x in (False, False, True, False, False, False)] == [None] * 5 + [False]


def test_an_adopted_container_keeps_its_readiness_until_a_probe_says_otherwise() -> None:
    t = ProbeTracker(READINESS, _probe(failureThreshold=1), initial=True)
    assert t.result is True and t.observe(True) is None and t.observe(False) is False


def test_named_ports_resolve_through_the_containers_ports() -> None:
    c = decode(Container, {"name": "c", "ports": [{"name": "http", "containerPort": 8080}]})
    assert (resolve_port(c, "http"), resolve_port(c, 81), resolve_port(c, "82")) == (8080, 81, 82)
    with pytest.raises(ValueError, match="not a named port"):
        resolve_port(c, "grpc")


async def test_the_prober_waits_the_initial_delay_then_probes_each_period_and_reports_flips() -> None:
    results = iter([True, True, False, False, True])
    changes: list[tuple[str, bool]] = []
    sleeps: list[float] = []

    async def try_once() -> bool:
        try:
            return next(results)
        except StopIteration:
            raise asyncio.CancelledError from None

    async def sleep(seconds: float) -> None:
        sleeps.append(round(seconds))

    probe = _probe(initialDelaySeconds=5, periodSeconds=3, failureThreshold=2)
    with pytest.raises(asyncio.CancelledError):
        await run_prober(READINESS, probe, try_once, lambda k, ok: changes.append((k, ok)), sleep=sleep)
    assert sleeps == [5, 3, 3, 3, 3, 3]
    assert changes == [(READINESS, True), (READINESS, False), (READINESS, True)]
