"""The controller framework: worker loop, retries, controller selection, flags."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from typing import Any

import pytest

from control.controllers.base import QueueController, object_key, split_key
from control.controllers.informers import parse_collection_path
from control.controllers.manager import KNOWN_CONTROLLERS, QueueMetrics, parse_controllers
from netplane.cli.durations import parse_duration
from netplane.model import Pod, decode


class Flaky(QueueController):
    name = "flaky"

    def __init__(self, failures: int, **options: Any) -> None:
        super().__init__(None, None, **options)  # type: ignore[arg-type]
        self.failures = failures
        self.synced: list[str] = []
        self.running: set[str] = set()
        self.overlap = False

    async def sync(self, key: str) -> None:
        if key in self.running:
            self.overlap = True
        self.running.add(key)
        await asyncio.sleep(0.001)
        self.running.discard(key)
        self.synced.append(key)
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("boom")


async def run_until(ctrl: QueueController, cond: Any, workers: int = 3) -> None:
    task = asyncio.create_task(ctrl.run(workers))
    try:
        async with asyncio.timeout(10):
            while not cond():  # noqa: ASYNC110 (polling a plain predicate)
                await asyncio.sleep(0.005)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_failed_sync_is_retried_with_backoff_until_it_succeeds(caplog: Any) -> None:
    ctrl = Flaky(failures=3)
    ctrl.queue.add("ns/a")
    await run_until(ctrl, lambda: len(ctrl.synced) == 4)
    assert ctrl.queue.retries == 3
    assert ctrl.queue.num_requeues("ns/a") == 0  # forgotten after the success
    assert sum("sync ns/a failed" in r.message for r in caplog.records) == 3


async def test_workers_never_sync_one_key_concurrently() -> None:
    ctrl = Flaky(failures=0)
    for _ in range(50):
        for k in ("a", "b", "c"):
            ctrl.queue.add(k)
        await asyncio.sleep(0)
    await run_until(ctrl, lambda: len(ctrl.queue) == 0 and not ctrl.running)
    assert not ctrl.overlap


async def test_a_key_is_dropped_after_max_retries() -> None:
    ctrl = Flaky(failures=100)
    ctrl.max_retries = 2  # type: ignore[misc]
    ctrl.queue.add("k")
    await run_until(ctrl, lambda: len(ctrl.synced) == 3)
    await asyncio.sleep(0.05)
    assert len(ctrl.synced) == 3


def test_keys_are_namespace_slash_name_or_name() -> None:
    pod = decode(Pod, {"metadata": {"name": "p", "namespace": "ns"}})
    assert object_key(pod) == "ns/p"
    assert object_key({"metadata": {"name": "node1"}}) == "node1"
    assert split_key("ns/p") == ("ns", "p")
    assert split_key("node1") == ("", "node1")


def test_collection_paths_are_parsed_for_their_kind() -> None:
    assert parse_collection_path("/api/v1/pods") == ("v1", "pods", None)
    assert parse_collection_path("/apis/apps/v1/namespaces/x/replicasets") == ("apps/v1", "replicasets", "x")
    with pytest.raises(ValueError, match="not a collection path"):
        parse_collection_path("/api/v1/namespaces/x/pods/p")


def test_controllers_flag_follows_kube_controller_manager() -> None:
    assert parse_controllers("*") == list(KNOWN_CONTROLLERS)
    assert parse_controllers("endpointslice,nodelifecycle") == ["endpointslice", "nodelifecycle"]
    all_but_gc = [n for n in KNOWN_CONTROLLERS if n != "garbagecollector"]
    assert parse_controllers("*,-garbagecollector") == all_but_gc
    assert "replicaset" in parse_controllers("-garbagecollector")
    with pytest.raises(ValueError, match="unknown controller"):
        parse_controllers("endpointslices")


def test_workqueue_metrics_are_exported_per_queue() -> None:
    ctrl = Flaky(failures=0)
    ctrl.queue.add("a")
    metrics = {m.name: m.samples for m in QueueMetrics(ctrl.queues).collect()}
    assert metrics["workqueue_depth"][0].value == 1
    assert metrics["workqueue_depth"][0].labels == {"name": "flaky"}
    assert metrics["workqueue_adds"][0].value == 1


def test_durations_take_go_syntax_or_seconds() -> None:
    assert parse_duration("40s") == 40
    assert parse_duration("1m30s") == 90
    assert parse_duration("500ms") == 0.5
    assert parse_duration("2.5") == 2.5
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration("40 seconds")
