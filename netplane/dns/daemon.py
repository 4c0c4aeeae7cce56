"""`netplane dns` as one coroutine: the zone, its feed, the caches, the forwarder, the
listeners and the HTTP side, wired together and torn down together."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from netplane.client.rest import ApiClient
from netplane.dns import http
from netplane.dns.answercache import AnswerCache
from netplane.dns.feed import ZoneFeed
from netplane.dns.forward import Forwarder, ForwardStats
from netplane.dns.metrics import DnsMetrics
from netplane.dns.querypath import PathOptions, QueryPath
from netplane.dns.server import DnsServer
from netplane.dns.upstreamcache import UpstreamCache
from netplane.dns.upstreams import UpstreamConfig
from netplane.dns.zone import Zone, ZoneConfig

log = logging.getLogger(__name__)


class DnsError(Exception):
    """The server cannot start; the message says what to do."""


@dataclass(frozen=True)
class DnsOptions:
    listen: tuple[str, int] = ("0.0.0.0", 53)
    zone: ZoneConfig = field(default_factory=ZoneConfig)
    upstreams: UpstreamConfig = field(default_factory=UpstreamConfig)
    host_searches: tuple[str, ...] = ()
    autopath: bool = False
    cache_size: int = 10000  # upstream answers (CoreDNS's cache: 9984 per kind)
    answer_cache_size: int = 10000  # zone answers kept as wire bytes
    upstream_timeout: float = 2.0
    configmap: tuple[str, str] | None = ("kube-system", "kube-dns")
    health: tuple[str, int] = ("0.0.0.0", 8080)
    metrics: tuple[str, int] = ("0.0.0.0", 9153)
    # As CoreDNS's kubernetes plugin: answer only once the informers have synced, but
    # not wait longer than this for them (a partial zone beats no DNS at all).
    sync_timeout: float = 5.0


async def run(client: ApiClient, opts: DnsOptions,
              on_serving: Callable[[tuple[str, int]], None] | None = None) -> None:
    """Serves until cancelled."""
    zone = Zone(opts.zone, serial=int(time.time()))
    answers = AnswerCache(opts.answer_cache_size)
    upstream_cache = UpstreamCache(opts.cache_size)
    forward_stats = ForwardStats()
    forwarder = Forwarder(opts.upstreams, upstream_cache, timeout=opts.upstream_timeout, stats=forward_stats)
    metrics = DnsMetrics(zone, answers, upstream_cache, forward_stats)
    path = QueryPath(zone, forwarder, metrics, PathOptions(autopath=opts.autopath,
                                                            host_searches=opts.host_searches))
    server = DnsServer(path)
    feed = ZoneFeed(client, zone, on_change=path.zone_changed,
                    watch_pods=opts.autopath or opts.zone.pods == "verified", configmap=opts.configmap,
                    base_upstreams=opts.upstreams, on_upstreams=forwarder.reconfigure)
    try:
        address = server.bind(*opts.listen)
    except OSError as exc:
        raise DnsError(f"cannot listen on {opts.listen[0]}:{opts.listen[1]}: {exc.strerror or exc}") from exc
    try:
        runners = await http.serve(feed.ready, metrics.text, opts.health, opts.metrics)
    except http.HttpError as exc:
        await server.close()
        raise DnsError(f"{exc} (port 0 disables it)") from exc
    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(feed.run(), name="zone feed")
            try:
                await asyncio.wait_for(feed.ready.wait(), opts.sync_timeout)
            except TimeoutError:
                log.warning("the informers have not synced within %.0fs; answering from what is known",
                            opts.sync_timeout)
            await server.serve()
            log.info("serving zone %s on %s:%d (udp, tcp); upstreams: %s", zone.domain, *address,
                     ", ".join(map(str, opts.upstreams.default)) or "none")
            if on_serving is not None:
                on_serving(address)
    finally:
        await server.close()
        for runner in runners:
            await runner.cleanup()
