"""The gRPC connections to an etcd cluster: one channel per member, the member in use, and
failing over to the next one when it stops answering.

Why gRPC (aetcd's generated etcd API) and not etcd's JSON gateway over aiohttp, measured by
bench/store_clients.py on etcd 3.4 (bench/results/store_clients.json): listing 5,000 keys
of 800 bytes takes ~5x as long over the gateway (its Go JSON encoding dominates), 32
concurrent creates run at ~0.6x the rate, and a watch event's p99 is ~2x. aetcd's own
`Client` is not used: it speaks to one endpoint, its range calls have no limit or
revision, and its watcher multiplexes every watch on one stream behind callbacks, so one
slow watcher cannot be held back alone. Each watch here is a stream of its own, whose
HTTP/2 flow control lets etcd hold back exactly the watcher that does not read (etcd then
catches it up from its history).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from aetcd import rpc

from control.store.protocol import StoreError

log = logging.getLogger(__name__)

T = TypeVar("T")

# Codes after which another member (or the same one, later) may well answer: the member is
# gone or restarting, has no leader, or timed the request out. For a write they are also
# ambiguous: it may have been applied (the caller resolves that, see etcd.py).
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
_OPTIONS = [
    # Whole kinds are listed in one response (10k Services ~ 10 MB); gRPC's default cap is 4 MB.
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
    # Finds a member that vanished without closing its connections. etcd refuses pings more
    # often than every 5 s (--grpc-keepalive-min-time) and pings without a call at all.
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 0),
    ("grpc.max_reconnect_backoff_ms", 2_000),
]
# Asks a member to end a watch when it loses its leader (etcd's "hasleader" metadata, as
# Kubernetes' client sets it): a member cut off from the others would otherwise keep the
# watch open and silent, and this side would never fail over.
REQUIRE_LEADER = (("hasleader", "true"),)


class EtcdUnavailableError(StoreError):
    """No member of the etcd cluster answered in time."""


class EtcdConnection:
    """Channels to every member; calls go to the current member and move on when it fails.

    The first endpoint is used until it fails (so that where a process's load goes is
    predictable); reads are linearizable on every member, so a failover never shows an
    older state than the one already seen.
    """

    def __init__(self, endpoints: list[tuple[str, int]], *, attempt_timeout: float = 10.0,
                 give_up_after: float = 30.0) -> None:
        if not endpoints:
            raise ValueError("etcd needs at least one endpoint")
        self.endpoints = endpoints
        self.attempt_timeout = attempt_timeout
        self.give_up_after = give_up_after
        self._channels = [grpc.aio.insecure_channel(_target(host, port), options=_OPTIONS)
                          for host, port in endpoints]
        self._kv = [rpc.KVStub(ch) for ch in self._channels]
        self._watch = [rpc.WatchStub(ch) for ch in self._channels]
        self.current = 0

    def describe(self) -> str:
        return ",".join(f"{host}:{port}" for host, port in self.endpoints)

    def fail_over(self, member: int) -> None:
        """Moves on from `member` (once, however many calls saw it fail)."""
        if self.current == member:
            self.current = (member + 1) % len(self.endpoints)
            if len(self.endpoints) > 1:
                log.warning("etcd member %s:%d failed; using %s:%d", *self.endpoints[member],
                            *self.endpoints[self.current])

    async def kv(self, method: str, request: Any) -> tuple[Any, bool]:
        """Calls KV.`method`, failing over until a member answers; returns the response and
        whether an earlier attempt failed in a way that may have applied it anyway."""
        retried = False

        async def attempt(member: int) -> Any:
            nonlocal retried
            try:
                return await getattr(self._kv[member], method)(request, timeout=self.attempt_timeout)
            except grpc.aio.AioRpcError as exc:
                if exc.code() in RETRYABLE:
                    retried = True
                raise

        response = await self.retrying(attempt, f"etcd {method}")
        return response, retried

    def watch_stream(self, member: int) -> Any:
        """A new Watch stream on `member`."""
        return self._watch[member].Watch(metadata=REQUIRE_LEADER)

    async def retrying(self, attempt: Callable[[int], Awaitable[T]], what: str) -> T:
        """Runs `attempt(member)` on the current member, then the next ones, until it
        does not fail with a retryable code or `give_up_after` has passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.give_up_after
        failures = 0
        while True:
            member = self.current
            try:
                return await attempt(member)
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in RETRYABLE:
                    raise
                failures += 1
                self.fail_over(member)
                if loop.time() >= deadline:
                    raise EtcdUnavailableError(
                        f"{what}: no etcd member of {self.describe()} answered within "
                        f"{self.give_up_after:.0f} s (last: {exc.code().name}: {exc.details()})") from exc
                if failures % len(self.endpoints) == 0:  # every member failed once: wait a bit
                    await asyncio.sleep(min(0.05 * 2 ** (failures // len(self.endpoints)), 1.0))

    async def close(self) -> None:
        for ch in self._channels:
            await ch.close(grace=None)


def _target(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
