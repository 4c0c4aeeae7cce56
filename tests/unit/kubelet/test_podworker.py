"""The pod worker's life cycle with a fake network and a fake API, its containers being
plain processes on this host (no namespaces, no root): restarts with back-off, terminal
phases, config errors, graceful deletion and finalisation."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from control.kubelet.config import KubeletConfig
from control.kubelet.metrics import KubeletMetrics
from control.kubelet.podworker import PodWorker
from control.kubelet.runtime import ProcessRuntime
from netplane.client.rest import ApiError


@dataclass(frozen=True)
class FakeNetInfo:
    netns: str
    ip: str


@dataclass
class FakeNetwork:
    """The PodNetworkProvider protocol, in memory."""

    pods: dict[str, str] = field(default_factory=dict)
    torn_down: list[str] = field(default_factory=list)

    def ensure_node_bridge(self) -> None:
        pass

    def setup(self, pod_uid: str, namespace: str, name: str) -> FakeNetInfo:
        ip = self.pods.setdefault(pod_uid, f"10.244.9.{len(self.pods) + 2}")
        return FakeNetInfo(self.netns_name(pod_uid), ip)

    def teardown(self, pod_uid: str) -> None:
        self.pods.pop(pod_uid, None)
        self.torn_down.append(pod_uid)

    def netns_name(self, pod_uid: str) -> str:
        return f"np-fake-p-{pod_uid[:8]}"

    def list_pod_netns(self) -> set[str]:
        return set(self.pods)


@dataclass
class FakeApi:
    statuses: list[dict[str, Any]] = field(default_factory=list)
    deletes: list[tuple[str, Any]] = field(default_factory=list)
    config_maps: dict[str, dict[str, Any]] = field(default_factory=dict)
    rv: int = 100

    async def patch(self, path: str, body: Any, patch_type: str = "merge") -> Any:
        assert path.endswith("/status") and patch_type == "merge"
        self.rv += 1
        self.statuses.append(body["status"])
        return {"metadata": {"resourceVersion": str(self.rv)}, "status": body["status"]}

    async def delete(self, path: str, params: Any = None, body: Any = None) -> Any:
        self.deletes.append((path, body))
        return {}

    async def get(self, path: str, params: Any = None) -> Any:
        name = path.rsplit("/", 1)[-1]
        if "/configmaps/" in path and name in self.config_maps:
            return {"data": self.config_maps[name]}
        raise ApiError(404, "NotFound", f"{name} not found")

    @property
    def last(self) -> dict[str, Any]:
        return self.statuses[-1] if self.statuses else {}


class HostRuntime(ProcessRuntime):
    """Processes run directly on this host: no namespaces to enter."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, wrap=lambda _netns, argv, _binds, _hostname: argv)

    def exec_argv(self, pid: int, argv: list[str], working_dir: str = "") -> list[str]:
        return argv


@pytest.fixture
def kubelet(tmp_path: Path) -> SimpleNamespace:
    """What a PodWorker uses of its Kubelet, with fakes; a back-off of 50 ms doubling to 200 ms."""
    config = KubeletConfig(node_name="node-1", pod_cidr="10.244.9.0/24", root_dir=tmp_path,
                           node_ip="10.255.0.9", cluster_dns=("10.96.0.10",), backoff_initial=0.05,
                           backoff_cap=0.2)
    return SimpleNamespace(config=config, api=FakeApi(), network=FakeNetwork(), runtime=HostRuntime(tmp_path),
                           metrics=KubeletMetrics("node-1", lambda: (0, {})), http=None, services=list)


def _raw(command: list[str], *, policy: str = "Always", uid: str = "0123456789ab",
         **container: Any) -> dict[str, Any]:
    c = {"name": "c", "image": "img", **({"command": command} if command else {}), **container}
    spec = {"nodeName": "node-1", "restartPolicy": policy, "terminationGracePeriodSeconds": 5,
            "containers": [c]}
    return {"metadata": {"name": "p", "namespace": "ns", "uid": uid, "resourceVersion": "1"}, "spec": spec}


