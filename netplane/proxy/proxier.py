"""The node proxy: informers on Services, EndpointSlices and this node feed the change
tracker; the sync runner hands the tracked state to the backend; health and metrics
report how it goes. Backend-neutral: the mode only picks the `Backend`."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from netplane.client.informer import Informer
from netplane.client.rest import ApiClient
from netplane.model import EndpointSlice, Node, ProxyState, Service, categorize_endpoints, decode
from netplane.proxy.backend import Backend
from netplane.proxy.health import ProxierHealth, ServiceHealthServers
from netplane.proxy.metrics import ProxyMetrics
from netplane.proxy.runner import SyncRunner
from netplane.proxy.tracker import ChangeTracker, Update

log = logging.getLogger(__name__)


class ProxyError(Exception):
    """The proxy cannot start; the message says what to do."""


@dataclass(frozen=True)
class ProxyOptions:
    node_name: str
    min_sync_period: float = 1.0
    sync_period: float = 30.0
    full_sync_period: float = 3600.0
    healthz_bind_address: str = "0.0.0.0"
    healthz_port: int = 10256
    metrics_bind_address: str = "127.0.0.1"
    metrics_port: int = 10249


def _split(address: str, default_port: int) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep:
        return address, default_port
    return host.strip("[]"), int(port)


def parse_bind_address(address: str, default_port: int) -> tuple[str, int]:
    """kube-proxy's `--healthz-bind-address`: "IP:PORT", "IP" or ":PORT"; port 0 disables."""
    try:
        host, port = _split(address, default_port)
    except ValueError:
        raise ProxyError(f"{address!r} is not IP:PORT") from None
    return host or "0.0.0.0", port


def health_check_ports(state: ProxyState, node_name: str) -> dict[str, tuple[int, int]]:
    """Services with a health-check node port: "ns/name" -> (port, local endpoints here)."""
    out: dict[str, tuple[int, int]] = {}
    for name, port in state.services.items():
        if not port.health_check_node_port:
            continue
        local = categorize_endpoints(state.endpoints_for(name), port, node_name).local
        key = f"{name.namespace}/{name.name}"
        count = max(out.get(key, (0, 0))[1], len(local))
        out[key] = (port.health_check_node_port, count)
    return out


def _json_view(view: Callable[[Mapping[str, str]], Any]) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response(view(request.query))

    return handler


