"""Copying one store into another: every live key with its value, page after page; an
occupied target only with overwrite; a source written during the copy is caught."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from control.store import Store, open_store
from control.store.migrate import PAGE, SourceChangedError, TargetNotEmptyError, migrate


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Store, Store]]:
    source = await open_store(f"sqlite://{tmp_path}/a.db?compact_interval=0")
    target = await open_store(f"sqlite://{tmp_path}/b.db?compact_interval=0")
    try:
        yield source, target
    finally:
        await source.close()
        await target.close()


async def _fill(store: Store, n: int) -> dict[str, bytes]:
    for i in range(n):
        await store.create(f"/registry/things/ns/{i:05d}", f"value {i}".encode())
    await store.create("/registry/gone", b"x")
    await store.delete("/registry/gone")  # history is not copied, only what is live
    await store.update("/registry/things/ns/00000", b"changed", 0)
    return {kv.key: kv.value for kv in (await store.list("")).items}


async def test_every_live_key_is_copied_with_its_value_across_pages(pair: tuple[Store, Store]) -> None:
    source, target = pair
    live = await _fill(source, PAGE * 2 + 7)
    seen: list[int] = []
    result = await migrate(source, target, progress=seen.append)
    assert {kv.key: kv.value for kv in (await target.list("")).items} == live
    assert (result.copied, result.replaced, result.revision) == (
        len(live), 0, await source.current_revision())
    assert seen == [PAGE, PAGE * 2, len(live)]


async def test_an_occupied_target_is_refused_unless_overwrite_replaces_what_it_holds(
        pair: tuple[Store, Store]) -> None:
    source, target = pair
    live = await _fill(source, 10)
    await target.create("/registry/things/ns/00003", b"stale")
    await target.create("/registry/elsewhere", b"kept")
    with pytest.raises(TargetNotEmptyError, match="holds 2 keys"):
        await migrate(source, target)
    assert await target.count("") == 2  # nothing copied
    result = await migrate(source, target, overwrite=True)
    assert (result.copied, result.replaced) == (len(live), 1)
    assert {kv.key: kv.value for kv in (await target.list("")).items} == {
        **live, "/registry/elsewhere": b"kept"}


async def test_a_write_to_the_source_during_the_copy_is_caught(pair: tuple[Store, Store]) -> None:
    source, target = pair
    await _fill(source, PAGE + 1)
    writes: list[asyncio.Future[int]] = []

    def write_during_copy(copied: int) -> None:
        writes.append(asyncio.ensure_future(source.create(f"/registry/late-{copied}", b"x")))

    with pytest.raises(SourceChangedError):
        await migrate(source, target, progress=write_during_copy)
    await asyncio.gather(*writes)
