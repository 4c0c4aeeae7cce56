"""The apiserver's settings and the typed keys its handlers find shared state under."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from control.apiserver import errors
from control.apiserver.metrics import ApiMetrics


@dataclass
class ApiConfig:
    service_cidr: str = "10.96.0.0/12"
    node_port_range: str = "30000-32767"
    secure_port: int = 6443
    max_request_bytes: int = 3 * 1024 * 1024  # Kubernetes' default request body limit
    max_watches: int = 10_000
    bookmark_interval: float = 10.0
    server_address: str = "127.0.0.1:6443"
    namespace_finalizer_interval: float = 1.0
    # Where clients inside the cluster reach this apiserver (kube-apiserver's
    # --advertise-address): the `kubernetes` Service's endpoint. "" publishes none.
    advertise_address: str = ""
    advertise_port: int = 0  # 0: the secure port
    # The lease that keeps the advertised address in the `kubernetes` Service (endpoints.py).
    endpoint_lease_ttl: float = 15.0
    endpoint_reconcile_interval: float = 10.0


class WatchSlots:
    """Caps concurrent watches (past the cap a watch gets 429, not a queue), and knows
    them, so that shutdown ends them at once instead of waiting out their timeouts."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def used(self) -> int:
        return len(self._tasks)

    async def __aenter__(self) -> None:
        if self.used >= self.limit:
            raise errors.too_many_requests(f"too many watches: the limit is {self.limit}")
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)

    async def __aexit__(self, *_exc: object) -> None:
        self._tasks.discard(asyncio.current_task())  # type: ignore[arg-type]

    def end_all(self) -> None:
        """Drops every watch connection; clients resume from their last resourceVersion."""
        for task in list(self._tasks):
            task.cancel()


CONFIG = web.AppKey("config", ApiConfig)
METRICS = web.AppKey("metrics", ApiMetrics)
AUTHENTICATOR = web.AppKey("authenticator", object)
AUTHORIZE = web.AppKey("authorize", Callable[..., None])
INSECURE_IS_ADMIN = web.AppKey("insecure_is_admin", bool)
WATCH_SLOTS = web.AppKey("watch_slots", WatchSlots)
READY = web.AppKey("ready", asyncio.Event)
USER = web.RequestKey("user", Any)
INFO = web.RequestKey("info", Any)
