"""The sync schedule (kube-proxy's BoundedFrequencyRunner): bursts coalesce, the minimum
interval holds, a full resync comes periodically and after failures, syncs never overlap.
The schedule is tested on a fake clock; the runner on a real loop, by counting, not timing."""

from __future__ import annotations

import asyncio

import pytest

from netplane.proxy.runner import Schedule, SyncRunner


def test_the_first_sync_is_full_and_immediate() -> None:
    s = Schedule(min_interval=1, max_interval=30)
    assert s.due() == float("-inf")
    assert s.start(100.0) is True


def test_a_change_waits_for_the_minimum_interval_after_the_last_sync() -> None:
    s = Schedule(min_interval=1, max_interval=30)
    s.start(100.0)
    s.finished(100.2, ok=True)
    s.request()
    assert s.due() == 101.0
    assert s.start(101.0) is False, "a change alone is a partial sync"


def test_a_change_after_a_quiet_period_is_applied_at_once() -> None:
    s = Schedule(min_interval=1, max_interval=30)
    s.start(100.0)
    s.finished(100.1, ok=True)
    s.request()
    assert s.due() <= 150.0, "due in the past: start now"


def test_a_burst_of_requests_is_one_sync() -> None:
    s = Schedule(min_interval=1, max_interval=30)
    s.start(100.0)
    s.finished(100.1, ok=True)
    for _ in range(1000):
        s.request()
    due = s.due()
    s.start(due)
    s.finished(due + 0.1, ok=True)
    assert s.due() == due + 30, "nothing pending: the next sync is the periodic one"


def test_the_periodic_sync_is_full() -> None:
    s = Schedule(min_interval=1, max_interval=30)
    s.start(100.0)
    s.finished(100.1, ok=True)
    assert s.due() == 130.0
    assert s.start(130.0) is True


def test_with_a_full_interval_periodic_syncs_are_partial_until_it_passes() -> None:
    s = Schedule(min_interval=1, max_interval=30, full_interval=3600)
    assert s.start(0.0) is True
    s.finished(0.1, ok=True)
    assert s.due() == 30.0
    assert s.start(30.0) is False, "kube-proxy's periodic sync: not a full one"
    s.finished(30.1, ok=True)
    assert s.start(3600.0) is True, "the hourly full sync"


def test_a_failure_is_retried_with_doubling_back_off_and_a_full_sync() -> None:
    s = Schedule(min_interval=1, max_interval=10, backoff_start=1)
    s.start(100.0)
    delays = []
    now = 100.0
    for _ in range(6):
        s.finished(now, ok=False)
        delays.append(s.due() - now)
        now = s.due()
        assert s.start(now) is True, "a retry after a failure is full"
    assert delays == [1, 2, 4, 8, 10, 10]
    s.finished(now, ok=True)
    s.request()
    assert s.start(s.due()) is False


def test_a_request_during_back_off_does_not_cut_it_short() -> None:
    s = Schedule(min_interval=0, max_interval=30, backoff_start=4)
    s.start(100.0)
    s.finished(100.0, ok=False)
    s.request()
    assert s.due() == 104.0


def test_the_runner_rejects_a_minimum_above_the_maximum() -> None:
    with pytest.raises(ValueError, match="min_interval"):
        SyncRunner(lambda full: asyncio.sleep(0), min_interval=5, max_interval=1)


async def _next(calls: asyncio.Queue[bool]) -> bool:
    return await asyncio.wait_for(calls.get(), 10)


async def test_syncs_never_overlap_and_requests_during_a_sync_are_coalesced() -> None:
    running = 0
    overlaps = 0
    calls: asyncio.Queue[bool] = asyncio.Queue()
    release = asyncio.Event()

    async def sync(full: bool) -> None:
        nonlocal running, overlaps
        running += 1
        overlaps += running > 1
        calls.put_nowait(full)
        await release.wait()
        running -= 1

    runner = SyncRunner(sync, min_interval=0, max_interval=3600)
    task = asyncio.create_task(runner.run())
    assert await _next(calls) is True, "the first sync is full"
    for _ in range(50):  # a burst while the first sync runs
        runner.request()
        await asyncio.sleep(0)
    release.set()
    assert await _next(calls) is False, "the whole burst became one partial sync"
    await asyncio.sleep(0.2)  # a spurious third sync has every chance to start
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert overlaps == 0
    assert calls.empty()


async def test_a_failed_sync_is_retried_as_a_full_one() -> None:
    calls: asyncio.Queue[bool] = asyncio.Queue()
    count = 0

    async def sync(full: bool) -> None:
        nonlocal count
        count += 1
        calls.put_nowait(full)
        if count == 2:
            raise RuntimeError("iptables-restore failed")

    runner = SyncRunner(sync, min_interval=0, max_interval=3600, backoff_start=0.01)
    task = asyncio.create_task(runner.run())
    assert await _next(calls) is True
    runner.request()
    assert await _next(calls) is False
    assert await _next(calls) is True, "the retry of the failed partial sync is full"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert runner.schedule.failures == 0
