"""What only the etcd store has: key prefixes on one etcd, several clients that see each
other's writes, members that fail, and writes whose answer was lost."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from control.store import (
    CompactedError,
    ConflictError,
    EventType,
    KeyExistsError,
    KeyValue,
    Store,
    open_store,
)
from control.store.etcd import AmbiguousWriteError, EtcdStore
from control.store.etcd_conn import EtcdUnavailableError
from control.store.etcd_process import EtcdCluster
from tests.integration.store.etcd_fixtures import Clusters, etcd, etcd_clusters  # noqa: F401
from tests.integration.store.test_sqlite_crash import _run_and_kill, _verify, children  # noqa: F401
from tests.store_conformance import TIMEOUT, read_until

OpenStore = Callable[..., Awaitable[Store]]


@pytest.fixture
async def stores() -> AsyncIterator[OpenStore]:
    opened: list[Store] = []

    async def open_(url: str, **kwargs: Any) -> Store:
        store = await open_store(url, **kwargs)
        opened.append(store)
        return store

    try:
        yield open_
    finally:
        for store in opened:
            await asyncio.wait_for(store.close(), TIMEOUT)


async def test_stores_under_different_key_prefixes_on_one_etcd_never_see_each_other(
        etcd: EtcdCluster, stores: OpenStore) -> None:  # noqa: F811
    a = await stores(etcd.url("/cluster-a", compact_interval=0))
    b = await stores(etcd.url("/cluster-b", compact_interval=0))
    whole = await stores(etcd.url(compact_interval=0))
    watch_b = b.watch("/", await b.current_revision())
    await a.create("/registry/x", b"a")
    rev = await b.create("/registry/x", b"b")
    assert [kv.value for kv in (await a.list("")).items] == [b"a"]
    assert await b.count("") == 1
    assert [(e.kv.key, e.kv.value) for e in await read_until(watch_b, rev)] == [("/registry/x", b"b")]
    # Without a prefix the keys are etcd's own: what etcdctl shows.
    assert [kv.key for kv in (await whole.list("")).items] == [
        "/cluster-a/registry/x", "/cluster-b/registry/x"]
    await watch_b.aclose()  # type: ignore[attr-defined]


async def test_two_clients_of_one_etcd_see_each_others_writes_in_reads_and_watches(
        etcd: EtcdCluster, stores: OpenStore) -> None:  # noqa: F811
    one = await stores(etcd.url(compact_interval=0))
    two = await stores(etcd.url(compact_interval=0))
    start = await one.current_revision()
    watch = one.watch("/s/", start)
    rev = await two.create("/s/a", b"from two")
    rev2 = await two.update("/s/a", b"again", rev)
    assert await one.get("/s/a") == KeyValue("/s/a", b"again", rev, rev2)
    assert await one.current_revision() == rev2
    events = await read_until(watch, rev2)
    assert [(e.type, e.kv.value) for e in events] == [(EventType.PUT, b"from two"), (EventType.PUT, b"again")]
    with pytest.raises(ConflictError):  # one's precondition from before two's write fails
        await one.update("/s/a", b"stale", rev)
    await watch.aclose()  # type: ignore[attr-defined]


async def test_a_compaction_by_another_client_is_the_floor_for_everyone(
        etcd: EtcdCluster, stores: OpenStore) -> None:  # noqa: F811
    one = await stores(etcd.url(compact_interval=0))
    two = await stores(etcd.url(compact_interval=0))
    revs = [await one.create(f"/c/{i}", b"v") for i in range(20)]
    await one.compact(revs[12])
    assert await two.compacted_revision() == revs[12]
    with pytest.raises(CompactedError) as err:
        await two.list("/c/", revision=revs[3])
    assert (err.value.requested, err.value.compacted) == (revs[3], revs[12])
    it = two.watch("/c/", revs[5])
    with pytest.raises(CompactedError):
        await asyncio.wait_for(anext(aiter(it)), TIMEOUT)
    assert [kv.key for kv in (await two.list("/c/", revision=revs[12])).items] == sorted(
        f"/c/{i}" for i in range(13))


async def test_a_watch_closed_before_it_was_read_leaves_no_etcd_stream_open(
        etcd: EtcdCluster, stores: OpenStore) -> None:  # noqa: F811
    store = await stores(etcd.url(compact_interval=0))
    assert isinstance(store, EtcdStore)
    unread = [store.watch("/x/", 0) for _ in range(5)]
    read = store.watch("/x/", 0)
    rev = await store.create("/x/a", b"v")
    assert [e.revision for e in await read_until(read, rev)] == [rev]
    for it in (*unread, read):
        await it.aclose()  # type: ignore[attr-defined]
    assert store._streams.calls == set()


async def test_an_unreachable_etcd_fails_to_open_with_the_members_named() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(EtcdUnavailableError, match=f"127.0.0.1:{port}"):
        await open_store(f"etcd://127.0.0.1:{port}", connect_timeout=1.0)


# -- a write whose answer is lost -------------------------------------------------------------

@pytest.fixture
async def lossy(etcd: EtcdCluster) -> AsyncIterator[tuple[EtcdStore, list[bool]]]:  # noqa: F811
    """A store whose next transaction is applied, but answered as if its member had failed:
    the store then sends it again, as it does after a real failover (see the member-failure
    test below for the real thing)."""
    store = await open_store(etcd.url(compact_interval=0))
    assert isinstance(store, EtcdStore)
    conn = store._conn
    real = conn.kv
    lose = [False]

    async def kv(method: str, request: Any) -> tuple[Any, bool]:
        if method == "Txn" and lose[0]:
            lose[0] = False
            await real(method, request)  # applied; its answer never arrives
            resp, _ = await real(method, request)  # the retry
            return resp, True
        return await real(method, request)

    conn.kv = kv  # type: ignore[method-assign]
    try:
        yield store, lose
    finally:
        await store.close()


async def test_a_write_applied_before_its_answer_was_lost_is_reported_as_done(
        lossy: tuple[EtcdStore, list[bool]]) -> None:
    store, lose = lossy
    lose[0] = True
    rev = await store.create("/l/a", b"1")  # the retry finds the key: it is this write
    assert await store.get("/l/a") == KeyValue("/l/a", b"1", rev, rev)
    lose[0] = True
    rev2 = await store.update("/l/a", b"2", rev)
    assert await store.get("/l/a") == KeyValue("/l/a", b"2", rev, rev2)
    lose[0] = True
    gone = await store.delete("/l/a", rev2)
    assert gone == KeyValue("/l/a", b"2", rev, gone.mod_revision)
    assert await store.get("/l/a") is None


async def test_a_lost_answer_does_not_take_someone_elses_write_for_its_own(
        lossy: tuple[EtcdStore, list[bool]], etcd: EtcdCluster) -> None:  # noqa: F811
    store, lose = lossy
    rev = await store.create("/l/a", b"theirs")
    lose[0] = True
    with pytest.raises(KeyExistsError):  # created before this write was sent
        await store.create("/l/a", b"mine")
    lose[0] = True
    rev2 = await store.update("/l/a", b"mine", rev)  # applied, then answered by the retry
    lose[0] = True
    with pytest.raises(ConflictError):  # the first write after `rev` is not this one
        await store.update("/l/a", b"other", rev)
    assert (await store.get("/l/a")) == KeyValue("/l/a", b"mine", rev, rev2)
    lose[0] = True
    with pytest.raises(AmbiguousWriteError):  # nothing tells whose unconditional delete it was
        await store.delete("/l/a")
    assert await store.get("/l/a") is None


# -- a member fails --------------------------------------------------------------------------

@pytest.mark.slow
async def test_killing_the_member_in_use_loses_no_acknowledged_write_and_watches_go_on(
        etcd_clusters: Clusters, stores: OpenStore) -> None:  # noqa: F811
    cluster = etcd_clusters.get("three", size=3)
    store = await stores(cluster.url(compact_interval=0))
    observer = await stores(cluster.url(compact_interval=0))
    start = await store.current_revision()
    acked: dict[str, int] = {}
    errors: list[BaseException] = []
    stop = asyncio.Event()

    async def writer(w: int) -> None:
        rng = random.Random(w)
        i = 0
        while not stop.is_set():
            key = f"/f/{w}/{i}"
            try:
                acked[key] = await store.create(key, b"v" * rng.randrange(1, 2000))
            except EtcdUnavailableError as exc:  # none expected: 2 of 3 members serve
                errors.append(exc)
            i += 1

    watch = store.watch("/f/", start)
    writers = [asyncio.create_task(writer(w)) for w in range(16)]
    try:
        await _until(lambda: len(acked) >= 300)
        cluster.kill(0)  # the member both clients use: calls in flight fail over
        killed_at = len(acked)
        await _until(lambda: len(acked) >= killed_at + 300)  # and writing goes on
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*writers), TIMEOUT)
    assert errors == []
    last = max(acked.values())
    events = await read_until(watch, last)
    await watch.aclose()  # type: ignore[attr-defined]
    # The watch resumed on another member from its last revision: no gap, no duplicate.
    assert sorted(e.revision for e in events if e.kv.key in acked) == sorted(acked.values())
    assert all(e.is_create for e in events)
    listing = {kv.key: kv.mod_revision for kv in (await observer.list("/f/")).items}
    assert listing == acked


@pytest.mark.slow
async def test_every_acknowledged_write_survives_a_member_kill_and_kill_9_of_the_writer(
        etcd_clusters: Clusters, tmp_path: Path, children: list[asyncio.subprocess.Process]) -> None:  # noqa: F811
    # The SQLite crash test's writer and checks, on a 3-member etcd whose member in use dies
    # in the middle of the writes, before the writer itself is killed.
    cluster = etcd_clusters.get("crash", size=3)
    url = cluster.url(compact_interval=0)
    probe = await open_store(url)
    try:
        async def kill_member_midway() -> None:
            await _until_revision(probe, 300)
            cluster.kill(0)

        killer = asyncio.create_task(kill_member_midway())
        started_at, acks = await _run_and_kill(url, 0, 7, "keep", 1500, tmp_path / "writer.err", children)
        assert killer.done() and killer.exception() is None, "the member was not killed during the writes"
        assert started_at == 0 and len(acks) >= 1500
        await _verify(probe, acks, 0, 0)
    finally:
        await probe.close()


async def _until(predicate: Callable[[], bool]) -> None:
    async def wait() -> None:
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    await asyncio.wait_for(wait(), TIMEOUT)


async def _until_revision(store: Store, revision: int) -> None:
    async def wait() -> None:
        while await store.current_revision() < revision:  # noqa: ASYNC110 (another process writes)
            await asyncio.sleep(0.01)

    await asyncio.wait_for(wait(), TIMEOUT)
