"""Service allocations when several apiservers share a store: each has its own view of the
reservations, which may be stale, and the store decides. Two allocators over one store
are two apiservers here (the etcd integration test runs real ones)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from control.apiserver.allocators import AllocationError, ClusterIPAllocator, NodePortAllocator
from control.apiserver.app import create_app
from control.store import Store, open_store

CIDR = "10.96.0.0/27"  # 30 addresses


@pytest.fixture(params=[True, False], ids=["shared", "own"])
async def store(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    s = await open_store(f"sqlite:///{tmp_path / 'state.db'}")
    s.shared = request.param  # type: ignore[misc]  # as etcd's store says of itself
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
async def shared(tmp_path: Path) -> AsyncIterator[Store]:
    s = await open_store(f"sqlite:///{tmp_path / 'shared.db'}")
    s.shared = True  # type: ignore[misc]
    try:
        yield s
    finally:
        await s.close()


async def _views(store: Store, n: int = 2) -> list[ClusterIPAllocator]:
    views = [ClusterIPAllocator(store, CIDR) for _ in range(n)]
    for view in views:
        await view.load()
    return views


async def test_two_views_allocating_at_once_fill_the_range_without_a_duplicate(shared: Store) -> None:
    a, b = await _views(shared)
    got = await asyncio.gather(*(view.allocate_next(f"ns/s{i}") for i, view in
                                 enumerate([a, b] * 15)))
    assert len(set(got)) == 30
    for view in (a, b):
        with pytest.raises(AllocationError, match="range is full"):
            await view.allocate_next("ns/late")


async def test_a_value_released_through_another_view_is_found_again_when_the_range_looks_full(
        shared: Store) -> None:
    a, b = await _views(shared)
    taken = [await a.allocate_next(f"ns/s{i}") for i in range(30)]
    await b.release(taken[7], "ns/s7")  # b's view never saw it: the store's key decides
    assert await a.allocate_next("ns/new") == taken[7]


async def test_a_release_through_a_stale_view_spares_the_value_someone_else_took_since(
        shared: Store) -> None:
    a, b = await _views(shared)
    ip = await a.allocate_next("ns/old")
    await b.release(ip, "ns/old")  # ns/old deleted through the other apiserver
    assert await b.allocate_specific(ip, "ns/new") is True
    await a.release(ip, "ns/old")  # a still thinks ns/old holds it
    kv = await shared.get(f"/registry/ipaddresses/{ip}")
    assert kv is not None and orjson.loads(kv.value)["owner"] == "ns/new"
    with pytest.raises(AllocationError, match="already allocated"):
        await a.allocate_specific(ip, "ns/third")
    assert a.owner(ip) == "ns/new"  # and a learnt who holds it


async def test_a_specific_value_held_by_its_owner_is_not_taken_again(store: Store) -> None:
    (a,) = await _views(store, 1)
    assert await a.allocate_specific("10.96.0.5", "ns/web") is True
    assert await a.allocate_specific("10.96.0.5", "ns/web") is False  # nothing to roll back
    with pytest.raises(AllocationError, match="already allocated"):
        await a.allocate_specific("10.96.0.5", "ns/other")


async def test_repair_on_a_shared_store_keeps_young_reservations_without_a_service(shared: Store) -> None:
    (a,) = await _views(shared, 1)
    young = await a.allocate_next("ns/being-created")  # another apiserver stores it right now
    await shared.create("/registry/ipaddresses/10.96.0.9", b'{"owner": "ns/leaked"}')  # no time: old
    await shared.create("/registry/ipaddresses/10.96.0.10", orjson.dumps(
        {"owner": "ns/leaked-long-ago", "reservedAt": time.time() - 3600}))
    reserved, released = await a.repair({"10.96.0.3": "ns/stored"}, min_age=300)
    assert (reserved, released) == (1, 2)
    held = {kv.key.rsplit("/", 1)[1] for kv in (await shared.list("/registry/ipaddresses/")).items}
    assert held == {young, "10.96.0.3"}


async def test_node_ports_follow_the_same_rules(shared: Store) -> None:
    a, b = NodePortAllocator(shared, (30000, 30019)), NodePortAllocator(shared, (30000, 30019))
    await a.load()
    await b.load()
    got = await asyncio.gather(*(v.allocate_next(f"ns/s{i}") for i, v in enumerate([a, b] * 10)))
    assert sorted(map(int, got)) == list(range(30000, 30020))


async def test_a_restarted_apiserver_keeps_the_kubernetes_services_address_reserved(tmp_path: Path) -> None:
    # Bootstrap creates the `kubernetes` Service again on every start; its AlreadyExists must
    # not release the address the stored Service holds.
    for _start in range(2):
        store = await open_store(f"sqlite:///{tmp_path / 'state.db'}")
        try:
            async with TestClient(TestServer(create_app(store))) as api:
                svc = await (await api.get("/api/v1/namespaces/default/services/kubernetes")).json()
                assert svc["spec"]["clusterIP"] == "10.96.0.1"
            kv = await store.get("/registry/ipaddresses/10.96.0.1")
            assert kv is not None and orjson.loads(kv.value)["owner"] == "default/kubernetes"
        finally:
            await store.close()
