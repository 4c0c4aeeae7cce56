"""From the kernel's table to the planned one: only what differs, real servers drained
while TCP connections remain, deleted once idle or their grace period is over."""

from __future__ import annotations

from netplane.proxy_ipvs.diff import diff
from netplane.proxy_ipvs.graceful import Draining
from netplane.proxy_ipvs.table import RealKey, RealServer, VirtualKey, VirtualServer

TCP, UDP = VirtualKey("TCP", "10.96.0.1", 80), VirtualKey("UDP", "10.96.0.2", 53)
A, B, C = RealKey("10.0.0.1", 80), RealKey("10.0.0.2", 80), RealKey("10.0.0.3", 80)


def kernel(key: VirtualKey, *reals: RealServer, scheduler: str = "rr") -> dict:
    return {key: (VirtualServer(key, scheduler), {r.key: r for r in reals})}


def test_an_equal_table_needs_nothing() -> None:
    want = {TCP: (VirtualServer(TCP), (A, B))}
    assert diff(want, kernel(TCP, RealServer(A), RealServer(B)), [TCP]).count == 0


def test_only_the_difference_is_changed() -> None:
    want = {TCP: (VirtualServer(TCP, "wrr"), (A, C))}
    ops = diff(want, kernel(TCP, RealServer(A), RealServer(B)), [TCP])
    assert ops.edit_services == [VirtualServer(TCP, "wrr")]
    assert ops.add_reals == [(TCP, C)] and ops.delete_reals == [(TCP, B)]


def test_a_gone_tcp_endpoint_with_connections_is_drained_not_deleted() -> None:
    ops = diff({TCP: (VirtualServer(TCP), (A,))}, kernel(TCP, RealServer(A), RealServer(B, active=1)), [TCP])
    assert ops.edit_reals == [(TCP, B, 0)] and ops.draining == [(TCP, B)] and not ops.delete_reals


def test_udp_real_servers_go_at_once() -> None:
    ops = diff({UDP: (VirtualServer(UDP), ())}, kernel(UDP, RealServer(A, active=3)), [UDP])
    assert ops.delete_reals == [(UDP, A)]


def test_a_drained_real_server_that_comes_back_gets_its_weight_back() -> None:
    ops = diff({TCP: (VirtualServer(TCP), (B,))}, kernel(TCP, RealServer(B, weight=0, active=1)), [TCP])
    assert ops.edit_reals == [(TCP, B, 1)]


def test_virtual_servers_not_planned_are_deleted_unless_kept() -> None:
    table = kernel(TCP, RealServer(A))
    assert diff({}, table, [TCP]).delete_services == [TCP]
    assert diff({}, table, [TCP], keep=lambda _k: True).count == 0


def test_draining_ends_when_the_connections_close_or_the_grace_period_is_over() -> None:
    draining = Draining(grace_seconds=100)
    table = kernel(TCP, RealServer(A, active=1), RealServer(B, active=1))
    ops = diff({TCP: (VirtualServer(TCP), ())}, table, [TCP])
    draining.record(ops, now=0)
    busy = {TCP: {A: RealServer(A, weight=0, active=1), B: RealServer(B, weight=0, inactive=0)}}
    assert draining.due(busy, now=50) == [(TCP, B)]  # B is idle
    draining.deleted([(TCP, B)])
    assert draining.due(busy, now=99) == []
    assert draining.due(busy, now=100) == [(TCP, A)]  # its grace period is over
    assert draining.expired(TCP, A, now=100)


def test_a_drained_real_server_someone_deleted_or_revived_is_forgotten() -> None:
    draining = Draining(grace_seconds=100)
    draining.record(diff({TCP: (VirtualServer(TCP), ())}, kernel(TCP, RealServer(A, active=1)), [TCP]), now=0)
    assert draining.due({TCP: {}}, now=1) == [] and len(draining) == 0
