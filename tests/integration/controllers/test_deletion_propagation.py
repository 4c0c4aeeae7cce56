"""Deletion propagation against a real apiserver with the controllers in-process:
Orphan leaves the dependents without their owner, Foreground deletes them before the
owner goes, Background deletes the owner first. Deletions are asked for through the API,
`netplane ctl delete --cascade` and (when installed) kubectl. Pods are held with a
finalizer of the test's own so that "before" can be observed without timing anything."""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from control.apiserver.process import ApiServerProcess
from netplane.client.rest import ApiClient, ApiError, resource_path

from .conftest import Kube, eventually
from .test_deployments import (
    CONTROLLERS,
    Cluster,
    Kubelets,
    StartManager,
    deployment_body,
    owner_uids,
    pod_body,
    replicaset_body,
)

HOLD = "netplane.test/hold"


@pytest.fixture
async def cluster(kube: Kube, start_manager: StartManager) -> AsyncIterator[Cluster]:
    await start_manager(CONTROLLERS)
    kubelets = Kubelets(kube.api, kube.ns)
    kubelets.start()
    try:
        yield Cluster(kube, kubelets)
    finally:
        await kubelets.stop()
        await release_all(kube.api, kube.ns)


async def run(*argv: str) -> tuple[int, str, str]:
    """A command line, without blocking the event loop the controllers run in."""
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def get_or_none(api: ApiClient, path: str) -> dict[str, Any] | None:
    try:
        return await api.get(path)
    except ApiError as exc:
        if exc.code == 404:
            return None
        raise


async def all_pods(api: ApiClient, ns: str) -> list[dict[str, Any]]:
    """Every pod of the namespace, those being deleted included."""
    return (await api.list(resource_path("v1", "pods", ns)))["items"]


async def hold(api: ApiClient, ns: str, name: str) -> None:
    await api.patch(resource_path("v1", "pods", ns, name), {"metadata": {"finalizers": [HOLD]}})


async def release(api: ApiClient, ns: str, name: str) -> None:
    try:
        await api.patch(resource_path("v1", "pods", ns, name), {"metadata": {"finalizers": None}})
    except ApiError as exc:
        if exc.code != 404:
            raise


async def release_all(api: ApiClient, ns: str) -> None:
    """So that the namespace can go even when a test failed while pods were held."""
    for pod in await all_pods(api, ns):
        if HOLD in (pod["metadata"].get("finalizers") or []):
            await release(api, ns, pod["metadata"]["name"])


def deleting(obj: dict[str, Any] | None, finalizer: str | None = None) -> bool:
    meta = (obj or {}).get("metadata") or {}
    held = finalizer is None or finalizer in (meta.get("finalizers") or [])
    return bool(meta.get("deletionTimestamp")) and held


async def collected_marker(kube: Kube, name: str) -> None:
    """Waits until the collector has deleted a pod whose owner never existed: everything
    it was asked to look at before has been looked at too (a barrier, not a timer)."""
    ghost = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "ghost", "uid": f"uid-{name}"}
    await kube.api.create(resource_path("v1", "pods", kube.ns), pod_body(name, {}, [ghost]))

    async def gone() -> bool:
        return await get_or_none(kube.api, resource_path("v1", "pods", kube.ns, name)) is None

    await eventually(gone, f"the marker pod {name} collected")


