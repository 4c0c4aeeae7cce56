"""The controller-manager: one informer set, the enabled controllers, /healthz and /metrics.

Controllers are named as in kube-controller-manager's `--controllers`; each is found
by "module:Class" and imported lazily, so that a controller still being written (its
module missing) is skipped with a warning instead of stopping the others.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from control.controllers.base import Controller
from control.controllers.informers import InformerSet
from control.controllers.workqueue import WorkQueue
from netplane.cli.loop import until_signalled
from netplane.client.rest import ApiClient

log = logging.getLogger(__name__)

# name -> "module:Class", in start order.
KNOWN_CONTROLLERS: dict[str, str] = {
    "endpointslice": "control.controllers.endpointslice:EndpointSliceController",
    "endpoints": "control.controllers.endpoints:EndpointsController",
    "nodelifecycle": "control.controllers.nodelifecycle:NodeLifecycleController",
    "replicaset": "control.controllers.replicaset:ReplicaSetController",
    "deployment": "control.controllers.deployment:DeploymentController",
    "garbagecollector": "control.controllers.garbagecollector:GarbageCollector",
}

# Concurrent syncs per controller, as kube-controller-manager's --concurrent-*-syncs.
DEFAULT_WORKERS: dict[str, int] = {"garbagecollector": 20}


class ManagerError(Exception):
    """The manager cannot run: its port is taken, or the caches never synced."""


@dataclass
class ManagerOptions:
    kubeconfig: Path | None = None
    controllers: list[str] | None = None  # None: all known
    bind_address: str = "127.0.0.1"
    port: int = 10257  # 0: no /healthz or /metrics
    workers: int = 5
    sync_timeout: float = 60.0
    # Passed to every controller as keyword options (each takes what it knows).
    controller_options: dict[str, Any] = field(default_factory=dict)


def parse_controllers(text: str) -> list[str]:
    """"a,b" -> ["a", "b"]; "*" means all; a name prefixed by "-" is disabled
    (kube-controller-manager's --controllers syntax). Unknown names: ValueError."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    enabled: list[str] = []
    disabled = {n[1:] for n in names if n.startswith("-")}
    for n in names:
        if n == "*":
            enabled.extend(KNOWN_CONTROLLERS)
        elif not n.startswith("-"):
            enabled.append(n)
    if not any(not n.startswith("-") for n in names):
        enabled = list(KNOWN_CONTROLLERS)
    unknown = sorted((set(enabled) | disabled) - set(KNOWN_CONTROLLERS))
    if unknown:
        raise ValueError(f"unknown controller(s) {', '.join(unknown)}; known: "
                         f"{', '.join(KNOWN_CONTROLLERS)}")
    return [n for n in dict.fromkeys(enabled) if n not in disabled]


def load_controller_class(name: str) -> type | None:
    """The class of a known controller, or None (with a warning) if its module does not
    exist yet. Other import errors propagate: they are bugs, not missing work."""
    module_name, _, class_name = KNOWN_CONTROLLERS[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        log.warning("controller %s skipped: module %s does not exist", name, module_name)
        return None
    return getattr(module, class_name)


class QueueMetrics(Collector):
    """client-go's workqueue metrics, read from the queues at scrape time."""

    def __init__(self, queues: Iterable[WorkQueue]) -> None:
        self._queues = list(queues)

    def collect(self) -> Iterator[Any]:
        depth = GaugeMetricFamily("workqueue_depth", "Current depth of the workqueue.",
                                  labels=["name"])
        adds = CounterMetricFamily("workqueue_adds", "Total adds handled by the workqueue.",
                                   labels=["name"])
        retries = CounterMetricFamily("workqueue_retries", "Total retries handled by the workqueue.",
                                      labels=["name"])
        for q in self._queues:
            depth.add_metric([q.name], len(q))
            adds.add_metric([q.name], q.adds)
            retries.add_metric([q.name], q.retries)
        yield from (depth, adds, retries)


class ControllerManager:
    """Builds the enabled controllers over one client and runs them until cancelled."""

    def __init__(self, client: ApiClient, options: ManagerOptions) -> None:
        self.client = client
        self.options = options
        self.informers = InformerSet(client)
        self.controllers: list[Controller] = []
        self.registry = CollectorRegistry()
        self.started = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        names = options.controllers if options.controllers is not None else list(KNOWN_CONTROLLERS)
        for name in names:
            cls = load_controller_class(name)
            if cls is not None:
                self.controllers.append(cls(client, self.informers, **options.controller_options))
        self.registry.register(QueueMetrics(
            q for c in self.controllers for q in getattr(c, "queues", ())))

    def healthy(self) -> bool:
        return (self.started.is_set() and self.informers.synced
                and all(not t.done() for t in self._tasks))

    async def run(self) -> None:
        """Starts informers, waits for their caches, runs every controller; returns only
        by cancellation (or raises the first controller failure)."""
        runner = await self._serve_http()
        try:
            await self.informers.start()
            try:
                await self.informers.wait_synced(self.options.sync_timeout)
            except TimeoutError:
                raise ManagerError(
                    f"informer caches did not sync within {self.options.sync_timeout:.0f}s; "
                    "is the apiserver of the kubeconfig up and reachable?") from None
            log.info("caches synced; running %s", ", ".join(c.name for c in self.controllers))
            async with asyncio.TaskGroup() as tg:
                for c in self.controllers:
                    workers = DEFAULT_WORKERS.get(c.name, self.options.workers)
                    self._tasks.append(tg.create_task(c.run(workers), name=f"controller {c.name}"))
                self.started.set()
        finally:
            await self.informers.stop()
            if runner is not None:
                await runner.cleanup()

    async def _serve_http(self) -> web.AppRunner | None:
        if not self.options.port:
            return None

        async def healthz(_: web.Request) -> web.Response:
            if self.healthy():
                return web.Response(text="ok")
            return web.Response(status=500, text="not ready: caches not synced or a controller stopped")

        async def metrics(_: web.Request) -> web.Response:
            return web.Response(body=generate_latest(self.registry),
                                content_type="text/plain", charset="utf-8")

        app = web.Application()
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.options.bind_address, self.options.port).start()
        except OSError as exc:
            await runner.cleanup()
            raise ManagerError(f"cannot serve /healthz on {self.options.bind_address}:{self.options.port}: "
                               f"{exc.strerror or exc}; pick another --port, or --port 0") from exc
        return runner


async def run_controller_manager(options: ManagerOptions) -> None:
    """The process entry point: until SIGINT/SIGTERM."""
    async with ApiClient.from_kubeconfig(options.kubeconfig) as client:
        manager = ControllerManager(client, options)
        await until_signalled(manager.run(), "controller-manager")
