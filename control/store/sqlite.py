"""The embedded default store: a kine-like log in one SQLite file (WAL), with group commit,
in-process watch fan-out and periodic compaction that keeps a retained window.

Threads: one writer thread owns the only write connection; reads run on a small pool,
each thread with its own read-only connection. The event loop never touches SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from control.store import sqlite_log as log_table
from control.store.fanout import Fanout, watch
from control.store.keyrange import KeyRange
from control.store.protocol import (
    CompactedError,
    Event,
    FutureRevisionError,
    KeyValue,
    ListResult,
    StoreClosedError,
    StoreError,
)
from control.store.sqlite_log import Durability

log = logging.getLogger(__name__)

T = TypeVar("T")

# A batch larger than this waits for the next commit: it bounds how long one transaction
# holds the write lock (and so the latency of the writes queued behind it).
MAX_BATCH = 512
COMPACT_CHUNK_IDS = 5_000


@dataclass
class _Op:
    kind: str  # "create" | "update" | "delete"
    key: str
    value: bytes
    expected: int
    future: asyncio.Future[Event]


class SQLiteStore:
    """`Store` on SQLite. Open with `await SQLiteStore.open(path)`."""

    shared = False  # one process owns the file: its in-process fan-out sees every write

    def __init__(self, path: str, durability: Durability, readers: int,
                 compact_interval: float, backlog: int) -> None:
        self.path = path
        self._durability = durability
        self._writer_pool = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._reader_pool = ThreadPoolExecutor(readers, thread_name_prefix="sqlite-reader")
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._wconn: sqlite3.Connection | None = None
        self._queue: list[_Op] = []
        self._wake = asyncio.Event()
        self._fanout = Fanout(backlog)
        self._revision = 0
        self._compacted = 0
        self._closed = False
        self._compact_interval = compact_interval
        self._tasks: list[asyncio.Task[None]] = []
        self._write_lock = asyncio.Lock()  # compaction and batches never interleave

    @classmethod
    async def open(cls, path: str, *, durability: Durability = "normal", readers: int = 2,
                   compact_interval: float = 300.0, backlog: int = 10_000) -> SQLiteStore:
        """Opens (creating if needed) the database at `path`.

        `compact_interval` > 0 compacts every interval to the revision current one interval
        earlier, as kube-apiserver does with etcd: history is kept for at least that long.
        """
        store = cls(path, durability, readers, compact_interval, backlog)
        try:
            await store._in_writer(store._open_writer)
        except BaseException:
            store._writer_pool.shutdown(wait=False)
            store._reader_pool.shutdown(wait=False)
            raise
        store._tasks.append(asyncio.create_task(store._write_loop(), name="sqlite-writer"))
        if compact_interval > 0:
            store._tasks.append(asyncio.create_task(store._compact_loop(), name="sqlite-compactor"))
        return store

    # -- threads ------------------------------------------------------------------------

    def _open_writer(self) -> None:
        self._wconn = log_table.connect(self.path, writer=True, durability=self._durability)
        state = log_table.load_state(self._wconn)
        self._revision = state.revision
        self._compacted = state.compacted

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = log_table.connect(self.path, writer=False)
            self._local.conn = conn
            with self._conns_lock:
                self._reader_conns.append(conn)
        return conn

    async def _in_writer(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer_pool, fn, *args)

    async def _in_reader(self, fn: Callable[..., T], *args: Any) -> T:
        self._check_open()
        return await asyncio.get_running_loop().run_in_executor(
            self._reader_pool, lambda: fn(self._reader(), *args))

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError("store closed")

    # -- writes: group commit -----------------------------------------------------------

    async def _submit(self, kind: str, key: str, value: bytes, expected: int) -> Event:
        self._check_open()
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._queue.append(_Op(kind, key, value, expected, future))
        self._wake.set()
        return await future

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                async with self._write_lock:
                    # Taken under the lock: once close() holds it with an empty queue, no
                    # write is in hand anywhere, so none is left without an answer.
                    batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                    if not batch:
                        continue
                    try:
                        results = await self._in_writer(self._commit, batch, self._revision)
                    except BaseException as exc:
                        for op in batch:
                            if not op.future.done():
                                op.future.set_exception(
                                    exc if isinstance(exc, Exception) else StoreClosedError(str(exc)))
                        if not isinstance(exc, Exception):
                            raise
                        log.exception("sqlite commit of %d writes failed", len(batch))
                        continue
                    events = [r for r in results if isinstance(r, Event)]
                    if events:
                        self._revision = events[-1].revision
                    for op, result in zip(batch, results, strict=True):
                        if op.future.done():
                            continue  # the caller was cancelled; the write still happened
                        if isinstance(result, Event):
                            op.future.set_result(result)
                        else:
                            op.future.set_exception(result)
                    self._fanout.publish(events)

    def _commit(self, batch: list[_Op], revision: int) -> list[Event | Exception]:
        """One transaction for the whole batch; a failed precondition fails only its write
        (checks happen before the insert, so a failed write leaves nothing behind)."""
        conn = self._wconn
        assert conn is not None
        results: list[Event | Exception] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for op in batch:
                try:
                    if op.kind == "create":
                        event = log_table.create(conn, op.key, op.value, revision + 1)
                    elif op.kind == "update":
                        event = log_table.update(conn, op.key, op.value, op.expected, revision + 1)
                    else:
                        event = log_table.delete(conn, op.key, op.expected, revision + 1)
                except StoreError as exc:  # a failed precondition (exists, missing, conflict)
                    results.append(exc)
                    continue
                revision += 1
                results.append(event)
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        return results

    async def create(self, key: str, value: bytes) -> int:
        return (await self._submit("create", key, value, 0)).revision

    async def update(self, key: str, value: bytes, expected_revision: int) -> int:
        return (await self._submit("update", key, value, expected_revision)).revision

    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        return (await self._submit("delete", key, b"", expected_revision)).kv

    # -- reads --------------------------------------------------------------------------

    def _at(self, revision: int) -> int:
        """The revision a read at `revision` (0: now) runs at, or the error it gets."""
        if revision == 0:
            return self._revision
        if revision < self._compacted:
            raise CompactedError(revision, self._compacted)
        if revision > self._revision:
            raise FutureRevisionError(revision, self._revision)
        return revision

    def _still_exact(self, at: int) -> None:
        """Raises if a compaction above `at` started while a read at `at` ran: rows that read
        needed may have gone under it (the floor is raised before any row goes)."""
        if at < self._compacted:
            raise CompactedError(at, self._compacted)

    async def get(self, key: str, revision: int = 0) -> KeyValue | None:
        at = self._at(revision)
        kv = await self._in_reader(log_table.get_at, key, at)
        self._still_exact(at)
        return kv

    async def list(self, prefix: str, revision: int = 0, limit: int = 0,
                   start_after: str = "") -> ListResult:
        at = self._at(revision)
        items, more, remaining = await self._in_reader(
            log_table.list_at, KeyRange.of(prefix), at, limit, start_after)
        self._still_exact(at)
        return ListResult(items, at, more, remaining)

    async def count(self, prefix: str) -> int:
        return await self._in_reader(log_table.count_at, KeyRange.of(prefix), self._revision)

    async def current_revision(self) -> int:
        return self._revision

    async def compacted_revision(self) -> int:
        return self._compacted

    # -- watch --------------------------------------------------------------------------

    def watch(self, prefix: str, after_revision: int) -> AsyncIterator[list[Event]]:
        return watch(self._fanout, prefix, after_revision, self._replay, self._check_watch)

    def _check_watch(self, after_revision: int) -> None:
        self._check_open()
        # Not `after_revision + 1 < compacted`: the event at the compacted revision itself is
        # kept, but the version it replaced is not, so it would come without its `prev` (an
        # update that looks like a create). The contract: older than the floor is too old.
        if after_revision < self._compacted:
            raise CompactedError(after_revision, self._compacted)

    async def _replay(self, rng: KeyRange, after: int, limit: int) -> list[Event]:
        if after < self._compacted:
            raise CompactedError(after, self._compacted)
        events = await self._in_reader(log_table.replay, rng, after, limit)
        # Compaction may have run while the replay read; its result is then incomplete.
        if after < self._compacted:
            raise CompactedError(after, self._compacted)
        return events

    # -- compaction ---------------------------------------------------------------------

    async def compact(self, revision: int) -> None:
        self._check_open()
        revision = min(revision, self._revision)
        if revision <= self._compacted:
            return
        async with self._write_lock:
            self._check_open()
            if revision <= self._compacted:  # a concurrent compaction went as far already
                return
            low = self._compacted
            # Raise the floor first so no new read or watch starts below it while rows go.
            self._compacted = revision
            await self._in_writer(self._mark_compacted, revision)
        # Chunks release the write lock in between so writes are not stalled for long.
        while low < revision:
            high = min(low + COMPACT_CHUNK_IDS, revision)
            async with self._write_lock:
                # Stopping half way is safe: every chunk leaves reads at the floor exact.
                self._check_open()
                await self._in_writer(self._compact_chunk, low, high, revision)
            low = high

    def _mark_compacted(self, revision: int) -> None:
        assert self._wconn is not None
        self._wconn.execute("BEGIN IMMEDIATE")
        log_table.set_compacted(self._wconn, revision)
        self._wconn.execute("COMMIT")

    def _compact_chunk(self, low: int, high: int, revision: int) -> None:
        assert self._wconn is not None
        self._wconn.execute("BEGIN IMMEDIATE")
        log_table.compact_chunk(self._wconn, low, high, revision)
        self._wconn.execute("COMMIT")

    async def _compact_loop(self) -> None:
        target = self._revision
        while True:
            await asyncio.sleep(self._compact_interval)
            try:
                await self.compact(target)
            except StoreClosedError:
                return
            except Exception:
                log.exception("compaction to revision %d failed; retrying next interval", target)
            target = self._revision

    # -- lifecycle ----------------------------------------------------------------------

    async def close(self) -> None:
        if self._closed:
            return
        # From here on no read, write or watch starts; the writes already queued are
        # committed (and answered) before the store closes.
        self._closed = True
        writer = self._tasks[0]
        while True:
            async with self._write_lock:
                if not self._queue or writer.done():
                    break
            self._wake.set()
            await asyncio.sleep(0.001)  # the writer loop takes the lock and the next batch
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for op in self._queue:  # only if the writer loop died: they must not wait forever
            if not op.future.done():
                op.future.set_exception(StoreClosedError("store closed before this write was committed"))
        self._queue.clear()
        self._fanout.close()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer_pool, self._close_writer)
        await loop.run_in_executor(None, self._reader_pool.shutdown, True)
        self._writer_pool.shutdown(wait=True)
        with self._conns_lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()

    def _close_writer(self) -> None:
        if self._wconn is not None:
            self._wconn.close()
            self._wconn = None
