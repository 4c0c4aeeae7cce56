"""The distributed store: the `Store` contract on etcd v3 (3.4 or later), over gRPC.

Revisions are etcd's own (an object's resourceVersion is its etcd mod_revision, as in
Kubernetes), except that etcd's empty keyspace (its revision 1) reads as revision 0.
Every write is one etcd transaction whose compare is the precondition: create is
`create_revision == 0`, update and delete `mod_revision == expected` (or the key exists).
Nothing is cached: every read and watch goes to etcd, so several apiservers on one etcd
see each other's writes. Why gRPC and not the JSON gateway: see etcd_conn.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from aetcd import rpc

from control.store.etcd_codec import KeySpace, store_revision
from control.store.etcd_conn import EtcdConnection
from control.store.etcd_watch import OpenStream, WatchStreams, open_stream, watch
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
    StoreClosedError,
    StoreError,
)

log = logging.getLogger(__name__)

_CREATE, _MOD = rpc.Compare.CREATE, rpc.Compare.MOD
_EQUAL, _GREATER = rpc.Compare.EQUAL, rpc.Compare.GREATER


class AmbiguousWriteError(StoreError):
    """A member failed while it had the write, and whether etcd applied it cannot be told."""


class EtcdStore:
    """`Store` on etcd. Open with `await EtcdStore.open([(host, port), ...])`."""

    # Other processes (apiservers) write to the same keys: callers may not assume that
    # what they did not write themselves is absent (see control/apiserver/allocators.py).
    shared = True

    def __init__(self, conn: EtcdConnection, space: KeySpace, compact_interval: float) -> None:
        self._conn = conn
        self._space = space
        self._compact_interval = compact_interval
        self._streams = WatchStreams()
        self._closed = False
        self._inflight = 0
        self._idle = asyncio.Event()
        self._seen = 0  # the highest etcd revision any response showed
        self._floor = 0  # a lower bound of etcd's compacted revision (it never goes back)
        self._tasks: list[asyncio.Task[None]] = []
        self._registering: set[asyncio.Task[Any]] = set()  # watches being created in etcd

    @classmethod
    async def open(cls, endpoints: list[tuple[str, int]], *, prefix: str = "",
                   compact_interval: float = 300.0, attempt_timeout: float = 10.0,
                   give_up_after: float = 30.0, connect_timeout: float = 30.0) -> EtcdStore:
        """Connects and makes one read, so that an unreachable etcd fails here, clearly
        (EtcdUnavailableError after `connect_timeout`).

        `compact_interval` > 0 compacts every interval to the revision of one interval
        earlier, as kube-apiserver does (several apiservers doing it is harmless: a
        compaction never moves the floor back). A call gives up when no member answered
        for `give_up_after` (each attempt waits `attempt_timeout` at most)."""
        conn = EtcdConnection(endpoints, attempt_timeout=min(attempt_timeout, connect_timeout),
                              give_up_after=connect_timeout)
        store = cls(conn, KeySpace(prefix.encode()), compact_interval)
        try:
            await store.current_revision()
        except BaseException:
            await conn.close()
            raise
        conn.attempt_timeout, conn.give_up_after = attempt_timeout, give_up_after
        if compact_interval > 0:
            store._tasks.append(asyncio.create_task(store._compact_loop(), name="etcd-compactor"))
        return store

    # -- calls --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _admitted(self) -> Any:
        """Counts a call in flight; close() waits for these, and refuses new ones."""
        if self._closed:
            raise StoreClosedError("store closed")
        self._inflight += 1
        try:
            yield
        finally:
            self._inflight -= 1
            if self._closed and self._inflight == 0:
                self._idle.set()

    async def _kv(self, method: str, request: Any, revision: int = 0) -> tuple[Any, bool]:
        try:
            resp, retried = await self._conn.kv(method, request)
        except grpc.aio.AioRpcError as exc:
            raise await self._error(exc, method, revision) from exc
        self._seen = max(self._seen, resp.header.revision)
        return resp, retried

    async def _error(self, exc: grpc.aio.AioRpcError, method: str, revision: int) -> StoreError:
        details = exc.details() or ""
        if exc.code() == grpc.StatusCode.OUT_OF_RANGE and "compacted" in details:
            return CompactedError(revision, await self._compacted())
        if exc.code() == grpc.StatusCode.OUT_OF_RANGE and "future revision" in details:
            return FutureRevisionError(revision, await self._revision())
        if "request is too large" in details:
            return StoreError(f"etcd refused a write of more than its --max-request-bytes: {details}")
        return StoreError(f"etcd {method} failed: {exc.code().name}: {details}")

    async def _revision(self) -> int:
        resp, _ = await self._kv("Range", rpc.RangeRequest(key=self._space.key("/"), count_only=True))
        return store_revision(resp.header.revision)

    # -- writes -------------------------------------------------------------------------

    async def create(self, key: str, value: bytes) -> int:
        k = self._space.key(key)
        with self._admitted():
            await self._registered()
            since = self._seen
            resp, retried = await self._kv("Txn", rpc.TxnRequest(
                compare=[rpc.Compare(key=k, target=_CREATE, result=_EQUAL, create_revision=0)],
                success=[rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=value))],
                failure=[_range_op(k)]))
            if resp.succeeded:
                return int(resp.header.revision)
            if retried:
                # An earlier attempt may have created it: then the key's history since the
                # write was sent holds a create with this value.
                live = _failure_kv(resp)
                if live is not None and live.create_revision > since:
                    events = await self._history(key, since, lambda ev: ev.revision >= live.create_revision)
                    for ev in events:
                        if ev.is_create and ev.kv.value == value:
                            return ev.revision
            raise KeyExistsError(key)

    async def update(self, key: str, value: bytes, expected_revision: int) -> int:
        k = self._space.key(key)
        with self._admitted():
            await self._registered()
            resp, retried = await self._kv("Txn", rpc.TxnRequest(
                compare=[_precondition(k, expected_revision)],
                success=[rpc.RequestOp(request_put=rpc.PutRequest(key=k, value=value))],
                failure=[_range_op(k)]))
            if resp.succeeded:
                return int(resp.header.revision)
            if retried:
                ev = await self._own_write(key, expected_revision)
                if ev.type is EventType.PUT and ev.kv.value == value:
                    return ev.revision
            live = _failure_kv(resp)
            if live is None:
                raise KeyNotFoundError(key)
            raise ConflictError(key, expected_revision, live.mod_revision)

    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        k = self._space.key(key)
        with self._admitted():
            await self._registered()
            resp, retried = await self._kv("Txn", rpc.TxnRequest(
                compare=[_precondition(k, expected_revision)],
                success=[rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=k, prev_kv=True))],
                failure=[_range_op(k)]))
            if resp.succeeded:
                prev = resp.responses[0].response_delete_range.prev_kvs[0]
                return KeyValue(key, prev.value, prev.create_revision, int(resp.header.revision))
            if retried:
                ev = await self._own_write(key, expected_revision)
                if ev.type is EventType.DELETE:
                    return ev.kv
            live = _failure_kv(resp)
            if live is None:
                raise KeyNotFoundError(key)
            raise ConflictError(key, expected_revision, live.mod_revision)

    async def _registered(self) -> None:
        """Waits until the watches opened so far are created in etcd (a few ms; bounded, so
        a member that never answers holds no write back: that watch fails over anyway)."""
        if self._registering:
            await asyncio.wait(list(self._registering), timeout=self._conn.attempt_timeout)

    async def _own_write(self, key: str, expected: int) -> Event:
        """The first write to `key` after its version `expected`: the transaction compared
        the key's mod_revision with `expected`, so if an earlier attempt was applied, it is
        that write. Without an expected revision nothing tells it from someone else's."""
        if not expected:
            raise AmbiguousWriteError(
                f"an etcd member failed during an unconditional write of {key}; whether it "
                "was applied is unknown: read the key and retry")
        events = await self._history(key, expected, lambda _ev: True)
        return events[0]

    async def _history(self, key: str, after: int, done: Callable[[Event], bool]) -> list[Event]:
        """The events of `key` after `after`, up to the first that `done` accepts."""
        events: list[Event] = []
        it = watch(self._conn, self._space, self._space.range(key), after, self._streams,
                   self._compacted)

        async def read() -> None:
            async for batch in it:
                for ev in batch:
                    events.append(ev)
                    if done(ev):
                        return

        try:
            await asyncio.wait_for(read(), self._conn.give_up_after)
        except (CompactedError, TimeoutError) as exc:
            raise AmbiguousWriteError(
                f"an etcd member failed during a write of {key}, and its history no longer tells "
                "whether the write was applied: read the key and retry") from exc
        finally:
            await it.aclose()  # type: ignore[attr-defined]
        return events

    # -- reads --------------------------------------------------------------------------

    async def get(self, key: str, revision: int = 0) -> KeyValue | None:
        with self._admitted():
            resp, _ = await self._kv("Range", rpc.RangeRequest(key=self._space.key(key), revision=revision),
                                     revision)
            _check_not_future(revision, resp)
            return self._space.kv(resp.kvs[0]) if resp.kvs else None

    async def list(self, prefix: str, revision: int = 0, limit: int = 0,
                   start_after: str = "") -> ListResult:
        low, high = self._space.range(prefix, start_after)
        with self._admitted():
            resp, _ = await self._kv("Range", rpc.RangeRequest(
                key=low, range_end=high, revision=revision, limit=max(limit, 0)), revision)
        _check_not_future(revision, resp)
        items = [self._space.kv(kv) for kv in resp.kvs]
        at = revision or store_revision(resp.header.revision)
        # etcd's count is every key in the range, however many the limit let through.
        remaining = resp.count - len(items) if resp.more else 0
        return ListResult(items, at, bool(resp.more), remaining)

    async def count(self, prefix: str) -> int:
        low, high = self._space.range(prefix)
        with self._admitted():
            resp, _ = await self._kv("Range", rpc.RangeRequest(key=low, range_end=high, count_only=True))
        return int(resp.count)

    async def current_revision(self) -> int:
        with self._admitted():
            return await self._revision()

    async def compacted_revision(self) -> int:
        with self._admitted():
            return await self._compacted()

    async def _compacted(self) -> int:
        """etcd tells its compacted revision to no client (3.4), only refuses reads below
        it: reading at the known floor settles the usual case in one call, a binary search
        over the readable revisions the rest (another process compacted)."""
        floor = self._floor  # the awaits below may see others raise it; search from this one
        if await self._readable(max(floor, 1)):
            return max(floor, self._floor)
        await self._revision()  # the current revision is always readable
        low, high = max(floor, 1) + 1, max(self._seen, floor + 1)
        while low < high:
            mid = (low + high) // 2
            if await self._readable(mid):
                high = mid
            else:
                low = mid + 1
        self._floor = max(self._floor, low)
        return self._floor

    async def _readable(self, revision: int) -> bool:
        try:
            resp, _ = await self._conn.kv("Range", rpc.RangeRequest(
                key=self._space.key("/"), revision=revision, count_only=True))
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.OUT_OF_RANGE and "compacted" in (exc.details() or ""):
                return False
            raise StoreError(f"etcd Range failed: {exc.code().name}: {exc.details()}") from exc
        self._seen = max(self._seen, resp.header.revision)
        return True

    # -- watch --------------------------------------------------------------------------

    def watch(self, prefix: str, after_revision: int) -> AsyncIterator[list[Event]]:
        # The watch is created in etcd now, not when first read, and this store's next writes
        # wait for that (see _registered): a caller that writes after watch() sees its write
        # live. Registered after a write, the watcher would start in etcd's catch-up path,
        # which a compaction can overtake (the watch then ends with CompactedError).
        first = None
        if not self._closed and after_revision >= self._floor:
            first = open_stream(self._conn, self._streams, self._space.range(prefix), after_revision)
            self._registering.add(first.created)
            first.created.add_done_callback(self._registering.discard)
        return _Watch(self._watch(prefix, after_revision, first), first, self._streams)

    async def _watch(self, prefix: str, after: int, first: OpenStream | None) -> AsyncIterator[list[Event]]:
        if self._closed:
            raise StoreClosedError("store closed")
        if after < self._floor:  # the contract's rule, where this process knows the floor
            raise CompactedError(after, self._floor)
        key_range = self._space.range(prefix)
        inner = watch(self._conn, self._space, key_range, after, self._streams, self._compacted,
                      first)
        async with contextlib.aclosing(inner) as it:  # type: ignore[type-var]
            async for batch in it:
                yield batch

    # -- compaction ---------------------------------------------------------------------

    async def compact(self, revision: int) -> None:
        with self._admitted():
            target = min(revision, await self._revision())
            if target <= self._floor:
                return
            try:
                await self._conn.kv("Compact", rpc.CompactionRequest(revision=target))
            except grpc.aio.AioRpcError as exc:
                # "compacted": another compaction went as far already.
                if not (exc.code() == grpc.StatusCode.OUT_OF_RANGE and "compacted" in (exc.details() or "")):
                    raise StoreError(f"etcd Compact failed: {exc.code().name}: {exc.details()}") from exc
            self._floor = max(self._floor, target)

    async def _compact_loop(self) -> None:
        target = await self.current_revision()
        while True:
            await asyncio.sleep(self._compact_interval)
            try:
                await self.compact(target)
                target = await self.current_revision()
            except StoreClosedError:
                return
            except Exception:
                log.exception("compaction of etcd to revision %d failed; retrying next interval", target)

    # -- lifecycle ----------------------------------------------------------------------

    async def close(self) -> None:
        if self._closed:
            return
        # From here on no call starts; the ones in flight (each bounded by the connection's
        # retry deadline) are answered before the channels close.
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._inflight:
            await self._idle.wait()
        self._streams.close()
        await self._conn.close()


