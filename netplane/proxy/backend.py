"""The seam between the proxy core and a data plane (kube-proxy's Provider).

A backend gets the whole desired state and, for a partial sync, what changed since its
last successful sync; it never talks to the apiserver. Every backend is constructible
without touching the kernel, so `netplane proxy --cleanup` can build each one just to
call `cleanup()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from netplane.model import ProxyState, StateChange


@dataclass(frozen=True)
class NodeInfo:
    """What a backend knows of the node it runs on."""

    name: str
    addresses: tuple[str, ...] = ()  # the node's own IPs (InternalIP first)


@dataclass(frozen=True)
class SyncStats:
    """What a sync did, for logs and metrics; backends fill what applies to them."""

    services: int = 0
    endpoints: int = 0
    rules: int = 0
    detail: str = ""


class Backend(Protocol):
    mode: str

    async def sync(self, state: ProxyState, changes: StateChange, *, full: bool) -> SyncStats:
        """Makes the data plane equal `state`. `changes` is what changed since the last
        sync (for housekeeping such as conntrack); a partial sync may touch only what it
        names, a `full` one rewrites everything and trusts nothing (after a failure, at
        start, and periodically)."""
        ...

    async def close(self) -> None:
        """The proxy stops: release sockets and tasks; keep what serves traffic on its own."""
        ...

    def cleanup(self) -> list[str]:
        """Removes everything this kind of backend may ever have installed on this node,
        also by an earlier process; returns what it removed (for the user). Idempotent."""
        ...
