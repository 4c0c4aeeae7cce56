"""Persistent, revisioned key-value stores behind the `Store` protocol."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

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


async def open_store(url: str) -> Store:
    """Opens the store a URL names: `sqlite:///ABSOLUTE/PATH[?durability=full&compact_interval=S]`
    or `sqlite://RELATIVE/PATH`. ValueError (with what to write instead) for anything else."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        from control.store.sqlite import SQLiteStore

        path = parts.netloc + parts.path if parts.netloc else parts.path
        if not path:
            raise ValueError(f"store URL {url!r} names no file; write sqlite:///path/to/state.db")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        durability = query.pop("durability", "normal")
        if durability not in ("normal", "full"):
            raise ValueError(f"store URL {url!r}: durability must be 'normal' or 'full'")
        try:
            interval = float(query.pop("compact_interval", "300"))
        except ValueError:
            raise ValueError(f"store URL {url!r}: compact_interval must be seconds") from None
        if query:
            raise ValueError(f"store URL {url!r}: unknown options {sorted(query)}")
        return await SQLiteStore.open(path, durability=durability,  # type: ignore[arg-type]
                                      compact_interval=interval)
    if parts.scheme in ("etcd", "http", "https"):
        raise ValueError(f"store URL {url!r}: the etcd store is not built yet; use sqlite:///PATH")
    raise ValueError(f"store URL {url!r}: unknown scheme {parts.scheme!r}; use sqlite:///PATH")
