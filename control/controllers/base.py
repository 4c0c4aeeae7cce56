"""The controller seam, and the queue-and-workers loop most controllers are built on.

A controller is constructed as `Controller(client, informers, **options)`: it asks
`informers` for the collections it reads and registers handlers that enqueue keys;
it must accept and ignore options it does not know (the manager passes every option
to every controller). The manager then starts the informers, waits for their caches,
and awaits `run(workers)` until shutdown (cancellation).
"""

from __future__ import annotations

import abc
import asyncio
import logging
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import aiohttp

from control.controllers.workqueue import QueueShutDown, WorkQueue
from netplane.client.rest import ApiError

if TYPE_CHECKING:
    from control.controllers.informers import InformerSet
    from netplane.client.rest import ApiClient

log = logging.getLogger(__name__)


class RetryError(Exception):
    """Raised by `sync` for an expected, transient condition (a cache not caught up, a
    referenced object not there yet): retried with back-off, logged as one line."""


@runtime_checkable
class Controller(Protocol):
    name: str

    async def run(self, workers: int) -> None: ...


def object_key(obj: Any) -> str:
    """client-go's MetaNamespaceKeyFunc: "namespace/name", or "name" when cluster-scoped.

    Takes a typed model object or a raw JSON dict."""
    meta = obj.get("metadata", {}) if isinstance(obj, dict) else obj.metadata
    if isinstance(meta, dict):
        namespace, name = meta.get("namespace") or "", meta.get("name") or ""
    else:
        namespace, name = meta.namespace, meta.name
    return f"{namespace}/{name}" if namespace else name


def split_key(key: str) -> tuple[str, str]:
    """"ns/name" -> ("ns", "name"); "name" -> ("", "name")."""
    namespace, sep, name = key.partition("/")
    return (namespace, name) if sep else ("", namespace)


class QueueController(abc.ABC):
    """Handlers enqueue keys; `workers` tasks take them one at a time and call `sync`.

    A failed sync is logged once (controller, key, attempt, error) and re-queued with
    per-key exponential back-off; a successful one forgets the key's failures. After
    `max_retries` failures in a row the key is dropped until its next event (None:
    never dropped), as Kubernetes' endpointslice controller does after 15."""

    name: ClassVar[str] = "controller"
    max_retries: ClassVar[int | None] = None

    def __init__(self, client: ApiClient, informers: InformerSet, **options: Any) -> None:
        self.client = client
        self.informers = informers
        self.options = options
        self.queue = WorkQueue(self.name)

    @property
    def queues(self) -> list[WorkQueue]:
        """The queues whose metrics the manager exports."""
        return [self.queue]

    @abc.abstractmethod
    async def sync(self, key: str) -> None:
        """Make the world match the desired state of `key`; raise to be retried."""

    def enqueue(self, obj: Any) -> None:
        """A handler: queue the object's own key."""
        self.queue.add(object_key(obj))

    async def run(self, workers: int) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                for i in range(max(1, workers)):
                    tg.create_task(self._worker(), name=f"{self.name} worker {i}")
        finally:
            self.queue.shutdown()

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except QueueShutDown:
                return
            try:
                await self.sync(key)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.handle_error(key, exc)
            else:
                self.queue.forget(key)
            finally:
                self.queue.done(key)

    def handle_error(self, key: str, exc: Exception) -> None:
        attempt = self.queue.num_requeues(key) + 1
        if self.max_retries is not None and attempt > self.max_retries:
            log.error("%s: dropping %s after %d failed syncs: %s", self.name, key, attempt, exc)
            self.queue.forget(key)
            return
        # Expected API failures (conflicts, timeouts) get one line; anything else is a bug
        # and gets its traceback, once per failure.
        expected = isinstance(exc, RetryError | ApiError | TimeoutError | OSError | aiohttp.ClientError)
        log.warning("%s: sync %s failed (attempt %d), retrying: %s", self.name, key, attempt,
                    exc, exc_info=None if expected else exc)
        self.queue.add_rate_limited(key)
