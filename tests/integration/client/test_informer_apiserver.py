"""The informer against a real apiserver: handlers and cache follow the API, a restart is
resumed from the last resourceVersion, and a compacted one is relisted without losing a
delete."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from control.apiserver.process import ApiServerProcess
from netplane.client.informer import Informer
from netplane.client.rest import ApiClient, ApiError, resource_path
from netplane.model import Service, decode

SVC = resource_path("v1", "services", "default")


def _svc(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"app": name}}, "spec": {"ports": [{"port": 80}]}}


async def eventually(check: Callable[[], bool], what: str, within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


@pytest.fixture
def server(tmp_path: Path) -> ApiServerProcess:
    # Compaction every half second, so a watcher that was away comes back to a 410.
    srv = ApiServerProcess(tmp_path / "data")
    srv.extra_args = ["--store", f"sqlite:///{srv.data_dir / 'state.db'}?compact_interval=0.5"]
    srv.start()
    yield srv  # type: ignore[misc]
    srv.stop()


@pytest.fixture
async def api(server: ApiServerProcess) -> AsyncIterator[ApiClient]:
    async with ApiClient.from_kubeconfig(server.kubeconfig) as client:
        yield client


class Recorder:
    def __init__(self, informer: Informer[Any]) -> None:
        self.events: list[tuple[str, str]] = []
        informer.add_handler(lambda o: self.events.append(("add", o.metadata.name)),
                             lambda _old, new: self.events.append(("update", new.metadata.name)),
                             self._deleted)

    async def _deleted(self, obj: Service) -> None:  # coroutine handlers are awaited in order
        self.events.append(("delete", obj.metadata.name))


@contextlib.asynccontextmanager
async def running(informer: Informer[Any]) -> AsyncIterator[None]:
    task = asyncio.create_task(informer.run())
    try:
        await informer.wait_synced(30)
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_handlers_and_the_indexed_cache_follow_the_api(api: ApiClient) -> None:
    informer: Informer[Service] = Informer(api, "/api/v1/services", decode=lambda r: decode(Service, r))
    informer.cache.add_index("app", lambda s: [s.metadata.labels.get("app", "")])
    rec = Recorder(informer)
    async with running(informer):
        assert ("add", "kubernetes") in rec.events
        await api.create(SVC, _svc("web"))
        await api.patch(f"{SVC}/web", {"metadata": {"labels": {"tier": "front"}}})
        await eventually(lambda: ("update", "web") in rec.events, "the update")
        cached = informer.cache.get("default/web")
        assert cached is not None and cached.metadata.labels["tier"] == "front"
        current = await api.get(f"{SVC}/web")
        current["metadata"]["annotations"] = {"note": "put"}
        await api.update(f"{SVC}/web", current)
        await eventually(lambda: (informer.cache.get("default/web") or cached).metadata.annotations
                         == {"note": "put"}, "the PUT in the cache")
        # Bookmarks may carry the store's newer revision; never an older one than the PUT's.
        put_rv = (await api.get(f"{SVC}/web"))["metadata"]["resourceVersion"]
        assert int(informer.last_resource_version) >= int(put_rv)
        assert [s.metadata.name for s in informer.cache.by_index("app", "web")] == ["web"]
        await api.delete(f"{SVC}/web")
        await eventually(lambda: ("delete", "web") in rec.events, "the delete")
        assert informer.cache.get("default/web") is None
        assert informer.cache.by_index("app", "web") == []


async def test_a_failing_handler_does_not_stop_the_informer(api: ApiClient) -> None:
    informer: Informer[dict[str, Any]] = Informer(api, "/api/v1/services", label_selector="app=x")
    seen: list[str] = []

    def broken(_obj: object) -> None:
        raise RuntimeError("handler bug")

    informer.add_handler(on_add=broken)
    informer.add_handler(on_add=lambda o: seen.append(o["metadata"]["name"]))
    async with running(informer):
        await api.create(SVC, _svc("x"))
        await eventually(lambda: seen == ["x"], "the second handler to see the add")


async def test_a_restart_of_the_apiserver_is_resumed_without_a_relist(
        server: ApiServerProcess, api: ApiClient) -> None:
    informer: Informer[Service] = Informer(api, "/api/v1/services", decode=lambda r: decode(Service, r))
    rec = Recorder(informer)
    async with running(informer):
        server.stop()
        server.start()
        await api.create(SVC, _svc("after-restart"))
        await eventually(lambda: ("add", "after-restart") in rec.events, "the add after a restart")
    assert informer.relists == 1


async def test_a_compacted_resource_version_is_relisted_without_losing_a_delete(api: ApiClient) -> None:
    informer: Informer[Service] = Informer(api, "/api/v1/services", decode=lambda r: decode(Service, r))
    rec = Recorder(informer)
    await api.create(SVC, _svc("stays"))
    await api.create(SVC, _svc("goes"))
    async with running(informer):
        pass  # synced, then stopped: the cache and resourceVersion stay
    seen_at = informer.last_resource_version
    await api.delete(f"{SVC}/goes")
    for i in range(3):
        await api.create(SVC, _svc(f"churn-{i}"))

    async def compacted() -> bool:
        try:
            await api.list("/api/v1/services", {"resourceVersion": seen_at,
                                                "resourceVersionMatch": "Exact"})
        except ApiError as exc:
            return exc.code == 410
        return False

    for _ in range(200):
        if await compacted():
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail(f"resourceVersion {seen_at} was never compacted")
    async with running(informer):
        await eventually(lambda: ("delete", "goes") in rec.events, "the delete, seen by a relist")
        await eventually(lambda: len(informer.cache) == 5, "the cache to equal the server")
    assert informer.relists == 2
    assert informer.cache.get("default/stays") is not None


async def test_the_first_list_is_paged_through_continue_tokens(api: ApiClient) -> None:
    for i in range(7):
        await api.create(SVC, _svc(f"paged-{i}"))
    informer: Informer[dict[str, Any]] = Informer(api, "/api/v1/services", page_size=2)
    seen: list[str] = []
    informer.add_handler(on_add=lambda o: seen.append(o["metadata"]["name"]))
    async with running(informer):
        assert sorted(seen) == sorted(["kubernetes", *(f"paged-{i}" for i in range(7))])
        assert len(informer.cache) == 8


async def test_a_label_selected_informer_sees_objects_enter_and_leave_its_selection(api: ApiClient) -> None:
    informer: Informer[dict[str, Any]] = Informer(api, SVC, label_selector="tier=front")
    events: list[tuple[str, str]] = []
    informer.add_handler(lambda o: events.append(("add", o["metadata"]["name"])),
                         lambda _o, n: events.append(("update", n["metadata"]["name"])),
                         lambda o: events.append(("delete", o["metadata"]["name"])))
    await api.create(SVC, _svc("web"))
    async with running(informer):
        assert len(informer.cache) == 0
        await api.patch(f"{SVC}/web", {"metadata": {"labels": {"tier": "front"}}})
        await eventually(lambda: events == [("add", "web")], "the object to enter the selection")
        await api.patch(f"{SVC}/web", {"metadata": {"labels": {"tier": None}}})
        await eventually(lambda: events == [("add", "web"), ("delete", "web")],
                         "the object to leave the selection")
        assert informer.cache.keys() == []


async def test_api_errors_carry_the_servers_status_and_discovery_names_resources(api: ApiClient) -> None:
    with pytest.raises(ApiError) as info:
        await api.get(f"{SVC}/missing")
    assert (info.value.code, info.value.reason) == (404, "NotFound")
    assert info.value.status["kind"] == "Status"
    await api.create(SVC, _svc("dup"))
    with pytest.raises(ApiError) as info:
        await api.create(SVC, _svc("dup"))
    assert (info.value.code, info.value.reason) == (409, "AlreadyExists")
    refs = await api.discover()
    assert refs["svc"] == refs["services"] == refs["service"] == refs["Service"]
    assert (refs["svc"].group_version, refs["svc"].namespaced) == ("v1", True)
    slices = refs["endpointslices"]
    assert resource_path(slices.group_version, slices.plural, "x") == \
        "/apis/discovery.k8s.io/v1/namespaces/x/endpointslices"
    assert refs["nodes"].namespaced is False
