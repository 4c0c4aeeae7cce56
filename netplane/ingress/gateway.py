"""`netplane ingress` as a running thing: the HTTP and HTTPS listeners, the controller that
feeds them, the sweeper, and /healthz and Prometheus /metrics on a port of their own."""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass, field
from typing import IO

from aiohttp import web

from netplane.client.rest import ApiClient
from netplane.ingress.accesslog import AccessLog
from netplane.ingress.config import Options
from netplane.ingress.controller import Controller
from netplane.ingress.downstream import Downstream
from netplane.ingress.metrics import IngressMetrics
from netplane.ingress.proxy import Proxy, ProxySettings
from netplane.ingress.tls import TlsContexts

log = logging.getLogger(__name__)


class GatewayError(Exception):
    """The gateway cannot start; the message says what to do."""


@dataclass(frozen=True)
class ServeOptions:
    listen: tuple[str, int] | None = ("0.0.0.0", 8080)
    tls_listen: tuple[str, int] | None = ("0.0.0.0", 8443)
    metrics_listen: tuple[str, int] | None = ("0.0.0.0", 10254)
    options: Options = field(default_factory=Options)
    settings: ProxySettings = field(default_factory=ProxySettings)
    access_log: IO[bytes] | None = None


def parse_address(text: str, what: str) -> tuple[str, int] | None:
    """"ADDR:PORT", ":PORT" or "PORT"; port 0 (or "off") disables."""
    if text in ("0", "off", ""):
        return None
    host, sep, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise GatewayError(f"{what} must be ADDR:PORT, not {text!r}") from None
    if not 0 <= number <= 65535:
        raise GatewayError(f"{what}: port {number} is out of range")
    if number == 0:
        return None
    return (host.strip("[]") or "0.0.0.0") if sep else "0.0.0.0", number


class Gateway:
    def __init__(self, client: ApiClient, opts: ServeOptions) -> None:
        self.client = client
        self.opts = opts
        self.metrics = IngressMetrics()
        self.proxy: Proxy | None = None
        self.controller: Controller | None = None
        self.tls = TlsContexts() if opts.tls_listen else None
        self.servers: list[asyncio.AbstractServer] = []
        self.ports: dict[str, int] = {}

    async def _listen(self, address: tuple[str, int], *, tls: bool) -> None:
        loop = asyncio.get_running_loop()
        proxy = self.proxy
        assert proxy is not None
        host, port = address

        def factory() -> Downstream:
            return Downstream(proxy, tls=tls, port=port)

        try:
            server = await loop.create_server(factory, host, port, backlog=4096, reuse_address=True,
                                              ssl=self.tls.context if tls and self.tls else None)
        except OSError as exc:
            raise GatewayError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        self.servers.append(server)
        bound = server.sockets[0].getsockname()[1]
        self.ports["https" if tls else "http"] = bound
        for sock in server.sockets:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        log.info("serving %s on %s:%d", "HTTPS" if tls else "HTTP", host, bound)

    async def _serve_health(self) -> web.AppRunner | None:
        address = self.opts.metrics_listen
        if address is None:
            return None

        async def healthz(_: web.Request) -> web.Response:
            ready = self.controller is not None and self.controller.ready.is_set()
            return web.Response(status=200 if ready else 503,
                                text="ok\n" if ready else "no configuration yet\n")

        async def metrics(_: web.Request) -> web.Response:
            return web.Response(body=self.metrics.text(), content_type="text/plain", charset="utf-8")

        app = web.Application()
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/readyz", healthz)
        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, address[0], address[1], reuse_address=True)
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            where = f"{address[0]}:{address[1]}"
            raise GatewayError(f"cannot serve metrics on {where}: {exc.strerror or exc}") from exc
        if runner.addresses:
            self.ports["metrics"] = runner.addresses[0][1]  # the bound port, when 0 was asked for
        return runner

    async def run(self, started: asyncio.Event | None = None) -> None:
        """Serves until cancelled."""
        loop = asyncio.get_running_loop()
        self.proxy = Proxy(loop, self.opts.settings, self.metrics, AccessLog(self.opts.access_log))
        self.controller = Controller(self.client, self.proxy, self.tls, self.opts.options)
        runner = await self._serve_health()
        try:
            if self.opts.listen:
                await self._listen(self.opts.listen, tls=False)
            if self.opts.tls_listen:
                await self._listen(self.opts.tls_listen, tls=True)
            if started is not None:
                started.set()
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self.controller.run(), name="ingress controller")
                tasks.create_task(self.proxy.sweep(), name="deadline sweeper")
        finally:
            for server in self.servers:
                server.close()
            await self.proxy.close()
            if runner is not None:
                await runner.cleanup()
