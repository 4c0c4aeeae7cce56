"""When the proxy syncs: kube-proxy's BoundedFrequencyRunner.

A change is applied as soon as `min_interval` has passed since the last sync began (so a
burst of events costs one sync, and a quiet cluster sees a change at once); a sync runs
at least every `max_interval` (kube-proxy's --sync-period: backends check their state
then), and a full one every `full_interval` (kube-proxy's hour since 1.28: rewriting
everything is expensive at scale); a failed sync is retried after a back-off that doubles
up to `max_interval`, and the retry is a full one, since a failed partial sync leaves the
data plane in an unknown state. Syncs never overlap.

`Schedule` holds the decisions and is pure (times are passed in); `SyncRunner` is the
asyncio loop around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass
class Schedule:
    min_interval: float
    max_interval: float
    full_interval: float | None = None  # None: every periodic sync is full
    backoff_start: float = 1.0
    last_start: float | None = None
    last_full: float | None = None
    pending: bool = False
    full_pending: bool = True  # the first sync is a full one
    retry_at: float | None = None
    failures: int = 0

    def request(self) -> None:
        self.pending = True

    def request_full(self) -> None:
        self.pending = self.full_pending = True

    def due(self) -> float:
        """The time the next sync should start (it may be in the past: start now)."""
        if self.last_start is None:
            return float("-inf")
        if self.retry_at is not None:
            return self.retry_at
        periodic = self.last_start + self.max_interval
        if self.pending:
            return min(self.last_start + self.min_interval, periodic)
        return periodic

    def start(self, now: float) -> bool:
        """A sync starts now; returns whether it must be a full one."""
        every = self.full_interval if self.full_interval is not None else self.max_interval
        full = (self.full_pending or self.retry_at is not None or self.last_full is None
                or now >= self.last_full + every)
        self.last_start = now
        if full:
            self.last_full = now
        self.pending = self.full_pending = False
        self.retry_at = None
        return full

    def finished(self, now: float, ok: bool) -> None:
        if ok:
            self.failures = 0
            return
        self.failures += 1
        delay = min(self.backoff_start * 2 ** (self.failures - 1), self.max_interval)
        self.retry_at = now + delay
        self.full_pending = True


class SyncRunner:
    """Calls `sync(full)` per the schedule until cancelled."""

    def __init__(self, sync: Callable[[bool], Awaitable[None]], *, min_interval: float,
                 max_interval: float, full_interval: float | None = None, backoff_start: float = 1.0) -> None:
        if min_interval < 0 or max_interval <= 0 or min_interval > max_interval:
            raise ValueError("need 0 <= min_interval <= max_interval and max_interval > 0")
        self._sync = sync
        self.schedule = Schedule(min_interval, max_interval, full_interval, backoff_start)
        self._wake = asyncio.Event()
        self.syncs = 0
        self.running = False

    def request(self, *, full: bool = False) -> None:
        """A change waits: sync as soon as the schedule allows."""
        if full:
            self.schedule.request_full()
        else:
            self.schedule.request()
        self._wake.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            delay = self.schedule.due() - loop.time()
            if delay > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                continue  # recompute: a request may have moved the due time
            full = self.schedule.start(loop.time())
            self.running = True
            ok = False
            try:
                await self._sync(full)
                ok = True
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s sync failed; retrying with a full sync after a back-off",
                              "full" if full else "partial")
            finally:
                self.running = False
                self.syncs += 1
                self.schedule.finished(loop.time(), ok)
