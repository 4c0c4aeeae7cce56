"""The scheduler's Prometheus metrics (kube-scheduler's names) and its /healthz and
/metrics endpoints."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from control.scheduler.cache import SchedulerCache
from control.scheduler.queue import SchedulingQueue

SCHEDULED, UNSCHEDULABLE, ERROR = "scheduled", "unschedulable", "error"
_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30)


class _StateCollector(Collector):
    """Gauges read from the queue and cache at scrape time (nothing on the hot path)."""

    def __init__(self, queue: SchedulingQueue, cache: SchedulerCache) -> None:
        self._queue, self._cache = queue, cache

    def collect(self) -> Iterator[Any]:
        pending = GaugeMetricFamily("scheduler_pending_pods",
                                    "Number of pending pods, by the queue type.", labels=["queue"])
        for name, count in self._queue.counts().items():
            pending.add_metric([name], count)
        cache = GaugeMetricFamily("scheduler_cache_size",
                                  "Number of nodes, pods, and assumed pods in the scheduler cache.",
                                  labels=["type"])
        stats = self._cache.stats()
        cache.add_metric(["nodes"], stats["nodes"])
        cache.add_metric(["pods"], stats["pods"])
        cache.add_metric(["assumed_pods"], stats["assumed"])
        yield from (pending, cache)


class SchedulerMetrics:
    def __init__(self, queue: SchedulingQueue, cache: SchedulerCache) -> None:
        self.registry = CollectorRegistry()
        self.attempts = Counter(
            "scheduler_schedule_attempts", "Number of attempts to schedule pods, by the result.",
            ["result"], registry=self.registry)
        self.attempt_duration = Histogram(
            "scheduler_scheduling_attempt_duration_seconds",
            "Scheduling attempt latency in seconds (scheduling algorithm + binding).",
            ["result"], buckets=_BUCKETS, registry=self.registry)
        self.pod_duration = Histogram(
            "scheduler_pod_scheduling_duration_seconds",
            "E2e latency for a pod being scheduled, from entering the queue, over all attempts.",
            buckets=_BUCKETS, registry=self.registry)
        self.registry.register(_StateCollector(queue, cache))
        # Children resolved once: labels() costs a dict lookup and a lock per call.
        self.by_result = {r: (self.attempts.labels(r), self.attempt_duration.labels(r))
                          for r in (SCHEDULED, UNSCHEDULABLE, ERROR)}

    def attempt(self, result: str, seconds: float) -> None:
        counter, histogram = self.by_result[result]
        counter.inc()
        histogram.observe(seconds)

    def text(self) -> bytes:
        return generate_latest(self.registry)


class HttpError(Exception):
    """/healthz could not be served (the port is taken)."""


async def serve_http(bind_address: str, port: int, metrics: SchedulerMetrics,
                     healthy: Callable[[], bool]) -> web.AppRunner:
    async def healthz(_: web.Request) -> web.Response:
        if healthy():
            return web.Response(text="ok")
        return web.Response(status=500, text="not ready: caches not synced or the scheduler stopped")

    async def metrics_handler(_: web.Request) -> web.Response:
        return web.Response(body=metrics.text(), content_type="text/plain", charset="utf-8")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, bind_address, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise HttpError(f"cannot serve /healthz on {bind_address}:{port}: "
                        f"{exc.strerror or exc}; pick another --port, or --port 0") from exc
    return runner
