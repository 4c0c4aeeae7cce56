"""The EndpointSlice and Endpoints controllers against a real apiserver: pods (with
status written as a kubelet would) become slices and Endpoints."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from control.apiserver.process import ApiServerProcess, free_port
from control.controllers.manager import ControllerManager
from netplane.client.rest import resource_path
from netplane.model.discovery import TRIGGER_TIME_ANNOTATION
from netplane.proxy.tracker import parse_trigger_time

from .conftest import Kube, eventually

StartManager = Callable[..., Awaitable[ControllerManager]]
APP = {"app": "web"}
# Not `-m netplane.cli.main`: run as __main__, that module's CliError is a second class
# that the subcommands' `raise CliError` does not match.
NETPLANE = [sys.executable, "-c",
            "import sys; from netplane.cli.main import main; sys.exit(main(sys.argv[1:]))"]


def endpoints_of(slices: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {a: ep for s in slices for ep in s.get("endpoints") or [] for a in ep["addresses"]}


def conditions(slices: list[dict[str, Any]]) -> dict[str, tuple[bool, bool, bool]]:
    return {ip: (ep["conditions"]["ready"], ep["conditions"]["serving"], ep["conditions"]["terminating"])
            for ip, ep in endpoints_of(slices).items()}


@pytest.fixture
async def controllers(start_manager: StartManager) -> ControllerManager:
    return await start_manager(["endpointslice", "endpoints"])


async def test_pods_of_a_service_appear_in_its_slice_and_endpoints(kube: Kube, controllers: Any) -> None:
    n1 = await kube.create_node("n1", zone="zone-a")
    n2 = await kube.create_node("n2")
    svc = await kube.create_service("web", APP)
    await kube.create_pod("web-1", n1, APP, ip="10.244.1.2")
    await kube.create_pod("web-2", n2, APP, ip="10.244.2.2")
    await kube.create_pod("other", n1, {"app": "other"}, ip="10.244.1.3")

    async def two_ready() -> list[dict[str, Any]] | None:
        slices = await kube.slices("web")
        return slices if conditions(slices) == {"10.244.1.2": (True, True, False),
                                                "10.244.2.2": (True, True, False)} else None

    [s] = await eventually(two_ready, "a slice with both pods ready")
    assert s["metadata"]["name"].startswith("web-")
    assert s["addressType"] == "IPv4"
    labels = s["metadata"]["labels"]
    assert labels["endpointslice.kubernetes.io/managed-by"] == "endpointslice-controller.k8s.io"
    [owner] = s["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"], owner["blockOwnerDeletion"]) == \
        ("Service", "web", svc["metadata"]["uid"], True, True)
    assert s["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    eps = endpoints_of([s])
    assert (eps["10.244.1.2"]["nodeName"], eps["10.244.1.2"]["zone"]) == (n1, "zone-a")
    assert "zone" not in eps["10.244.2.2"]
    assert eps["10.244.1.2"]["targetRef"]["name"] == "web-1"
    # When the change behind this write was seen, for the proxies' programming latency.
    trigger = parse_trigger_time(s["metadata"]["annotations"][TRIGGER_TIME_ANNOTATION])
    assert trigger is not None and trigger <= time.time()

    async def legacy() -> dict[str, Any] | None:
        ep = await kube.endpoints("web")
        subsets = (ep or {}).get("subsets") or []
        got = sorted(a["ip"] for sub in subsets for a in sub.get("addresses") or [])
        return ep if got == ["10.244.1.2", "10.244.2.2"] else None

    ep = await eventually(legacy, "Endpoints with both pods")
    assert ep["subsets"][0]["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]


async def test_a_pod_going_not_ready_then_deleted_follows_in_slice_and_endpoints(
        kube: Kube, controllers: Any) -> None:
    node = await kube.create_node("n1")
    await kube.create_service("web", APP)
    await kube.create_pod("web-1", node, APP, ip="10.244.1.2")
    await kube.create_pod("web-2", node, APP, ip="10.244.1.3")
    both = {"10.244.1.2": (True, True, False), "10.244.1.3": (True, True, False)}
    await eventually(lambda: _has(kube, both), "both ready")

    await kube.set_pod_status("web-1", "10.244.1.2", ready=False)
    await eventually(lambda: _has(kube, {"10.244.1.2": (False, False, False),
                                         "10.244.1.3": (True, True, False)}), "web-1 not ready")

    async def not_ready_in_endpoints() -> bool:
        ep = await kube.endpoints("web") or {}
        return [a["ip"] for s in ep.get("subsets") or [] for a in s.get("notReadyAddresses") or []] == \
            ["10.244.1.2"]

    await eventually(not_ready_in_endpoints, "web-1 under notReadyAddresses")

    await kube.api.delete(resource_path("v1", "pods", kube.ns, "web-1"), params={"gracePeriodSeconds": "0"})
    await eventually(lambda: _has(kube, {"10.244.1.3": (True, True, False)}), "web-1 gone from the slice")

    async def gone_from_endpoints() -> bool:
        ep = await kube.endpoints("web") or {}
        return sorted(a["ip"] for s in ep.get("subsets") or []
                      for a in [*(s.get("addresses") or []), *(s.get("notReadyAddresses") or [])]) == \
            ["10.244.1.3"]

    await eventually(gone_from_endpoints, "web-1 gone from Endpoints")


async def test_a_terminating_pod_stays_listed_as_terminating(kube: Kube, controllers: Any) -> None:
    node = await kube.create_node("n1")
    await kube.create_service("web", APP)
    await kube.create_pod("web-1", node, APP, ip="10.244.1.2")
    await eventually(lambda: _has(kube, {"10.244.1.2": (True, True, False)}), "ready")
    # A bound pod's graceful deletion waits for its kubelet: it stays, terminating.
    await kube.api.delete(resource_path("v1", "pods", kube.ns, "web-1"), params={"gracePeriodSeconds": "30"})
    pod = await kube.pod("web-1")
    if not pod["metadata"].get("deletionTimestamp"):
        pytest.skip("this apiserver deletes bound pods at once")
    await eventually(lambda: _has(kube, {"10.244.1.2": (False, True, True)}), "terminating, still serving")


async def test_150_pods_fill_two_slices(kube: Kube, controllers: Any) -> None:
    node = await kube.create_node("n1")
    await kube.create_service("big", {"app": "big"})
    sem = asyncio.Semaphore(16)

    async def make(i: int) -> None:
        async with sem:
            await kube.create_pod(f"big-{i}", node, {"app": "big"}, ip=f"10.244.{i // 200}.{i % 200 + 2}")

    await asyncio.gather(*(make(i) for i in range(150)))

    async def two_slices() -> list[int] | None:
        slices = await kube.slices("big")
        sizes = [len(s.get("endpoints") or []) for s in slices]
        # Kubernetes packs for minimal churn, not for balance: pods arriving over time may
        # split as 98 + 52; what holds is two slices of at most 100 with every pod once.
        assert len(sizes) == 2 and max(sizes) <= 100 and sum(sizes) == len(endpoints_of(slices)) == 150, sizes
        return sizes

    await eventually(two_slices, "two slices of at most 100 endpoints", timeout=60)
    # Settled: a further pod change touches one slice, and the total stays exact.
    await kube.set_pod_status("big-7", "10.244.0.9", ready=False)

    async def one_not_ready() -> bool:
        conds = conditions(await kube.slices("big"))
        return len(conds) == 150 and [ip for ip, c in conds.items() if not c[0]] == ["10.244.0.9"]

    await eventually(one_not_ready, "exactly one endpoint not ready")


async def test_named_target_ports_resolve_per_pod(kube: Kube, controllers: Any) -> None:
    node = await kube.create_node("n1")
    await kube.create_service("named", APP, ports=[{"name": "http", "port": 80, "targetPort": "web"}])
    await kube.create_pod("a", node, APP, ip="10.244.1.2", ports=[{"name": "web", "containerPort": 8080}])
    await kube.create_pod("b", node, APP, ip="10.244.1.3", ports=[{"name": "web", "containerPort": 9090}])

    async def by_port() -> dict[int, list[str]] | None:
        got = {s["ports"][0]["port"]: [a for e in s.get("endpoints") or [] for a in e["addresses"]]
               for s in await kube.slices("named") if s.get("ports")}
        return got if got == {8080: ["10.244.1.2"], 9090: ["10.244.1.3"]} else None

    await eventually(by_port, "one slice per resolved port")


async def test_publish_not_ready_addresses_lists_unready_pods_as_ready(kube: Kube, controllers: Any) -> None:
    node = await kube.create_node("n1")
    await kube.create_service("pub", APP, publishNotReadyAddresses=True, clusterIP="None")
    await kube.create_pod("a", node, APP, ip="10.244.1.2", ready=False)
    await eventually(lambda: _has(kube, {"10.244.1.2": (True, False, False)}, "pub"),
                     "listed ready though not ready")


async def test_a_service_without_pods_gets_a_placeholder_and_one_without_selector_nothing(
        kube: Kube, controllers: Any) -> None:
    await kube.create_service("empty", {"app": "none"})
    await kube.create_service("manual", None)

    async def placeholder() -> list[dict[str, Any]] | None:
        slices = await kube.slices("empty")
        return slices if len(slices) == 1 and not slices[0].get("endpoints") else None

    await eventually(placeholder, "one empty slice")
    assert await kube.slices("manual") == []
    assert await kube.endpoints("manual") is None


async def test_deleting_the_service_removes_its_slices_and_endpoints(kube: Kube, controllers: Any) -> None:
    node = await kube.create_node("n1")
    await kube.create_service("web", APP)
    await kube.create_pod("web-1", node, APP, ip="10.244.1.2")
    await eventually(lambda: _has(kube, {"10.244.1.2": (True, True, False)}), "ready")
    await eventually(lambda: kube.endpoints("web"), "Endpoints exist")
    await kube.api.delete(resource_path("v1", "services", kube.ns, "web"))

    async def all_gone() -> bool:
        return await kube.slices("web") == [] and await kube.endpoints("web") is None

    await eventually(all_gone, "slices and Endpoints gone")


async def _has(kube: Kube, want: dict[str, tuple[bool, bool, bool]], service: str = "web") -> bool:
    return conditions(await kube.slices(service)) == want


def test_the_controller_manager_command_serves_healthz_and_metrics(apiserver: ApiServerProcess) -> None:
    port = free_port()
    cmd = [*NETPLANE, "controller-manager", "--kubeconfig",
           str(apiserver.kubeconfig), "--port", str(port), "--controllers", "endpointslice,endpoints"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        body = ""
        for _ in range(300):
            if proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
                    body = resp.read().decode()
                    break
            except OSError:
                time.sleep(0.1)
        assert body == "ok", proc.stdout.read().decode() if proc.poll() is not None else "no healthz"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            metrics = resp.read().decode()
        assert 'workqueue_depth{name="endpointslice"}' in metrics
        assert 'workqueue_adds_total{name="endpoints"}' in metrics
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0


def test_the_controller_manager_command_explains_a_bad_flag(apiserver: ApiServerProcess) -> None:
    out = subprocess.run([*NETPLANE, "controller-manager", "--kubeconfig",
                          str(apiserver.kubeconfig), "--controllers", "nope"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "unknown controller(s) nope" in out.stderr