async def _until(check: Callable[[], Any], what: str) -> Any:
    deadline = asyncio.get_running_loop().time() + 20.0
    while asyncio.get_running_loop().time() < deadline:
        if result := check():
            return result
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@contextlib.asynccontextmanager
async def running(kubelet: SimpleNamespace,
                  raw: dict[str, Any]) -> AsyncIterator[tuple[PodWorker, asyncio.Task[None]]]:
    worker = PodWorker(kubelet, raw)  # type: ignore[arg-type]
    task = asyncio.create_task(worker.run())
    try:
        yield worker, task
    finally:
        worker.abort(task)
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _container(status: dict[str, Any]) -> dict[str, Any]:
    return (status.get("containerStatuses") or [{}])[0]


async def test_a_crashing_container_is_restarted_with_back_off(kubelet: SimpleNamespace) -> None:
    async with running(kubelet, _raw(["sh", "-c", "echo run; exit 1"])):
        api = kubelet.api
        await _until(lambda: _container(api.last).get("restartCount", 0) >= 3, "three restarts")
        status = api.last
        assert status["phase"] == "Running"
        assert _container(status)["lastState"]["terminated"]["exitCode"] == 1
        assert any(_container(s)["state"].get("waiting", {}).get("reason") == "CrashLoopBackOff"
                   for s in api.statuses)
        log_dir = kubelet.runtime.container_dir("0123456789ab", "c")
        restarts = _container(status)["restartCount"]
        # Only the current and the previous run's logs are kept.
        assert {p.name for p in log_dir.glob("*.log")} <= {f"{restarts - 1}.log", f"{restarts}.log"}


async def test_never_ends_failed_and_releases_the_network(kubelet: SimpleNamespace) -> None:
    async with running(kubelet, _raw(["sh", "-c", "exit 3"], policy="Never")):
        await _until(lambda: kubelet.api.last.get("phase") == "Failed", "the Failed phase")
        await _until(lambda: "0123456789ab" in kubelet.network.torn_down, "the network released")
        terminated = _container(kubelet.api.last)["state"]["terminated"]
        assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")
        assert _container(kubelet.api.last)["restartCount"] == 0
        assert kubelet.api.last["podIP"] == "10.244.9.2"  # still shown, as Kubernetes does


async def test_on_failure_succeeds_after_a_clean_exit(kubelet: SimpleNamespace) -> None:
    async with running(kubelet, _raw(["true"], policy="OnFailure")):
        await _until(lambda: kubelet.api.last.get("phase") == "Succeeded", "the Succeeded phase")
        ready = {c["type"]: c for c in kubelet.api.last["conditions"]}["Ready"]
        assert ready["reason"] == "PodCompleted"


async def test_a_missing_executable_is_a_start_error(kubelet: SimpleNamespace) -> None:
    async with running(kubelet, _raw(["/nonexistent/bin/x"], policy="Never")):
        await _until(lambda: kubelet.api.last.get("phase") == "Failed", "the Failed phase")
        terminated = _container(kubelet.api.last)["state"]["terminated"]
        assert (terminated["reason"], terminated["exitCode"]) == ("StartError", 128)
        assert "/nonexistent/bin/x" in terminated["message"]


async def test_config_errors_wait_with_a_reason(kubelet: SimpleNamespace) -> None:
    env = [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "x"}}}]
    async with running(kubelet, _raw(["sleep", "30"], env=env)):
        waiting = await _until(lambda: _container(kubelet.api.last).get("state", {}).get("waiting"),
                               "a waiting container")
        assert waiting == {"reason": "CreateContainerConfigError", "message": 'configmap "cfg" not found'}
        assert kubelet.api.last["phase"] == "Pending"


