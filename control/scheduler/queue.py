"""The scheduling queue: an active queue (priority, then FIFO), a backoff queue and the
set of unschedulable pods, as kube-scheduler's PriorityQueue.

Pure and synchronous; time comes from `clock`. A pod that failed to fit waits in the
unschedulable set until something in the cluster changes (`move_all`, e.g. a node was
added or a pod deleted) or for `max_unschedulable_seconds`; it then goes to the
backoff queue if its backoff (1 s doubling to 10 s per attempt) has not yet expired,
else straight to the active queue."""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from control.scheduler.podinfo import PodInfo

ACTIVE, BACKOFF, UNSCHEDULABLE = "active", "backoff", "unschedulable"


@dataclass(slots=True)
class QueuedPodInfo:
    pod_info: PodInfo
    timestamp: float  # when it last entered the queue
    initial_timestamp: float  # when it first entered (for the end-to-end latency)
    attempts: int = 0
    unschedulable_reason: str = field(default="")

    @property
    def key(self) -> str:
        return self.pod_info.key


class SchedulingQueue:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 initial_backoff: float = 1.0, max_backoff: float = 10.0,
                 max_unschedulable_seconds: float = 300.0,
                 on_ready: Callable[[], None] | None = None) -> None:
        """`on_ready` is called whenever a pod enters the active or backoff queue."""
        self._clock = clock
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_unschedulable_seconds = max_unschedulable_seconds
        self.on_ready = on_ready
        self._seq = itertools.count()
        # key -> (where, QueuedPodInfo, seq); heap entries whose seq is stale are skipped.
        self._where: dict[str, tuple[str, QueuedPodInfo, int]] = {}
        self._active: list[tuple[int, int, str]] = []  # (-priority, seq, key)
        self._backoff: list[tuple[float, int, str]] = []  # (ready time, seq, key)
        self._counts = {ACTIVE: 0, BACKOFF: 0, UNSCHEDULABLE: 0}
        self._unschedulable: dict[str, QueuedPodInfo] = {}

    # -- what is where --------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, key: str) -> bool:
        return key in self._where

    def where(self, key: str) -> str | None:
        entry = self._where.get(key)
        return entry[0] if entry else None

    def counts(self) -> dict[str, int]:
        """Pending pods per sub-queue (kube-scheduler's scheduler_pending_pods{queue})."""
        return dict(self._counts)

    # -- placing pods ---------------------------------------------------------------

    def _place(self, qpi: QueuedPodInfo, where: str) -> None:
        self._remove(qpi.key)
        seq = next(self._seq)
        self._where[qpi.key] = (where, qpi, seq)
        self._counts[where] += 1
        if where == ACTIVE:
            priority = qpi.pod_info.pod.spec.priority or 0
            heapq.heappush(self._active, (-priority, seq, qpi.key))
        elif where == BACKOFF:
            heapq.heappush(self._backoff, (self.backoff_expiry(qpi), seq, qpi.key))
        else:
            self._unschedulable[qpi.key] = qpi
        if where != UNSCHEDULABLE and self.on_ready is not None:
            # Also for backoff: whoever waits on the queue recomputes next_wakeup().
            self.on_ready()

    def _remove(self, key: str) -> QueuedPodInfo | None:
        entry = self._where.pop(key, None)
        if entry is None:
            return None
        self._counts[entry[0]] -= 1
        if entry[0] == UNSCHEDULABLE:
            del self._unschedulable[key]
        return entry[1]

    def add(self, pi: PodInfo) -> None:
        """A new pending pod (or a pending pod that changed): to the active queue, or,
        if it is already queued, its entry takes the new object."""
        entry = self._where.get(pi.key)
        if entry is None:
            now = self._clock()
            self._place(QueuedPodInfo(pi, now, now), ACTIVE)
            return
        where, qpi, _ = entry
        spec_changed = _scheduling_inputs(qpi.pod_info) != _scheduling_inputs(pi)
        qpi.pod_info = pi
        if where == UNSCHEDULABLE and spec_changed:
            # An update that may make the pod schedulable (labels, tolerations, requests...)
            # ends its wait; an update of its status only does not (isPodUpdated).
            self._place(qpi, BACKOFF if self._backing_off(qpi) else ACTIVE)

    update = add

    def delete(self, key: str) -> None:
        self._remove(key)

    def pop(self) -> QueuedPodInfo | None:
        """The next pod to schedule (after moving expired backoffs), or None."""
        self.flush()
        while self._active:
            _, seq, key = heapq.heappop(self._active)
            entry = self._where.get(key)
            if entry is not None and entry[2] == seq:
                self._remove(key)
                entry[1].attempts += 1
                return entry[1]
        return None

    def add_unschedulable(self, qpi: QueuedPodInfo, reason: str = "") -> None:
        """After an attempt that found no node. The caller runs a scheduling cycle
        synchronously, so no cluster event can slip between the attempt and this call
        (kube-scheduler needs its moveRequestCycle check only because it does not)."""
        qpi.timestamp = self._clock()
        qpi.unschedulable_reason = reason
        self._place(qpi, UNSCHEDULABLE)

    def add_backoff(self, qpi: QueuedPodInfo) -> None:
        """After an error (e.g. a failed binding): retried once its backoff expires."""
        qpi.timestamp = self._clock()
        self._place(qpi, BACKOFF)

    def move_all(self) -> int:
        """A cluster change that may make unschedulable pods fit: they all move on (to
        backoff while still backing off). Returns how many moved."""
        moving = list(self._unschedulable.values())
        for qpi in moving:
            self._place(qpi, BACKOFF if self._backing_off(qpi) else ACTIVE)
        return len(moving)

    # -- time -----------------------------------------------------------------------

    def backoff_duration(self, qpi: QueuedPodInfo) -> float:
        """calculateBackoffDuration: initial * 2^(attempts-1), at most max."""
        duration = self.initial_backoff
        for _ in range(1, qpi.attempts):
            duration *= 2
            if duration >= self.max_backoff:
                return self.max_backoff
        return min(duration, self.max_backoff)

    def backoff_expiry(self, qpi: QueuedPodInfo) -> float:
        return qpi.timestamp + self.backoff_duration(qpi)

    def _backing_off(self, qpi: QueuedPodInfo) -> bool:
        return self.backoff_expiry(qpi) > self._clock()

    def flush(self) -> None:
        """Backoffs that expired go active; pods unschedulable for too long are retried
        (flushUnschedulablePodsLeftover)."""
        now = self._clock()
        while self._backoff and self._backoff[0][0] <= now:
            _, seq, key = heapq.heappop(self._backoff)
            entry = self._where.get(key)
            if entry is not None and entry[2] == seq:
                self._place(entry[1], ACTIVE)
        if self._unschedulable:
            stale = [q for q in self._unschedulable.values()
                     if now - q.timestamp >= self.max_unschedulable_seconds]
            for qpi in stale:
                self._place(qpi, BACKOFF if self._backing_off(qpi) else ACTIVE)

    def next_wakeup(self) -> float | None:
        """The clock time at which `pop` may return something new without an event."""
        times = []
        while self._backoff:
            ready, seq, key = self._backoff[0]
            entry = self._where.get(key)
            if entry is not None and entry[2] == seq:
                times.append(ready)
                break
            heapq.heappop(self._backoff)
        if self._unschedulable:
            oldest = min(q.timestamp for q in self._unschedulable.values())
            times.append(oldest + self.max_unschedulable_seconds)
        return min(times) if times else None


def _scheduling_inputs(pi: PodInfo) -> tuple[object, ...]:
    meta = pi.pod.metadata
    return (pi.pod.spec, meta.labels, meta.annotations, meta.owner_references)
