"""The SQLite store passes the conformance suite; its URLs fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from control.store import Store, open_store
from tests.store_conformance import *  # noqa: F403
from tests.store_conformance import StoreFactory


@pytest.fixture
def store_factory(tmp_path: Path) -> StoreFactory:
    async def open_named(name: str) -> Store:
        # No background compaction: the suite compacts explicitly.
        return await open_store(f"sqlite:///{tmp_path / name}.db?compact_interval=0")

    return open_named


@pytest.mark.parametrize(("url", "message"), [
    ("postgres://x", "unknown scheme 'postgres'"),
    ("etcd://127.0.0.1:2379", "etcd store is not built yet"),
    ("sqlite:///tmp/x.db?durability=sometimes", "durability must be"),
    ("sqlite:///tmp/x.db?colour=blue", "unknown options"),
    ("sqlite://", "names no file"),
])
async def test_bad_store_urls_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        await open_store(url)