async def test_graceful_deletion_sends_sigterm_reports_and_finalises(kubelet: SimpleNamespace,
                                                                     tmp_path: Path) -> None:
    marker = tmp_path / "got-term"
    script = f"trap 'touch {marker}; exit 0' TERM; while true; do sleep 0.05; done"
    raw = _raw(["sh", "-c", script])
    async with running(kubelet, raw) as (worker, task):
        await _until(lambda: worker.containers[0].running, "a running container")
        pid = worker.containers[0].process.pid
        worker.update({**raw, "metadata": {**raw["metadata"], "resourceVersion": "500",
                                           "deletionTimestamp": "2024-01-01T00:00:00Z",
                                           "deletionGracePeriodSeconds": 5}})
        await asyncio.wait_for(task, 20)
        assert marker.exists(), "the container got SIGTERM and its handler ran"
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        final = kubelet.api.last
        assert final["phase"] == "Succeeded" and _container(final)["state"]["terminated"]["exitCode"] == 0
        path, body = kubelet.api.deletes[-1]
        assert path == "/api/v1/namespaces/ns/pods/p"
        assert body["gracePeriodSeconds"] == 0 and body["preconditions"] == {"uid": "0123456789ab"}
        assert "0123456789ab" in kubelet.network.torn_down and worker.finished


async def test_a_container_that_ignores_sigterm_is_killed_after_the_grace_period(
        kubelet: SimpleNamespace) -> None:
    raw = _raw([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "print('up', flush=True); time.sleep(60)"])
    async with running(kubelet, raw) as (worker, task):
        log = kubelet.runtime.log_path("0123456789ab", "c", 0)
        await _until(lambda: log.exists() and log.read_text() == "up\n", "the container to be up")
        worker.update({**raw, "metadata": {**raw["metadata"], "resourceVersion": "500",
                                           "deletionTimestamp": "2024-01-01T00:00:00Z",
                                           "deletionGracePeriodSeconds": 1}})
        await asyncio.wait_for(task, 20)
        terminated = _container(kubelet.api.last)["state"]["terminated"]
        assert terminated["exitCode"] == 128 + signal.SIGKILL and kubelet.api.last["phase"] == "Failed"


async def test_a_new_worker_adopts_the_running_process_through_its_checkpoint(
        kubelet: SimpleNamespace) -> None:
    raw = _raw(["sleep", "30"])
    first = PodWorker(kubelet, raw)  # type: ignore[arg-type]
    task = asyncio.create_task(first.run())
    await _until(lambda: first.containers[0].running, "a running container")
    pid = first.containers[0].process.pid
    task.cancel()  # as at kubelet shutdown: the process keeps running
    with contextlib.suppress(asyncio.CancelledError):
        await task
    async with running(kubelet, raw) as (second, _task):
        await _until(lambda: second.containers[0].running, "adoption")
        assert second.containers[0].process.pid == pid and second.containers[0].record.restart_count == 0
    await _until(lambda: not second.containers[0].running, "the adopted process to be stopped on abort")


async def test_host_network_pods_wait_with_a_reason_instead_of_getting_a_network(
        kubelet: SimpleNamespace) -> None:
    raw = _raw(["sleep", "30"])
    raw["spec"]["hostNetwork"] = True
    async with running(kubelet, raw):
        waiting = await _until(lambda: _container(kubelet.api.last).get("state", {}).get("waiting"),
                               "a waiting container")
        assert waiting["reason"] == "CreateContainerConfigError" and "hostNetwork" in waiting["message"]
        assert kubelet.network.pods == {}


async def test_a_pod_deleted_while_no_kubelet_ran_is_stopped_without_a_new_network(
        kubelet: SimpleNamespace) -> None:
    raw = _raw(["sleep", "30"])
    first = PodWorker(kubelet, raw)  # type: ignore[arg-type]
    task = asyncio.create_task(first.run())
    await _until(lambda: first.containers[0].running, "a running container")
    pid = first.containers[0].process.pid
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    kubelet.network.pods.clear()  # as if the network were gone too
    deleted = {**raw, "metadata": {**raw["metadata"], "deletionTimestamp": "2024-01-01T00:00:00Z",
                                   "deletionGracePeriodSeconds": 5}}
    second = PodWorker(kubelet, deleted)  # type: ignore[arg-type]
    await asyncio.wait_for(second.run(), 20)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert kubelet.network.pods == {}, "no network is set up for a pod that is going"
    assert kubelet.api.deletes and second.finished
