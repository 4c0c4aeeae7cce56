"""`?watch=1`: the store's events as a chunked stream of Kubernetes watch events.

An event is decoded and encoded once, however many watchers receive it (the
`EventCodec` memo), since fan-out to many informers is the apiserver's hot path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from control.apiserver import errors
from control.apiserver.codec import decode_kv
from control.apiserver.resources import ResourceInfo
from control.apiserver.selection import ObjectFilter
from control.store import CompactedError, Event, EventType, KeyValue, Store, StoreError

log = logging.getLogger(__name__)

_ADDED, _MODIFIED, _DELETED = b"ADDED", b"MODIFIED", b"DELETED"


class EventCodec:
    """Memoizes decoded objects and their JSON by (key, revision), bounded in size."""

    def __init__(self, size: int = 8192) -> None:
        self._objs: OrderedDict[tuple[str, int], dict[str, Any]] = OrderedDict()
        self._json: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._size = size

    def obj(self, kv: KeyValue) -> dict[str, Any]:
        key = (kv.key, kv.mod_revision)
        obj = self._objs.get(key)
        if obj is None:
            obj = decode_kv(kv)
            self._objs[key] = obj
            if len(self._objs) > self._size:
                self._objs.popitem(last=False)
        return obj

    def json(self, kv: KeyValue) -> bytes:
        key = (kv.key, kv.mod_revision)
        data = self._json.get(key)
        if data is None:
            data = orjson.dumps(self.obj(kv))
            self._json[key] = data
            if len(self._json) > self._size:
                self._json.popitem(last=False)
        return data


@dataclass
class WatchParams:
    resource_version: str
    timeout: float
    bookmarks: bool
    send_initial_events: bool
    bookmark_interval: float


def line(event_type: bytes, obj_json: bytes) -> bytes:
    return b'{"type":"' + event_type + b'","object":' + obj_json + b"}\n"


def classify(ev: Event, flt: ObjectFilter, codec: EventCodec) -> tuple[bytes, KeyValue] | None:
    """The watch event type a filtered watcher sees for a store event, or None.

    An object that stops matching the filter is DELETED for that watcher, one that
    starts matching is ADDED, as Kubernetes' watch cache reports them."""
    if ev.type is EventType.DELETE:
        shown = ev.prev or ev.kv
        return (_DELETED, ev.kv) if flt.matches(codec.obj(shown)) else None
    now = flt.matches(codec.obj(ev.kv))
    before = ev.prev is not None and flt.matches(codec.obj(ev.prev))
    if now:
        return (_MODIFIED if before else _ADDED), ev.kv
    return (_DELETED, ev.kv) if before else None


def bookmark(res: ResourceInfo, revision: int, initial_end: bool = False) -> bytes:
    meta: dict[str, Any] = {"resourceVersion": str(revision)}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return line(b"BOOKMARK", orjson.dumps(
        {"kind": res.kind, "apiVersion": res.api_version, "metadata": meta}))


def default_timeout() -> float:
    # Kubernetes spreads watch lifetimes over [min-request-timeout, 2x] so that clients
    # do not all reconnect at once; the default min-request-timeout is 1800 s.
    return random.uniform(1800, 3600)


async def serve(
    request: web.Request,
    store: Store,
    res: ResourceInfo,
    prefix: str,
    flt: ObjectFilter,
    params: WatchParams,
    codec: EventCodec,
    render: Callable[[bytes, dict[str, Any], bytes], bytes] | None = None,
) -> web.StreamResponse:
    """Streams events until the timeout, the client leaving, or the store ending the watch.

    `render(type, obj, obj_json)` replaces the default line format (used for Table
    watches)."""
    emit = render or (lambda t, _o, j: line(t, j))
    initial: list[bytes] = []
    rv = params.resource_version
    if rv in ("", "0") or params.send_initial_events:
        listing = await store.list(prefix)
        start = listing.revision
        for kv in listing.items:
            obj = codec.obj(kv)
            if flt.matches(obj):
                initial.append(emit(_ADDED, obj, codec.json(kv)))
    else:
        try:
            start = int(rv)
        except ValueError:
            raise errors.bad_request(f"invalid resource version: {rv!r}") from None

    resp = web.StreamResponse(headers={"Content-Type": "application/json",
                                       "Cache-Control": "no-cache, private"})
    resp.enable_chunked_encoding()
    queue: asyncio.Queue[list[Event] | BaseException] = asyncio.Queue(maxsize=64)
    stream = store.watch(prefix, start)

    async def pump() -> None:
        try:
            async for batch in stream:
                await queue.put(batch)
        except (StoreError, CompactedError) as exc:
            await queue.put(exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("watch of %s failed", prefix)
            await queue.put(exc)

    pumper = asyncio.create_task(pump(), name=f"watch-pump {prefix}")
    try:
        await resp.prepare(request)
        if initial:
            await resp.write(b"".join(initial))
        last = start
        if params.send_initial_events and params.bookmarks:
            await resp.write(bookmark(res, start, initial_end=True))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + params.timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            wait = min(remaining, params.bookmark_interval) if params.bookmarks else remaining
            try:
                item = await asyncio.wait_for(queue.get(), wait)
            except TimeoutError:
                if params.bookmarks and loop.time() < deadline:
                    await resp.write(bookmark(res, last))
                continue
            if isinstance(item, CompactedError):
                status = errors.expired(
                    f"too old resource version: {start} ({item.compacted})").status()
                await resp.write(line(b"ERROR", orjson.dumps(status)))
                break
            if isinstance(item, BaseException):
                break  # The store ended this watch; the client resumes from `last`.
            out = []
            for ev in item:
                last = ev.revision
                shown = classify(ev, flt, codec)
                if shown is not None:
                    kind, kv = shown
                    out.append(emit(kind, codec.obj(kv), codec.json(kv)))
            if out:
                await resp.write(b"".join(out))
        with contextlib.suppress(ConnectionError, RuntimeError):
            await resp.write_eof()
    except ConnectionError:
        pass  # The client went away.
    finally:
        pumper.cancel()
        with contextlib.suppress(BaseException):
            await pumper
        with contextlib.suppress(BaseException):
            await stream.aclose()  # type: ignore[attr-defined]
    return resp
