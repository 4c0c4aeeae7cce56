"""The kubelet's own API on a unix socket (docs/cluster.md): container logs and exec."""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from netplane.kernel.exec import in_pod

if TYPE_CHECKING:
    from control.kubelet.kubelet import Kubelet


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            return f.read()
    except FileNotFoundError:
        return b""


def _frame(channel: int, data: bytes) -> bytes:
    return struct.pack(">BI", channel, len(data)) + data


def build_app(kubelet: Kubelet) -> web.Application:
    app = web.Application()

    def find(request: web.Request) -> tuple[object, object]:
        worker = kubelet.worker_for(request.match_info["ns"], request.match_info["pod"])
        if worker is None:
            raise web.HTTPNotFound(text=f"pod {request.match_info['pod']} is not on this node")
        container = worker.container(request.match_info["container"])
        if container is None:
            raise web.HTTPNotFound(text=f"no container {request.match_info['container']}")
        return worker, container

    async def logs(request: web.Request) -> web.StreamResponse:
        _worker, container = find(request)
        q = request.query
        restart = container.record.restart_count  # type: ignore[attr-defined]
        if q.get("previous") == "true":
            if restart == 0:
                raise web.HTTPBadRequest(text="previous terminated container not found")
            restart -= 1
        path: Path = container.log_path(restart)  # type: ignore[attr-defined]
        data = await asyncio.to_thread(_read_from, path, 0)
        if q.get("tailLines"):
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-int(q["tailLines"]):]) if int(q["tailLines"]) > 0 else b""
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        await resp.write(data)
        if q.get("follow") == "true":
            offset = len(await asyncio.to_thread(_read_from, path, 0))
            while True:  # until the client goes away
                await asyncio.sleep(0.2)
                chunk = await asyncio.to_thread(_read_from, path, offset)
                if chunk:
                    offset += len(chunk)
                    await resp.write(chunk)
        await resp.write_eof()
        return resp

    async def run_exec(request: web.Request) -> web.StreamResponse:
        worker, container = find(request)
        command = request.query.getall("command", [])
        if not command:
            raise web.HTTPBadRequest(text="no command")
        stdin = await request.read()
        binds = {str(worker.pod_dir / "resolv.conf"): "/etc/resolv.conf",  # type: ignore[attr-defined]
                 str(worker.pod_dir / "hosts"): "/etc/hosts"}  # type: ignore[attr-defined]
        resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await resp.prepare(request)
        try:
            proc = await asyncio.create_subprocess_exec(
                *in_pod(worker.netns, command, binds, worker.hostname),  # type: ignore[attr-defined]
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=container.env)  # type: ignore[attr-defined]
        except OSError as exc:
            await resp.write(_frame(2, f"{exc}\n".encode()) + _frame(3, b'{"exitCode": 126}'))
            return resp

        async def pump(stream: asyncio.StreamReader, channel: int) -> None:
            while chunk := await stream.read(65536):
                await resp.write(_frame(channel, chunk))

        assert proc.stdin and proc.stdout and proc.stderr
        proc.stdin.write(stdin)
        with contextlib.suppress(ConnectionError):
            await proc.stdin.drain()
        proc.stdin.close()
        await asyncio.gather(pump(proc.stdout, 1), pump(proc.stderr, 2))
        code = await proc.wait()
        await resp.write(_frame(3, json.dumps({"exitCode": code}).encode()))
        await resp.write_eof()
        return resp

    app.router.add_get("/containerLogs/{ns}/{pod}/{container}", logs)
    app.router.add_post("/exec/{ns}/{pod}/{container}", run_exec)
    app.router.add_get("/healthz", lambda _r: _ok())
    return app


async def _ok() -> web.Response:
    return web.Response(text="ok")
