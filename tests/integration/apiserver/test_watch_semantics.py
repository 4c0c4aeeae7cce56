"""Watch, list and Table semantics, against the app in-process over a real SQLite store
(so that the test can compact the store and read its revision)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from control.apiserver.app import create_app
from control.apiserver.config import ApiConfig
from control.store import Store, open_store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await open_store(f"sqlite:///{tmp_path / 'state.db'}")
    yield s
    await s.close()


@pytest.fixture
async def api(store: Store) -> AsyncIterator[TestClient]:
    app = create_app(store, ApiConfig(bookmark_interval=0.2))
    async with TestClient(TestServer(app)) as client:
        yield client


def _cm(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": labels or {}}, "data": {"k": name}}


async def _events(resp: Any, count: int) -> list[dict[str, Any]]:
    out = []
    async for line in resp.content:
        out.append(orjson.loads(line))
        if len(out) == count:
            break
    return out


async def test_a_watch_from_a_compacted_revision_gets_a_410_error_event(
        api: TestClient, store: Store) -> None:
    first = await (await api.post("/api/v1/namespaces/default/configmaps", json=_cm("a"))).json()
    old_rv = first["metadata"]["resourceVersion"]
    for i in range(5):
        await api.post("/api/v1/namespaces/default/configmaps", json=_cm(f"b{i}"))
    await store.compact(await store.current_revision())
    resp = await api.get(f"/api/v1/namespaces/default/configmaps?watch=1&resourceVersion={old_rv}")
    assert resp.status == 200
    (event,) = await _events(resp, 1)
    assert event["type"] == "ERROR"
    assert event["object"]["code"] == 410
    assert event["object"]["reason"] == "Expired"


async def test_a_list_at_a_compacted_revision_is_410(api: TestClient, store: Store) -> None:
    for i in range(4):
        await api.post("/api/v1/namespaces/default/configmaps", json=_cm(f"c{i}"))
    page = await (await api.get("/api/v1/namespaces/default/configmaps?limit=2")).json()
    token = page["metadata"]["continue"]
    await api.post("/api/v1/namespaces/default/configmaps", json=_cm("later"))
    await store.compact(await store.current_revision())
    resp = await api.get(f"/api/v1/namespaces/default/configmaps?limit=2&continue={token}")
    assert resp.status == 410
    assert (await resp.json())["reason"] == "Expired"


async def test_a_continued_list_is_consistent_with_its_first_page(api: TestClient) -> None:
    for i in range(5):
        await api.post("/api/v1/namespaces/default/configmaps", json=_cm(f"d{i}"))
    page = await (await api.get("/api/v1/namespaces/default/configmaps?limit=2")).json()
    assert page["metadata"]["remainingItemCount"] == 3
    await api.post("/api/v1/namespaces/default/configmaps", json=_cm("d9-new"))
    rest = await (await api.get("/api/v1/namespaces/default/configmaps?limit=10&continue="
                                + page["metadata"]["continue"])).json()
    names = [o["metadata"]["name"] for o in page["items"] + rest["items"]]
    assert names == [f"d{i}" for i in range(5)]  # the later create is not in this list


async def test_bookmarks_carry_the_latest_resource_version(api: TestClient) -> None:
    created = await (await api.post("/api/v1/namespaces/default/configmaps",
                                    json=_cm("bm"))).json()
    rv = created["metadata"]["resourceVersion"]
    resp = await api.get("/api/v1/namespaces/default/configmaps?watch=1&allowWatchBookmarks=true"
                         f"&resourceVersion={rv}&timeoutSeconds=5")
    await api.put("/api/v1/namespaces/default/configmaps/bm", json={**created, "data": {"k": "2"}})
    modified, bookmark = await _events(resp, 2)
    assert modified["type"] == "MODIFIED"
    assert bookmark["type"] == "BOOKMARK"
    assert bookmark["object"]["metadata"]["resourceVersion"] == \
        modified["object"]["metadata"]["resourceVersion"]


async def test_a_label_filtered_watch_sees_objects_enter_and_leave_the_selection(
        api: TestClient) -> None:
    list_rv = (await (await api.get("/api/v1/namespaces/default/configmaps")).json())[
        "metadata"]["resourceVersion"]
    resp = await api.get("/api/v1/namespaces/default/configmaps?watch=1&labelSelector=tier%3Dfront"
                         f"&resourceVersion={list_rv}&timeoutSeconds=5")
    await api.post("/api/v1/namespaces/default/configmaps", json=_cm("x", {"tier": "back"}))
    await api.patch("/api/v1/namespaces/default/configmaps/x",
                    json={"metadata": {"labels": {"tier": "front"}}},
                    headers={"Content-Type": "application/merge-patch+json"})
    await api.patch("/api/v1/namespaces/default/configmaps/x",
                    json={"metadata": {"labels": {"tier": "back"}}},
                    headers={"Content-Type": "application/merge-patch+json"})
    events = await _events(resp, 2)
    assert [e["type"] for e in events] == ["ADDED", "DELETED"]


async def test_a_watch_without_resource_version_starts_with_the_current_state(
        api: TestClient) -> None:
    await api.post("/api/v1/namespaces/default/configmaps", json=_cm("s1"))
    resp = await api.get("/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=5")
    (event,) = await _events(resp, 1)
    assert event["type"] == "ADDED"
    assert event["object"]["metadata"]["name"] == "s1"


async def test_timeout_seconds_ends_the_watch(api: TestClient) -> None:
    resp = await api.get("/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=1"
                         "&timeoutSeconds=1")
    body = await resp.read()  # returns once the server closes the stream
    assert body == b""


async def test_tables_have_kubectl_columns(api: TestClient) -> None:
    resp = await api.get("/api/v1/namespaces/default/services",
                         headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})
    table = await resp.json()
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0] == [
        "Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age"]
    (row,) = table["rows"]
    assert row["cells"][:3] == ["kubernetes", "ClusterIP", "10.96.0.1"]
    assert row["object"]["kind"] == "PartialObjectMetadata"


async def test_discovery_lists_groups_and_resources(api: TestClient) -> None:
    groups = await (await api.get("/apis")).json()
    assert {g["name"] for g in groups["groups"]} == {
        "apps", "discovery.k8s.io", "networking.k8s.io", "coordination.k8s.io", "gateway.networking.k8s.io"}
    core = await (await api.get("/api/v1")).json()
    pods = next(r for r in core["resources"] if r["name"] == "pods")
    assert pods["namespaced"] is True
    assert "watch" in pods["verbs"]
    assert pods["shortNames"] == ["po"]
    assert any(r["name"] == "pods/binding" for r in core["resources"])


async def test_metrics_count_requests_by_verb_and_resource(api: TestClient) -> None:
    await api.get("/api/v1/namespaces/default/services")
    text = await (await api.get("/metrics")).text()
    assert 'apiserver_request_total{code="200",resource="services",verb="LIST"}' in text
    assert "apiserver_storage_revision" in text
    assert 'apiserver_storage_objects{resource="namespaces"} 4.0' in text


async def test_deleting_a_namespace_removes_its_contents(api: TestClient) -> None:
    await api.post("/api/v1/namespaces", json={"metadata": {"name": "gone"}})
    await api.post("/api/v1/namespaces/gone/configmaps", json=_cm("c"))
    resp = await api.delete("/api/v1/namespaces/gone")
    assert (await resp.json())["status"]["phase"] == "Terminating"
    created = await api.post("/api/v1/namespaces/gone/configmaps", json=_cm("late"))
    assert created.status == 403
    for _ in range(50):
        if (await api.get("/api/v1/namespaces/gone")).status == 404:
            break
        await asyncio.sleep(0.1)
    assert (await api.get("/api/v1/namespaces/gone")).status == 404
    assert (await api.get("/api/v1/namespaces/gone/configmaps/c")).status == 404


async def test_finalizers_hold_a_deleted_object_until_removed(api: TestClient) -> None:
    cm = _cm("held")
    cm["metadata"]["finalizers"] = ["example.com/hold"]
    await api.post("/api/v1/namespaces/default/configmaps", json=cm)
    resp = await api.delete("/api/v1/namespaces/default/configmaps/held")
    assert resp.status == 200  # Kubernetes answers 200 for a held deletion too
    held = await (await api.get("/api/v1/namespaces/default/configmaps/held")).json()
    assert held["metadata"]["deletionTimestamp"]
    await api.patch("/api/v1/namespaces/default/configmaps/held",
                    json={"metadata": {"finalizers": None}},
                    headers={"Content-Type": "application/merge-patch+json"})
    assert (await api.get("/api/v1/namespaces/default/configmaps/held")).status == 404


async def test_scheduled_pods_are_deleted_gracefully(api: TestClient) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]}}
    await api.post("/api/v1/namespaces/default/pods", json=pod)
    resp = await api.delete("/api/v1/namespaces/default/pods/p")
    body = await resp.json()
    assert body["metadata"]["deletionGracePeriodSeconds"] == 30
    assert (await api.get("/api/v1/namespaces/default/pods/p")).status == 200
    resp = await api.delete("/api/v1/namespaces/default/pods/p?gracePeriodSeconds=0")
    assert resp.status == 200
    assert (await api.get("/api/v1/namespaces/default/pods/p")).status == 404


async def test_an_update_that_changes_nothing_keeps_the_resource_version(api: TestClient) -> None:
    created = await (await api.post("/api/v1/namespaces/default/configmaps",
                                    json=_cm("same"))).json()
    again = await (await api.put("/api/v1/namespaces/default/configmaps/same",
                                 json=created)).json()
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


async def test_service_allocations_survive_a_restart_without_leaks(
        tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 's.db'}")
    app = create_app(store)
    async with TestClient(TestServer(app)) as api:
        svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "np"},
               "spec": {"type": "NodePort", "ports": [{"port": 80}], "selector": {"a": "b"}}}
        created = await (await api.post("/api/v1/namespaces/default/services", json=svc)).json()
    # A leaked reservation, as a crash between reserving and storing would leave.
    await store.create("/registry/ipaddresses/10.96.7.7", b'{"owner": "default/ghost"}')
    await store.close()
    store = await open_store(f"sqlite:///{tmp_path / 's.db'}")
    app = create_app(store)
    async with TestClient(TestServer(app)) as api:
        dup = {**svc, "metadata": {"name": "np2"},
               "spec": {**svc["spec"], "clusterIP": created["spec"]["clusterIP"]}}
        resp = await api.post("/api/v1/namespaces/default/services", json=dup)
        assert resp.status == 422
        ghost = {**svc, "metadata": {"name": "np3"},
                 "spec": {"type": "ClusterIP", "clusterIP": "10.96.7.7", "ports": [{"port": 80}]}}
        assert (await api.post("/api/v1/namespaces/default/services", json=ghost)).status == 201
    await store.close()