async def test_orphan_deletion_with_netplane_ctl_leaves_the_replicaset_and_pods_without_the_owner(
        cluster: Cluster, kube: Kube, apiserver: ApiServerProcess) -> None:
    await cluster.create(deployment_body("web", 2))
    await eventually(lambda: cluster.rolled_out("web", 2), "2 replicas")
    [rs] = await cluster.replicasets("web")
    pods_before = {p["metadata"]["name"] for p in await cluster.pods("web")}

    code, out, err = await run(sys.executable, "-m", "netplane.cli.main", "ctl", "--kubeconfig",
                               str(apiserver.kubeconfig), "-n", kube.ns, "delete", "deployment",
                               "web", "--cascade=orphan")
    assert code == 0, err
    assert out.strip() == 'deployment.apps "web" deleted'
    # ctl waited until the Deployment was gone: the orphan finalizer was removed.
    assert await get_or_none(cluster.api, resource_path("apps/v1", "deployments", kube.ns, "web")) is None

    await collected_marker(kube, "marker")
    [left] = await cluster.replicasets("web")
    assert left["metadata"]["uid"] == rs["metadata"]["uid"]
    assert not left["metadata"].get("ownerReferences")
    pods = await cluster.pods("web")
    assert {p["metadata"]["name"] for p in pods} == pods_before
    assert all(owner_uids(p) == [rs["metadata"]["uid"]] for p in pods)  # still the ReplicaSet's


async def test_foreground_deletion_removes_pods_and_replicasets_before_the_deployment(
        cluster: Cluster, kube: Kube) -> None:
    api, ns = cluster.api, kube.ns
    await cluster.create(deployment_body("web", 2))
    await eventually(lambda: cluster.rolled_out("web", 2), "2 replicas")
    names = [p["metadata"]["name"] for p in await cluster.pods("web")]
    for name in names:
        await hold(api, ns, name)
    deployment = resource_path("apps/v1", "deployments", ns, "web")

    answer = await api.delete(deployment, body={"propagationPolicy": "Foreground"})
    assert deleting(answer, "foregroundDeletion")

    async def pods_deleting() -> bool:
        pods = await all_pods(api, ns)
        return len(pods) == 2 and all(deleting(p, HOLD) for p in pods)

    await eventually(pods_deleting, "both pods being deleted, held by the test's finalizer")
    # The dependents are still there, so the owners wait: the ReplicaSet, deleted in
    # foreground itself, and the Deployment.
    [rs] = (await api.list(resource_path("apps/v1", "replicasets", ns)))["items"]
    assert deleting(rs, "foregroundDeletion")
    assert deleting(await api.get(deployment), "foregroundDeletion")
    assert sorted(p["metadata"]["name"] for p in await all_pods(api, ns)) == sorted(names)  # no replacements

    for name in names:
        await release(api, ns, name)

    async def deployment_gone() -> bool:
        return await get_or_none(api, deployment) is None

    await eventually(deployment_gone, "the Deployment deleted once its dependents are gone")
    assert await all_pods(api, ns) == []
    assert (await api.list(resource_path("apps/v1", "replicasets", ns)))["items"] == []


async def test_explicit_background_deletion_removes_the_deployment_first(
        cluster: Cluster, kube: Kube) -> None:
    api, ns = cluster.api, kube.ns
    await cluster.create(deployment_body("web", 1))
    await eventually(lambda: cluster.rolled_out("web", 1), "1 replica")
    [name] = [p["metadata"]["name"] for p in await cluster.pods("web")]
    await hold(api, ns, name)
    deployment = resource_path("apps/v1", "deployments", ns, "web")
    answer = await api.delete(deployment, body={"propagationPolicy": "Background"})
    assert not answer["metadata"].get("finalizers")
    assert await get_or_none(api, deployment) is None  # at once, before its dependents

    async def pod_deleting() -> bool:
        return [deleting(p, HOLD) for p in await all_pods(api, ns)] == [True]

    await eventually(pod_deleting, "the pod deleted after its ReplicaSet")
    assert (await api.list(resource_path("apps/v1", "replicasets", ns)))["items"] == []
    await release(api, ns, name)


