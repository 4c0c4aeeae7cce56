"""The DNS server's HTTP side, as CoreDNS's health, ready and prometheus plugins: `/health`
(the process serves), `/ready` (the informers have synced: the zone is complete) and
`/metrics`, on addresses of their own."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web


class HttpError(Exception):
    """A listener cannot start; the message names the address."""


def _app(ready: asyncio.Event, metrics: Callable[[], bytes], *, health: bool) -> web.Application:
    async def get_health(_: web.Request) -> web.Response:
        return web.Response(text="OK")

    async def get_ready(_: web.Request) -> web.Response:
        if ready.is_set():
            return web.Response(text="OK")
        return web.Response(status=503, text="the informers have not synced yet")

    async def get_metrics(_: web.Request) -> web.Response:
        return web.Response(body=metrics(), content_type="text/plain", charset="utf-8")

    app = web.Application()
    if health:
        app.router.add_get("/health", get_health)
        app.router.add_get("/ready", get_ready)
    app.router.add_get("/metrics", get_metrics)
    return app


async def serve(ready: asyncio.Event, metrics: Callable[[], bytes], health_address: tuple[str, int],
                metrics_address: tuple[str, int]) -> list[web.AppRunner]:
    """Starts the listeners (port 0: that one is off); the caller cleans the runners up."""
    runners: list[web.AppRunner] = []
    try:
        for (host, port), health in ((health_address, True), (metrics_address, False)):
            if port == 0:
                continue
            runner = web.AppRunner(_app(ready, metrics, health=health), access_log=None, handle_signals=False)
            await runner.setup()
            runners.append(runner)
            try:
                await web.TCPSite(runner, host, port, reuse_address=True).start()
            except OSError as exc:
                raise HttpError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    except BaseException:
        for runner in runners:
            await runner.cleanup()
        raise
    return runners
