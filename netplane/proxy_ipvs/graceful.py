"""Graceful termination of real servers (kube-proxy's GracefulTerminationManager): a real
server whose endpoint is gone but that still carries TCP connections keeps them with
weight 0 (no new ones), and is deleted once they have closed or its grace period is
over. Pure bookkeeping: the backend reads the counters and deletes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from netplane.proxy_ipvs.diff import Ops, needs_draining
from netplane.proxy_ipvs.table import RealKey, RealServer, VirtualKey

Key = tuple[VirtualKey, RealKey]


class Draining:
    """The real servers being drained, each with the time its grace period ends."""

    def __init__(self, grace_seconds: float) -> None:
        self.grace = grace_seconds
        self.deadlines: dict[Key, float] = {}

    def __len__(self) -> int:
        return len(self.deadlines)

    def expired(self, vs: VirtualKey, rs: RealKey, now: float) -> bool:
        deadline = self.deadlines.get((vs, rs))
        return deadline is not None and now >= deadline

    def record(self, ops: Ops, now: float) -> None:
        """What a sync did: new drains start their clock; deleted or revived ones end."""
        for key in ops.draining:
            self.deadlines.setdefault(key, now + self.grace)
        for key in ops.delete_reals:
            self.deadlines.pop(key, None)
        for vs, rs, weight in ops.edit_reals:
            if weight > 0:
                self.deadlines.pop((vs, rs), None)
        gone = set(ops.delete_services)
        if gone:
            self.deadlines = {k: d for k, d in self.deadlines.items() if k[0] not in gone}

    def forget(self) -> None:
        self.deadlines.clear()

    def virtual_servers(self) -> set[VirtualKey]:
        return {vs for vs, _ in self.deadlines}

    def due(self, kernel: Mapping[VirtualKey, Mapping[RealKey, RealServer]], now: float) -> list[Key]:
        """The drained real servers to delete now: idle, past their grace period, or gone
        (those are only dropped from the list). `kernel`: the real servers of every
        virtual server in `virtual_servers()` (an absent virtual server: all gone)."""
        out = []
        for key, deadline in list(self.deadlines.items()):
            vs, rs = key
            real = kernel.get(vs, {}).get(rs)
            if real is None or real.weight > 0:
                del self.deadlines[key]  # deleted, or taken back into service by someone
                continue
            if not needs_draining(vs.protocol, real) or now >= deadline:
                out.append(key)
        return out

    def deleted(self, keys: Iterable[Key]) -> None:
        for key in keys:
            self.deadlines.pop(key, None)