class Proxier:
    def __init__(self, client: ApiClient, backend: Backend, options: ProxyOptions) -> None:
        self.client = client
        self.backend = backend
        self.options = options
        self.tracker = ChangeTracker()
        self.metrics = ProxyMetrics()
        self.health = ProxierHealth(timeout=2 * options.sync_period)
        self.service_health = ServiceHealthServers()
        self.runner = SyncRunner(self._sync, min_interval=options.min_sync_period,
                                 max_interval=options.sync_period, full_interval=options.full_sync_period)
        self.services: Informer[Service] = Informer(
            client, "/api/v1/services", decode=lambda raw: decode(Service, raw))
        self.slices: Informer[EndpointSlice] = Informer(
            client, "/apis/discovery.k8s.io/v1/endpointslices",
            label_selector="kubernetes.io/service-name",
            decode=lambda raw: decode(EndpointSlice, raw))
        self.node: Informer[Node] = Informer(
            client, "/api/v1/nodes", field_selector=f"metadata.name={options.node_name}",
            decode=lambda raw: decode(Node, raw))
        self.state = ProxyState()
        self.synced = asyncio.Event()
        self._wire()

    def _wire(self) -> None:
        t = self.tracker
        self.services.add_handler(lambda s: self._queued(t.service_changed, s, "service"),
                                  lambda _o, s: self._queued(t.service_changed, s, "service"),
                                  lambda s: self._queued(t.service_deleted, s, "service"))
        self.slices.add_handler(lambda s: self._queued(t.slice_changed, s, "endpoints"),
                                lambda _o, s: self._queued(t.slice_changed, s, "endpoints"),
                                lambda s: self._queued(t.slice_deleted, s, "endpoints"))
        self.node.add_handler(self.health.sync_node, lambda _o, n: self.health.sync_node(n), None)

    def _queued(self, apply: object, obj: object, kind: str) -> None:
        apply(obj)  # type: ignore[operator]
        (self.metrics.service_changes if kind == "service" else self.metrics.endpoint_changes).inc()
        self.metrics.service_changes_pending.set(self.tracker.pending_service_events)
        self.metrics.endpoint_changes_pending.set(self.tracker.pending_endpoint_events)
        self.metrics.last_queued.set(time.time())
        self.health.queued_update()
        self.runner.request()

    async def _sync(self, full: bool) -> None:
        update = self.tracker.take()
        self.metrics.service_changes_pending.set(0)
        self.metrics.endpoint_changes_pending.set(0)
        start = time.perf_counter()
        try:
            stats = await self.backend.sync(update.state, update.changes, full=full)
        except BaseException:
            self.metrics.sync_failures.inc()
            raise
        elapsed = time.perf_counter() - start
        self.state = update.state
        self.metrics.sync_duration.observe(elapsed)
        (self.metrics.full_sync_duration if full else self.metrics.partial_sync_duration).observe(elapsed)
        self._observe_programming(update)
        self.metrics.last_sync.set(time.time())
        self.metrics.services.set(len(update.state.services))
        self.metrics.endpoints.set(sum(len(e) for e in update.state.endpoints.values()))
        self.health.updated()
        await self.service_health.sync(health_check_ports(update.state, self.options.node_name))
        log.info("%s sync: %d service ports, %s in %.1f ms", "full" if full else "partial",
                 len(update.state.services), stats.detail or f"{stats.endpoints} endpoints",
                 elapsed * 1000)
        self.synced.set()

    def _observe_programming(self, update: Update) -> None:
        now = time.time()
        for when in update.trigger_times.values():
            self.metrics.programming.observe(max(0.0, now - when))

    async def run(self) -> None:
        """Runs until cancelled; on the way out the backend releases what it holds."""
        servers = await self._serve_http()
        try:
            async with asyncio.TaskGroup() as tasks:
                for informer in (self.services, self.slices, self.node):
                    tasks.create_task(informer.run(), name=f"informer {informer.path}")
                await asyncio.gather(self.services.wait_synced(), self.slices.wait_synced(),
                                     self.node.wait_synced())
                log.info("caches synced: %d services, %d endpoint slices",
                         len(self.services.cache), len(self.slices.cache))
                tasks.create_task(self.runner.run(), name="sync runner")
        finally:
            for runner in servers:
                await runner.cleanup()
            await self.service_health.close()
            await self.backend.close()

    async def _serve_http(self) -> list[web.AppRunner]:
        async def metrics(_: web.Request) -> web.Response:
            return web.Response(body=self.metrics.text(), content_type="text/plain", charset="utf-8")

        async def healthz(request: web.Request) -> web.Response:
            resp = await self.health.healthz(request)
            self.metrics.healthz.labels(str(resp.status)).inc()
            return resp

        health = web.Application()
        health.router.add_get("/healthz", healthz)
        health.router.add_get("/livez", self.health.livez)

        async def proxy_mode(_: web.Request) -> web.Response:
            return web.Response(text=self.backend.mode)  # as kube-proxy: the bare mode name

        metrics_app = web.Application()
        metrics_app.router.add_get("/metrics", metrics)
        metrics_app.router.add_get("/healthz", healthz)
        metrics_app.router.add_get("/proxyMode", proxy_mode)
        # A backend may offer views of its own state (userspace: its listeners and recent
        # endpoint picks, for `netplane trace`), on the metrics port, which binds loopback.
        views = getattr(self.backend, "debug_views", None)
        for name, view in (views() if views is not None else {}).items():
            metrics_app.router.add_get(f"/debug/{name}", _json_view(view))
        o = self.options
        runners: list[web.AppRunner] = []
        try:
            for app, host, port in ((health, o.healthz_bind_address, o.healthz_port),
                                    (metrics_app, o.metrics_bind_address, o.metrics_port)):
                if port == 0:
                    continue
                runner = web.AppRunner(app, access_log=None, handle_signals=False)
                await runner.setup()
                runners.append(runner)
                try:
                    await web.TCPSite(runner, host, port, reuse_address=True).start()
                except OSError as exc:
                    raise ProxyError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
                                     "is another proxy running on this node? (port 0 disables)") from exc
        except BaseException:
            for runner in runners:
                await runner.cleanup()
            raise
        return runners
