"""Which endpoint takes a request: canary decision, weighted backends, round robin or cookie
affinity over ready endpoints, and passive outlier ejection.

State (round-robin positions, failures, ejections) is keyed by backend and endpoint, not
by route object, so it survives configuration swaps. Deterministic where Kubernetes and
ingress-nginx leave room: weights are spread by smooth weighted round robin (nginx's
algorithm) and canary weights by a counter, so N requests split exactly by weight.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from netplane.ingress.routes import Backend, Canary, Route, Upstream

HeaderGetter = Callable[[str], "str | None"]


def cookie_value(cookie_header: str | None, name: str) -> str | None:
    """The value of cookie `name` in a Cookie header, if present."""
    if not cookie_header or name not in cookie_header:
        return None
    for part in cookie_header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value.strip().strip('"')
    return None


def affinity_token(ep: Upstream) -> str:
    """The cookie value that names an endpoint: stable across gateway restarts and replicas
    (a hash of the address, as ingress-nginx's), and not the address itself."""
    return hashlib.blake2b(str(ep).encode(), digest_size=8).hexdigest()


class Balancer:
    def __init__(self, *, eject_after: int = 3, base_ejection: float = 10.0, max_ejection: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.eject_after = eject_after
        self.base_ejection = base_ejection
        self.max_ejection = max_ejection
        self._clock = clock
        # Public for the proxy's inlined round robin (netplane/ingress/downstream.py).
        self.positions: dict[str, int] = {}  # backend key -> next round-robin position
        self._wrr: dict[tuple[str, ...], list[int]] = {}
        self._canary_counts: dict[str, int] = {}
        self.failures: dict[Upstream, int] = {}  # consecutive gateway failures
        self.ejected_until: dict[Upstream, float] = {}
        self._ejections: dict[Upstream, int] = {}
        self.ejections_total = 0

    # -- which backends: canary, then weights

    def wants_canary(self, canary: Canary, header: HeaderGetter) -> bool:
        """ingress-nginx's order: by header, then by cookie, then by weight."""
        if canary.header:
            value = header(canary.header)
            if value is not None:
                if canary.header_value:
                    if value == canary.header_value:
                        return True
                elif canary.header_pattern is not None:
                    if canary.header_pattern.search(value):
                        return True
                elif value == "always":
                    return True
                elif value == "never":
                    return False
        if canary.cookie:
            value = cookie_value(header("cookie"), canary.cookie)
            if value == "always":
                return True
            if value == "never":
                return False
        if canary.weight <= 0:
            return False
        n = self._canary_counts.get(canary.source, 0)
        self._canary_counts[canary.source] = n + 1
        return n % canary.weight_total < canary.weight

    def backends_for(self, route: Route, header: HeaderGetter) -> tuple[Backend, ...]:
        if route.canary is not None and self.wants_canary(route.canary, header):
            return route.canary.backends
        return route.backends

    def pick_backend(self, backends: tuple[Backend, ...]) -> Backend | None:
        """Smooth weighted round robin over backends with weight > 0 and endpoints; with
        one backend (the common case), that one."""
        if len(backends) == 1:
            return backends[0] if backends[0].weight > 0 else None
        live = [b for b in backends if b.weight > 0]
        if not live:
            return None
        key = tuple(f"{b.key}*{b.weight}" for b in live)
        current = self._wrr.get(key)
        if current is None:
            current = self._wrr[key] = [0] * len(live)
        total = 0
        best = 0
        for i, b in enumerate(live):
            current[i] += b.weight
            total += b.weight
            if current[i] > current[best]:
                best = i
        current[best] -= total
        return live[best]

    # -- which endpoint

    def pick(self, backend: Backend,
             exclude: frozenset[Upstream] | set[Upstream] = frozenset()) -> Upstream | None:
        """The next endpoint by round robin, skipping ejected and excluded ones (unless
        every one is ejected: then ejection is ignored, as Envoy's panic threshold does)."""
        eps = backend.endpoints
        n = len(eps)
        if n == 0:
            return None
        key = backend.key
        start = self.positions.get(key, 0)
        if not self.ejected_until and not exclude:
            self.positions[key] = start + 1
            return eps[start % n]
        now = self._clock()
        fallback = None
        for k in range(n):
            ep = eps[(start + k) % n]
            if ep in exclude:
                continue
            if self._is_ejected(ep, now):
                fallback = fallback or ep
                continue
            self.positions[key] = start + k + 1
            return ep
        return fallback

    def pick_affine(self, backend: Backend, token: str | None,
                    exclude: frozenset[Upstream] | set[Upstream] = frozenset()) -> tuple[Upstream | None,
                                                                                         bool]:
        """Cookie affinity: the endpoint the cookie names if it is still usable, else a new
        one by round robin; the flag says a (new) cookie must be set."""
        if token:
            now = self._clock()
            for ep in backend.endpoints:
                if ep not in exclude and not self._is_ejected(ep, now) and affinity_token(ep) == token:
                    return ep, False
        return self.pick(backend, exclude), True

    # -- passive outlier ejection

    def _is_ejected(self, ep: Upstream, now: float) -> bool:
        until = self.ejected_until.get(ep)
        if until is None:
            return False
        if now >= until:
            del self.ejected_until[ep]
            return False
        return True

    def failed(self, ep: Upstream) -> bool:
        """A gateway failure (refused, reset, timed out) on `ep`; True when it is ejected now."""
        count = self.failures.get(ep, 0) + 1
        self.failures[ep] = count
        if count < self.eject_after or ep in self.ejected_until:
            return False
        times = self._ejections.get(ep, 0) + 1
        self._ejections[ep] = times
        self.ejected_until[ep] = self._clock() + min(self.base_ejection * times, self.max_ejection)
        self.failures[ep] = 0
        self.ejections_total += 1
        return True

    def succeeded(self, ep: Upstream) -> None:
        if self.failures:
            self.failures.pop(ep, None)

    def ejected(self) -> list[Upstream]:
        now = self._clock()
        return [ep for ep in list(self.ejected_until) if self._is_ejected(ep, now)]

    def forget(self, keep: set[Upstream]) -> None:
        """Drops the state of endpoints that left every backend (bounded memory)."""
        for table in (self.failures, self.ejected_until, self._ejections):
            for ep in [ep for ep in table if ep not in keep]:
                del table[ep]
