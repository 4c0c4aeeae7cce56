"""The SQLite store passes the conformance suite; its URLs fail clearly; what only SQLite
has (the watch backlog, background compaction) works."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from control.store import Store, StoreClosedError, open_store
from control.store.sqlite import SQLiteStore
from tests.store_conformance import *  # noqa: F403
from tests.store_conformance import TIMEOUT, StoreFactory, read_until


@pytest.fixture
def store_factory(tmp_path: Path) -> StoreFactory:
    async def open_named(name: str) -> Store:
        # No background compaction: the suite compacts explicitly.
        return await open_store(f"sqlite://{tmp_path / name}.db?compact_interval=0")

    return open_named


@pytest.mark.parametrize(("url", "message"), [
    ("postgres://db/x", "unknown scheme 'postgres'; use sqlite:///PATH or etcd://HOST:PORT"),
    ("/var/lib/netplane/state.db", "unknown scheme ''; use sqlite:///PATH"),
    ("https://127.0.0.1:2379", "etcd over TLS is not supported; use etcd://HOST:PORT"),
    ("http://127.0.0.1:2379", "for etcd write etcd://HOST:PORT"),
    ("sqlite://", "names no file; write sqlite:///path/to/state.db"),
    ("sqlite://{tmp}/x.db?durability=sometimes", "durability must be 'normal' or 'full'"),
    ("sqlite://{tmp}/x.db?compact_interval=soon", "compact_interval must be seconds"),
    ("sqlite://{tmp}/x.db?colour=blue&durability=full", r"unknown options \['colour'\]"),
])
async def test_a_bad_store_url_is_a_value_error_that_says_what_to_write(
        tmp_path: Path, url: str, message: str) -> None:
    url = url.format(tmp=tmp_path)
    with pytest.raises(ValueError, match=message) as err:
        await open_store(url)
    assert repr(url) in str(err.value)  # the message names the URL it refuses
    assert _files(tmp_path) == []  # and nothing was created


def _files(path: Path) -> list[Path]:
    return list(path.iterdir())


async def test_sqlite_urls_name_absolute_and_relative_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rel").mkdir()
    for url, path in ((f"sqlite://{tmp_path}/abs.db?durability=full&compact_interval=0", tmp_path / "abs.db"),
                      ("sqlite://rel/state.db", tmp_path / "rel" / "state.db")):
        store = await open_store(url)
        try:
            await store.create("/x", b"v")
        finally:
            await store.close()
        assert path.exists(), url


async def test_a_watcher_that_falls_behind_its_backlog_ends_and_the_others_go_on(tmp_path: Path) -> None:
    store = await SQLiteStore.open(str(tmp_path / "backlog.db"), compact_interval=0, backlog=10)
    try:
        start = await store.current_revision()
        slow = store.watch("/b/", start)
        fast = store.watch("/b/", start)
        first = await store.create("/b/0", b"v")
        await read_until(slow, first)  # both are live now
        got = await read_until(fast, first)
        for i in range(1, 40):  # one at a time, read by `fast` as they come
            got += await read_until(fast, await store.create(f"/b/{i}", b"v"))
        assert [e.kv.key for e in got] == [f"/b/{i}" for i in range(40)]
        with pytest.raises(StoreClosedError, match="fell more than 10 events behind"):
            await asyncio.wait_for(anext(aiter(slow)), TIMEOUT)
        await fast.aclose()  # type: ignore[attr-defined]
    finally:
        await store.close()


async def test_background_compaction_keeps_a_window_of_history(tmp_path: Path) -> None:
    store = await SQLiteStore.open(str(tmp_path / "bg.db"), compact_interval=0.05)
    try:
        for i in range(20):
            rev = await store.create(f"/g/{i}", str(i).encode())

        async def compacted() -> int:
            # The first interval only notes the revision that the next one compacts to.
            while (floor := await store.compacted_revision()) == 0:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            return floor

        assert 0 < await asyncio.wait_for(compacted(), TIMEOUT) <= rev
        assert [kv.value for kv in (await store.list("/g/")).items] == sorted(
            str(i).encode() for i in range(20))
    finally:
        await store.close()
