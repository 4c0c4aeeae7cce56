"""`Store.watch` on etcd: one etcd watch stream per store watch, resumed on another member
from the last delivered revision when its member fails."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from aetcd import rpc

from control.store.etcd_codec import KeySpace, MissingPrevError
from control.store.etcd_conn import RETRYABLE, EtcdConnection, EtcdUnavailableError
from control.store.protocol import CompactedError, Event, StoreClosedError, StoreError

# etcd's empty keyspace is its revision 1, so no event ever has a revision below 2. A
# stream from 1 on a fresh etcd (1 is not above etcd's current revision) would start in
# etcd's catch-up path instead of live.
_FIRST_WRITE = 2


class _StreamEnded(Exception):
    pass


class WatchStreams:
    """The watch streams a store has open, so that closing the store ends every one."""

    def __init__(self) -> None:
        self.calls: set[Any] = set()
        self.closed = False

    def close(self) -> None:
        self.closed = True
        for call in list(self.calls):
            call.cancel()


@dataclass
class OpenStream:
    """A watch stream being opened: `created` sends the create request and reads etcd's
    first answer (its `created` response, or why it refused)."""

    member: int
    call: Any
    created: asyncio.Task[Any]


def open_stream(conn: EtcdConnection, streams: WatchStreams, key_range: tuple[bytes, bytes],
                after: int) -> OpenStream:
    """Opens a stream on the current member and starts creating the watch at once."""
    member = conn.current
    call = conn.watch_stream(member)
    streams.calls.add(call)
    low, high = key_range
    request = rpc.WatchRequest(create_request=rpc.WatchCreateRequest(
        key=low, range_end=high, start_revision=max(after + 1, _FIRST_WRITE), prev_kv=True))

    async def create() -> Any:
        await call.write(request)
        return await call.read()

    created = asyncio.ensure_future(create())
    # A stream closed before it was read fails its creation; that is not news.
    created.add_done_callback(lambda t: t.cancelled() or t.exception())
    return OpenStream(member, call, created)


async def watch(
    conn: EtcdConnection,
    space: KeySpace,
    key_range: tuple[bytes, bytes],
    after: int,
    streams: WatchStreams,
    compacted: Callable[[], Awaitable[int]],
    first: OpenStream | None = None,
) -> AsyncIterator[list[Event]]:
    """Every event in `key_range` with a revision above `after`, in batches as etcd sends
    them (a batch is one revision or more, never part of one).

    etcd refuses a stream from `after + 1` when that is below its compacted revision C;
    the contract refuses `after` < C already, because the event at C has lost the version
    it replaced. Such an event fails the stream here (MissingPrevError: CompactedError)
    instead of being delivered wrong; a watch from C - 1 whose event at C is a create or
    elsewhere is exact, and goes on. (Starting etcd at `after` instead would make it
    refuse exactly the contract's cases, but every watch from the current revision would
    then start behind, in etcd's catch-up path, where a compaction can overtake it.)
    `compacted()` gives the floor for a CompactedError's message."""
    last = after
    loop = asyncio.get_running_loop()
    give_up = loop.time() + conn.give_up_after
    failures = 0
    while True:
        if streams.closed:
            if first is not None:
                first.call.cancel()
                streams.calls.discard(first.call)
            raise StoreClosedError("store closed")
        stream, first = first or open_stream(conn, streams, key_range, last), None
        member, call = stream.member, stream.call
        try:
            resp = await stream.created
            while True:
                if resp is grpc.aio.EOF:
                    raise _StreamEnded  # a member shutting down ends its streams cleanly
                give_up, failures = loop.time() + conn.give_up_after, 0
                if resp.compact_revision:
                    raise CompactedError(last, resp.compact_revision)
                if resp.canceled:
                    raise StoreError(f"etcd ended the watch: {resp.cancel_reason or 'no reason given'}")
                try:
                    events = space.events(resp.events, last)
                except MissingPrevError as exc:
                    raise CompactedError(exc.revision - 1, await compacted()) from None
                if events:
                    last = events[-1].revision
                    yield events
                resp = await call.read()
        except (grpc.aio.AioRpcError, _StreamEnded) as exc:
            why = f"{exc.code().name}: {exc.details()}" if isinstance(exc, grpc.aio.AioRpcError) else "ended"
            if isinstance(exc, grpc.aio.AioRpcError) and exc.code() not in RETRYABLE:
                raise StoreError(f"etcd watch failed: {why}") from exc
            failures += 1
            conn.fail_over(member)
            if loop.time() >= give_up:
                raise EtcdUnavailableError(
                    f"watch: no etcd member of {conn.describe()} answered within "
                    f"{conn.give_up_after:.0f} s (last: {why})") from exc
            if failures % len(conn.endpoints) == 0:
                await asyncio.sleep(min(0.05 * 2 ** (failures // len(conn.endpoints)), 1.0))
        except asyncio.CancelledError:
            # Closing the store cancels the stream, which raises CancelledError here in the
            # reader's task; only a cancellation of that task itself is passed on as one.
            task = asyncio.current_task()
            if streams.closed and task is not None and not task.cancelling():
                raise StoreClosedError("store closed") from None
            raise
        except Exception:
            if streams.closed:  # e.g. a send on the stream that closing the store cancelled
                raise StoreClosedError("store closed") from None
            raise
        finally:
            streams.calls.discard(call)
            with contextlib.suppress(Exception):
                call.cancel()
