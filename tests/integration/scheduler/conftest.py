"""A real apiserver, the scheduler running in-process (one per test, with its own
schedulerName so that tests never schedule each other's pods), and a helper that
registers Nodes the way kubelets do and creates Pods the way users do."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

from control.apiserver.process import ApiServerProcess
from control.scheduler.scheduler import Scheduler, SchedulerOptions
from netplane.client.rest import ApiClient, ApiError, resource_path

T = TypeVar("T")


@pytest.fixture(scope="session")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServerProcess]:
    with ApiServerProcess(tmp_path_factory.mktemp("apiserver") / "data") as server:
        yield server


@pytest.fixture
async def client(apiserver: ApiServerProcess) -> AsyncIterator[ApiClient]:
    async with ApiClient.from_kubeconfig(apiserver.kubeconfig) as api:
        yield api


async def eventually(probe: Callable[[], Awaitable[T]], what: str, seconds: float = 30.0) -> T:
    """Polls `probe` until it returns something truthy; the deadline only turns a hang
    into a failure (no timing assertions)."""
    last: Any = None
    try:
        async with asyncio.timeout(seconds):
            while True:
                try:
                    last = await probe()
                except AssertionError as exc:
                    last = exc
                else:
                    if last:
                        return last
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"never: {what} (last: {last!r})") from None


class Cluster:
    """Nodes and pods of one test; names carry the test's suffix."""

    def __init__(self, api: ApiClient, namespace: str, scheduler_name: str) -> None:
        self.api = api
        self.ns = namespace
        self.scheduler_name = scheduler_name
        self.suffix = namespace[2:]
        self.nodes: list[str] = []

    def node_name(self, name: str) -> str:
        return f"{name}-{self.suffix}"

    async def add_node(self, name: str, *, cpu: str = "4", memory: str = "8Gi", pods: int = 110,
                       labels: dict[str, str] | None = None, taints: list[dict[str, str]] | None = None,
                       ready: str = "True") -> str:
        full = self.node_name(name)
        await self.api.create("/api/v1/nodes", {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": full, "labels": {"kubernetes.io/hostname": full, **(labels or {})}},
            "spec": {"taints": taints or []}})
        self.nodes.append(full)
        await self.set_node_status(full, cpu=cpu, memory=memory, pods=pods, ready=ready)
        return full

    async def set_node_status(self, full: str, *, cpu: str = "4", memory: str = "8Gi",
                              pods: int = 110, ready: str = "True") -> None:
        resources = {"cpu": cpu, "memory": memory, "pods": str(pods)}
        await self.api.patch(resource_path("v1", "nodes", name=full, subresource="status"), {
            "status": {"capacity": resources, "allocatable": resources,
                       "conditions": [{"type": "Ready", "status": ready, "reason": "KubeletReady"}]}},
            patch_type="merge")

    async def add_pod(self, name: str, *, cpu: str | None = None, owner: str | None = None,
                      **spec: Any) -> None:
        meta: dict[str, Any] = {"name": name, "namespace": self.ns}
        if owner:
            meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner,
                                        "uid": f"{owner}-{self.suffix}", "controller": True}]
        resources = {"requests": {"cpu": cpu}} if cpu else {}
        await self.api.create(resource_path("v1", "pods", self.ns), {
            "apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"schedulerName": self.scheduler_name, **spec,
                     "containers": [{"name": "c", "image": "agnhost", "resources": resources}]}})

    async def pod(self, name: str) -> dict[str, Any]:
        return await self.api.get(resource_path("v1", "pods", self.ns, name))

    async def node_of(self, name: str) -> str:
        return (await self.pod(name))["spec"].get("nodeName") or ""

    async def wait_bound(self, *names: str) -> dict[str, str]:
        async def bound() -> dict[str, str] | None:
            placed = {n: await self.node_of(n) for n in names}
            return placed if all(placed.values()) else None
        return await eventually(bound, f"pods {names} bound")

    async def scheduled_condition(self, name: str) -> dict[str, Any] | None:
        conds = (await self.pod(name)).get("status", {}).get("conditions") or []
        return next((c for c in conds if c.get("type") == "PodScheduled"), None)

    async def events(self) -> list[dict[str, Any]]:
        return (await self.api.list(resource_path("v1", "events", self.ns)))["items"]


@pytest.fixture
async def cluster(client: ApiClient) -> AsyncIterator[Cluster]:
    namespace = f"t-{uuid.uuid4().hex[:8]}"
    await client.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                               "metadata": {"name": namespace}})
    c = Cluster(client, namespace, f"sched-{namespace}")
    yield c
    for node in c.nodes:
        with contextlib.suppress(ApiError):
            await client.delete(resource_path("v1", "nodes", name=node))
    with contextlib.suppress(ApiError):
        await client.delete(resource_path("v1", "namespaces", name=namespace))


@pytest.fixture
async def start_scheduler(client: ApiClient, cluster: Cluster
                          ) -> AsyncIterator[Callable[..., Awaitable[Scheduler]]]:
    """Starts a scheduler for the test's pods in this event loop; stopped at teardown."""
    tasks: list[asyncio.Task[None]] = []

    async def start(**options: Any) -> Scheduler:
        opts = SchedulerOptions(**{"scheduler_name": cluster.scheduler_name, "port": 0, **options})
        scheduler = Scheduler(client, opts)
        tasks.append(asyncio.create_task(scheduler.run()))
        async with asyncio.timeout(30):
            while not scheduler.running.is_set():
                if tasks[-1].done():
                    tasks[-1].result()
                await asyncio.sleep(0.02)
        return scheduler

    yield start
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
