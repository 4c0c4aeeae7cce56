"""`Informer`: a local, indexed, always-current copy of one collection, with handlers.

client-go's reflector + indexer + shared informer in one: list, then watch from the
list's resourceVersion (bookmarks keep it fresh); a dropped connection or an ended watch
resumes from the last seen resourceVersion; 410 Gone relists and hands the handlers the
difference, so they never miss a delete that happened while disconnected.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

import aiohttp

from netplane.client.rest import ApiClient, ApiError

log = logging.getLogger(__name__)

T = TypeVar("T")
IndexFunc = Callable[[Any], list[str]]
Handler = Callable[..., Any]

_BACKOFF_START, _BACKOFF_CAP = 0.2, 5.0
# A watch that stayed open this long without an error counts as healthy even if the
# collection was quiet, so the next reconnect starts from a short back-off again.
_HEALTHY_WATCH = 2.0
# While the server stays unreachable, only every Nth failure is logged as a warning.
_WARN_EVERY = 10
_KINDS = ("add", "update", "delete")


class _Gone(Exception):
    """The watch's resourceVersion is compacted away: relist."""


def key_of(raw: dict[str, Any]) -> str:
    """The cache key: "namespace/name", or "name" for cluster-scoped objects."""
    meta = raw.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name', '')}" if ns else str(meta.get("name", ""))


class Cache(Generic[T]):
    """Objects by key, plus named indexes (`by_index("namespace", "default")`)."""

    def __init__(self) -> None:
        self._items: dict[str, T] = {}
        self._index_funcs: dict[str, IndexFunc] = {}
        self._indexes: dict[str, dict[str, set[str]]] = {}

    def get(self, key: str) -> T | None:
        return self._items.get(key)

    def list(self) -> list[T]:
        return list(self._items.values())

    def keys(self) -> list[str]:
        return list(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._items))

    def add_index(self, name: str, func: IndexFunc) -> None:
        self._index_funcs[name] = func
        index: dict[str, set[str]] = {}
        for key, obj in self._items.items():
            for value in func(obj):
                index.setdefault(value, set()).add(key)
        self._indexes[name] = index

    def by_index(self, name: str, value: str) -> list[T]:
        keys = self._indexes[name].get(value, ())
        return [self._items[k] for k in sorted(keys)]

    def put(self, key: str, obj: T) -> T | None:
        old = self._items.get(key)
        if old is not None:
            self._unindex(key, old)
        self._items[key] = obj
        for name, func in self._index_funcs.items():
            for value in func(obj):
                self._indexes[name].setdefault(value, set()).add(key)
        return old

    def remove(self, key: str) -> T | None:
        old = self._items.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def _unindex(self, key: str, obj: T) -> None:
        for name, func in self._index_funcs.items():
            index = self._indexes[name]
            for value in func(obj):
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]


