"""A real apiserver, the controller-manager running in-process, and a `Kube` helper that
plays the kubelets' part (Nodes, Leases, pod status) through the API."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest

from control.apiserver.process import ApiServerProcess
from control.controllers.manager import ControllerManager, ManagerOptions
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


def micro_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def eventually(probe: Callable[[], Awaitable[T]], what: str,
                     timeout: float = 30.0) -> T:  # noqa: ASYNC109
    """Polls `probe` until it returns something truthy (no timing assertions: the
    deadline is only there so that a broken controller fails instead of hanging)."""
    last: Any = None
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        try:
            last = await probe()
        except AssertionError as exc:
            last = exc
        else:
            if last:
                return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"never: {what} (last: {last!r})")


class Kube:
    """Objects in one fresh namespace, written the way kubelets and users write them."""

    def __init__(self, api: ApiClient, namespace: str) -> None:
        self.api = api
        self.ns = namespace
        self.nodes: list[str] = []

    async def create_node(self, name: str, zone: str | None = None, ready: bool = True) -> str:
        name = f"{name}-{self.ns}"
        labels = {"topology.kubernetes.io/zone": zone} if zone else {}
        await self.api.create("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node",
                                                "metadata": {"name": name, "labels": labels}})
        self.nodes.append(name)
        if ready:
            await self.set_node_ready(name, "True")
        return name

    async def set_node_ready(self, name: str, status: str) -> None:
        now = micro_time()[:19] + "Z"
        cond = {"type": "Ready", "status": status, "reason": "KubeletReady",
                "lastHeartbeatTime": now, "lastTransitionTime": now}
        await self.api.patch(resource_path("v1", "nodes", name=name, subresource="status"),
                             {"status": {"conditions": [cond]}}, patch_type="strategic")

    async def renew_lease(self, node: str) -> None:
        path = resource_path("coordination.k8s.io/v1", "leases", "kube-node-lease", node)
        spec = {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": micro_time()}
        try:
            await self.api.patch(path, {"spec": spec})
        except ApiError as exc:
            if exc.code != 404:
                raise
            await self.api.create(resource_path("coordination.k8s.io/v1", "leases", "kube-node-lease"),
                                  {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                   "metadata": {"name": node, "namespace": "kube-node-lease"}, "spec": spec})

    async def create_service(self, name: str, selector: dict[str, str] | None, ports: Any = None,
                             **spec: Any) -> dict[str, Any]:
        body_spec: dict[str, Any] = {"ports": ports if ports is not None else [
            {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}], **spec}
        if selector is not None:
            body_spec["selector"] = selector
        return await self.api.create(resource_path("v1", "services", self.ns), {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": self.ns},
            "spec": body_spec})

    async def create_pod(self, name: str, node: str, labels: dict[str, str], *, ip: str | None = None,
                         ready: bool = True, ports: Any = None) -> None:
        await self.api.create(resource_path("v1", "pods", self.ns), {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": self.ns, "labels": labels},
            "spec": {"nodeName": node, "containers": [
                {"name": "app", "image": "agnhost",
                 "ports": ports or [{"name": "http", "containerPort": 8080}]}]}})
        if ip is not None:
            await self.set_pod_status(name, ip, ready)

    async def set_pod_status(self, name: str, ip: str, ready: bool) -> None:
        status = {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                  "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
        await self.api.patch(resource_path("v1", "pods", self.ns, name, "status"), {"status": status})

    async def pod(self, name: str) -> dict[str, Any]:
        return await self.api.get(resource_path("v1", "pods", self.ns, name))

    async def node(self, name: str) -> dict[str, Any]:
        return await self.api.get(resource_path("v1", "nodes", name=name))

    async def slices(self, service: str) -> list[dict[str, Any]]:
        got = await self.api.list(resource_path("discovery.k8s.io/v1", "endpointslices", self.ns),
                                  params={"labelSelector": f"kubernetes.io/service-name={service}"})
        return got["items"]

    async def endpoints(self, service: str) -> dict[str, Any] | None:
        try:
            return await self.api.get(resource_path("v1", "endpoints", self.ns, service))
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise


@pytest.fixture
async def kube(client: ApiClient) -> AsyncIterator[Kube]:
    namespace = f"t-{uuid.uuid4().hex[:8]}"
    for ns in (namespace, "kube-node-lease"):
        with contextlib.suppress(ApiError):
            await client.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                       "metadata": {"name": ns}})
    k = Kube(client, namespace)
    yield k
    for node in k.nodes:
        with contextlib.suppress(ApiError):
            await client.delete(resource_path("v1", "nodes", name=node))
    with contextlib.suppress(ApiError):
        await client.delete(resource_path("v1", "namespaces", name=namespace))


@pytest.fixture
async def start_manager(client: ApiClient) -> AsyncIterator[Callable[..., Awaitable[ControllerManager]]]:
    """Starts the controller-manager in this event loop; stopped at teardown."""
    tasks: list[asyncio.Task[None]] = []

    async def start(controllers: list[str], **controller_options: Any) -> ControllerManager:
        manager = ControllerManager(client, ManagerOptions(controllers=controllers, port=0,
                                                           controller_options=controller_options))
        tasks.append(asyncio.create_task(manager.run()))
        async with asyncio.timeout(30):
            while not manager.started.is_set():
                if tasks[-1].done():
                    tasks[-1].result()
                await asyncio.sleep(0.02)
        return manager

    yield start
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
