"""The operations that turn the kernel's IPVS table into the planned one. Pure: the caller
reads the kernel (all of it, or the virtual servers a change touched) and applies the
result. Real servers that go away are drained first (weight 0, no new connections)
when they still carry TCP connections: graceful termination, as kube-proxy's
GracefulTerminationManager."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from netplane.proxy_ipvs.table import RealKey, RealServer, VirtualKey, VirtualServer

Desired = Mapping[VirtualKey, tuple[VirtualServer, tuple[RealKey, ...]]]
KernelTable = Mapping[VirtualKey, tuple[VirtualServer, Mapping[RealKey, RealServer]]]
WEIGHT = 1  # kube-proxy gives every real server weight 1


@dataclass
class Ops:
    add_services: list[VirtualServer] = field(default_factory=list)
    edit_services: list[VirtualServer] = field(default_factory=list)
    delete_services: list[VirtualKey] = field(default_factory=list)
    add_reals: list[tuple[VirtualKey, RealKey]] = field(default_factory=list)
    # (virtual server, real server, weight): back to WEIGHT, or to 0 to drain it
    edit_reals: list[tuple[VirtualKey, RealKey, int]] = field(default_factory=list)
    delete_reals: list[tuple[VirtualKey, RealKey]] = field(default_factory=list)
    # real servers left in place with weight 0 until their connections close
    draining: list[tuple[VirtualKey, RealKey]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return (len(self.add_services) + len(self.edit_services) + len(self.delete_services)
                + len(self.add_reals) + len(self.edit_reals) + len(self.delete_reals))


def needs_draining(protocol: str, real: RealServer) -> bool:
    """kube-proxy's IsRsGracefulTerminationNeeded: TCP real servers with connections are
    drained; UDP and SCTP ones go at once (expire_nodest_conn ends their flows)."""
    return protocol not in ("UDP", "SCTP") and real.active + real.inactive > 0


def diff(desired: Desired, kernel: KernelTable, keys: Iterable[VirtualKey], *,
         keep: Callable[[VirtualKey], bool] = lambda _k: False,
         expired: Callable[[VirtualKey, RealKey], bool] = lambda _v, _r: False) -> Ops:
    """Operations for the virtual servers `keys`. `keep(key)`: a virtual server the plan
    does not have but that must stay (--ipvs-exclude-cidrs, another address family).
    `expired(vs, rs)`: a draining real server whose grace period is over."""
    ops = Ops()
    for key in sorted(keys):
        want = desired.get(key)
        have = kernel.get(key)
        if want is None:
            if have is not None and not keep(key):
                ops.delete_services.append(key)
            continue
        vs, reals = want
        if have is None:
            ops.add_services.append(vs)
            ops.add_reals += [(key, rk) for rk in reals]
            continue
        current, present = have
        if (current.scheduler, current.flags, current.timeout) != (vs.scheduler, vs.flags, vs.timeout):
            ops.edit_services.append(vs)
        wanted = set(reals)
        for rk in reals:
            found = present.get(rk)
            if found is None:
                ops.add_reals.append((key, rk))
            elif found.weight != WEIGHT:
                ops.edit_reals.append((key, rk, WEIGHT))  # a drained one came back
        for rk, real in sorted(present.items()):
            if rk in wanted:
                continue
            if needs_draining(key.protocol, real) and not expired(key, rk):
                ops.draining.append((key, rk))
                if real.weight != 0:
                    ops.edit_reals.append((key, rk, 0))
            else:
                ops.delete_reals.append((key, rk))
    return ops
