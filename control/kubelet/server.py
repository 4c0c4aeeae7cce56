"""The kubelet's own API (docs/cluster.md): container logs, exec and port forwarding on a
unix socket, and /healthz and /metrics there and on --healthz-port."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from control.kubelet.portforward import PortForwarder

if TYPE_CHECKING:
    from control.kubelet.containers import ContainerRunner
    from control.kubelet.kubelet import Kubelet

log = logging.getLogger(__name__)

STDOUT, STDERR, EXIT = 1, 2, 3
_FOLLOW_POLL = 0.2
_CHUNK = 65536


def frame(channel: int, data: bytes) -> bytes:
    """One exec frame: channel, big-endian length, data."""
    return struct.pack(">BI", channel, len(data)) + data


def tail_offset(path: Path, n: int, block: int = _CHUNK) -> tuple[int, int]:
    """(where the last `n` lines of the file start, its size), reading backwards only as far
    as needed (n < 0: from the start)."""
    try:
        with path.open("rb") as f:
            size = f.seek(0, 2)
            if n < 0:
                return 0, size
            if n == 0:
                return size, size
            pos, newlines = size, 0
            # A final line without a newline counts as a line too.
            f.seek(max(size - 1, 0))
            skip_last = f.read(1) == b"\n"
            while pos > 0:
                start = max(pos - block, 0)
                f.seek(start)
                chunk = f.read(pos - start)
                for i in range(len(chunk) - 1, -1, -1):
                    if chunk[i] != 0x0A:
                        continue
                    if skip_last and start + i == size - 1:
                        continue
                    newlines += 1
                    if newlines == n:
                        return start + i + 1, size
                pos = start
            return 0, size
    except FileNotFoundError:
        return 0, 0


def _read_from(path: Path, offset: int, limit: int = -1) -> bytes:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read(limit)
    except FileNotFoundError:
        return b""


def _int(request: web.Request, name: str, default: int) -> int:
    text = request.query.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be an integer, not {text!r}") from None


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "false").lower() in ("true", "1")


def unsupported_log_options(query: Mapping[str, str]) -> str | None:
    """Why this kubelet refuses a log request's options, or None. A container's stdout and
    stderr go straight into its log file (so that it keeps running across kubelet restarts),
    and nothing records when a line was written: `timestamps`, `sinceSeconds` and `sinceTime`
    would need that, and are refused rather than silently ignored."""
    asked = [name for name in ("sinceSeconds", "sinceTime") if query.get(name, "") != ""]
    if query.get("timestamps", "false").lower() in ("true", "1"):
        asked.insert(0, "timestamps")
    if not asked:
        return None
    return (f"{', '.join(asked)} not supported: this kubelet's container logs do not record when "
            f"each line was written; use tailLines or limitBytes")


class KubeletServers:
    def __init__(self, kubelet: Kubelet) -> None:
        self.kubelet = kubelet
        self._runners: list[web.AppRunner] = []
        self.port_forwarder = PortForwarder(kubelet)

    async def start(self) -> None:
        cfg = self.kubelet.config
        sock = cfg.socket_path
        runner = web.AppRunner(self.api_app(), access_log=None, handle_signals=False)
        await runner.setup()
        self._runners.append(runner)
        sock.parent.mkdir(parents=True, exist_ok=True)
        sock.unlink(missing_ok=True)  # left by a kubelet that died
        await web.UnixSite(runner, str(sock)).start()
        if cfg.healthz_port:
            health = web.AppRunner(self.health_app(), access_log=None, handle_signals=False)
            await health.setup()
            self._runners.append(health)
            await web.TCPSite(health, cfg.healthz_bind_address, cfg.healthz_port).start()

    async def stop(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        self.kubelet.config.socket_path.unlink(missing_ok=True)

    # -- apps ------------------------------------------------------------------------------

    def health_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.metrics)
        return app

    def api_app(self) -> web.Application:
        app = self.health_app()
        app.router.add_get("/containerLogs/{ns}/{pod}/{container}", self.logs)
        app.router.add_post("/exec/{ns}/{pod}/{container}", self.exec)
        app.router.add_get("/portForward/{ns}/{pod}", self.port_forwarder.handle)
        # An open forwarding lasts as long as its client; stopping would wait for it (up to the
        # runner's shutdown timeout). Shutdown hooks run once the socket accepts no more.
        app.on_shutdown.append(self._close_forwardings)
        return app

    async def _close_forwardings(self, _app: web.Application) -> None:
        await self.port_forwarder.close_all()

    async def healthz(self, _request: web.Request) -> web.Response:
        if self.kubelet.healthy():
            return web.Response(text="ok")
        return web.Response(status=500, text="not ready: the pod informers have not synced")

    async def metrics(self, _request: web.Request) -> web.Response:
        return web.Response(body=self.kubelet.metrics.text(),
                            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    def _find(self, request: web.Request) -> ContainerRunner:
        ns, pod, name = (request.match_info[k] for k in ("ns", "pod", "container"))
        worker = self.kubelet.worker_for(ns, pod)
        if worker is None:
            raise web.HTTPNotFound(text=f'pod "{pod}" in namespace "{ns}" is not on this node')
        container = worker.container(name)
        if container is None:
            raise web.HTTPNotFound(text=f'container "{name}" is not valid for pod "{pod}"')
        return container

    # -- logs ------------------------------------------------------------------------------

    async def logs(self, request: web.Request) -> web.StreamResponse:
        """The container's log; `previous` the one before its last restart; `tailLines`,
        `limitBytes`; `follow` streams until the container stops or the client goes."""
        refused = unsupported_log_options(request.query)
        if refused is not None:
            raise web.HTTPBadRequest(text=refused)
        container = self._find(request)
        worker = container.worker
        restart = container.record.restart_count
        if _flag(request, "previous"):
            if container.record.last_terminated is None or restart == 0:
                raise web.HTTPBadRequest(
                    text=f'previous terminated container "{container.name}" in pod "{worker.name}" not found')
            restart -= 1
        path = worker.kubelet.runtime.log_path(worker.uid, container.name, restart)
        if not path.exists() and not container.running:
            state = container.record.reason or container.record.state
            raise web.HTTPBadRequest(text=f'container "{container.name}" in pod "{worker.name}" is waiting '
                                          f"to start: {state}")
        limit = _int(request, "limitBytes", -1)
        start, end = await asyncio.to_thread(tail_offset, path, _int(request, "tailLines", -1))
        resp = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
        await resp.prepare(request)
        with contextlib.suppress(ConnectionResetError):  # the client stopped reading (e.g. follow)
            offset, sent = start, 0
            while offset < end and (limit < 0 or sent < limit):
                want = min(_CHUNK, end - offset) if limit < 0 else min(_CHUNK, end - offset, limit - sent)
                chunk = await asyncio.to_thread(_read_from, path, offset, want)
                if not chunk:
                    break
                offset, sent = offset + len(chunk), sent + len(chunk)
                await resp.write(chunk)
            if _flag(request, "follow") and not _flag(request, "previous"):
                await self._follow(resp, container, path, offset, sent, limit)
            await resp.write_eof()
        return resp

    async def _follow(self, resp: web.StreamResponse, container: ContainerRunner, path: Path, offset: int,
                      sent: int, limit: int) -> None:
        proc = container.process
        while limit < 0 or sent < limit:
            chunk = await asyncio.to_thread(_read_from, path, offset, _CHUNK)
            if chunk:
                offset += len(chunk)
                chunk = chunk if limit < 0 else chunk[:limit - sent]
                sent += len(chunk)
                await resp.write(chunk)
                continue
            if proc is None or proc.exited or container.process is not proc:
                return  # the container stopped and its log is drained
            await asyncio.sleep(_FOLLOW_POLL)

    # -- exec ------------------------------------------------------------------------------

    async def exec(self, request: web.Request) -> web.StreamResponse:
        """Runs `command` in the running container's namespaces, with its environment; the
        request body is its stdin; frames carry stdout, stderr and the exit code."""
        container = self._find(request)
        command = request.query.getall("command", [])
        if not command:
            raise web.HTTPBadRequest(text="no command given (?command=...)")
        proc_info = container.process
        if proc_info is None or proc_info.exited:
            raise web.HTTPBadRequest(text=f'container "{container.name}" is not running '
                                          f"({container.record.reason or container.record.state})")
        runtime = container.worker.kubelet.runtime
        argv = runtime.exec_argv(proc_info.pid, command, container.spec.working_dir)
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await resp.prepare(request)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=container.env, start_new_session=True)
        except OSError as exc:
            await resp.write(frame(STDERR, f"{exc}\n".encode()) + frame(EXIT, b'{"exitCode": 126}'))
            await resp.write_eof()
            return resp
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        stdin = proc.stdin

        async def feed() -> None:
            with contextlib.suppress(ConnectionError, BrokenPipeError):
                async for chunk in request.content.iter_any():
                    stdin.write(chunk)
                    await stdin.drain()
            stdin.close()

        async def pump(stream: asyncio.StreamReader, channel: int) -> None:
            while chunk := await stream.read(_CHUNK):
                await resp.write(frame(channel, chunk))

        try:
            await asyncio.gather(feed(), pump(proc.stdout, STDOUT), pump(proc.stderr, STDERR))
            code = await proc.wait()
        finally:
            if proc.returncode is None:  # the client went away: so does the command
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        code = 128 - code if code < 0 else code
        await resp.write(frame(EXIT, json.dumps({"exitCode": code}).encode()))
        await resp.write_eof()
        return resp
