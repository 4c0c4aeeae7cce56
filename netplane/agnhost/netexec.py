"""`agnhost netexec`: the HTTP + UDP test server of Kubernetes' e2e network tests.

HTTP (`--http-port`, default 8080): `/` ("NOW: <time>"), `/hostname`, `/echo?msg=[&code=]`,
`/clientip` ("ip:port" of the caller), `/header?key=`, `/healthz`, `/readyz`,
`/dial?request=&host=&port=&protocol=http|udp&tries=` (JSON {"responses": [...],
"errors": [...]}), `/exit?code=`, and `/shell?cmd=` only with `--allow-shell`.
UDP (`--udp-port`, default 8081, -1 disables): "hostname", "echo <msg>", "clientip".

Readiness (a netplane choice; Kubernetes' agnhost only fails /readyz while shutting
down): /readyz answers 503 while any of these holds, so a test can flip a pod's
readiness probe: `GET /fail-readiness` was called (undone by `GET /pass-readiness`);
the file given by `--not-ready-file` exists; SIGTERM arrived with `--delay-shutdown`."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from aiohttp import web

from netplane.agnhost.addresses import hostname as default_hostname
from netplane.agnhost.addresses import join_host_port, listen_socket, peer_text
from netplane.agnhost.dial import DialError, dial_http, dial_udp

log = logging.getLogger(__name__)

MAX_TRIES = 1000


@dataclass
class NetexecOptions:
    http_port: int = 8080
    udp_port: int = 8081  # -1: no UDP server
    allow_shell: bool = False
    not_ready_file: Path | None = None
    delay_shutdown: float = 0.0
    host: str = ""


class _NetexecUDP(asyncio.DatagramProtocol):
    def __init__(self, name: str) -> None:
        self.name = name
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        # handleUDPRequest lowercases the whole text (so "echo" answers in lower case).
        text = data.decode(errors="replace").strip().lower()
        if text == "hostname":
            reply = self.name
        elif text.startswith("echo "):
            reply = text.split(" ", 1)[1]
        elif text == "clientip":
            reply = peer_text(addr)
        else:
            if text:
                log.info("unknown UDP command received: %r", text)
            return
        assert self.transport is not None
        self.transport.sendto(reply.encode(), addr)


class Netexec:
    def __init__(self, options: NetexecOptions, name: str | None = None) -> None:
        self.options = options
        self.name = name or default_hostname()
        self.ports: dict[str, int] = {}
        self.readiness_failed = False
        self.shutting_down = False
        self.exit_code: int | None = None
        self.done = asyncio.Event()  # set when the process should exit
        self._runner: web.AppRunner | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._session: aiohttp.ClientSession | None = None

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        try:
            sock = listen_socket(self.options.http_port, host=self.options.host)
            self.ports["http"] = sock.getsockname()[1]
            self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False,
                                         shutdown_timeout=1.0)
            await self._runner.setup()
            await web.SockSite(self._runner, sock).start()
            if self.options.udp_port >= 0:
                usock = listen_socket(self.options.udp_port, socket.SOCK_DGRAM, host=self.options.host)
                self.ports["udp"] = usock.getsockname()[1]
                self._udp, _ = await asyncio.get_running_loop().create_datagram_endpoint(
                    lambda: _NetexecUDP(self.name), sock=usock)
        except BaseException:
            await self.stop()
            raise
        log.info("netexec %r serving %s", self.name, self.ports)

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def terminate(self) -> None:
        """SIGTERM: with --delay-shutdown, fail readiness and keep serving that long."""
        if self.shutting_down:
            return
        self.shutting_down = True
        if self.options.delay_shutdown > 0:
            log.info("SIGTERM: not ready, exiting in %ss", self.options.delay_shutdown)
            await asyncio.sleep(self.options.delay_shutdown)
        self._exit(0)

    def _exit(self, code: int) -> None:
        if self.exit_code is None:
            self.exit_code = code
        self.done.set()

    # -- HTTP -------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        routes = {
            "/": self.root, "/hostname": self.hostname, "/echo": self.echo,
            "/clientip": self.clientip, "/header": self.header, "/healthz": self.healthz,
            "/readyz": self.readyz, "/fail-readiness": self.fail_readiness,
            "/pass-readiness": self.pass_readiness, "/dial": self.dial,
            "/exit": self.exit, "/shell": self.shell,
        }
        for path, handler in routes.items():
            app.router.add_route("*", path, handler)
        return app

    async def root(self, _: web.Request) -> web.Response:
        return web.Response(text=f"NOW: {datetime.now(UTC)}")

    async def hostname(self, _: web.Request) -> web.Response:
        return web.Response(text=self.name)

    async def echo(self, request: web.Request) -> web.Response:
        code = request.query.get("code", "200")
        if not code.isdigit() or not 100 <= int(code) <= 599:
            return web.Response(status=400, text=f"invalid code {code!r}")
        return web.Response(status=int(code), text=request.query.get("msg", ""))

    async def clientip(self, request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        return web.Response(text=peer_text(peer))

    async def header(self, request: web.Request) -> web.Response:
        return web.Response(text=request.headers.get(request.query.get("key", ""), ""))

    async def healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok")

    def not_ready_reason(self) -> str:
        if self.shutting_down:
            return "shutting down"
        if self.readiness_failed:
            return "readiness failed by /fail-readiness"
        if self.options.not_ready_file is not None and self.options.not_ready_file.exists():
            return f"{self.options.not_ready_file} exists"
        return ""

    async def readyz(self, _: web.Request) -> web.Response:
        reason = self.not_ready_reason()
        if reason:
            return web.Response(status=503, text=f"not ready: {reason}")
        return web.Response(text="ok")

    async def fail_readiness(self, _: web.Request) -> web.Response:
        self.readiness_failed = True
        return web.Response(text="readiness failed")

    async def pass_readiness(self, _: web.Request) -> web.Response:
        self.readiness_failed = False
        return web.Response(text="readiness passes")

    async def dial(self, request: web.Request) -> web.Response:
        q = request.query
        req, host, port = q.get("request", ""), q.get("host", ""), q.get("port", "")
        protocol = q.get("protocol") or "http"
        if not req:
            return web.Response(status=400, text=f'Missing request: "{req}"')
        try:
            tries = int(q.get("tries") or 1)
        except ValueError:
            return web.Response(status=400, text=f"Error parsing tries: {q.get('tries')!r}")
        if protocol not in ("http", "udp"):
            return web.Response(status=400, text=f"Unsupported protocol. {protocol}")
        if not port.isdigit():
            return web.Response(status=400, text=f"Invalid port: {port!r}")
        tries = max(0, min(tries, MAX_TRIES))
        responses: list[str] = []
        errors: list[str] = []
        for _ in range(tries):
            try:
                if protocol == "udp":
                    responses.append(await dial_udp(req, host, int(port)))
                else:
                    responses.append(await dial_http(self._client(), req, join_host_port(host, port)))
            except DialError as exc:
                errors.append(str(exc))
        output: dict[str, list[str]] = {}
        if responses:
            output["responses"] = responses
        if errors:
            output["errors"] = errors
        return web.Response(text=json.dumps(output, separators=(",", ":"), sort_keys=True),
                            content_type="application/json")

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            # A fresh connection per try, as Go's http.Get with keep-alives to many pods
            # would otherwise hide which pod a service sends a new connection to.
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
        return self._session

    async def exit(self, request: web.Request) -> web.StreamResponse:
        code = request.query.get("code", "0")
        if not code.isdigit() or int(code) > 127:
            return web.Response(status=400, text=f"bad exit code {code!r}: want 0..127")
        log.info("GET /exit?code=%s", code)
        resp = web.Response(text=f"exiting with code {code}")
        await resp.prepare(request)
        await resp.write_eof()
        self._exit(int(code))
        return resp

    async def shell(self, request: web.Request) -> web.Response:
        if not self.options.allow_shell:
            return web.Response(status=403, text="/shell is disabled; start netexec with --allow-shell")
        cmd = request.query.get("shellCommand") or request.query.get("cmd", "")
        if request.method == "POST" and not cmd:
            cmd = (await request.post()).get("cmd", "")  # type: ignore[assignment]
        proc = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", str(cmd), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await proc.communicate()
        output: dict[str, str] = {}
        if out:
            output["output"] = out.decode(errors="replace")
        if proc.returncode:
            output["error"] = f"exit status {proc.returncode}"
        return web.Response(text=json.dumps(output, separators=(",", ":"), sort_keys=True),
                            content_type="application/json")
