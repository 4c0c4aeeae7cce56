"""The scheduler process: informers on pods and nodes feed the cache and the queue; one
loop takes pods from the queue, runs the framework over the cache, assumes the pod on the
chosen node and binds it through `pods/binding` in the background (a bounded number of
bindings in flight), so that deciding never waits for the apiserver.

Pods come from one informer over all non-terminal pods, as in kube-scheduler: a pod's
move from unscheduled to bound then arrives as one ordered update, which confirms the
assumed pod and takes it out of the queue together."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from control.scheduler.cache import SchedulerCache
from control.scheduler.framework import Framework
from control.scheduler.metrics import ERROR, SCHEDULED, UNSCHEDULABLE, SchedulerMetrics, serve_http
from control.scheduler.plugins import default_framework
from control.scheduler.podinfo import PodInfo, decode_pod_info
from control.scheduler.queue import QueuedPodInfo, SchedulingQueue
from netplane.cli.loop import until_signalled
from netplane.client.informer import Informer
from netplane.client.rest import ApiClient, ApiError, resource_path
from netplane.model import Node
from netplane.model import decode as decode_as

log = logging.getLogger(__name__)

DEFAULT_SCHEDULER_NAME = "default-scheduler"
NON_TERMINAL = "status.phase!=Succeeded,status.phase!=Failed"


class SchedulerError(Exception):
    """The scheduler cannot run: its port is taken or its caches never synced."""


@dataclass
class SchedulerOptions:
    kubeconfig: Path | None = None
    scheduler_name: str = DEFAULT_SCHEDULER_NAME
    bind_address: str = "127.0.0.1"
    port: int = 10259  # 0: no /healthz or /metrics
    parallel_binds: int = 32  # bindings in flight at once
    parallel_status_updates: int = 4  # PodScheduled=False patches and events in flight
    failure_events: bool = True  # a FailedScheduling Event when the reason changes
    initial_backoff: float = 1.0
    max_backoff: float = 10.0
    sync_timeout: float = 60.0


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _node_changed(old: Node, new: Node) -> bool:
    """Whether a node update can make a pending pod fit (heartbeats alone cannot)."""
    def ready(n: Node) -> str:
        return next((c.status for c in n.status.conditions if c.type == "Ready"), "")
    return (old.spec.unschedulable != new.spec.unschedulable or old.spec.taints != new.spec.taints
            or old.metadata.labels != new.metadata.labels
            or old.status.allocatable != new.status.allocatable or ready(old) != ready(new))


class Scheduler:
    def __init__(self, client: ApiClient, options: SchedulerOptions | None = None,
                 framework: Framework | None = None) -> None:
        self.client = client
        self.options = options or SchedulerOptions()
        self.framework = framework or default_framework()
        self.cache = SchedulerCache()
        self._wakeup = asyncio.Event()
        self.queue = SchedulingQueue(initial_backoff=self.options.initial_backoff,
                                     max_backoff=self.options.max_backoff,
                                     on_ready=self._wakeup.set)
        self.metrics = SchedulerMetrics(self.queue, self.cache)
        self.pods = Informer(client, "/api/v1/pods", field_selector=NON_TERMINAL, decode=decode_pod_info)
        self.nodes = Informer(client, "/api/v1/nodes", decode=functools.partial(decode_as, Node))
        self.pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        self.nodes.add_handler(self._node_added, self._node_updated, self._node_deleted)
        self._bind_slots = asyncio.Semaphore(self.options.parallel_binds)
        self._status_slots = asyncio.Semaphore(self.options.parallel_status_updates)
        self._background: set[asyncio.Task[None]] = set()
        self._reported: dict[str, str] = {}  # pod key -> the unschedulable message last written
        self._instance = socket.gethostname()
        self.running = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def healthy(self) -> bool:
        return self.running.is_set() and all(not t.done() for t in self._tasks)

    # -- the process ------------------------------------------------------------------

    async def run(self) -> None:
        """Until cancelled: informers, cache sync, then the scheduling loop."""
        try:
            await self._run()
        except BaseExceptionGroup as group:
            # One failure (an informer, the loop, the sync timeout) is raised as itself.
            errors = [e for e in group.exceptions if not isinstance(e, asyncio.CancelledError)]
            if len(errors) == 1:
                raise errors[0] from None
            raise

    async def _run(self) -> None:
        runner = None
        if self.options.port:
            runner = await serve_http(self.options.bind_address, self.options.port,
                                      self.metrics, self.healthy)
        try:
            async with asyncio.TaskGroup() as tg:
                self._tasks = [tg.create_task(self.pods.run(), name="informer pods"),
                               tg.create_task(self.nodes.run(), name="informer nodes")]
                try:
                    async with asyncio.timeout(self.options.sync_timeout):
                        await self.nodes.wait_synced()
                        await self.pods.wait_synced()
                except TimeoutError:
                    raise SchedulerError(
                        f"informer caches did not sync within {self.options.sync_timeout:.0f}s; "
                        "is the apiserver of the kubeconfig up and reachable?") from None
                log.info("caches synced: %d nodes, %d pending pods", len(self.cache.nodes()),
                         len(self.queue))
                self._tasks.append(tg.create_task(self._schedule_loop(), name="scheduling loop"))
                self.running.set()
        finally:
            self.running.clear()
            for task in list(self._background):
                task.cancel()
            await asyncio.gather(*self._background, return_exceptions=True)
            if runner is not None:
                await runner.cleanup()

    async def _schedule_loop(self) -> None:
        while True:
            # A bind slot first, then the pod: a pod never waits outside the queue.
            await self._bind_slots.acquire()
            qpi = self.queue.pop()
            if qpi is None:
                self._bind_slots.release()
                self._wakeup.clear()
                wake = self.queue.next_wakeup()
                timeout = None if wake is None else max(0.0, wake - time.monotonic())
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wakeup.wait()
                continue
            handed_over = False
            try:
                handed_over = self.schedule_one(qpi)
            except Exception:
                log.exception("scheduling pod %s failed; retrying after backoff", qpi.key)
                self.queue.add_backoff(qpi)
            finally:
                if not handed_over:
                    self._bind_slots.release()
            # Let informer events and bindings run between decisions.
            await asyncio.sleep(0)

    # -- one pod ----------------------------------------------------------------------

    def schedule_one(self, qpi: QueuedPodInfo) -> bool:
        """Decides for one pod: assume + bind (True: the caller's bind slot now belongs
        to the binding task), or record why it fits nowhere (False)."""
        start = time.perf_counter()
        pi = self._latest(qpi.pod_info)
        if pi is None:
            return False
        qpi.pod_info = pi
        result = self.framework.schedule(pi, self.cache.nodes())
        if result.node is None:
            self.metrics.attempt(UNSCHEDULABLE, time.perf_counter() - start)
            self.queue.add_unschedulable(qpi, result.message)
            log.debug("pod %s unschedulable: %s", pi.key, result.message)
            self._report_unschedulable(pi, result.message)
            return False
        self.cache.assume(pi, result.node)
        self._spawn(self._bind(qpi, result.node, start))
        return True

    def _latest(self, pi: PodInfo) -> PodInfo | None:
        """The informer's current object of a queued pod; None if it should not be
        scheduled any more (gone, bound, being deleted, another scheduler's)."""
        current = self.pods.cache.get(pi.key)
        if current is None or current.node_name or current.pod.metadata.deletion_timestamp:
            return None
        if self.cache.is_assumed(pi.key) or not self._responsible(current):
            return None
        return current

    async def _bind(self, qpi: QueuedPodInfo, node: str, start: float) -> None:
        pi = qpi.pod_info
        body = {"apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": pi.name, "namespace": pi.namespace, "uid": pi.uid},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        try:
            await self.client.create(resource_path("v1", "pods", pi.namespace, pi.name, "binding"), body)
        except Exception as exc:
            self.cache.forget(pi.key)
            self.metrics.attempt(ERROR, time.perf_counter() - start)
            if isinstance(exc, ApiError) and exc.code == 404:
                return
            log.warning("binding pod %s to %s failed: %s; retrying after backoff", pi.key, node, exc)
            if self._latest(pi) is not None:
                self.queue.add_backoff(qpi)
        else:
            now = time.perf_counter()
            self.metrics.attempt(SCHEDULED, now - start)
            self.metrics.pod_duration.observe(time.monotonic() - qpi.initial_timestamp)
            self._reported.pop(pi.key, None)
        finally:
            self._bind_slots.release()

    def _report_unschedulable(self, pi: PodInfo, message: str) -> None:
        cond = next((c for c in pi.pod.status.conditions if c.type == "PodScheduled"), None)
        if self._reported.get(pi.key) == message or (
                cond is not None and cond.status == "False" and cond.reason == "Unschedulable"
                and cond.message == message):
            return
        self._reported[pi.key] = message
        self._spawn(self._write_unschedulable(pi, message, cond is not None and cond.status == "False"))

    async def _write_unschedulable(self, pi: PodInfo, message: str, was_false: bool) -> None:
        """PodScheduled=False/Unschedulable on the pod's status (kube-scheduler's
        updatePod), and a FailedScheduling Event."""
        now = _now()
        condition: dict[str, Any] = {"type": "PodScheduled", "status": "False",
                                     "reason": "Unschedulable", "message": message,
                                     "lastProbeTime": None}
        if not was_false:
            condition["lastTransitionTime"] = now
        # The resourceVersion makes the patch conditional: should the pod have been bound
        # since (a node came), a late "unschedulable" must not overwrite PodScheduled=True.
        body = {"metadata": {"resourceVersion": pi.pod.metadata.resource_version},
                "status": {"conditions": [condition]}}
        async with self._status_slots:
            try:
                await self.client.patch(resource_path("v1", "pods", pi.namespace, pi.name, "status"),
                                        body, patch_type="strategic")
            except Exception as exc:
                self._reported.pop(pi.key, None)  # the next failed attempt writes it again
                if not (isinstance(exc, ApiError) and exc.code in (404, 409)):
                    log.warning("cannot record that pod %s is unschedulable: %s", pi.key, exc)
                return
            if self.options.failure_events:
                await self._event(pi, "FailedScheduling", message, now)

    async def _event(self, pi: PodInfo, reason: str, message: str, now: str) -> None:
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{pi.name}.{time.time_ns():x}", "namespace": pi.namespace},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": pi.namespace,
                               "name": pi.name, "uid": pi.uid,
                               "resourceVersion": pi.pod.metadata.resource_version},
            "reason": reason, "message": message, "type": "Warning", "count": 1,
            "firstTimestamp": now, "lastTimestamp": now,
            "source": {"component": self.options.scheduler_name},
            "reportingComponent": self.options.scheduler_name,
            "reportingInstance": self._instance,
        }
        try:
            await self.client.create(resource_path("v1", "events", pi.namespace), event)
        except Exception as exc:
            log.warning("cannot create event %s for pod %s: %s", reason, pi.key, exc)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- informer handlers --------------------------------------------------------------

    def _responsible(self, pi: PodInfo) -> bool:
        return pi.pod.spec.scheduler_name in ("", self.options.scheduler_name)

    def _pod_added(self, pi: PodInfo) -> None:
        if pi.node_name:
            self.cache.add_pod(pi)
        elif (self._responsible(pi) and not pi.pod.metadata.deletion_timestamp
              and not self.cache.is_assumed(pi.key)):
            self.queue.add(pi)

    def _pod_updated(self, old: PodInfo, new: PodInfo) -> None:
        if new.node_name:
            if not old.node_name:
                self.queue.delete(new.key)
                self._reported.pop(new.key, None)
            self.cache.update_pod(new)
        elif new.pod.metadata.deletion_timestamp or not self._responsible(new):
            self.queue.delete(new.key)
        elif not self.cache.is_assumed(new.key):
            # (An assumed pod's stale unbound updates are skipped: skipPodUpdate.)
            self.queue.update(new)

    def _pod_deleted(self, pi: Any) -> None:
        key = pi.key if isinstance(pi, PodInfo) else getattr(pi, "key", None)
        if key is None:
            return
        self.queue.delete(key)
        self._reported.pop(key, None)
        if self.cache.has_pod(key):
            self.cache.remove_pod(key)
            # Resources were freed: pods waiting for room may fit now.
            self.queue.move_all()

    def _node_added(self, node: Node) -> None:
        self.cache.add_node(node)
        self.queue.move_all()

    def _node_updated(self, old: Node, new: Node) -> None:
        self.cache.update_node(new)
        if _node_changed(old, new):
            self.queue.move_all()

    def _node_deleted(self, node: Any) -> None:
        name = node.name if isinstance(node, Node) else getattr(node, "name", None)
        if name:
            self.cache.remove_node(name)


async def run_scheduler(options: SchedulerOptions) -> None:
    """The process entry point: until SIGINT/SIGTERM."""
    async with ApiClient.from_kubeconfig(options.kubeconfig) as client:
        scheduler = Scheduler(client, options)
        await until_signalled(scheduler.run(), "scheduler")
