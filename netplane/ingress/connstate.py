"""The state a client connection of the gateway is in, shared by its layers (reading
requests, dispatching them, relaying answers): what its deadline means when it passes, and
why reading from the client is paused."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio

    from netplane.ingress.exchange import Exchange
    from netplane.ingress.proxy import Proxy
    from netplane.ingress.upstream import UpstreamConnection

# What a deadline means when it passes (Proxy.sweep checks them).
IDLE, HEADER, BODY, UPSTREAM, SEND, TUNNEL, LINGER = range(7)
# Why reading from the client is paused (bits; 1 is upstream.PAUSE_UPSTREAM).
PAUSE_PENDING, PAUSE_QUEUE, PAUSE_UPGRADE = 2, 4, 8
PENDING_LIMIT = 256 * 1024  # body bytes held while the upstream connection is being made


class ConnectionState:
    """What the layers of netplane/ingress/downstream.py's Downstream share. Mixins
    subclass it to know the attributes and the methods of each other, which the
    Downstream class defines; nothing here exists at run time but the slots' absence."""

    __slots__ = ()

    if TYPE_CHECKING:
        gw: Proxy
        scheme: str
        transport: asyncio.Transport | None
        active: Exchange | None
        out: list[bytes]
        closed: bool
        paused: int
        tunnel: UpstreamConnection | None
        upgrading: bool
        client_ip: bytes
        forwarded: bytes
        deadline: float
        deadline_kind: int

        def _answer(self, ex: Exchange, status: int, body: bytes = b"", *, close: bool = False,
                    extra: tuple[tuple[str, str], ...] = ()) -> None: ...
        def _finish(self, ex: Exchange, status: int) -> None: ...
        def _record(self, ex: Exchange, status: int) -> None: ...
        def _set_deadline(self, kind: int, seconds: float, ex: Exchange | None = None) -> None: ...
        def _tunnel_timeout(self) -> float: ...
        def _abort_after_flush(self, ex: Exchange) -> None: ...
        def _close(self) -> None: ...
        def flush(self) -> None: ...
        def pause_reading(self, reason: int) -> None: ...
        def resume_reading(self, reason: int) -> None: ...
        def _dispatch(self, ex: Exchange, ep: object, *, fresh: bool = False) -> None: ...
