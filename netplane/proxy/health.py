"""kube-proxy's health: the proxier's own (`/healthz`, `/livez` on port 10256) and, for
services with `externalTrafficPolicy: Local`, one HTTP server per health-check node port
that says whether this node has local endpoints (load balancers probe it).

`ProxierHealth` is kube-proxy's ProxierHealthServer logic: healthy unless an update was
queued more than `timeout` ago and no sync has applied it since; a node being deleted or
tainted ToBeDeletedByClusterAutoscaler is not eligible, which /healthz (not /livez) reports.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from aiohttp import web

from netplane.model import Node

log = logging.getLogger(__name__)

TO_BE_DELETED_TAINT = "ToBeDeletedByClusterAutoscaler"


def _rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


class ProxierHealth:
    def __init__(self, timeout: float, now: Callable[[], float] = time.time) -> None:
        self.timeout = timeout
        self._now = now
        self.last_updated = 0.0
        self.oldest_pending: float | None = None
        self.node_eligible = True

    def queued_update(self) -> None:
        if self.oldest_pending is None:
            self.oldest_pending = self._now()

    def updated(self) -> None:
        self.oldest_pending = None
        self.last_updated = self._now()

    def sync_node(self, node: Node) -> None:
        deleting = node.metadata.deletion_timestamp is not None
        tainted = any(t.key == TO_BE_DELETED_TAINT for t in node.spec.taints)
        self.node_eligible = not (deleting or tainted)

    def healthy(self) -> bool:
        return self.oldest_pending is None or self._now() - self.oldest_pending < self.timeout

    def _answer(self, healthy: bool, body: dict[str, object]) -> web.Response:
        return web.Response(status=200 if healthy else 503, text=json.dumps(body),
                            content_type="application/json",
                            headers={"X-Content-Type-Options": "nosniff"})

    async def healthz(self, _: web.Request) -> web.Response:
        now = self._now()
        healthy = self.healthy() and self.node_eligible
        # As kube-proxy: a healthy proxy reports lastUpdated as now (older clients read
        # it as "the sync loop is alive").
        last = now if healthy else self.last_updated
        return self._answer(healthy, {"lastUpdated": _rfc3339(last), "currentTime": _rfc3339(now),
                                      "nodeEligible": self.node_eligible})

    async def livez(self, _: web.Request) -> web.Response:
        now = self._now()
        healthy = self.healthy()
        last = now if healthy else self.last_updated
        return self._answer(healthy, {"lastUpdated": _rfc3339(last), "currentTime": _rfc3339(now)})


class ServiceHealthServers:
    """One listener per health-check node port; 200 while the service has local
    endpoints on this node, 503 otherwise (kube-proxy's ServiceHealthServer)."""

    def __init__(self, bind_address: str = "0.0.0.0") -> None:
        self.bind_address = bind_address
        self._local: dict[str, int] = {}  # "ns/name" -> local endpoint count
        self._servers: dict[int, tuple[str, web.AppRunner]] = {}  # port -> (service, runner)

    async def sync(self, wanted: dict[str, tuple[int, int]]) -> None:
        """`wanted`: service "ns/name" -> (health-check node port, local endpoint count)."""
        self._local = {svc: count for svc, (_port, count) in wanted.items()}
        by_port = {port: svc for svc, (port, _count) in wanted.items()}
        for port in list(self._servers):
            if by_port.get(port) != self._servers[port][0]:
                _svc, runner = self._servers.pop(port)
                await runner.cleanup()
        for port, svc in by_port.items():
            if port in self._servers:
                continue
            try:
                self._servers[port] = (svc, await self._serve(svc, port))
            except OSError as exc:
                log.error("service %s: cannot serve its health check on port %d: %s", svc, port, exc)

    async def _serve(self, svc: str, port: int) -> web.AppRunner:
        namespace, name = svc.split("/", 1)

        async def handler(_: web.Request) -> web.Response:
            count = self._local.get(svc, 0)
            body = {"service": {"namespace": namespace, "name": name}, "localEndpoints": count,
                    "serviceProxyHealthy": True}
            return web.Response(status=200 if count > 0 else 503, text=json.dumps(body),
                                content_type="application/json",
                                headers={"X-Content-Type-Options": "nosniff",
                                         "X-Load-Balancing-Endpoint-Weight": str(count)})

        app = web.Application()
        app.router.add_get("/{tail:.*}", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.bind_address, port, reuse_address=True).start()
        except BaseException:
            await runner.cleanup()
            raise
        return runner

    @property
    def ports(self) -> list[int]:
        return sorted(self._servers)

    async def close(self) -> None:
        for _svc, runner in self._servers.values():
            await runner.cleanup()
        self._servers.clear()
