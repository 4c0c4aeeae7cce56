"""The node lifecycle controller against a real apiserver: a node whose Lease stops
being renewed goes Unknown and tainted, its pods and their endpoints go not ready; a
renewed Lease lifts the taint again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from control.controllers.manager import ControllerManager
from control.controllers.nodelifecycle import UNREACHABLE_TAINT

from .conftest import Kube, eventually

StartManager = Callable[..., Awaitable[ControllerManager]]
GRACE = 3.0
APP = {"app": "web"}


class Kubelet:
    """Renews a node's Lease, as a kubelet does, until stopped."""

    def __init__(self, kube: Kube, node: str) -> None:
        self.kube = kube
        self.node = node
        self.task: asyncio.Task[None] | None = None
        self.renewals = 0

    def start(self) -> None:
        self.task = asyncio.create_task(self._renew())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None

    async def _renew(self) -> None:
        while True:
            await self.kube.renew_lease(self.node)
            self.renewals += 1
            await asyncio.sleep(0.2)


@pytest.fixture
async def kubelets() -> AsyncIterator[list[Kubelet]]:
    started: list[Kubelet] = []
    yield started
    for k in started:
        await k.stop()


def ready_status(node: dict[str, Any]) -> str:
    return next((c["status"] for c in node["status"].get("conditions", []) if c["type"] == "Ready"), "")


def taint_keys(node: dict[str, Any]) -> list[str]:
    return [t["key"] for t in node.get("spec", {}).get("taints") or []]


def pod_ready(pod: dict[str, Any]) -> str:
    return next((c["status"] for c in pod["status"].get("conditions", []) if c["type"] == "Ready"), "")


async def test_a_node_whose_lease_stops_goes_unknown_and_its_pods_not_ready(
        kube: Kube, start_manager: StartManager, kubelets: list[Kubelet]) -> None:
    alive = await kube.create_node("alive")
    dying = await kube.create_node("dying")
    for name in (alive, dying):
        kubelet = Kubelet(kube, name)
        kubelet.start()
        kubelets.append(kubelet)
    await kube.create_service("web", APP)
    await kube.create_pod("on-alive", alive, APP, ip="10.244.1.2")
    await kube.create_pod("on-dying", dying, APP, ip="10.244.2.2")
    await start_manager(["nodelifecycle", "endpointslice"], node_monitor_grace_period=GRACE,
                        node_monitor_period=0.5)

    async def both_ready_endpoints() -> bool:
        slices = await kube.slices("web")
        ready = {a: e["conditions"]["ready"] for s in slices for e in s.get("endpoints") or []
                 for a in e["addresses"]}
        return ready == {"10.244.1.2": True, "10.244.2.2": True}

    await eventually(both_ready_endpoints, "both endpoints ready")

    # The dying node's kubelet stops renewing its lease.
    await kubelets[1].stop()

    async def dying_unknown() -> dict[str, Any] | None:
        node = await kube.node(dying)
        return node if ready_status(node) == "Unknown" and UNREACHABLE_TAINT in taint_keys(node) else None

    node = await eventually(dying_unknown, "the silent node Unknown and tainted")
    cond = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert (cond["reason"], cond["message"]) == ("NodeStatusUnknown", "Kubelet stopped posting node status.")
    [taint] = [t for t in node["spec"]["taints"] if t["key"] == UNREACHABLE_TAINT]
    assert taint["effect"] == "NoSchedule"

    async def pod_not_ready() -> bool:
        return pod_ready(await kube.pod("on-dying")) == "False"

    await eventually(pod_not_ready, "the silent node's pod Ready=False")

    async def endpoint_not_ready() -> bool:
        slices = await kube.slices("web")
        ready = {a: e["conditions"]["ready"] for s in slices for e in s.get("endpoints") or []
                 for a in e["addresses"]}
        return ready == {"10.244.1.2": True, "10.244.2.2": False}

    await eventually(endpoint_not_ready, "the silent node's endpoint not ready")

    # The node whose kubelet kept renewing was never touched.
    healthy = await kube.node(alive)
    assert ready_status(healthy) == "True"
    assert UNREACHABLE_TAINT not in taint_keys(healthy)
    assert pod_ready(await kube.pod("on-alive")) == "True"

    # The kubelet comes back: the taint goes; Ready=True is the kubelet's own to post.
    revived = Kubelet(kube, dying)
    revived.start()
    kubelets.append(revived)

    async def untainted() -> bool:
        return UNREACHABLE_TAINT not in taint_keys(await kube.node(dying))

    await eventually(untainted, "the unreachable taint removed after the lease is renewed")
    await kube.set_node_ready(dying, "True")
    await kube.set_pod_status("on-dying", "10.244.2.2", ready=True)
    await eventually(both_ready_endpoints, "both endpoints ready again")
    assert ready_status(await kube.node(dying)) == "True"


async def test_a_node_without_any_lease_goes_unknown_after_the_grace_period(
        kube: Kube, start_manager: StartManager) -> None:
    silent = await kube.create_node("silent")
    await start_manager(["nodelifecycle"], node_monitor_grace_period=GRACE, node_monitor_period=0.5)

    async def unknown() -> bool:
        node = await kube.node(silent)
        return ready_status(node) == "Unknown" and UNREACHABLE_TAINT in taint_keys(node)

    await eventually(unknown, "a node that never renewed a lease Unknown")
