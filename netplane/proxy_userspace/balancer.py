"""Round robin over one service port's endpoints, with ClientIP session affinity (kube-proxy
userspace's LoadBalancerRR). Pure: the clock is injected."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from netplane.model import Endpoint


class Balancer:
    def __init__(self, affinity_seconds: int = 0, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self.affinity_seconds = affinity_seconds
        self.endpoints: tuple[Endpoint, ...] = ()
        self._index = 0
        self._affinity: dict[str, tuple[Endpoint, float]] = {}  # client IP -> (endpoint, last used)

    def set_endpoints(self, endpoints: Sequence[Endpoint]) -> None:
        """New endpoints; the rotation continues where it was (a change in the middle of a
        round does not restart it at the first endpoint), and clients pinned to an endpoint
        that is gone are pinned anew on their next connection."""
        new = tuple(endpoints)
        if new == self.endpoints:
            return
        kept = {str(ep) for ep in new}
        self._affinity = {ip: rec for ip, rec in self._affinity.items() if str(rec[0]) in kept}
        self.endpoints = new
        self._index = self._index % len(new) if new else 0

    def set_affinity(self, seconds: int) -> None:
        if seconds != self.affinity_seconds:
            self.affinity_seconds = seconds
            self._affinity.clear()

    def next(self, client_ip: str, *, reset: bool = False) -> Endpoint | None:
        """The endpoint for a new connection or association from `client_ip`; `reset` (a
        retry after a failed dial) skips the client's pinned endpoint."""
        if not self.endpoints:
            return None
        now = self._now()
        if self.affinity_seconds and not reset:
            rec = self._affinity.get(client_ip)
            if rec is not None and now - rec[1] < self.affinity_seconds:
                self._affinity[client_ip] = (rec[0], now)
                return rec[0]
        ep = self.endpoints[self._index]
        self._index = (self._index + 1) % len(self.endpoints)
        if self.affinity_seconds:
            self._affinity[client_ip] = (ep, now)
        return ep

    def expire(self) -> int:
        """Drops affinity records older than the timeout; returns how many remain."""
        if self._affinity:
            limit = self._now() - self.affinity_seconds
            self._affinity = {ip: rec for ip, rec in self._affinity.items() if rec[1] > limit}
        return len(self._affinity)