class _Watch:
    """What `EtcdStore.watch` returns: an async iterator whose `aclose()` also closes the etcd
    stream that watch() opened, when the iterator was never read (an async generator that
    never started runs no `finally`)."""

    def __init__(self, events: AsyncIterator[list[Event]], first: OpenStream | None,
                 streams: WatchStreams) -> None:
        self._events = events
        self._first = first
        self._streams = streams

    def __aiter__(self) -> _Watch:
        return self

    async def __anext__(self) -> list[Event]:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        if self._first is not None:
            self._first.call.cancel()
            self._streams.calls.discard(self._first.call)
            self._first = None
        await self._events.aclose()  # type: ignore[attr-defined]


def _range_op(key: bytes) -> Any:
    return rpc.RequestOp(request_range=rpc.RangeRequest(key=key))


def _precondition(key: bytes, expected: int) -> Any:
    if expected:
        return rpc.Compare(key=key, target=_MOD, result=_EQUAL, mod_revision=expected)
    return rpc.Compare(key=key, target=_CREATE, result=_GREATER, create_revision=0)


def _failure_kv(resp: Any) -> Any:
    """The key as the failed transaction's range saw it (None: absent)."""
    kvs = resp.responses[0].response_range.kvs
    return kvs[0] if kvs else None


def _check_not_future(revision: int, resp: Any) -> None:
    """etcd serves reads at its revision 1 (the empty keyspace), which the contract calls
    0: a read at 1 there is a read of the future."""
    current = store_revision(resp.header.revision)
    if revision > current:
        raise FutureRevisionError(revision, current)
