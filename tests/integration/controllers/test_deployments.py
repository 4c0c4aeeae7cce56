"""Deployments, ReplicaSets and the garbage collector against a real apiserver, with the
controllers running in-process and the kubelets played by a loop that reports pods
ready through the status subresource. No timing assertions: every wait polls with a
generous deadline."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from control.controllers.manager import ControllerManager
from control.controllers.rollout import HASH_LABEL, REVISION_ANNOTATION
from netplane.client.rest import ApiClient, ApiError, resource_path

from .conftest import Kube, eventually

StartManager = Callable[..., Awaitable[ControllerManager]]
CONTROLLERS = ["replicaset", "deployment", "garbagecollector"]


def deployment_body(name: str, replicas: int, *, args: list[str] | None = None,
                    strategy: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    body_spec: dict[str, Any] = {
        "replicas": replicas, "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}},
                     "spec": {"containers": [{"name": "app", "image": "agnhost",
                                              "args": args or ["serve-hostname"]}]}}, **spec}
    if strategy is not None:
        body_spec["strategy"] = strategy
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": body_spec}


class Kubelets:
    """Reports every pod of the namespace Running and Ready, `delay` seconds after it was
    first seen (unless `hold` is set), as kubelets would."""

    def __init__(self, api: ApiClient, namespace: str, delay: float = 0.0) -> None:
        self.api = api
        self.ns = namespace
        self.delay = delay
        self.hold = False
        self._first_seen: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            for pod in (await self.api.list(resource_path("v1", "pods", self.ns)))["items"]:
                meta = pod["metadata"]
                if meta.get("deletionTimestamp") or _ready(pod) or self.hold:
                    continue
                first = self._first_seen.setdefault(meta["uid"], loop.time())
                if loop.time() - first >= self.delay:
                    await self._report_ready(meta["name"])
            await asyncio.sleep(0.05)

    async def _report_ready(self, name: str) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        status = {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": now}]}
        with contextlib.suppress(ApiError):  # deleted meanwhile
            await self.api.patch(resource_path("v1", "pods", self.ns, name, "status"), {"status": status})


def _ready(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


class Cluster:
    """Reads of one namespace, as a user would make them."""

    def __init__(self, kube: Kube, kubelets: Kubelets) -> None:
        self.api = kube.api
        self.ns = kube.ns
        self.kubelets = kubelets

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self.api.create(resource_path("apps/v1", "deployments", self.ns), body)

    async def deployment(self, name: str) -> dict[str, Any]:
        return await self.api.get(resource_path("apps/v1", "deployments", self.ns, name))

    async def patch(self, name: str, patch: dict[str, Any]) -> None:
        await self.api.patch(resource_path("apps/v1", "deployments", self.ns, name), patch)

    async def replicasets(self, app: str | None = None) -> list[dict[str, Any]]:
        params = {"labelSelector": f"app={app}"} if app else None
        got = await self.api.list(resource_path("apps/v1", "replicasets", self.ns), params)
        return sorted(got["items"], key=lambda r: int(r["metadata"]["annotations"][REVISION_ANNOTATION]))

    async def pods(self, app: str | None = None) -> list[dict[str, Any]]:
        params = {"labelSelector": f"app={app}"} if app else None
        got = await self.api.list(resource_path("v1", "pods", self.ns), params)
        return [p for p in got["items"] if not p["metadata"].get("deletionTimestamp")]

    async def rolled_out(self, name: str, replicas: int) -> bool:
        """The Deployment reports a finished rollout of `replicas` ready pods."""
        d = await self.deployment(name)
        st = d.get("status") or {}
        progressing = next((c for c in st.get("conditions", []) if c["type"] == "Progressing"), {})
        return (st.get("observedGeneration") == d["metadata"]["generation"]
                and st.get("replicas", 0) == st.get("updatedReplicas", 0) == replicas
                and st.get("availableReplicas", 0) == replicas
                and progressing.get("reason") == "NewReplicaSetAvailable"
                and len(await self.pods(name)) == replicas)


@pytest.fixture
async def cluster(kube: Kube, start_manager: StartManager) -> AsyncIterator[Cluster]:
    await start_manager(CONTROLLERS)
    kubelets = Kubelets(kube.api, kube.ns)
    kubelets.start()
    try:
        yield Cluster(kube, kubelets)
    finally:
        await kubelets.stop()


def owner_uids(obj: dict[str, Any]) -> list[str]:
    return [r["uid"] for r in obj["metadata"].get("ownerReferences") or [] if r.get("controller")]


async def test_a_deployment_runs_its_replicas_through_one_replicaset(cluster: Cluster) -> None:
    d = await cluster.create(deployment_body("web", 3))
    await eventually(lambda: cluster.rolled_out("web", 3), "3 ready replicas rolled out")
    [rs] = await cluster.replicasets("web")
    pod_hash = rs["metadata"]["labels"][HASH_LABEL]
    assert rs["metadata"]["name"] == f"web-{pod_hash}"
    assert owner_uids(rs) == [d["metadata"]["uid"]]
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", HASH_LABEL: pod_hash}
    assert rs["spec"]["template"]["metadata"]["labels"] == {"app": "web", HASH_LABEL: pod_hash}
    assert rs["spec"]["replicas"] == 3 and rs["status"]["readyReplicas"] == 3
    pods = await cluster.pods("web")
    assert {owner_uids(p)[0] for p in pods} == {rs["metadata"]["uid"]}
    assert all(p["metadata"]["name"].startswith(f"web-{pod_hash}-") for p in pods)
    assert all(p["metadata"]["labels"][HASH_LABEL] == pod_hash for p in pods)
    d = await cluster.deployment("web")
    assert d["metadata"]["annotations"][REVISION_ANNOTATION] == "1"
    assert rs["metadata"]["annotations"][REVISION_ANNOTATION] == "1"
    conditions = {c["type"]: (c["status"], c["reason"]) for c in d["status"]["conditions"]}
    assert conditions == {"Available": ("True", "MinimumReplicasAvailable"),
                          "Progressing": ("True", "NewReplicaSetAvailable")}
    assert d["status"]["unavailableReplicas"] == 0


async def test_scaling_up_and_down_is_followed_by_the_pods(cluster: Cluster) -> None:
    await cluster.create(deployment_body("web", 3))
    await eventually(lambda: cluster.rolled_out("web", 3), "3 replicas")
    await cluster.patch("web", {"spec": {"replicas": 5}})
    await eventually(lambda: cluster.rolled_out("web", 5), "scaled to 5")
    await cluster.patch("web", {"spec": {"replicas": 1}})
    await eventually(lambda: cluster.rolled_out("web", 1), "scaled to 1")
    [rs] = await cluster.replicasets("web")
    assert rs["spec"]["replicas"] == 1


async def test_a_deleted_pod_is_replaced(cluster: Cluster) -> None:
    await cluster.create(deployment_body("web", 2))
    await eventually(lambda: cluster.rolled_out("web", 2), "2 replicas")
    victim = (await cluster.pods("web"))[0]["metadata"]["name"]
    await cluster.api.delete(resource_path("v1", "pods", cluster.ns, victim))

    async def replaced() -> bool:
        names = [p["metadata"]["name"] for p in await cluster.pods("web")]
        return len(names) == 2 and victim not in names

    await eventually(replaced, "a replacement pod")
    await eventually(lambda: cluster.rolled_out("web", 2), "2 ready replicas again")


class Monitor:
    """Samples the namespace during a rollout: the sum of the ReplicaSets' replicas and
    the number of ready pods, at consistent snapshots of the apiserver."""

    def __init__(self, cluster: Cluster, app: str) -> None:
        self.cluster = cluster
        self.app = app
        self.max_total = 0
        self.min_ready: int | None = None
        self.overlap = False  # old and new pods alive at once
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Monitor:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while True:
            rses = await self.cluster.replicasets(self.app)
            self.max_total = max(self.max_total, sum(r["spec"]["replicas"] for r in rses))
            pods = await self.cluster.pods(self.app)
            ready = sum(1 for p in pods if _ready(p))
            self.min_ready = ready if self.min_ready is None else min(self.min_ready, ready)
            if len({p["metadata"]["labels"].get(HASH_LABEL) for p in pods}) > 1:
                self.overlap = True
            await asyncio.sleep(0.03)


async def test_a_template_change_rolls_within_max_surge_and_max_unavailable(cluster: Cluster) -> None:
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    await cluster.create(deployment_body("web", 4, strategy=strategy))
    await eventually(lambda: cluster.rolled_out("web", 4), "4 replicas")
    [old] = await cluster.replicasets("web")
    cluster.kubelets.delay = 0.3  # new pods take a while to become ready: several steps
    async with Monitor(cluster, "web") as monitor:
        await cluster.patch("web", {"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "agnhost", "args": ["netexec"]}]}}}})
        await eventually(lambda: cluster.rolled_out("web", 4), "the new template rolled out", timeout=60)
    assert monitor.max_total <= 4 + 1, "maxSurge exceeded"
    assert monitor.min_ready is not None and monitor.min_ready >= 4 - 0, "maxUnavailable exceeded"
    assert monitor.overlap  # a rolling update: old and new pods served side by side
    old_now, new = await cluster.replicasets("web")
    assert old_now["metadata"]["name"] == old["metadata"]["name"]
    assert old_now["spec"]["replicas"] == 0 and new["spec"]["replicas"] == 4
    assert new["metadata"]["annotations"][REVISION_ANNOTATION] == "2"
    assert (await cluster.deployment("web"))["metadata"]["annotations"][REVISION_ANNOTATION] == "2"
    assert {p["metadata"]["labels"][HASH_LABEL] for p in await cluster.pods("web")} == {
        new["metadata"]["labels"][HASH_LABEL]}


async def test_recreate_stops_every_old_pod_before_starting_a_new_one(cluster: Cluster) -> None:
    await cluster.create(deployment_body("web", 3, strategy={"type": "Recreate"}))
    await eventually(lambda: cluster.rolled_out("web", 3), "3 replicas")
    cluster.kubelets.delay = 0.5  # new pods stay unready a while: the gap is there to see
    async with Monitor(cluster, "web") as monitor:
        await cluster.patch("web", {"spec": {"template": {"metadata": {"labels": {"app": "web", "v": "2"}}}}})
        await eventually(lambda: cluster.rolled_out("web", 3), "the new template rolled out")
    assert not monitor.overlap
    assert monitor.min_ready == 0  # Recreate: there is a moment without pods
    rses = await cluster.replicasets("web")
    assert [r["spec"]["replicas"] for r in rses] == [0, 3]


async def test_old_replicasets_beyond_the_revision_history_limit_are_deleted(cluster: Cluster) -> None:
    await cluster.create(deployment_body("web", 1, revisionHistoryLimit=1))
    await eventually(lambda: cluster.rolled_out("web", 1), "1 replica")
    for version in ("2", "3", "4"):
        await cluster.patch("web", {"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "agnhost", "args": ["serve-hostname", version]}]}}}})
        await eventually(lambda: cluster.rolled_out("web", 1), f"version {version} rolled out")

    async def pruned() -> list[str] | None:
        rses = await cluster.replicasets("web")
        revisions = [r["metadata"]["annotations"][REVISION_ANNOTATION] for r in rses]
        return revisions if revisions == ["3", "4"] else None

    await eventually(pruned, "only the newest old ReplicaSet kept")


async def test_deleting_a_deployment_deletes_its_replicasets_and_pods(cluster: Cluster) -> None:
    await cluster.create(deployment_body("web", 3))
    await eventually(lambda: cluster.rolled_out("web", 3), "3 replicas")
    await cluster.create(deployment_body("other", 1))
    await eventually(lambda: cluster.rolled_out("other", 1), "the other Deployment")
    await cluster.api.delete(resource_path("apps/v1", "deployments", cluster.ns, "web"))

    async def collected() -> bool:
        return not await cluster.replicasets("web") and not await cluster.pods("web")

    await eventually(collected, "ReplicaSets and Pods of the deleted Deployment gone")
    assert len(await cluster.pods("other")) == 1  # someone else's are left alone


# --- the ReplicaSet and the garbage collector on their own ---------------------------------


def pod_body(name: str, labels: dict[str, str], owners: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": labels}
    if owners:
        meta["ownerReferences"] = owners
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"containers": [{"name": "app", "image": "agnhost"}]}}


def replicaset_body(name: str, replicas: int) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "app", "image": "agnhost"}]}}}}


async def test_a_replicaset_adopts_a_matching_orphan_and_releases_a_relabeled_pod(
        kube: Kube, start_manager: StartManager) -> None:
    api, ns = kube.api, kube.ns
    await api.create(resource_path("v1", "pods", ns), pod_body("orphan", {"app": "rs"}))
    await start_manager(["replicaset"])
    rs = await api.create(resource_path("apps/v1", "replicasets", ns), replicaset_body("rs", 2))

    async def pods() -> list[dict[str, Any]]:
        return (await api.list(resource_path("v1", "pods", ns)))["items"]

    async def adopted() -> bool:
        items = await pods()
        mine = [p for p in items if owner_uids(p) == [rs["metadata"]["uid"]]]
        return len(items) == 2 and len(mine) == 2 and "orphan" in {p["metadata"]["name"] for p in mine}

    await eventually(adopted, "the orphan adopted and only one pod created")
    await api.patch(resource_path("v1", "pods", ns, "orphan"), {"metadata": {"labels": {"app": "gone"}}})

    async def released() -> bool:
        items = {p["metadata"]["name"]: p for p in await pods()}
        mine = [p for p in items.values() if owner_uids(p) == [rs["metadata"]["uid"]]]
        return "orphan" in items and owner_uids(items["orphan"]) == [] and len(mine) == 2

    await eventually(released, "the relabeled pod released and replaced")
    status = (await api.get(resource_path("apps/v1", "replicasets", ns, "rs")))["status"]
    assert status["replicas"] == 2 and status["observedGeneration"] == 1


async def test_a_burst_of_replicas_is_created_once_and_scaled_away(
        kube: Kube, start_manager: StartManager) -> None:
    api, ns = kube.api, kube.ns
    await start_manager(["replicaset"])
    await api.create(resource_path("apps/v1", "replicasets", ns), replicaset_body("big", 30))
    most = 0

    async def count() -> int:
        nonlocal most
        got = (await api.list(resource_path("v1", "pods", ns)))["items"]
        live = [p for p in got if not p["metadata"].get("deletionTimestamp")]
        most = max(most, len(live))
        return len(live)

    await eventually(lambda: _eq(count(), 30), "30 pods")
    for _ in range(20):  # expectations: the informer catching up never triggers more creates
        await count()
        await asyncio.sleep(0.05)
    assert most == 30
    await api.patch(resource_path("apps/v1", "replicasets", ns, "big"), {"spec": {"replicas": 0}})
    await eventually(lambda: _eq(count(), 0), "every pod deleted")

    async def status_zero() -> bool:
        rs = await api.get(resource_path("apps/v1", "replicasets", ns, "big"))
        return bool(rs["status"].get("replicas", 0) == 0 and rs["status"].get("observedGeneration") == 2)

    await eventually(status_zero, "status.replicas back to 0")


async def test_dependents_of_a_gone_or_replaced_owner_are_collected(
        kube: Kube, start_manager: StartManager) -> None:
    api, ns = kube.api, kube.ns
    await start_manager(["garbagecollector"])
    live = await api.create(resource_path("apps/v1", "replicasets", ns), replicaset_body("live", 0))

    def ref(name: str, uid: str) -> dict[str, Any]:
        return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name, "uid": uid}

    pods = resource_path("v1", "pods", ns)
    await api.create(pods, pod_body("of-live", {}, [ref("live", live["metadata"]["uid"])]))
    await api.create(pods, pod_body("of-nobody", {}, [ref("never-was", "uid-1")]))
    # The name is live, but that uid is not: the owner was replaced by a namesake.
    await api.create(pods, pod_body("of-namesake", {}, [ref("live", "uid-of-an-older-live")]))
    await api.create(pods, pod_body("two-owners", {}, [ref("live", live["metadata"]["uid"]),
                                                       ref("never-was", "uid-1")]))

    async def names() -> set[str]:
        return {p["metadata"]["name"] for p in (await api.list(pods))["items"]}

    await eventually(lambda: _eq(names(), {"of-live", "two-owners"}), "dangling dependents collected")

    async def dangling_ref_dropped() -> bool:
        pod = await api.get(resource_path("v1", "pods", ns, "two-owners"))
        return [r["name"] for r in pod["metadata"]["ownerReferences"]] == ["live"]

    await eventually(dangling_ref_dropped, "only the dangling reference removed")
    await api.delete(resource_path("apps/v1", "replicasets", ns, "live"))
    await eventually(lambda: _eq(names(), set()), "dependents of the deleted owner collected")


async def _eq(value: Awaitable[Any], want: Any) -> bool:
    return (await value) == want
