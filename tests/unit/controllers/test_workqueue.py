"""The work queue's client-go guarantees: dedup, one worker per key, delays, back-off."""

from __future__ import annotations

import asyncio

import pytest

from control.controllers.workqueue import ExponentialBackoff, QueueShutDown, WorkQueue


async def test_a_key_added_twice_before_a_worker_takes_it_is_queued_once() -> None:
    q = WorkQueue("t")
    q.add("ns/a")
    q.add("ns/a")
    q.add("ns/b")
    assert len(q) == 2
    assert await q.get() == "ns/a"
    assert await q.get() == "ns/b"
    assert q.adds == 2


async def test_a_key_being_processed_is_not_handed_to_a_second_worker() -> None:
    q = WorkQueue()
    q.add("k")
    assert await q.get() == "k"
    q.add("k")
    assert len(q) == 0
    second = asyncio.create_task(q.get())
    await asyncio.sleep(0.01)
    assert not second.done()
    q.done("k")
    assert await asyncio.wait_for(second, 1) == "k"


async def test_a_key_re_added_while_processing_is_queued_once_after_done() -> None:
    q = WorkQueue()
    q.add("k")
    await q.get()
    q.add("k")
    q.add("k")
    q.done("k")
    assert len(q) == 1
    assert await q.get() == "k"
    q.done("k")
    assert len(q) == 0


async def test_done_without_re_add_does_not_requeue() -> None:
    q = WorkQueue()
    q.add("k")
    await q.get()
    q.done("k")
    assert len(q) == 0


async def test_a_waiting_worker_wakes_on_add() -> None:
    q = WorkQueue()
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.add("x")
    assert await asyncio.wait_for(getter, 1) == "x"


async def test_a_cancelled_waiter_does_not_swallow_a_key() -> None:
    q = WorkQueue()
    first = asyncio.create_task(q.get())
    second = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.add("x")
    first.cancel()
    results = await asyncio.gather(first, second, return_exceptions=True)
    assert "x" in results


async def test_add_after_delays_and_keeps_the_earliest_time() -> None:
    q = WorkQueue()
    q.add_after("k", 0.2)
    q.add_after("k", 0.02)
    q.add_after("k", 5)
    assert len(q) == 0
    assert await asyncio.wait_for(q.get(), 1) == "k"
    q.done("k")
    await asyncio.sleep(0.3)
    assert len(q) == 0


async def test_add_after_with_no_delay_adds_now() -> None:
    q = WorkQueue()
    q.add_after("k", 0)
    assert len(q) == 1


def test_backoff_doubles_from_5ms_and_caps_at_1000s() -> None:
    b = ExponentialBackoff()
    delays = [b.when("k") for _ in range(20)]
    assert delays[:4] == pytest.approx([0.005, 0.01, 0.02, 0.04])
    assert delays[-1] == 1000.0
    assert b.num_requeues("k") == 20
    assert b.when("other") == pytest.approx(0.005)
    b.forget("k")
    assert b.when("k") == pytest.approx(0.005)
    assert all(b.when("big") <= 1000.0 for _ in range(200))


async def test_add_rate_limited_counts_retries_and_forget_resets_backoff() -> None:
    q = WorkQueue()
    q.add_rate_limited("k")
    q.add_rate_limited("k")
    assert q.retries == 2
    assert q.num_requeues("k") == 2
    assert await asyncio.wait_for(q.get(), 1) == "k"
    q.forget("k")
    assert q.num_requeues("k") == 0


async def test_shutdown_wakes_waiting_workers_and_drops_delayed_keys() -> None:
    q = WorkQueue()
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.add_after("later", 0.01)
    q.shutdown()
    with pytest.raises(QueueShutDown):
        await asyncio.wait_for(getter, 1)
    q.add("k")
    assert len(q) == 0
    with pytest.raises(QueueShutDown):
        await q.get()
