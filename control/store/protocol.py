"""The `Store` contract: a revisioned key-value log that the apiserver persists objects in.

One global, monotonically increasing revision (the Kubernetes `resourceVersion`).
Every write gets a new revision; reads can be made at a past revision until it is
compacted away. SQLite (embedded default) and etcd implement it; both must pass
`tests/store_conformance.py`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable


class StoreError(Exception):
    """Base of every error a store raises."""


class KeyExistsError(StoreError):
    """`create` of a key that is live."""

    def __init__(self, key: str) -> None:
        super().__init__(f"key exists: {key}")
        self.key = key


class KeyNotFoundError(StoreError):
    """`update`/`delete` of a key that is not live."""

    def __init__(self, key: str) -> None:
        super().__init__(f"key not found: {key}")
        self.key = key


class ConflictError(StoreError):
    """`update`/`delete` whose expected revision is not the key's current mod revision."""

    def __init__(self, key: str, expected: int, actual: int) -> None:
        super().__init__(f"revision conflict on {key}: expected {expected}, current {actual}")
        self.key = key
        self.expected = expected
        self.actual = actual


class CompactedError(StoreError):
    """A read or watch at a revision older than the oldest one the store still holds."""

    def __init__(self, requested: int, compacted: int) -> None:
        super().__init__(f"revision {requested} is compacted (oldest kept: {compacted})")
        self.requested = requested
        self.compacted = compacted


class FutureRevisionError(StoreError):
    """A read at a revision the store has not reached yet."""

    def __init__(self, requested: int, current: int) -> None:
        super().__init__(f"revision {requested} is newer than the current revision {current}")
        self.requested = requested
        self.current = current


class StoreClosedError(StoreError):
    """An operation on, or a watch of, a store that has been closed."""


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One version of one key.

    `mod_revision` is the revision of the write that produced this version (the
    object's resourceVersion); `create_revision` the revision that created the key.
    """

    key: str
    value: bytes
    create_revision: int
    mod_revision: int


class EventType(StrEnum):
    PUT = "PUT"  # a create (prev is None) or an update (prev is the old version)
    DELETE = "DELETE"


@dataclass(frozen=True, slots=True)
class Event:
    """One write, as a watcher sees it.

    For PUT, `kv` is the new version and `prev` the one it replaced (None on create).
    For DELETE, `kv` is the deleted version with `mod_revision` set to the revision of
    the delete itself, and `prev` is the same deleted version as it was stored (its
    original mod_revision).
    """

    type: EventType
    kv: KeyValue
    prev: KeyValue | None

    @property
    def revision(self) -> int:
        return self.kv.mod_revision

    @property
    def is_create(self) -> bool:
        return self.type is EventType.PUT and self.prev is None


@dataclass(frozen=True, slots=True)
class ListResult:
    """A page of live keys, in key order, as of `revision`.

    `more` is True when keys after the last one returned also match (the caller
    pages on with `start_after=items[-1].key` at the same revision); `remaining`
    counts them.
    """

    items: list[KeyValue]
    revision: int
    more: bool
    remaining: int


@runtime_checkable
class Store(Protocol):
    """A revisioned key-value store with watch. All methods are coroutine-safe.

    Keys are '/'-separated strings (`/registry/services/default/web`); a prefix
    selects a subtree and must end with '/' unless it is a whole key. Values are
    opaque bytes (the apiserver stores JSON).

    `shared` is True when other processes may write the same keys (several apiservers on
    one etcd): a process then cannot take what it did not write itself as absent.
    """

    shared: bool

    async def create(self, key: str, value: bytes) -> int:
        """Creates `key`; returns its revision. KeyExistsError if it is live."""
        ...

    async def get(self, key: str, revision: int = 0) -> KeyValue | None:
        """The live version of `key` at `revision` (0: now), or None."""
        ...

    async def list(
        self, prefix: str, revision: int = 0, limit: int = 0, start_after: str = ""
    ) -> ListResult:
        """Live keys under `prefix` at `revision` (0: now), after `start_after`, at most
        `limit` (0: all). CompactedError / FutureRevisionError for bad revisions."""
        ...

    async def count(self, prefix: str) -> int:
        """How many live keys are under `prefix` now."""
        ...

    async def update(self, key: str, value: bytes, expected_revision: int) -> int:
        """Replaces `key` if its mod revision is `expected_revision` (0: any); returns the
        new revision. KeyNotFoundError, ConflictError."""
        ...

    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        """Deletes `key` if its mod revision is `expected_revision` (0: any); returns the
        deleted version with mod_revision set to the delete's revision.
        KeyNotFoundError, ConflictError."""
        ...

    def watch(self, prefix: str, after_revision: int) -> AsyncIterator[list[Event]]:
        """Every write under `prefix` with revision > `after_revision`, in revision order,
        without gaps, in batches. Past revisions are replayed from the log first.
        Raises CompactedError (on first iteration) if `after_revision` is older than
        the compacted revision. Ends with StoreClosedError if the store closes or the
        watcher falls too far behind (the caller re-lists, as a Kubernetes client
        does on 410). Close the iterator (`aclose()`) to stop watching."""
        ...

    async def current_revision(self) -> int:
        """The revision of the last write (0 for an empty store)."""
        ...

    async def compacted_revision(self) -> int:
        """The oldest revision still readable; reads and watches before it fail."""
        ...

    async def compact(self, revision: int) -> None:
        """Drops history older than `revision` (live versions are always kept)."""
        ...

    async def close(self) -> None:
        """Flushes and releases everything; ends all watches."""
        ...
