"""A de-duplicating, rate-limited work queue of object keys, after client-go's workqueue.

The guarantees controllers rely on (client-go `workqueue.Type`):
- a key is queued at most once however often it is added before a worker takes it;
- a key being processed is never handed to a second worker; if it is added again
  meanwhile, it is queued once more when the first worker calls `done(key)`;
- `add_after` keeps only the earliest pending delay per key;
- `add_rate_limited` waits per key 5 ms * 2^failures, capped at 1000 s, until `forget`
  (client-go's `DefaultItemBasedRateLimiter`).
"""

from __future__ import annotations

import asyncio
from collections import deque


class QueueShutDown(Exception):
    """`WorkQueue.get()` after `shutdown()`: the worker should return."""


class ExponentialBackoff:
    """Per-key exponential back-off (client-go's ItemExponentialFailureRateLimiter)."""

    def __init__(self, base: float = 0.005, cap: float = 1000.0) -> None:
        self.base = base
        self.cap = cap
        self._failures: dict[str, int] = {}

    def when(self, key: str) -> float:
        exp = self._failures.get(key, 0)
        self._failures[key] = exp + 1
        # 2**exp overflows floats long after the cap is hit; stop computing early.
        if exp > 62:
            return self.cap
        return min(self.base * (2 ** exp), self.cap)

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def num_requeues(self, key: str) -> int:
        return self._failures.get(key, 0)


class WorkQueue:
    """Keys ("namespace/name", or "name" for cluster-scoped objects) waiting for a worker.

    `name` labels the queue's metrics (`adds`, `retries`, `len()` for depth)."""

    def __init__(self, name: str = "", *, backoff: ExponentialBackoff | None = None) -> None:
        self.name = name
        self.backoff = backoff or ExponentialBackoff()
        self.adds = 0
        self.retries = 0
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._delayed: dict[str, asyncio.TimerHandle] = {}
        self._shutting_down = False

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def add(self, key: str) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self.adds += 1
        self._dirty.add(key)
        if key in self._processing:
            return  # queued again by done()
        self._queue.append(key)
        self._wake_one()

    def add_after(self, key: str, delay: float) -> None:
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        pending = self._delayed.get(key)
        if pending is not None:
            if pending.when() <= when:
                return
            pending.cancel()
        self._delayed[key] = loop.call_at(when, self._fire, key)

    def add_rate_limited(self, key: str) -> None:
        self.retries += 1
        self.add_after(key, self.backoff.when(key))

    def forget(self, key: str) -> None:
        self.backoff.forget(key)

    def num_requeues(self, key: str) -> int:
        return self.backoff.num_requeues(key)

    async def get(self) -> str:
        """The next key; the caller must call `done(key)` when finished with it.

        Raises QueueShutDown once the queue is shut down (queued keys are dropped)."""
        while not self._queue:
            if self._shutting_down:
                raise QueueShutDown(self.name)
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                # Pass a wake-up meant for us on, so that no key waits for the next add.
                if not waiter.cancelled() and self._queue:
                    self._wake_one()
                raise
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        if self._shutting_down:
            raise QueueShutDown(self.name)
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty and not self._shutting_down:
            self._queue.append(key)
            self._wake_one()

    def shutdown(self) -> None:
        self._shutting_down = True
        for handle in self._delayed.values():
            handle.cancel()
        self._delayed.clear()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def _fire(self, key: str) -> None:
        self._delayed.pop(key, None)
        self.add(key)

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
