"""The informer against a small in-process fake of one apiserver collection (list + watch),
which can drop connections, end watches, send bookmarks, compact history (410, as an HTTP
status or as an ERROR event) and fail requests, so every recovery path runs in milliseconds.
The same behaviours are proven against the real apiserver in tests/integration/client."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from aiohttp import web

from netplane.client import informer as informer_module
from netplane.client.informer import Informer
from netplane.client.kubeconfig import ClusterConfig
from netplane.client.rest import ApiClient, ApiError

PATH = "/api/v1/services"
Obj = dict[str, Any]


class FakeCollection:
    """The Services of a fake apiserver: a store with a revision counter and an event log."""

    def __init__(self) -> None:
        self.rv = 100
        self.objects: dict[str, Obj] = {}
        self.log: list[tuple[int, str, Obj]] = []  # (resourceVersion, type, object) for watchers
        self.oldest_watchable = 0  # watches from before this resourceVersion are compacted
        self.gone_as_event = False  # send 410 as an ERROR event instead of an HTTP status
        self.fail_watches: list[int] = []  # HTTP statuses for the next watch requests
        self.fail_lists: list[int] = []
        self.requests: list[tuple[float, dict[str, str]]] = []  # (loop time, query)
        self._changed = asyncio.Condition()
        self._cut: tuple[int, bool] = (0, False)  # (generation, hard): open watches end

    # --- what tests do to the "server" ---------------------------------------------------

    async def put(self, name: str, labels: dict[str, str] | None = None, *, silent: bool = False) -> Obj:
        """Creates or updates default/name; `silent` changes the store without a watch event,
        as if the event were lost to compaction."""
        self.rv += 1
        kind = "MODIFIED" if name in self.objects else "ADDED"
        obj = {"kind": "Service", "apiVersion": "v1",
               "metadata": {"name": name, "namespace": "default", "resourceVersion": str(self.rv),
                            "labels": labels or {}}}
        self.objects[name] = obj
        if not silent:
            await self._emit(kind, obj)
        return obj

    async def remove(self, name: str, *, silent: bool = False) -> None:
        self.rv += 1
        obj = self.objects.pop(name)
        if not silent:
            meta = {**obj["metadata"], "resourceVersion": str(self.rv)}
            await self._emit("DELETED", {**obj, "metadata": meta})

    async def bookmark(self) -> str:
        """Advances the revision (a change elsewhere in the store) and sends a bookmark."""
        self.rv += 1
        await self._emit("BOOKMARK", {"kind": "Service", "apiVersion": "v1",
                                      "metadata": {"resourceVersion": str(self.rv)}})
        return str(self.rv)

    def compact(self) -> None:
        self.oldest_watchable = self.rv

    async def cut_watches(self, *, hard: bool) -> None:
        """Ends every open watch: `hard` drops the TCP connection mid-stream, else the
        stream ends cleanly as at timeoutSeconds."""
        async with self._changed:
            self._cut = (self._cut[0] + 1, hard)
            self._changed.notify_all()

    def watch_queries(self) -> list[dict[str, str]]:
        return [q for _, q in self.requests if q.get("watch")]

    def list_queries(self) -> list[dict[str, str]]:
        return [q for _, q in self.requests if not q.get("watch")]

    # --- the HTTP side -------------------------------------------------------------------

    async def _emit(self, kind: str, obj: Obj) -> None:
        async with self._changed:
            self.log.append((self.rv, kind, obj))
            self._changed.notify_all()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((asyncio.get_running_loop().time(), dict(request.query)))
        if request.query.get("watch") in ("1", "true"):
            return await self._watch(request)
        if self.fail_lists:
            return web.Response(status=self.fail_lists.pop(0), text="list exploded")
        names = sorted(self.objects)
        offset = int(request.query.get("continue") or 0)
        limit = int(request.query.get("limit") or len(names) or 1)
        page = names[offset:offset + limit]
        meta: Obj = {"resourceVersion": str(self.rv)}
        if offset + limit < len(names):
            meta["continue"] = str(offset + limit)
        return web.json_response({"kind": "ServiceList", "apiVersion": "v1", "metadata": meta,
                                  "items": [self.objects[n] for n in page]})

    async def _watch(self, request: web.Request) -> web.StreamResponse:
        if self.fail_watches:
            return web.Response(status=self.fail_watches.pop(0), text="watch exploded")
        sent = int(request.query.get("resourceVersion") or self.rv)
        if sent < self.oldest_watchable:
            gone = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "reason": "Expired", "code": 410, "message": f"too old resource version: {sent}"}
            if not self.gone_as_event:
                return web.json_response(gone, status=410)
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            await resp.prepare(request)
            await resp.write(orjson.dumps({"type": "ERROR", "object": gone}) + b"\n")
            await resp.write_eof()
            return resp
        bookmarks = request.query.get("allowWatchBookmarks") == "true"
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        generation = self._cut[0]

        def ready() -> bool:
            return self._cut[0] != generation or (bool(self.log) and self.log[-1][0] > sent)

        while True:
            async with self._changed:
                await self._changed.wait_for(ready)
            if self._cut[0] != generation:
                # Events logged after the cut are left for the next watch to replay.
                if self._cut[1] and request.transport is not None:
                    request.transport.close()  # mid-stream: the client sees a broken body
                    raise asyncio.CancelledError
                await resp.write_eof()
                return resp
            for rv, kind, obj in self.log:
                if rv > sent and (kind != "BOOKMARK" or bookmarks):
                    await resp.write(orjson.dumps({"type": kind, "object": obj}) + b"\n")
                sent = max(sent, rv)


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(informer_module, "_BACKOFF_START", 0.01)
    monkeypatch.setattr(informer_module, "_BACKOFF_CAP", 0.05)


@pytest.fixture
async def fake() -> AsyncIterator[FakeCollection]:
    return FakeCollection()


@pytest.fixture
async def api(fake: FakeCollection) -> AsyncIterator[ApiClient]:
    app = web.Application()
    app.router.add_get(PATH, fake.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with ApiClient(ClusterConfig(server=f"http://127.0.0.1:{port}")) as client:
            yield client
    finally:
        await fake.cut_watches(hard=False)
        await runner.cleanup()


class Recorder:
    """Every handler call, in order, as ("add" | "update" | "delete", name)."""

    def __init__(self, informer: Informer[Any]) -> None:
        self.events: list[tuple[str, str]] = []
        informer.add_handler(lambda o: self.events.append(("add", o["metadata"]["name"])),
                             self._updated, lambda o: self.events.append(("delete", o["metadata"]["name"])))

    async def _updated(self, _old: Obj, new: Obj) -> None:  # a coroutine handler is awaited in order
        self.events.append(("update", new["metadata"]["name"]))


async def eventually(check: Callable[[], bool], what: str, within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def running(informer: Informer[Any]) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(informer.run())
    try:
        await informer.wait_synced(5)
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_first_list_is_paged_cached_and_handed_to_handlers_before_synced(
        fake: FakeCollection, api: ApiClient) -> None:
    for i in range(5):
        await fake.put(f"s{i}")
    informer: Informer[Obj] = Informer(api, PATH, page_size=2, label_selector="app=web")
    rec = Recorder(informer)
    async with running(informer):
        assert rec.events == [("add", f"s{i}") for i in range(5)]
        assert sorted(informer.cache.keys()) == [f"default/s{i}" for i in range(5)]
        assert informer.last_resource_version == "105"
    lists = fake.list_queries()
    assert [q.get("continue") for q in lists] == [None, "2", "4"]
    assert all(q["limit"] == "2" and q["labelSelector"] == "app=web" for q in lists)


async def test_the_watch_starts_at_the_lists_resource_version_with_bookmarks(
        fake: FakeCollection, api: ApiClient) -> None:
    await fake.put("a")
    informer: Informer[Obj] = Informer(api, PATH, field_selector="metadata.name=a")
    async with running(informer):
        await eventually(lambda: bool(fake.watch_queries()), "the watch")
    watch = fake.watch_queries()[0]
    assert watch["resourceVersion"] == "101"
    assert watch["allowWatchBookmarks"] == "true"
    assert watch["fieldSelector"] == "metadata.name=a"
    assert 300 <= int(watch["timeoutSeconds"]) <= 600


async def test_watch_events_update_the_cache_and_call_handlers_in_order(
        fake: FakeCollection, api: ApiClient) -> None:
    informer: Informer[Obj] = Informer(api, PATH)
    rec = Recorder(informer)
    async with running(informer):
        await fake.put("a")
        await fake.put("a", {"tier": "front"})
        await fake.remove("a")
        await fake.put("b")
        await eventually(lambda: len(rec.events) == 4, "four events")
        assert rec.events == [("add", "a"), ("update", "a"), ("delete", "a"), ("add", "b")]
        assert informer.cache.keys() == ["default/b"]
        assert informer.cache.get("default/a") is None
        assert informer.last_resource_version == "104"


async def test_bookmarks_only_advance_the_resource_version(fake: FakeCollection, api: ApiClient) -> None:
    await fake.put("a")
    informer: Informer[Obj] = Informer(api, PATH)
    rec = Recorder(informer)
    async with running(informer):
        rv = await fake.bookmark()
        await eventually(lambda: informer.last_resource_version == rv, "the bookmark's resourceVersion")
        assert rec.events == [("add", "a")]
        assert len(informer.cache) == 1
        # The next watch resumes from the bookmark, not from the last object event.
        await fake.cut_watches(hard=False)
        await eventually(lambda: len(fake.watch_queries()) == 2, "a second watch")
    assert fake.watch_queries()[1]["resourceVersion"] == rv


@pytest.mark.parametrize("hard", [True, False], ids=["dropped-connection", "watch-timeout"])
async def test_a_watch_that_ends_is_resumed_from_the_last_resource_version_without_relisting(
        fake: FakeCollection, api: ApiClient, hard: bool) -> None:
    informer: Informer[Obj] = Informer(api, PATH)
    rec = Recorder(informer)
    async with running(informer):
        await fake.put("a")
        await eventually(lambda: rec.events == [("add", "a")], "the add")
        await fake.cut_watches(hard=hard)
        await fake.put("b")  # made while the informer may be away: the resumed watch replays it
        await eventually(lambda: ("add", "b") in rec.events, "the add after the watch ended")
        assert len(fake.watch_queries()) == 2
        assert fake.watch_queries()[1]["resourceVersion"] == "101"
    assert rec.events == [("add", "a"), ("add", "b")]
    assert len(fake.list_queries()) == 1 and informer.relists == 1


@pytest.mark.parametrize("as_event", [False, True], ids=["http-410", "error-event-410"])
async def test_410_gone_relists_and_hands_handlers_the_difference(
        fake: FakeCollection, api: ApiClient, as_event: bool) -> None:
    fake.gone_as_event = as_event
    for name in ("stays", "changes", "goes"):
        await fake.put(name)
    informer: Informer[Obj] = Informer(api, PATH)
    rec = Recorder(informer)
    async with running(informer):
        rec.events.clear()
        # Changes whose events are lost to compaction while the watch is down.
        await fake.put("changes", {"v": "2"}, silent=True)
        await fake.remove("goes", silent=True)
        await fake.put("new", silent=True)
        fake.compact()
        await fake.cut_watches(hard=True)
        await eventually(lambda: informer.relists == 2, "the relist")
        assert sorted(rec.events) == [("add", "new"), ("delete", "goes"), ("update", "changes")]
        assert rec.events[0] == ("delete", "goes")  # deletes first: no stale object outlives a relist
        assert sorted(informer.cache.keys()) == ["default/changes", "default/new", "default/stays"]
        assert informer.last_resource_version == str(fake.rv)
        # And the informer watches on from the relist.
        await fake.put("later")
        await eventually(lambda: ("add", "later") in rec.events, "an add after the relist")


async def test_an_index_follows_adds_updates_and_deletes(fake: FakeCollection, api: ApiClient) -> None:
    await fake.put("web-1", {"app": "web"})
    await fake.put("db-1", {"app": "db"})
    informer: Informer[Obj] = Informer(api, PATH)
    informer.cache.add_index("app", lambda o: [o["metadata"]["labels"].get("app", "")])

    def names(app: str) -> list[str]:
        return [o["metadata"]["name"] for o in informer.cache.by_index("app", app)]

    async with running(informer):
        assert (names("web"), names("db")) == (["web-1"], ["db-1"])
        await fake.put("web-2", {"app": "web"})
        await fake.put("db-1", {"app": "web"})
        await eventually(lambda: names("web") == ["db-1", "web-1", "web-2"], "the index to follow")
        assert names("db") == []
        await fake.remove("web-1")
        await eventually(lambda: names("web") == ["db-1", "web-2"], "the delete to leave the index")
    # An index added to a filled cache indexes what is there.
    informer.cache.add_index("name", lambda o: [o["metadata"]["name"]])
    assert [o["metadata"]["name"] for o in informer.cache.by_index("name", "web-2")] == ["web-2"]


async def test_the_cache_holds_decoded_objects(fake: FakeCollection, api: ApiClient) -> None:
    await fake.put("a", {"app": "x"})
    informer: Informer[tuple[str, str]] = Informer(
        api, PATH, decode=lambda raw: (raw["metadata"]["name"], raw["metadata"]["labels"]["app"]))
    async with running(informer):
        assert informer.cache.get("default/a") == ("a", "x")


async def test_an_object_that_cannot_be_decoded_is_skipped_and_logged(
        fake: FakeCollection, api: ApiClient, caplog: pytest.LogCaptureFixture) -> None:
    await fake.put("good", {"app": "x"})
    await fake.put("bad")
    informer: Informer[str] = Informer(api, PATH, decode=lambda raw: raw["metadata"]["labels"]["app"])
    async with running(informer):
        assert informer.cache.keys() == ["default/good"]
    assert any("cannot decode default/bad" in r.getMessage() for r in caplog.records)


async def test_failing_handlers_are_logged_once_and_never_stop_the_informer(
        fake: FakeCollection, api: ApiClient, caplog: pytest.LogCaptureFixture) -> None:
    informer: Informer[Obj] = Informer(api, PATH)

    def broken_add(_obj: Obj) -> None:
        raise RuntimeError("sync handler bug")

    async def broken_update(_old: Obj, _new: Obj) -> None:
        raise RuntimeError("async handler bug")

    informer.add_handler(on_add=broken_add, on_update=broken_update)
    rec = Recorder(informer)
    with caplog.at_level(logging.ERROR, logger="netplane.client.informer"):
        async with running(informer) as task:
            await fake.put("a")
            await fake.put("a", {"v": "2"})
            await fake.put("b")
            await eventually(lambda: len(rec.events) == 3, "the second handler to see every event")
            assert not task.done()
    assert rec.events == [("add", "a"), ("update", "a"), ("add", "b")]
    failures = [r for r in caplog.records if "handler" in r.getMessage()]
    assert [r.getMessage().split(" handler ")[0] for r in failures] == [
        f"{PATH}: add", f"{PATH}: update", f"{PATH}: add"]
    assert "default/a" in failures[0].getMessage() and failures[0].exc_info is not None


async def test_a_handler_added_after_sync_first_gets_the_cache_as_adds(
        fake: FakeCollection, api: ApiClient) -> None:
    await fake.put("a")
    await fake.put("b")
    informer: Informer[Obj] = Informer(api, PATH)
    async with running(informer):
        rec = Recorder(informer)
        await fake.put("c")
        await fake.put("a", {"v": "2"})
        await eventually(lambda: len(rec.events) == 4, "the replay and the new events")
    assert rec.events == [("add", "a"), ("add", "b"), ("add", "c"), ("update", "a")]


async def test_failed_requests_are_retried_with_growing_capped_backoff_then_reset(
        fake: FakeCollection, api: ApiClient) -> None:
    fake.fail_lists = [500]
    fake.fail_watches = [500, 503, 500, 500, 500]
    informer: Informer[Obj] = Informer(api, PATH)
    rec = Recorder(informer)
    async with running(informer):
        await fake.put("a")
        await eventually(lambda: rec.events == [("add", "a")], "the add after the failures")
    watches = [t for t, q in fake.requests if q.get("watch")]
    gaps = [b - a for a, b in itertools.pairwise(watches)]
    # 0.01, 0.02, 0.04, then capped at 0.05; each sleep is jittered by ±20%.
    assert gaps[0] >= 0.008 and gaps[2] >= 0.032 and gaps[4] >= 0.04
    assert max(gaps) < 1.0
    assert len(fake.list_queries()) == 2  # the failed list was retried, not skipped


async def test_a_quiet_watch_that_the_server_keeps_ending_backs_off_instead_of_spinning(
        fake: FakeCollection, api: ApiClient) -> None:
    informer: Informer[Obj] = Informer(api, PATH)
    async with running(informer):
        for _ in range(5):
            before = len(fake.watch_queries())
            await eventually(lambda before=before: len(fake.watch_queries()) > before, "a watch")
            await fake.cut_watches(hard=False)
        await asyncio.sleep(0.2)
    # Without back-off an immediately ending watch would be retried thousands of times.
    assert len(fake.watch_queries()) < 30


async def test_errors_carry_the_status_or_the_raw_body(fake: FakeCollection, api: ApiClient) -> None:
    fake.fail_lists = [500]
    with pytest.raises(ApiError) as info:
        await api.list(PATH)
    assert (info.value.code, info.value.message) == (500, "list exploded")
    fake.compact()
    fake.rv += 1
    with pytest.raises(ApiError) as info:
        async for _ in api.watch(PATH, {"resourceVersion": "1"}):
            pass
    assert (info.value.code, info.value.reason) == (410, "Expired")
    assert info.value.status["message"] == "too old resource version: 1"
