"""Persistent, revisioned key-value stores behind the `Store` protocol."""

from __future__ import annotations

from control.store.protocol import (
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
    StoreError,
)

__all__ = [
    "CompactedError",
    "ConflictError",
    "Event",
    "EventType",
    "FutureRevisionError",
    "KeyExistsError",
    "KeyNotFoundError",
    "KeyValue",
    "ListResult",
    "Store",
    "StoreClosedError",
    "StoreError",
    "open_store",
]


async def open_store(url: str, *, connect_timeout: float = 30.0) -> Store:
    """Opens the store a URL names (control/store/urls.py has the forms): SQLite in a file,
    or etcd (given up on when no member answers within `connect_timeout`). ValueError (with
    what to write instead) for a URL that names neither."""
    from control.store.urls import SQLiteURL, parse_store_url

    spec = parse_store_url(url)
    if isinstance(spec, SQLiteURL):
        from control.store.sqlite import SQLiteStore

        return await SQLiteStore.open(spec.path, durability=spec.durability,  # type: ignore[arg-type]
                                      compact_interval=spec.compact_interval)
    from control.store.etcd import EtcdStore

    return await EtcdStore.open(list(spec.endpoints), prefix=spec.prefix,
                                compact_interval=spec.compact_interval, connect_timeout=connect_timeout)
