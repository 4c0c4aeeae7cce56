"""The `Store` conformance suite: what every store (SQLite today, etcd next) must do.

A backend's test module defines a `store_factory` fixture — an async callable that opens
the store named by its argument, and opens the same store again when given the same name
(so that restart tests work) — and star-imports this module:

    from tests.store_conformance import *  # noqa: F403

Nothing here asserts on time: every wait is bounded by a generous `TIMEOUT` only so that
a broken store fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from control.store import (
    CompactedError,
    ConflictError,
    Event,
    EventType,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    ListResult,
    Store,
    StoreClosedError,
)

StoreFactory = Callable[[str], Awaitable[Store]]

TIMEOUT = 60.0


@pytest.fixture
async def store(store_factory: StoreFactory) -> AsyncIterator[Store]:
    s = await store_factory("main")
    try:
        yield s
    finally:
        await asyncio.wait_for(s.close(), TIMEOUT)


@contextlib.asynccontextmanager
async def opened(store_factory: StoreFactory, name: str) -> AsyncIterator[Store]:
    s = await store_factory(name)
    try:
        yield s
    finally:
        await asyncio.wait_for(s.close(), TIMEOUT)


# -- helpers -------------------------------------------------------------------------------

@dataclass
class History:
    """The model a store must match under one prefix: the live versions after every write,
    and the events a watcher must see for them."""

    revisions: list[int] = field(default_factory=lambda: [0])
    states: list[dict[str, KeyValue]] = field(default_factory=lambda: [{}])
    events: list[Event] = field(default_factory=list)

    def at(self, revision: int) -> list[KeyValue]:
        state = self.states[bisect.bisect_right(self.revisions, revision) - 1]
        return sorted(state.values(), key=lambda kv: kv.key)

    def record(self, event: Event, state: dict[str, KeyValue]) -> None:
        assert event.revision > self.revisions[-1], "revisions must strictly increase"
        self.revisions.append(event.revision)
        self.states.append(state)
        self.events.append(event)


async def write_randomly(store: Store, history: History, rng: random.Random, count: int,
                         keys: list[str]) -> None:
    """`count` creates, updates (with the right expected revision) and deletes, recorded."""
    for _ in range(count):
        state = dict(history.states[-1])
        key = rng.choice(keys)
        live = state.get(key)
        value = f"{key}#{len(history.events)}".encode()
        if live is None:
            rev = await store.create(key, value)
            state[key] = KeyValue(key, value, rev, rev)
            event = Event(EventType.PUT, state[key], None)
        elif rng.random() < 0.3:
            gone = await store.delete(key, live.mod_revision)
            assert gone == KeyValue(key, live.value, live.create_revision, gone.mod_revision)
            del state[key]
            event = Event(EventType.DELETE, gone, live)
        else:
            rev = await store.update(key, value, live.mod_revision)
            state[key] = KeyValue(key, value, live.create_revision, rev)
            event = Event(EventType.PUT, state[key], live)
        history.record(event, state)


async def read(it: AsyncIterator[list[Event]], done: Callable[[Event], bool]) -> list[Event]:
    """Events from `it` up to and including the first one `done` accepts, checking that
    batches are non-empty and that revisions strictly increase across them."""
    events: list[Event] = []

    async def run() -> None:
        async for batch in it:
            assert batch, "a watch batch is never empty"
            for ev in batch:
                assert not events or ev.revision > events[-1].revision, (
                    f"revision {ev.revision} after {events[-1].revision}: out of order or duplicate")
                events.append(ev)
                if done(ev):
                    return
        raise AssertionError("the watch ended early")

    await asyncio.wait_for(run(), TIMEOUT)
    return events


async def read_until(it: AsyncIterator[list[Event]], revision: int) -> list[Event]:
    return await read(it, lambda ev: ev.revision >= revision)


async def read_until_key(it: AsyncIterator[list[Event]], key: str) -> list[Event]:
    return await read(it, lambda ev: ev.kv.key == key)


async def watch_until(store: Store, prefix: str, after: int, until: int) -> list[Event]:
    async with contextlib.aclosing(store.watch(prefix, after)) as it:  # type: ignore[type-var]
        return await read_until(it, until)


@contextlib.asynccontextmanager
async def watching(store: Store, prefix: str, after: int,
                   done: Callable[[Event], bool]) -> AsyncIterator[asyncio.Task[list[Event]]]:
    """A task that reads a watch (started now, so that it goes live before later writes)
    until `done`; cancelled and closed on exit, also when the test fails."""
    it = store.watch(prefix, after)
    task = asyncio.create_task(read(it, done))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await it.aclose()  # type: ignore[attr-defined]


async def eventually(predicate: Callable[[], bool]) -> None:
    async def poll() -> None:
        # Polling keeps the tests free of bookkeeping events; the timeout bounds it.
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.001)

    await asyncio.wait_for(poll(), TIMEOUT)


def keys(result: ListResult | list[KeyValue]) -> list[str]:
    items = result.items if isinstance(result, ListResult) else result
    return [kv.key for kv in items]


# -- single-key writes ---------------------------------------------------------------------

class TestWrites:
    async def test_a_created_key_has_its_revision_as_create_and_mod_revision(self, store: Store) -> None:
        rev = await store.create("/r/a", b"1")
        assert await store.get("/r/a") == KeyValue("/r/a", b"1", rev, rev)
        assert await store.current_revision() == rev

    async def test_an_update_keeps_the_create_revision_and_moves_the_mod_revision(
            self, store: Store) -> None:
        rev = await store.create("/r/a", b"1")
        rev2 = await store.update("/r/a", b"2", rev)
        assert rev2 > rev
        assert await store.get("/r/a") == KeyValue("/r/a", b"2", rev, rev2)

    async def test_a_delete_returns_the_deleted_value_at_the_revision_of_the_delete(
            self, store: Store) -> None:
        rev = await store.create("/r/a", b"1")
        rev2 = await store.update("/r/a", b"2", rev)
        gone = await store.delete("/r/a", rev2)
        assert gone.mod_revision > rev2
        assert gone == KeyValue("/r/a", b"2", rev, gone.mod_revision)
        assert await store.get("/r/a") is None
        assert await store.current_revision() == gone.mod_revision

    async def test_creating_a_live_key_is_key_exists_and_writes_nothing(self, store: Store) -> None:
        rev = await store.create("/r/a", b"1")
        with pytest.raises(KeyExistsError) as err:
            await store.create("/r/a", b"again")
        assert err.value.key == "/r/a"
        assert await store.get("/r/a") == KeyValue("/r/a", b"1", rev, rev)
        assert await store.current_revision() == rev

    async def test_updating_or_deleting_a_missing_or_deleted_key_is_key_not_found(
            self, store: Store) -> None:
        with pytest.raises(KeyNotFoundError):
            await store.update("/r/missing", b"x", 0)
        with pytest.raises(KeyNotFoundError):
            await store.delete("/r/missing")
        rev = await store.create("/r/a", b"1")
        await store.delete("/r/a")
        before = await store.current_revision()
        with pytest.raises(KeyNotFoundError) as err:
            await store.update("/r/a", b"x", rev)
        assert err.value.key == "/r/a"
        with pytest.raises(KeyNotFoundError):
            await store.delete("/r/a", 0)
        assert await store.current_revision() == before

    async def test_a_stale_expected_revision_is_a_conflict_that_names_both_revisions(
            self, store: Store) -> None:
        rev = await store.create("/r/a", b"1")
        rev2 = await store.update("/r/a", b"2", rev)
        with pytest.raises(ConflictError) as err:
            await store.update("/r/a", b"x", rev)
        assert (err.value.key, err.value.expected, err.value.actual) == ("/r/a", rev, rev2)
        with pytest.raises(ConflictError):
            await store.delete("/r/a", rev)
        assert await store.get("/r/a") == KeyValue("/r/a", b"2", rev, rev2)
        assert await store.current_revision() == rev2

    async def test_expected_revision_zero_means_any_revision(self, store: Store) -> None:
        rev = await store.create("/r/a", b"1")
        rev2 = await store.update("/r/a", b"2", 0)
        rev3 = await store.update("/r/a", b"3", 0)
        assert rev < rev2 < rev3
        assert (await store.delete("/r/a", 0)).value == b"3"

    async def test_a_recreated_key_starts_a_new_life_with_a_new_create_revision(
            self, store: Store) -> None:
        first = await store.create("/r/a", b"1")
        await store.delete("/r/a", first)
        second = await store.create("/r/a", b"2")
        assert second > first
        assert await store.get("/r/a") == KeyValue("/r/a", b"2", second, second)
        with pytest.raises(ConflictError):  # a precondition from the old life never matches
            await store.update("/r/a", b"x", first)

    async def test_values_are_opaque_bytes_of_any_size(self, store: Store) -> None:
        values = [b"", b"\x00\xff\x00 binary \xc3\x28", bytes(range(256)) * 4096]
        for i, value in enumerate(values):
            rev = await store.create(f"/r/{i}", value)
            assert await store.get(f"/r/{i}") == KeyValue(f"/r/{i}", value, rev, rev)
        assert [kv.value for kv in (await store.list("/r/")).items] == values

    async def test_one_global_revision_strictly_increases_across_keys_and_kinds_of_write(
            self, store: Store) -> None:
        revs = [await store.create(f"/r/{i}", b"v") for i in range(5)]
        revs.append(await store.update("/r/0", b"w", revs[0]))
        revs.append((await store.delete("/r/1")).mod_revision)
        revs.append(await store.create("/elsewhere/x", b"v"))
        revs.append(await store.update("/r/2", b"w", 0))
        assert revs == sorted(set(revs))
        assert await store.current_revision() == revs[-1]


# -- reads, prefixes and revisions ------------------------------------------------------------

class TestReads:
    async def test_an_empty_store_is_at_revision_zero_and_reads_nothing(self, store: Store) -> None:
        assert await store.current_revision() == 0
        assert await store.get("/r/a") is None
        assert await store.list("/r/") == ListResult([], 0, False, 0)
        assert await store.count("/r/") == 0

    async def test_get_and_list_at_every_past_revision_show_exactly_that_past(self, store: Store) -> None:
        history = History()
        await write_randomly(store, history, random.Random(3), 120, [f"/h/{i}" for i in range(6)])
        await store.create("/other/noise", b"v")
        for rev in range(1, await store.current_revision() + 1):
            listing = await store.list("/h/", revision=rev)
            assert listing.items == history.at(rev), f"list at {rev}"
            assert (listing.revision, listing.more, listing.remaining) == (rev, False, 0)
            live = {kv.key: kv for kv in history.at(rev)}
            for key in ("/h/0", "/h/3"):
                assert await store.get(key, rev) == live.get(key), f"get {key} at {rev}"

    async def test_a_read_at_revision_zero_is_a_read_now(self, store: Store) -> None:
        await store.create("/r/a", b"1")
        rev = await store.update("/r/a", b"2", 0)
        listing = await store.list("/r/", revision=0)
        assert listing.revision == rev == await store.current_revision()
        assert (await store.get("/r/a", 0)) == KeyValue("/r/a", b"2", listing.items[0].create_revision, rev)

    async def test_a_read_at_a_future_revision_is_future_revision_error(self, store: Store) -> None:
        rev = await store.create("/r/a", b"1")
        with pytest.raises(FutureRevisionError) as err:
            await store.list("/r/", revision=rev + 10)
        assert (err.value.requested, err.value.current) == (rev + 10, rev)
        with pytest.raises(FutureRevisionError):
            await store.get("/r/a", rev + 1)

    async def test_count_counts_the_live_keys_under_a_prefix(self, store: Store) -> None:
        for i in range(7):
            await store.create(f"/n/{i}", b"v")
        await store.create("/n2/x", b"v")
        await store.delete("/n/3")
        await store.update("/n/4", b"w", 0)
        assert await store.count("/n/") == 6
        assert await store.count("/n/4") == 1
        assert await store.count("/n/3") == 0
        assert await store.count("/nothing/") == 0

    async def test_a_prefix_selects_its_subtree_and_not_keys_that_merely_start_with_it(
            self, store: Store) -> None:
        for key in ("/registry/pods/default/a", "/registry/pods/kube-system/b", "/registry/podsecurity/x",
                    "/registry/pods", "/registry/pods0", "/registry/pods.x", "/registry/pod/y",
                    "/registry/pods/\U0001f600"):
            await store.create(key, b"v")
        assert keys(await store.list("/registry/pods/")) == [
            "/registry/pods/default/a", "/registry/pods/kube-system/b", "/registry/pods/\U0001f600"]
        assert await store.count("/registry/pods/") == 3
        assert keys(await store.list("/registry/pods/default/")) == ["/registry/pods/default/a"]
        assert keys(await store.list("/registry/pods")) == ["/registry/pods"]  # a whole key
        assert keys(await store.list("/registry/pods/default/a")) == ["/registry/pods/default/a"]

    async def test_prefix_characters_have_no_pattern_meaning(self, store: Store) -> None:
        for key in ("/p/a_b/1", "/p/axb/1", "/p/a%/1", "/p/a%b/1", "/p/a*/1", "/p/a[b]/1", "/p/a\\/1"):
            await store.create(key, b"v")
        assert keys(await store.list("/p/a_b/")) == ["/p/a_b/1"]
        assert keys(await store.list("/p/a%/")) == ["/p/a%/1"]
        assert keys(await store.list("/p/a*/")) == ["/p/a*/1"]
        assert keys(await store.list("/p/a[b]/")) == ["/p/a[b]/1"]
        assert keys(await store.list("/p/a\\/")) == ["/p/a\\/1"]

    async def test_keys_are_listed_in_code_point_order(self, store: Store) -> None:
        names = ["b", "a", "B", "a0", "a/", "\u00e9", "\u65e5\u672c", "\U0001f600", "z"]
        for name in names:
            await store.create(f"/o/{name}", b"v")
        assert keys(await store.list("/o/")) == sorted(f"/o/{name}" for name in names)


class TestPaging:
    async def test_pages_at_one_revision_form_one_snapshot_while_writes_continue(
            self, store: Store) -> None:
        for i in range(40):
            await store.create(f"/p/{i:03d}", f"v{i}".encode())
        first = await store.list("/p/", limit=7)
        snapshot = await store.list("/p/", revision=first.revision)
        assert first.items == snapshot.items[:7]
        assert (first.more, first.remaining) == (True, 33)
        done = 0
        stop = asyncio.Event()

        async def writer() -> None:
            nonlocal done
            rng = random.Random(5)
            while not stop.is_set():
                i = rng.randrange(40)
                with contextlib.suppress(KeyNotFoundError, KeyExistsError):
                    choice = rng.random()
                    if choice < 0.3:
                        await store.delete(f"/p/{i:03d}")
                    elif choice < 0.6:
                        await store.create(f"/p/{i:03d}x", b"new")  # sorts between existing keys
                    else:
                        await store.update(f"/p/{i:03d}", b"changed", 0)
                done += 1  # an attempt: a failed precondition is a store round trip too

        task = asyncio.create_task(writer())
        try:
            items, page = list(first.items), first
            while page.more:
                await eventually(lambda target=done + 5: done >= target)  # more writes between pages
                page = await store.list("/p/", revision=first.revision, limit=7,
                                        start_after=page.items[-1].key)
                assert page.revision == first.revision
                items.extend(page.items)
                assert page.remaining == len(snapshot.items) - len(items)
                assert page.more == (page.remaining > 0)
        finally:
            stop.set()
            await asyncio.wait_for(task, TIMEOUT)
        assert items == snapshot.items
        assert await store.list("/p/") != snapshot.items

    async def test_a_limit_that_fits_exactly_has_no_more(self, store: Store) -> None:
        for i in range(5):
            await store.create(f"/p/{i}", b"v")
        assert (await store.list("/p/", limit=5)).more is False
        assert (await store.list("/p/", limit=5)).remaining == 0
        assert keys(await store.list("/p/", limit=0)) == [f"/p/{i}" for i in range(5)]
        page = await store.list("/p/", limit=4)
        assert (keys(page), page.more, page.remaining) == ([f"/p/{i}" for i in range(4)], True, 1)

    async def test_start_after_need_not_be_a_listed_key(self, store: Store) -> None:
        for i in (1, 3, 5, 7):
            await store.create(f"/p/{i}", b"v")
        await store.delete("/p/3")
        page = await store.list("/p/", limit=1, start_after="/p/3")
        assert (keys(page), page.more, page.remaining) == (["/p/5"], True, 1)
        assert keys(await store.list("/p/", start_after="/p/2")) == ["/p/5", "/p/7"]
        assert keys(await store.list("/p/", start_after="/p/7")) == []


# -- concurrency ---------------------------------------------------------------------------

class TestConcurrency:
    # 2000 increments by 50 contenders race hard enough to lose one if CAS were broken, and
    # fit the suite's time budget on a small machine (each success costs a read and a write).
    TASKS = 50
    INCREMENTS = 40

    async def test_compare_and_swap_retry_loops_lose_no_increment(self, store: Store) -> None:
        await store.create("/c/counter", b"0")

        async def bump(seed: int) -> int:
            rng = random.Random(seed)
            conflicts = 0
            for _ in range(self.INCREMENTS):
                tries = 0
                while True:
                    kv = await store.get("/c/counter")
                    assert kv is not None
                    try:
                        await store.update("/c/counter", str(int(kv.value) + 1).encode(), kv.mod_revision)
                        break
                    except ConflictError:
                        conflicts += 1
                        tries += 1
                        # Backing off spreads the contenders out; the store's speed is not tested.
                        await asyncio.sleep(rng.random() * 0.002 * min(tries, 8))
            return conflicts

        conflicts = await asyncio.wait_for(
            asyncio.gather(*(bump(seed) for seed in range(self.TASKS))), TIMEOUT)
        kv = await store.get("/c/counter")
        assert kv is not None and int(kv.value) == self.TASKS * self.INCREMENTS
        assert sum(conflicts) > 0, "the writers never raced: the test proved nothing"

    async def test_concurrent_creates_of_distinct_keys_get_distinct_revisions(self, store: Store) -> None:
        revs = await asyncio.gather(*(store.create(f"/c/{i:04d}", str(i).encode()) for i in range(1000)))
        assert len(set(revs)) == 1000
        assert max(revs) == await store.current_revision()
        listing = await store.list("/c/")
        assert [(kv.value, kv.mod_revision) for kv in listing.items] == [
            (str(i).encode(), rev) for i, rev in enumerate(revs)]

    async def test_concurrent_creates_of_one_key_have_exactly_one_winner(self, store: Store) -> None:
        results = await asyncio.gather(*(store.create("/c/one", str(i).encode()) for i in range(50)),
                                       return_exceptions=True)
        winners = [(i, r) for i, r in enumerate(results) if isinstance(r, int)]
        assert len(winners) == 1
        assert all(isinstance(r, KeyExistsError) for r in results if not isinstance(r, int))
        (i, rev), = winners
        assert await store.get("/c/one") == KeyValue("/c/one", str(i).encode(), rev, rev)

    async def test_concurrent_updates_expecting_one_revision_have_exactly_one_winner(
            self, store: Store) -> None:
        rev = await store.create("/c/one", b"start")
        results = await asyncio.gather(*(store.update("/c/one", str(i).encode(), rev) for i in range(50)),
                                       return_exceptions=True)
        winners = [(i, r) for i, r in enumerate(results) if isinstance(r, int)]
        assert len(winners) == 1
        assert all(isinstance(r, ConflictError) for r in results if not isinstance(r, int))
        (i, new), = winners
        assert await store.get("/c/one") == KeyValue("/c/one", str(i).encode(), rev, new)

    async def test_concurrent_deletes_of_one_key_have_exactly_one_winner(self, store: Store) -> None:
        await store.create("/c/one", b"v")
        results = await asyncio.gather(*(store.delete("/c/one") for _ in range(50)), return_exceptions=True)
        assert sum(isinstance(r, KeyValue) for r in results) == 1
        assert all(isinstance(r, KeyNotFoundError) for r in results if not isinstance(r, KeyValue))

    async def test_concurrent_mixed_writes_each_get_their_own_revision_and_all_reach_the_log(
            self, store: Store) -> None:
        async def worker(w: int) -> list[int]:
            revs = []
            for i in range(30):
                key = f"/c/{w}/{i // 4 % 3}"  # create, update, update, delete; then the next key
                if i % 4 == 0:
                    revs.append(await store.create(key, b"v"))
                elif i % 4 < 3:
                    revs.append(await store.update(key, str(i).encode(), 0))
                else:
                    revs.append((await store.delete(key)).mod_revision)
            return revs

        per_worker = await asyncio.gather(*(worker(w) for w in range(20)))
        for revs in per_worker:
            assert revs == sorted(revs)  # one task's writes land in the order it made them
        every = sorted(r for revs in per_worker for r in revs)
        assert len(set(every)) == len(every) == 600
        events = await watch_until(store, "/c/", 0, every[-1])
        assert [e.revision for e in events] == every



# -- watch ---------------------------------------------------------------------------------

class TestWatch:
    async def test_a_watch_delivers_every_write_under_its_prefix_in_order_live_and_replayed_alike(
            self, store: Store) -> None:
        start = await store.current_revision()
        async with watching(store, "/w/", start, lambda ev: ev.kv.key == "/w/~end") as live:
            await asyncio.sleep(0.05)  # most likely live by then; correct either way
            history = History()
            await write_randomly(store, history, random.Random(9), 80, ["/w/a", "/w/b", "/w/c"])
            await store.create("/other/x", b"not under /w/")
            await store.create("/w", b"a whole key, not under /w/")
            end = await store.create("/w/~end", b"")
            seen = await live
        assert seen[:-1] == history.events
        assert seen[-1] == Event(EventType.PUT, KeyValue("/w/~end", b"", end, end), None)
        assert await watch_until(store, "/w/", start, end) == seen

    async def test_events_carry_the_version_they_replace_and_deletes_carry_the_deleted_value(
            self, store: Store) -> None:
        start = await store.current_revision()
        r1 = await store.create("/w/a", b"1")
        r2 = await store.update("/w/a", b"2", r1)
        gone = await store.delete("/w/a", r2)
        r4 = await store.create("/w/a", b"3")
        created, updated, deleted, recreated = await watch_until(store, "/w/", start, r4)
        assert created == Event(EventType.PUT, KeyValue("/w/a", b"1", r1, r1), None)
        assert created.is_create and created.revision == r1
        assert updated == Event(EventType.PUT, KeyValue("/w/a", b"2", r1, r2), KeyValue("/w/a", b"1", r1, r1))
        assert not updated.is_create
        assert deleted == Event(EventType.DELETE, KeyValue("/w/a", b"2", r1, gone.mod_revision),
                                KeyValue("/w/a", b"2", r1, r2))
        assert deleted.revision == gone.mod_revision and not deleted.is_create
        assert recreated == Event(EventType.PUT, KeyValue("/w/a", b"3", r4, r4), None)

    async def test_watches_started_during_writes_replay_then_join_live_without_gap_or_duplicate(
            self, store: Store) -> None:
        written: dict[int, str] = {}
        revs = await asyncio.gather(*(store.create(f"/j/{i:05d}", b"v") for i in range(1500)))
        written.update((rev, f"/j/{i:05d}") for i, rev in enumerate(revs))
        await asyncio.gather(*(store.create(f"/k/{i:05d}", b"v") for i in range(300)))
        history_end = await store.current_revision()

        async def writer(w: int) -> None:
            for i in range(250):
                key = f"/j/w{w}/{i % 10}"
                rev = await (store.create(key, b"v") if i < 10 else store.update(key, str(i).encode(), 0))
                written[rev] = key
                await store.create(f"/k/w{w}/{i}", b"noise")  # another prefix, interleaved

        async def watcher(after: int) -> tuple[int, list[Event]]:
            async with contextlib.aclosing(store.watch("/j/", after)) as it:  # type: ignore[type-var]
                return after, await read_until_key(it, "/j/~end")

        async def until_written(count: int) -> None:
            await eventually(lambda: len(written) >= count)

        writers = [asyncio.create_task(writer(w)) for w in range(4)]
        watchers: list[asyncio.Task[tuple[int, list[Event]]]] = []
        rng = random.Random(11)
        try:
            for more in (0, 100, 300, 600, 900):
                await until_written(1500 + more)
                current = await store.current_revision()
                for after in (0, rng.randint(1, history_end), rng.randint(history_end, current), current):
                    watchers.append(asyncio.create_task(watcher(after)))
                    await asyncio.sleep(0)  # let it start while the writers go on
            await asyncio.wait_for(asyncio.gather(*writers), TIMEOUT)
            end = await store.create("/j/~end", b"")
            written[end] = "/j/~end"
            results = await asyncio.wait_for(asyncio.gather(*watchers), TIMEOUT)
        finally:
            for task in (*writers, *watchers):
                task.cancel()
        for after, events in results:
            expected = [(rev, written[rev]) for rev in sorted(written) if rev > after]
            assert [(e.revision, e.kv.key) for e in events] == expected, f"watch from {after}"

    async def test_a_watch_from_the_current_revision_sees_only_later_writes(self, store: Store) -> None:
        await store.create("/w/old", b"v")
        now = await store.current_revision()
        rev = await store.create("/w/new", b"v")
        assert keys([e.kv for e in await watch_until(store, "/w/", now, rev)]) == ["/w/new"]

    async def test_a_watch_from_a_future_revision_sees_only_writes_after_it(self, store: Store) -> None:
        now = await store.current_revision()
        async with watching(store, "/w/", now + 3, lambda ev: ev.kv.key == "/w/4") as live:
            revs = [await store.create(f"/w/{i}", b"v") for i in range(5)]
            events = await live
        assert [e.revision for e in events] == [rev for rev in revs if rev > now + 3]

    async def test_watchers_of_different_prefixes_each_see_only_their_own(self, store: Store) -> None:
        writes = ("/a/1", "/b/1", "/a/2", "/ab/1", "/b/2", "/a", "/a/3", "/a/1/sub")
        expected = {"/a/": ["/a/1", "/a/2", "/a/3", "/a/1/sub"], "/b/": ["/b/1", "/b/2"],
                    "/": list(writes), "/a": ["/a"], "/a/1": ["/a/1"]}
        start = await store.current_revision()
        async with contextlib.AsyncExitStack() as stack:
            live = {prefix: await stack.enter_async_context(
                        watching(store, prefix, start, lambda ev, last=want[-1]: ev.kv.key == last))
                    for prefix, want in expected.items()}
            await asyncio.sleep(0.05)
            for key in writes:
                await store.create(key, b"v")
            for prefix, task in live.items():
                assert keys([e.kv for e in await task]) == expected[prefix], f"live watch of {prefix}"
        for prefix, want in expected.items():
            async with contextlib.aclosing(store.watch(prefix, start)) as it:  # type: ignore[type-var]
                events = await read_until_key(it, want[-1])
            assert keys([e.kv for e in events]) == want, f"replayed watch of {prefix}"

    async def test_many_watchers_of_one_prefix_see_the_same_events_and_closing_one_spares_the_rest(
            self, store: Store) -> None:
        start = await store.current_revision()
        iters = [store.watch("/m/", start) for _ in range(20)]
        try:
            first = await store.create("/m/0", b"v")
            for it in iters:
                assert [e.revision for e in await read_until(it, first)] == [first]
            await iters[0].aclose()  # type: ignore[attr-defined]
            history = History(revisions=[first])
            await write_randomly(store, history, random.Random(2), 40, ["/m/1", "/m/2"])
            for it in iters[1:]:
                assert await read_until(it, history.revisions[-1]) == history.events
        finally:
            for it in iters:
                await it.aclose()  # type: ignore[attr-defined]


# -- compaction ----------------------------------------------------------------------------

class TestCompaction:
    async def test_reads_and_watches_before_the_compacted_revision_are_compacted_error(
            self, store: Store) -> None:
        r1 = await store.create("/k/a", b"1")
        r2 = await store.update("/k/a", b"2", r1)
        await store.create("/k/b", b"1")
        r4 = (await store.delete("/k/b")).mod_revision
        await store.compact(r4)
        assert await store.compacted_revision() == r4
        with pytest.raises(CompactedError) as err:
            await store.list("/k/", revision=r2)
        assert (err.value.requested, err.value.compacted) == (r2, r4)
        with pytest.raises(CompactedError):
            await store.get("/k/a", r1)
        with pytest.raises(CompactedError):
            await store.list("/k/", revision=r4 - 1, limit=1)
        for after in (0, r1, r4 - 1):  # "older than the compacted revision"
            it = store.watch("/k/", after)
            with pytest.raises(CompactedError):
                await asyncio.wait_for(anext(aiter(it)), TIMEOUT)
            await it.aclose()  # type: ignore[attr-defined]

    async def test_compaction_keeps_live_values_and_the_updates_after_it_keep_their_prev(
            self, store: Store) -> None:
        r1 = await store.create("/k/a", b"1")
        r2 = await store.update("/k/a", b"2", r1)
        await store.create("/k/b", b"1")
        r4 = (await store.delete("/k/b")).mod_revision
        await store.compact(r4)
        assert (await store.list("/k/", revision=r4)).items == [KeyValue("/k/a", b"2", r1, r2)]
        assert await store.get("/k/a") == KeyValue("/k/a", b"2", r1, r2)
        assert await store.get("/k/b", r4) is None
        r5 = await store.update("/k/a", b"3", r2)
        r6 = await store.create("/k/b", b"again")
        events = await watch_until(store, "/k/", r4, r6)
        assert events == [
            Event(EventType.PUT, KeyValue("/k/a", b"3", r1, r5), KeyValue("/k/a", b"2", r1, r2)),
            Event(EventType.PUT, KeyValue("/k/b", b"again", r6, r6), None)]

    async def test_a_key_deleted_between_two_compactions_stays_deleted(self, store: Store) -> None:
        a = await store.create("/k/a", b"1")
        b = await store.create("/k/b", b"1")
        await store.compact(b)  # the only versions of /k/a and /k/b are now below the floor
        await store.delete("/k/a", a)
        b2 = await store.update("/k/b", b"2", b)
        c = await store.create("/k/c", b"1")
        await store.compact(c)
        await store.delete("/k/b", b2)
        d = await store.create("/k/d", b"1")
        await store.compact(d)
        assert await store.get("/k/a") is None
        assert await store.get("/k/b") is None
        assert keys(await store.list("/k/")) == ["/k/c", "/k/d"]
        assert await store.count("/k/") == 2
        again = await store.create("/k/a", b"new life")
        assert await store.get("/k/a") == KeyValue("/k/a", b"new life", again, again)

    async def test_reads_at_or_after_the_compacted_revision_stay_exact_through_repeated_compactions(
            self, store: Store) -> None:
        rng = random.Random(1)
        history = History()
        names = [f"/m/{i}" for i in range(10)]
        await write_randomly(store, history, rng, 150, names)
        for _ in range(5):
            current = await store.current_revision()
            target = rng.randint(await store.compacted_revision() + 1, current)
            await store.compact(target)
            assert await store.compacted_revision() == target
            for rev in range(target, current + 1):
                assert (await store.list("/m/", revision=rev)).items == history.at(rev), f"list at {rev}"
            for rev in (target, current):
                live = {kv.key: kv for kv in history.at(rev)}
                for key in names:
                    assert await store.get(key, rev) == live.get(key), f"get {key} at {rev}"
            if target > 1:
                with pytest.raises(CompactedError):
                    await store.list("/m/", revision=target - 1)
            replayed = await watch_until(store, "/m/", target, current) if current > target else []
            assert replayed == [e for e in history.events if e.revision > target]
            await write_randomly(store, history, rng, 100, names)
        assert (await store.list("/m/")).items == history.at(history.revisions[-1])

    async def test_compaction_never_moves_the_floor_back(self, store: Store) -> None:
        r1 = await store.create("/k/a", b"1")
        r2 = await store.update("/k/a", b"2", r1)
        r3 = await store.update("/k/a", b"3", r2)
        await store.compact(r3)
        await store.compact(r1)
        assert await store.compacted_revision() == r3
        with pytest.raises(CompactedError):
            await store.get("/k/a", r2)
        assert await store.get("/k/a", r3) == KeyValue("/k/a", b"3", r1, r3)
        # Nor do compactions that race each other and the writes.
        for i in range(100):
            await store.create(f"/k/{i}", b"v")
        current = await store.current_revision()
        writes = [asyncio.create_task(store.create(f"/k/w{i}", b"v")) for i in range(100)]
        await asyncio.sleep(0)  # writes in flight
        await asyncio.gather(store.compact(current - 10), store.compact(current - 60), *writes)
        assert await store.compacted_revision() == current - 10
        with pytest.raises(CompactedError):
            await store.list("/k/", revision=current - 30)

    async def test_a_live_watch_keeps_going_across_a_compaction(self, store: Store) -> None:
        start = await store.current_revision()
        async with watching(store, "/k/", start, lambda ev: ev.kv.key == "/k/~end") as live:
            history = History()
            await write_randomly(store, history, random.Random(6), 30, ["/k/a", "/k/b"])
            await store.compact(await store.current_revision())
            await write_randomly(store, history, random.Random(7), 30, ["/k/a", "/k/b"])
            await store.create("/k/~end", b"")
            assert (await live)[:-1] == history.events

    async def test_reads_and_watches_racing_a_compaction_are_exact_or_compacted_error(
            self, store: Store) -> None:
        history = History()
        await write_randomly(store, history, random.Random(8), 400, [f"/m/{i}" for i in range(20)])
        current = await store.current_revision()
        stop = asyncio.Event()
        checked = {"exact": 0, "compacted": 0}

        async def reader(seed: int) -> None:
            rng = random.Random(seed)
            while not stop.is_set():
                rev = rng.randint(1, current)
                try:
                    if seed % 3 == 0:
                        events = await watch_until(store, "/m/", rev, current) if rev < current else []
                        assert events == [e for e in history.events if e.revision > rev], f"watch from {rev}"
                    elif seed % 3 == 1:
                        listing = await store.list("/m/", revision=rev)
                        assert listing.items == history.at(rev), f"list at {rev}"
                    else:
                        live = {kv.key: kv for kv in history.at(rev)}
                        key = f"/m/{rng.randrange(20)}"
                        assert await store.get(key, rev) == live.get(key), f"get {key} at {rev}"
                    checked["exact"] += 1
                except CompactedError:
                    assert rev < await store.compacted_revision()
                    checked["compacted"] += 1

        readers = [asyncio.create_task(reader(seed)) for seed in range(6)]
        try:
            for target in range(1, current + 1, 9):
                await store.compact(target)
                await asyncio.sleep(0.001)
            await store.compact(current)
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*readers), TIMEOUT)
        assert checked["exact"] > 0 and checked["compacted"] > 0


# -- lifecycle -----------------------------------------------------------------------------

class TestLifecycle:
    async def test_closing_the_store_ends_every_watch_with_store_closed_error(
            self, store_factory: StoreFactory) -> None:
        s = await store_factory("closing")
        try:
            live = s.watch("/x/", await s.current_revision())
            waiting = asyncio.create_task(anext(aiter(live)))
            behind = s.watch("/x/", await s.current_revision())
            rev = await s.create("/x/a", b"v")  # `behind` never reads it
            assert [e.revision for e in await read_until(behind, rev)] == [rev]
            await s.create("/x/b", b"v")
            unstarted = s.watch("/x/", 0)
            await asyncio.sleep(0.05)
        finally:
            await asyncio.wait_for(s.close(), TIMEOUT)
        assert (await asyncio.wait_for(waiting, TIMEOUT))[0].revision == rev

        async def drain(it: AsyncIterator[list[Event]]) -> None:
            async for _ in it:  # buffered events may still come; then the end
                pass

        for it in (live, behind, unstarted):
            with pytest.raises(StoreClosedError):
                await asyncio.wait_for(drain(it), TIMEOUT)

    async def test_every_operation_on_a_closed_store_is_store_closed_error(
            self, store_factory: StoreFactory) -> None:
        s = await store_factory("closed")
        rev = await s.create("/x/a", b"v")
        await s.close()
        await s.close()  # closing twice is harmless
        ops: list[Callable[[], Awaitable[object]]] = [
            lambda: s.create("/x/b", b"v"), lambda: s.update("/x/a", b"w", rev), lambda: s.delete("/x/a"),
            lambda: s.get("/x/a"), lambda: s.list("/x/"), lambda: s.count("/x/"), lambda: s.compact(rev)]
        for op in ops:
            with pytest.raises(StoreClosedError):
                await asyncio.wait_for(op(), TIMEOUT)
        with pytest.raises(StoreClosedError):
            await asyncio.wait_for(anext(aiter(s.watch("/x/", rev))), TIMEOUT)

    async def test_writes_racing_close_are_kept_when_acknowledged_and_never_hang(
            self, store_factory: StoreFactory) -> None:
        s = await store_factory("racing-close")
        acked: dict[str, int] = {}
        stop = asyncio.Event()

        async def writer(w: int) -> None:
            i = 0
            while not stop.is_set():
                acked[f"/x/{w}/{i}"] = await s.create(f"/x/{w}/{i}", b"v")
                i += 1

        writers = [asyncio.create_task(writer(w)) for w in range(20)]
        try:
            await eventually(lambda: len(acked) >= 300)
            burst = [asyncio.create_task(s.create(f"/x/burst/{i}", b"v")) for i in range(1000)]
            await asyncio.sleep(0)  # the burst is queued, not yet committed, when close starts
        finally:
            await asyncio.wait_for(s.close(), TIMEOUT)
            stop.set()
        await _settle(writers, acked, burst, "/x/burst/")
        await _assert_kept(store_factory, "racing-close", acked)

    async def test_writes_queued_on_an_idle_store_when_close_starts_are_answered(
            self, store_factory: StoreFactory) -> None:
        s = await store_factory("idle-close")
        acked = {"/x/first": await s.create("/x/first", b"v")}
        burst = [asyncio.create_task(s.create(f"/x/burst/{i}", b"v")) for i in range(200)]
        await asyncio.sleep(0)  # submitted, and the writer has not run yet
        await asyncio.wait_for(s.close(), TIMEOUT)
        await _settle([], acked, burst, "/x/burst/")
        await _assert_kept(store_factory, "idle-close", acked)

    async def test_data_history_and_revisions_survive_a_reopen(self, store_factory: StoreFactory) -> None:
        history = History()
        async with opened(store_factory, "reopen") as s:
            await write_randomly(s, history, random.Random(12), 100, [f"/d/{i}" for i in range(5)])
            live = (await s.list("/d/")).items
            last = (await s.delete(live[0].key)).mod_revision
        async with opened(store_factory, "reopen") as s:
            assert await s.current_revision() == last
            assert (await s.list("/d/")).items == live[1:]
            for rev in range(1, history.revisions[-1] + 1, 7):
                assert (await s.list("/d/", revision=rev)).items == history.at(rev), f"list at {rev}"
            assert (await watch_until(s, "/d/", 0, history.revisions[-1])) == history.events
            assert await s.create("/d/new", b"v") > last

    async def test_a_revision_is_never_reused_even_when_the_newest_write_was_a_compacted_delete(
            self, store_factory: StoreFactory) -> None:
        async with opened(store_factory, "no-reuse") as s:
            rev = await s.create("/d/a", b"1")
            gone = (await s.delete("/d/a", rev)).mod_revision
            await s.compact(gone)
        async with opened(store_factory, "no-reuse") as s:
            assert await s.current_revision() == gone
            assert await s.compacted_revision() == gone
            with pytest.raises(CompactedError):
                await s.get("/d/a", rev)
            assert await s.get("/d/a") is None
            assert await s.create("/d/a", b"2") > gone



async def _settle(writers: list[asyncio.Task[None]], acked: dict[str, int], burst: list[asyncio.Task[int]],
                  burst_prefix: str) -> None:
    """Every write racing a close ends: acknowledged (then recorded in `acked`) or refused
    with StoreClosedError; none hangs."""
    _, pending = await asyncio.wait([*writers, *burst], timeout=TIMEOUT)
    for task in pending:
        task.cancel()
    assert not pending, f"{len(pending)} writes hang on a closed store"
    for task in writers:
        with pytest.raises(StoreClosedError):
            task.result()
    for i, task in enumerate(burst):
        if task.exception() is None:
            acked[f"{burst_prefix}{i}"] = task.result()
        else:
            assert isinstance(task.exception(), StoreClosedError), task.exception()


async def _assert_kept(store_factory: StoreFactory, name: str, acked: dict[str, int]) -> None:
    async with opened(store_factory, name) as s:
        for key, rev in acked.items():
            kv = await s.get(key)
            assert kv is not None and kv.mod_revision == rev, f"acknowledged {key}@{rev} is lost"
        assert await s.current_revision() >= max(acked.values())

__all__ = ["History", "StoreFactory", "store",
           *(name for name in dir() if name.startswith(("test_", "Test")))]
