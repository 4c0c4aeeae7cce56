"""`agnhost serve-hostname`: answers every TCP connection, UDP datagram or HTTP request
on one port with the hostname (no newline), as Kubernetes' agnhost does."""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass

from aiohttp import web

from netplane.agnhost.addresses import hostname as default_hostname
from netplane.agnhost.addresses import listen_socket

log = logging.getLogger(__name__)


@dataclass
class ServeHostnameOptions:
    port: int = 9376
    tcp: bool = False
    udp: bool = False
    http: bool = True
    close: bool = False  # HTTP: close the connection after each answer
    host: str = ""


class _HostnameUDP(asyncio.DatagramProtocol):
    def __init__(self, name: bytes) -> None:
        self.name = name
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        assert self.transport is not None
        self.transport.sendto(self.name, addr)


class ServeHostname:
    """The servers of one `serve-hostname`; `start` binds, `ports` says where."""

    def __init__(self, options: ServeHostnameOptions, name: str | None = None) -> None:
        if options.tcp and options.http:
            raise ValueError("can't serve both --tcp and --http on one port; pick one")
        if not (options.tcp or options.udp or options.http):
            raise ValueError("nothing to serve: pass --tcp, --udp or --http")
        self.options = options
        self.name = name or default_hostname()
        self.ports: dict[str, int] = {}
        self._closers: list = []

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        port = self.options.port
        try:
            if self.options.tcp or self.options.http:
                sock = listen_socket(port, host=self.options.host)
                port = self.ports["tcp"] = sock.getsockname()[1]
                if self.options.tcp:
                    server = await asyncio.start_server(self._tcp, sock=sock)
                    self._closers.append(server)
                else:
                    await self._start_http(sock)
            if self.options.udp:
                usock = listen_socket(port, socket.SOCK_DGRAM, host=self.options.host)
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _HostnameUDP(self.name.encode()), sock=usock)
                self.ports["udp"] = usock.getsockname()[1]
                self._closers.append(transport)
        except BaseException:
            await self.stop()
            raise
        log.info("serving hostname %r on %s", self.name, self.ports)

    async def _tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(self.name.encode())
            await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def _start_http(self, sock: socket.socket) -> None:
        close = self.options.close

        async def answer(_: web.Request) -> web.Response:
            headers = {"Connection": "close"} if close else None
            return web.Response(text=self.name, headers=headers)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", answer)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        self._closers.append(runner)
        await web.SockSite(runner, sock).start()

    async def stop(self) -> None:
        for closer in reversed(self._closers):
            if isinstance(closer, web.AppRunner):
                await closer.cleanup()
            elif isinstance(closer, asyncio.Server):
                closer.close()
                await closer.wait_closed()
            else:  # a datagram transport
                closer.close()
        self._closers.clear()
