"""The `Store` conformance suite: what every store (SQLite today, etcd next) must do.

A backend's test module defines a `store_factory` fixture — an async callable that
opens (or reopens) the store named by its argument — and star-imports this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from control.store import (
    CompactedError,
    ConflictError,
    Event,
    EventType,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    Store,
    StoreClosedError,
)

StoreFactory = Callable[[str], Awaitable[Store]]

__all__ = [name for name in dir() if name.startswith("test_")]  # filled at the end


@pytest.fixture
async def store(store_factory: StoreFactory) -> AsyncIterator[Store]:
    s = await store_factory("main")
    yield s
    await s.close()


async def _collect(it: AsyncIterator[list[Event]], count: int, within: float = 20.0) -> list[Event]:
    out: list[Event] = []

    async def run() -> None:
        async for batch in it:
            out.extend(batch)
            if len(out) >= count:
                return

    await asyncio.wait_for(run(), within)
    return out


# -- single-key semantics --------------------------------------------------------------

async def test_create_get_update_delete_round_trip(store: Store) -> None:
    rev = await store.create("/r/a", b"1")
    kv = await store.get("/r/a")
    assert kv is not None and (kv.value, kv.create_revision, kv.mod_revision) == (b"1", rev, rev)
    rev2 = await store.update("/r/a", b"2", rev)
    assert rev2 > rev
    kv = await store.get("/r/a")
    assert kv is not None and (kv.value, kv.create_revision, kv.mod_revision) == (b"2", rev, rev2)
    deleted = await store.delete("/r/a", rev2)
    assert deleted.value == b"2" and deleted.mod_revision > rev2
    assert await store.get("/r/a") is None


async def test_preconditions_fail_with_typed_errors_and_write_nothing(store: Store) -> None:
    rev = await store.create("/r/a", b"1")
    with pytest.raises(KeyExistsError):
        await store.create("/r/a", b"again")
    with pytest.raises(ConflictError):
        await store.update("/r/a", b"x", rev + 1000)
    with pytest.raises(ConflictError):
        await store.delete("/r/a", rev + 1000)
    with pytest.raises(KeyNotFoundError):
        await store.update("/r/missing", b"x", 0)
    with pytest.raises(KeyNotFoundError):
        await store.delete("/r/missing")
    assert await store.current_revision() == rev
    kv = await store.get("/r/a")
    assert kv is not None and kv.value == b"1"


async def test_expected_revision_zero_means_any(store: Store) -> None:
    await store.create("/r/a", b"1")
    await store.update("/r/a", b"2", 0)
    assert (await store.delete("/r/a", 0)).value == b"2"


async def test_a_recreated_key_has_a_new_create_revision(store: Store) -> None:
    first = await store.create("/r/a", b"1")
    await store.delete("/r/a")
    second = await store.create("/r/a", b"2")
    kv = await store.get("/r/a")
    assert kv is not None and kv.create_revision == second > first


async def test_one_global_strictly_increasing_revision(store: Store) -> None:
    revs = [await store.create(f"/r/{i}", b"v") for i in range(5)]
    revs.append(await store.update("/r/0", b"w", revs[0]))
    revs.append((await store.delete("/r/1")).mod_revision)
    assert revs == sorted(set(revs))
    assert await store.current_revision() == revs[-1]


# -- reads at a revision and lists -------------------------------------------------------

async def test_get_and_list_at_a_past_revision_see_that_past(store: Store) -> None:
    r1 = await store.create("/r/a", b"1")
    await store.create("/r/b", b"1")
    r3 = await store.update("/r/a", b"2", r1)
    await store.delete("/r/b")
    old = await store.get("/r/a", r1)
    assert old is not None and old.value == b"1"
    past = await store.list("/r/", revision=r3)
    assert [(kv.key, kv.value) for kv in past.items] == [("/r/a", b"2"), ("/r/b", b"1")]
    assert past.revision == r3
    now = await store.list("/r/")
    assert [kv.key for kv in now.items] == ["/r/a"]


async def test_a_future_revision_is_refused(store: Store) -> None:
    await store.create("/r/a", b"1")
    with pytest.raises(FutureRevisionError):
        await store.list("/r/", revision=await store.current_revision() + 10)


async def test_paging_is_consistent_while_writes_go_on(store: Store) -> None:
    for i in range(25):
        await store.create(f"/p/{i:03d}", b"v")
    first = await store.list("/p/", limit=10)
    assert len(first.items) == 10 and first.more and first.remaining == 15
    for i in range(25, 30):
        await store.create(f"/p/{i:03d}", b"v")
    await store.delete("/p/020")
    keys = [kv.key for kv in first.items]
    page = first
    while page.more:
        page = await store.list("/p/", revision=first.revision, limit=10, start_after=page.items[-1].key)
        keys.extend(kv.key for kv in page.items)
    assert keys == [f"/p/{i:03d}" for i in range(25)]


async def test_prefixes_select_subtrees_only(store: Store) -> None:
    await store.create("/registry/pods/a", b"1")
    await store.create("/registry/podsecurity/x", b"1")
    await store.create("/registry/pods", b"whole key")
    assert [kv.key for kv in (await store.list("/registry/pods/")).items] == ["/registry/pods/a"]
    assert await store.count("/registry/pods/") == 1
    assert [kv.key for kv in (await store.list("/registry/pods")).items] == ["/registry/pods"]


# -- concurrency --------------------------------------------------------------------------

async def test_concurrent_compare_and_swap_loses_no_update(store: Store) -> None:
    await store.create("/c/counter", b"0")

    async def bump(times: int) -> None:
        for _ in range(times):
            while True:
                kv = await store.get("/c/counter")
                assert kv is not None
                try:
                    await store.update("/c/counter", str(int(kv.value) + 1).encode(), kv.mod_revision)
                    break
                except ConflictError:
                    await asyncio.sleep(random.random() / 1000)

    await asyncio.gather(*(bump(20) for _ in range(25)))
    kv = await store.get("/c/counter")
    assert kv is not None and int(kv.value) == 500


async def test_concurrent_creates_get_distinct_revisions(store: Store) -> None:
    revs = await asyncio.gather(*(store.create(f"/c/{i}", b"v") for i in range(500)))
    assert len(set(revs)) == 500
    assert await store.count("/c/") == 500


# -- watch ------------------------------------------------------------------------------------

async def test_watch_delivers_every_write_in_order_without_gaps(store: Store) -> None:
    start = await store.current_revision()
    it = store.watch("/w/", start)
    collect = asyncio.create_task(_collect(it, 6))
    await asyncio.sleep(0.05)
    r = await store.create("/w/a", b"1")
    await store.create("/other/x", b"ignored")
    await store.update("/w/a", b"2", r)
    await store.create("/w/b", b"1")
    await store.delete("/w/a")
    await store.create("/w/c", b"1")
    await store.delete("/w/b")
    events = await collect
    assert [(e.type, e.kv.key) for e in events] == [
        (EventType.PUT, "/w/a"), (EventType.PUT, "/w/a"), (EventType.PUT, "/w/b"),
        (EventType.DELETE, "/w/a"), (EventType.PUT, "/w/c"), (EventType.DELETE, "/w/b")]
    revs = [e.revision for e in events]
    assert revs == sorted(set(revs))
    assert events[0].is_create and not events[1].is_create and events[1].prev.value == b"1"
    delete = events[3]
    assert delete.kv.value == b"2" and delete.prev is not None and delete.prev.value == b"2"
    await it.aclose()  # type: ignore[attr-defined]


async def test_watch_resumes_from_a_past_revision_while_writes_continue(store: Store) -> None:
    for i in range(50):
        await store.create(f"/w/{i:03d}", b"v")
    resume_at = (await store.list("/w/")).items[9].mod_revision
    total = 150

    async def writer() -> None:
        for i in range(50, total):
            await store.create(f"/w/{i:03d}", b"v")

    write = asyncio.create_task(writer())
    events = await _collect(store.watch("/w/", resume_at), total - 10)
    await write
    assert [e.kv.key for e in events] == [f"/w/{i:03d}" for i in range(10, total)]


async def test_watchers_of_different_prefixes_see_only_their_own(store: Store) -> None:
    start = await store.current_revision()
    a = asyncio.create_task(_collect(store.watch("/a/", start), 3))
    b = asyncio.create_task(_collect(store.watch("/b/", start), 2))
    await asyncio.sleep(0.05)
    for key in ("/a/1", "/b/1", "/a/2", "/b/2", "/a/3"):
        await store.create(key, b"v")
    assert [e.kv.key for e in await a] == ["/a/1", "/a/2", "/a/3"]
    assert [e.kv.key for e in await b] == ["/b/1", "/b/2"]


async def test_compaction_makes_old_revisions_too_old_and_keeps_live_values(store: Store) -> None:
    r1 = await store.create("/k/a", b"1")
    r2 = await store.update("/k/a", b"2", r1)
    await store.create("/k/b", b"1")
    await store.delete("/k/b")
    r5 = await store.create("/k/c", b"1")
    await store.compact(r5)
    assert await store.compacted_revision() == r5
    with pytest.raises(CompactedError):
        await store.list("/k/", revision=r2)
    with pytest.raises(CompactedError):
        await store.get("/k/a", r1)
    with pytest.raises(CompactedError):
        await anext(aiter(store.watch("/k/", r1)))
    now = await store.list("/k/", revision=r5)
    assert [(kv.key, kv.value) for kv in now.items] == [("/k/a", b"2"), ("/k/c", b"1")]
    kv = await store.get("/k/a")
    assert kv is not None and kv.create_revision == r1 and kv.mod_revision == r2
    later = await store.update("/k/a", b"3", r2)
    events = await _collect(store.watch("/k/", r5), 1)
    assert events[0].revision == later


async def test_closing_ends_watches(store_factory: StoreFactory) -> None:
    s = await store_factory("closing")
    it = s.watch("/x/", await s.current_revision())
    nxt = asyncio.create_task(anext(aiter(it)))
    await asyncio.sleep(0.05)
    await s.close()
    with pytest.raises(StoreClosedError):
        await asyncio.wait_for(nxt, 10)


async def test_data_and_revisions_survive_a_reopen(store_factory: StoreFactory) -> None:
    s = await store_factory("reopen")
    await s.create("/d/a", b"1")
    last = await s.update("/d/a", b"2", 0)
    await s.close()
    s = await store_factory("reopen")
    try:
        kv = await s.get("/d/a")
        assert kv is not None and kv.value == b"2" and kv.mod_revision == last
        assert await s.current_revision() == last
        assert await s.create("/d/b", b"1") > last
    finally:
        with contextlib.suppress(Exception):
            await s.close()


__all__ = ["store", *(name for name in dir() if name.startswith("test_"))]
