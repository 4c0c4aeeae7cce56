"""In-process watch fan-out: live events to prefix subscribers, and the watch iterator that
joins a replay of the log with the live stream without a gap or a duplicate.

Store-neutral: a store publishes each committed batch of events (in revision order, on
the event loop) and supplies a `replay` coroutine that reads its log.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from control.store.keyrange import KeyRange
from control.store.protocol import Event, StoreClosedError

Replay = Callable[[KeyRange, int, int], Awaitable[list[Event]]]
"""`replay(range, after_revision, limit)`: up to `limit` logged events in `range` with a
revision above `after_revision`, in revision order; raises CompactedError when the log no
longer holds them."""

DEFAULT_BACKLOG = 10_000
REPLAY_PAGE = 1_000


class Subscription:
    """One watcher's buffer of live events; owned by the `Fanout` until unsubscribed."""

    __slots__ = ("_pending", "_waiter", "backlog", "error", "prefix", "range")

    def __init__(self, prefix: str, backlog: int) -> None:
        self.prefix = prefix
        self.range = KeyRange.of(prefix)
        self.backlog = backlog
        self.error: BaseException | None = None
        self._pending: list[Event] = []
        self._waiter: asyncio.Future[None] | None = None

    def push(self, events: list[Event]) -> bool:
        """Buffers `events`; False when that overflows the backlog (the watcher is ended)."""
        self._pending.extend(events)
        if len(self._pending) > self.backlog:
            self.fail(StoreClosedError(
                f"watch of {self.prefix!r} fell more than {self.backlog} events behind; re-list"))
            return False
        self._wake()
        return True

    def fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
            # A failed watcher may never read again: drop its events rather than hold them.
            self._pending = []
        self._wake()

    def first_pending_revision(self) -> int | None:
        return self._pending[0].revision if self._pending else None

    def raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error

    async def next_batch(self) -> list[Event]:
        """Every buffered event, waiting for at least one; raises once the watch ended."""
        while not self._pending:
            self.raise_if_failed()
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        self.raise_if_failed()
        batch, self._pending = self._pending, []
        return batch

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class Fanout:
    """Subscribers grouped by prefix, so a batch is filtered once per distinct prefix
    however many watchers share it (the apiserver's informers mostly watch whole kinds)."""

    def __init__(self, backlog: int = DEFAULT_BACKLOG) -> None:
        self.backlog = backlog
        self._by_prefix: dict[str, set[Subscription]] = {}
        self._closed: BaseException | None = None

    def __len__(self) -> int:
        return sum(len(subs) for subs in self._by_prefix.values())

    def subscribe(self, prefix: str) -> Subscription:
        sub = Subscription(prefix, self.backlog)
        if self._closed is not None:
            sub.fail(self._closed)
        else:
            self._by_prefix.setdefault(prefix, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._by_prefix.get(sub.prefix)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._by_prefix[sub.prefix]

    def publish(self, events: list[Event]) -> None:
        """Hands a committed batch (revision order) to every matching subscriber; never waits."""
        if not events or not self._by_prefix:
            return
        for prefix, subs in list(self._by_prefix.items()):
            rng = KeyRange.of(prefix)
            matching = [ev for ev in events if ev.kv.key in rng] if prefix else events
            if not matching:
                continue
            for sub in list(subs):
                if not sub.push(matching):
                    self.unsubscribe(sub)

    def close(self, error: BaseException | None = None) -> None:
        """Ends every watch with `error` (StoreClosedError by default)."""
        self._closed = error or StoreClosedError("store closed")
        for subs in self._by_prefix.values():
            for sub in subs:
                sub.fail(self._closed)
        self._by_prefix.clear()


async def watch(
    fanout: Fanout,
    prefix: str,
    after_revision: int,
    replay: Replay,
    check: Callable[[int], None],
) -> AsyncIterator[list[Event]]:
    """The `Store.watch` iterator: history from `replay`, then live events from `fanout`.

    Subscribing comes first so that every event committed after the replay's snapshot is
    buffered; the replay then runs until it meets the buffer, and the buffer is drained
    skipping revisions the replay already delivered. `check(after_revision)` raises
    CompactedError (or StoreClosedError) before anything is delivered.
    """
    sub = fanout.subscribe(prefix)
    try:
        sub.raise_if_failed()
        check(after_revision)
        last = after_revision
        while True:
            sub.raise_if_failed()
            first_live = sub.first_pending_revision()
            if first_live is not None and last >= first_live - 1:
                break
            batch = await replay(sub.range, last, REPLAY_PAGE)
            if batch:
                last = batch[-1].revision
                yield batch
            if len(batch) < REPLAY_PAGE:
                break
        while True:
            batch = await sub.next_batch()
            if batch[-1].revision <= last:
                continue
            if batch[0].revision <= last:
                batch = [ev for ev in batch if ev.revision > last]
            last = batch[-1].revision
            yield batch
    finally:
        fanout.unsubscribe(sub)