async def test_only_dependents_that_block_owner_deletion_hold_a_foreground_owner(
        kube: Kube, start_manager: StartManager) -> None:
    api, ns = kube.api, kube.ns
    await start_manager(["garbagecollector"])
    owner = await api.create(resource_path("apps/v1", "replicasets", ns), replicaset_body("owner", 0))
    uid = owner["metadata"]["uid"]

    def ref(block: bool) -> dict[str, Any]:
        return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "owner", "uid": uid,
                "blockOwnerDeletion": block}

    pods = resource_path("v1", "pods", ns)
    for name, block in (("blocker", True), ("bystander", False)):
        body = pod_body(name, {}, [ref(block)])
        body["metadata"]["finalizers"] = [HOLD]
        await api.create(pods, body)
    path = resource_path("apps/v1", "replicasets", ns, "owner")
    try:
        await api.delete(path, body={"propagationPolicy": "Foreground"})

        async def both_deleting() -> bool:
            listed = await all_pods(api, ns)
            return len(listed) == 2 and all(deleting(p) for p in listed)

        await eventually(both_deleting, "both dependents being deleted")
        assert deleting(await api.get(path), "foregroundDeletion")
        await release(api, ns, "blocker")

        async def owner_gone() -> bool:
            return await get_or_none(api, path) is None

        await eventually(owner_gone, "the owner deleted once its blocking dependent is gone")
        # The other dependent never held it up: it is still there, held by the test.
        assert deleting(await get_or_none(api, resource_path("v1", "pods", ns, "bystander")), HOLD)
    finally:
        await release_all(api, ns)


async def test_a_dependent_with_another_live_owner_survives_a_foreground_deletion(
        kube: Kube, start_manager: StartManager) -> None:
    api, ns = kube.api, kube.ns
    await start_manager(["garbagecollector"])
    going = await api.create(resource_path("apps/v1", "replicasets", ns), replicaset_body("going", 0))
    staying = await api.create(resource_path("apps/v1", "replicasets", ns), replicaset_body("staying", 0))
    refs = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": o["metadata"]["name"],
             "uid": o["metadata"]["uid"], "blockOwnerDeletion": True} for o in (going, staying)]
    await api.create(resource_path("v1", "pods", ns), pod_body("shared", {}, refs))
    path = resource_path("apps/v1", "replicasets", ns, "going")
    await api.delete(path, body={"propagationPolicy": "Foreground"})

    async def owner_gone() -> bool:
        return await get_or_none(api, path) is None

    await eventually(owner_gone, "the foreground-deleted owner gone")
    pod = await api.get(resource_path("v1", "pods", ns, "shared"))
    assert not deleting(pod)
    assert [r["name"] for r in pod["metadata"]["ownerReferences"]] == ["staying"]


@pytest.fixture
def kubectl_bin() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip("kubectl is not installed (Debian: the kubectl or kubernetes-client package)")
    return path


async def test_kubectl_cascade_flags_orphan_or_collect_the_replicasets(
        cluster: Cluster, kube: Kube, apiserver: ApiServerProcess, kubectl_bin: str) -> None:
    for name in ("keep", "drop"):
        await cluster.create(deployment_body(name, 1))
    for name in ("keep", "drop"):
        await eventually(lambda n=name: cluster.rolled_out(n, 1), f"{name} rolled out")
    base = (kubectl_bin, "--kubeconfig", str(apiserver.kubeconfig), "-n", kube.ns, "delete")
    code, out, err = await run(*base, "deployment", "keep", "--cascade=orphan")
    assert (code, out.strip()) == (0, 'deployment.apps "keep" deleted'), err
    code, out, err = await run(*base, "deployment", "drop", "--cascade=background")
    assert (code, out.strip()) == (0, 'deployment.apps "drop" deleted'), err

    async def dropped() -> bool:
        return not await cluster.replicasets("drop") and not await cluster.pods("drop")

    await eventually(dropped, "the background-deleted Deployment's ReplicaSet and pod collected")
    [keep] = await cluster.replicasets("keep")
    assert not keep["metadata"].get("ownerReferences")
    assert len(await cluster.pods("keep")) == 1
    assert (await cluster.api.list(resource_path("apps/v1", "deployments", kube.ns)))["items"] == []