class Informer(Generic[T]):
    """Watches the collection at `path` (e.g. "/api/v1/pods",
    "/apis/discovery.k8s.io/v1/namespaces/x/endpointslices") into `cache`."""

    def __init__(self, client: ApiClient, path: str, *, label_selector: str | None = None,
                 field_selector: str | None = None, decode: Callable[[dict[str, Any]], T] | None = None,
                 page_size: int = 500) -> None:
        self.client = client
        self.path = path
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.decode: Callable[[dict[str, Any]], Any] = decode or (lambda raw: raw)
        self.page_size = page_size
        self.cache: Cache[T] = Cache()
        self.synced = asyncio.Event()
        self.last_resource_version = ""
        self.relists = 0  # full lists done: 1 after the first sync; more mean 410s
        self._handlers: list[tuple[Handler | None, Handler | None, Handler | None]] = []
        self._rvs: dict[str, str] = {}
        # Held while the cache changes and handlers run, so that a handler added late sees
        # the cache replayed as adds strictly before any later event (client-go's order).
        self._lock = asyncio.Lock()
        self._replays: set[asyncio.Task[None]] = set()
        self._progress = False

    def add_handler(self, on_add: Handler | None = None, on_update: Handler | None = None,
                    on_delete: Handler | None = None) -> None:
        """`on_add(obj)`, `on_update(old, new)`, `on_delete(obj)`; plain functions or
        coroutines, called in event order. Added after sync, it first gets the cache as adds
        (from a task of the running loop, before any later event)."""
        entry = (on_add, on_update, on_delete)
        if not self.synced.is_set():
            self._handlers.append(entry)
            return
        task = asyncio.get_running_loop().create_task(self._replay(entry), name=f"replay {self.path}")
        self._replays.add(task)
        task.add_done_callback(self._replays.discard)

    async def _replay(self, entry: tuple[Handler | None, Handler | None, Handler | None]) -> None:
        async with self._lock:
            try:
                if entry[0] is not None:
                    for key in self.cache:
                        obj = self.cache.get(key)
                        await self._call(entry[0], 0, key, obj)
            finally:
                self._handlers.append(entry)

    async def wait_synced(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Returns once the first full list is in the cache and was handed to the handlers;
        TimeoutError after `timeout` seconds."""
        await asyncio.wait_for(self.synced.wait(), timeout)

    async def run(self) -> None:
        """Lists and watches until cancelled; never gives up on a reachable server."""
        loop = asyncio.get_running_loop()
        backoff = _BACKOFF_START
        failures = 0
        # Run again after a stop, it resumes from where it was (a 410 then relists).
        need_list = not self.synced.is_set()
        while True:
            started, phase = loop.time(), "list"
            self._progress = False
            failure: Exception | None = None
            try:
                if need_list:
                    await self._relist()
                    need_list = False
                phase = "watch"
                await self._watch()
            except asyncio.CancelledError:
                raise
            except (_Gone, ApiError) as exc:
                # A 410 on the list itself is a server fault (lists are not made at an old
                # resourceVersion), so it is retried with back-off rather than in a tight loop.
                if isinstance(exc, _Gone) or (exc.code == 410 and phase == "watch"):
                    # Compacted away: only a relist can catch up; there is nothing to wait for.
                    log.info("%s: resourceVersion %s is too old; relisting", self.path,
                             self.last_resource_version)
                    need_list = True
                    continue
                failure = exc
            except Exception as exc:  # a bad answer must not end the informer: retry it
                failure = exc
            healthy = self._progress or loop.time() - started >= _HEALTHY_WATCH
            if healthy:
                backoff, failures = _BACKOFF_START, 0
                if failure is None:
                    continue  # the server ended a watch that did its job (timeoutSeconds)
            if failure is not None:
                failures += 1
                level = logging.WARNING if failures % _WARN_EVERY == 1 else logging.DEBUG
                log.log(level, "%s: %s %s (%s); retrying in %.2fs (failure %d)", self.path,
                        phase, type(failure).__name__, failure, backoff,
                        failures, exc_info=not isinstance(failure, (OSError, aiohttp.ClientError,
                                                                    ApiError, TimeoutError)))
            # Jitter, so that many informers of a restarted server do not return in step.
            await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, _BACKOFF_CAP)

    def _selectors(self) -> dict[str, str]:
        out = {}
        if self.label_selector:
            out["labelSelector"] = self.label_selector
        if self.field_selector:
            out["fieldSelector"] = self.field_selector
        return out

    async def _relist(self) -> None:
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {**self._selectors(), "limit": self.page_size}
        while True:
            try:
                page = await self.client.list(self.path, params)
            except ApiError as exc:
                if exc.code == 410 and "continue" in params:
                    # The snapshot we were paging through is compacted: start over, unpaged.
                    items, params = [], self._selectors()
                    continue
                raise
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                break
            params = {**self._selectors(), "limit": self.page_size, "continue": token}
        rv = (page.get("metadata") or {}).get("resourceVersion")
        if not rv:
            raise ValueError(f"the list of {self.path} has no metadata.resourceVersion")
        fresh = {key_of(raw): raw for raw in items}
        async with self._lock:
            # Objects that vanished while we were not watching get their delete now, so
            # handlers never keep a ghost (client-go's DeletedFinalStateUnknown case).
            for key in [k for k in self.cache if k not in fresh]:
                old = self.cache.remove(key)
                self._rvs.pop(key, None)
                await self._fire(2, key, old)
            for key, raw in fresh.items():
                item_rv = (raw.get("metadata") or {}).get("resourceVersion", "")
                if key in self.cache and self._rvs.get(key) == item_rv:
                    continue  # unchanged since we last saw it: no spurious update
                await self._apply(key, raw)
            self.last_resource_version = rv
            self.relists += 1
            self._progress = True
        self.synced.set()

    async def _watch(self) -> None:
        params = {**self._selectors(), "resourceVersion": self.last_resource_version,
                  "allowWatchBookmarks": "true",
                  # client-go's spread (5-10 min), so watches of many clients do not expire
                  # at once and stampede the server.
                  "timeoutSeconds": random.randint(300, 600)}
        async for event in self.client.watch(self.path, params):
            kind, raw = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                if raw.get("code") == 410:
                    raise _Gone()
                raise ApiError(raw.get("code", 500), raw.get("reason", ""), raw.get("message", ""), raw)
            self._progress = True
            rv = (raw.get("metadata") or {}).get("resourceVersion")
            if kind == "BOOKMARK":
                # A bookmark carries no object change, only a newer resourceVersion to
                # resume from, so a quiet collection does not fall behind compaction.
                if rv:
                    self.last_resource_version = rv
                continue
            key = key_of(raw)
            async with self._lock:
                if kind in ("ADDED", "MODIFIED"):
                    await self._apply(key, raw)
                elif kind == "DELETED":
                    old = self.cache.remove(key)
                    self._rvs.pop(key, None)
                    if old is not None:
                        await self._fire(2, key, old)
                if rv:
                    self.last_resource_version = rv

    async def _apply(self, key: str, raw: dict[str, Any]) -> None:
        try:
            obj = self.decode(raw)
        except Exception:
            log.exception("%s: cannot decode %s; keeping the previous version, if any", self.path, key)
            return
        old = self.cache.put(key, obj)
        self._rvs[key] = (raw.get("metadata") or {}).get("resourceVersion", "")
        if old is None:
            await self._fire(0, key, obj)
        else:
            await self._fire(1, key, old, obj)

    async def _fire(self, which: int, key: str, *args: Any) -> None:
        for handlers in list(self._handlers):
            handler = handlers[which]
            if handler is not None:
                await self._call(handler, which, key, *args)

    async def _call(self, handler: Handler, which: int, key: str, *args: Any) -> None:
        try:
            result = handler(*args)
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: %s handler %s failed for %s", self.path, _KINDS[which],
                          getattr(handler, "__qualname__", handler), key)
