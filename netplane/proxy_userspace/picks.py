"""The userspace proxy's recent endpoint choices: a bounded ring of (client, listener,
endpoint), so that `netplane trace` can ask which backend a given client connection got.

One deque append of a tuple per new connection or UDP association (no formatting, no
lock: the proxy runs one event loop); the ring is read, and turned into JSON, only when
someone asks (the metrics port's /debug/userspace/picks)."""

from __future__ import annotations

import time
from collections import deque
from typing import Any


class PickLog:
    def __init__(self, size: int = 4096) -> None:
        self._ring: deque[tuple[float, str, str, int, str | None]] = deque(maxlen=size)

    def record(self, listener: str, client_ip: str, client_port: int, endpoint: str | None) -> None:
        """`endpoint` None: the listener had none to give (it reset the connection or
        dropped the datagram)."""
        self._ring.append((time.time(), listener, client_ip, client_port, endpoint))

    def view(self, client: str | None = None) -> list[dict[str, Any]]:
        """The picks, oldest first; `client` ("IP" or "IP:PORT") keeps that client's."""
        ip, _, port = (client or "").partition(":")
        out = []
        for when, listener, cip, cport, endpoint in list(self._ring):
            if client and (cip != ip or (port and str(cport) != port)):
                continue
            out.append({"time": when, "listener": listener, "client": f"{cip}:{cport}", "endpoint": endpoint})
        return out
