"""What every client connection of the gateway shares: the current configuration (swapped
atomically), the balancer, the upstream pools, metrics and the access log, the limits, and
one sweeper that enforces every time-out.

Time-outs are deadlines (floats) on the connections, checked once per `tick` by the
sweeper, instead of a timer per request: a timer handle per request and phase costs
more than the benchmark's per-request budget allows, and nginx keeps its timers the
same coarse way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from netplane.ingress.accesslog import AccessLog
from netplane.ingress.balancer import Balancer
from netplane.ingress.config import Config
from netplane.ingress.metrics import IngressMetrics
from netplane.ingress.paths import normalize_host
from netplane.ingress.upstream import Pool

if TYPE_CHECKING:
    from netplane.ingress.downstream import Downstream

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProxySettings:
    """Limits and time-outs; defaults are ingress-nginx's (nginx's) where it has them."""

    max_url_bytes: int = 8192  # 414 above
    max_header_bytes: int = 32768  # 431 above (request line excluded)
    max_headers: int = 100
    header_timeout: float = 60.0  # client_header_timeout: 408
    body_timeout: float = 60.0  # client_body_timeout, between two reads: 408
    keepalive_timeout: float = 75.0  # an idle client connection is closed
    send_timeout: float = 60.0  # a client that reads nothing for this long is dropped
    max_tries: int = 3  # endpoints tried for one request when connections are refused
    https_port: int = 443  # where ssl-redirect points
    upstream_idle_timeout: float = 60.0
    max_idle_per_endpoint: int = 128
    tick: float = 0.5  # how often deadlines are checked


class Proxy:
    def __init__(self, loop: asyncio.AbstractEventLoop, settings: ProxySettings | None = None,
                 metrics: IngressMetrics | None = None, access_log: AccessLog | None = None,
                 balancer: Balancer | None = None) -> None:
        self.loop = loop
        self.settings = settings or ProxySettings()
        self.metrics = metrics or IngressMetrics()
        self.access_log = access_log or AccessLog(None)
        self.balancer = balancer or Balancer()
        self.pool = Pool(loop, max_idle_per_endpoint=self.settings.max_idle_per_endpoint,
                         idle_timeout=self.settings.upstream_idle_timeout)
        self.config = Config()
        self.hosts: dict[bytes, str] = {}  # Host header -> routing name, a cache
        self.connections: set[Downstream] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.metrics.gauge("netplane_ingress_connections", "Open client connections",
                           lambda: float(len(self.connections)))
        self.metrics.gauge("netplane_ingress_upstream_idle_connections", "Kept-alive upstream connections",
                           lambda: float(self.pool.idle_count))
        self.metrics.gauge("netplane_ingress_endpoints_ejected", "Endpoints ejected as outliers now",
                           lambda: float(len(self.balancer.ejected())))
        self.metrics.gauge("netplane_ingress_ejections_total", "Outlier ejections so far",
                           lambda: float(self.balancer.ejections_total))

    def swap(self, config: Config) -> None:
        """Makes `config` the one every new request routes by. Requests in flight keep the
        route they have; idle connections to endpoints that left are closed."""
        self.config = config
        endpoints = config.table.endpoints()
        self.pool.retain(endpoints)
        self.balancer.forget(endpoints)
        m = self.metrics
        m.config_updates += 1
        m.config_timestamp = time.time()
        m.config_problems = len(config.problems)
        m.routes = len(config.table.routes())

    def normalized_host(self, raw: bytes) -> str:
        """The routing name of a Host header, cached (clients send the same few)."""
        if len(self.hosts) >= 4096:
            self.hosts.clear()  # bounded: Host headers are chosen by clients
        name = self.hosts[raw] = normalize_host(raw.decode("latin-1"))
        return name

    def spawn(self, coro: object) -> None:
        task = self.loop.create_task(coro)  # type: ignore[arg-type]
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def sweep(self) -> None:
        """Runs until cancelled: expires deadlines, ages out idle upstream connections."""
        while True:
            await asyncio.sleep(self.settings.tick)
            now = self.loop.time()
            for conn in list(self.connections):
                if conn.deadline and now >= conn.deadline:
                    try:
                        conn.expire(now)
                    except Exception:  # one broken connection must not stop the sweeper
                        log.exception("expiring a client connection failed")
            self.pool.sweep(now)

    async def close(self) -> None:
        for conn in list(self.connections):
            conn.abort()
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            with contextlib.suppress(BaseException):
                await task
        self.pool.close()
        self.access_log.flush()
