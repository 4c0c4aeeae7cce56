"""A backend for the ingress gateway's tests, runnable as a plain script (pods run it with the
host's interpreter): answers on every --port with what it saw, and has the endpoints the
tests need.

    /anything         JSON: name, port, peer_port, method, path (as received), headers
    /ws               WebSocket echo
    /upload (POST)    reads the body as a stream; JSON: bytes, sha256
    /download?bytes=N N bytes, streamed, with Content-Length (chunked with &chunked=1)
    /sleep?s=X        answers after X seconds
    /status?code=N    answers with that status

and, on --raw-port, a body without length or chunking that ends when the server closes
(as HTTP/1.0-era servers answer).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import socket

from aiohttp import WSMsgType, web

CHUNK = bytes(range(256)) * 256  # 64 KiB


async def describe(request: web.Request) -> web.Response:
    sockname = request.transport.get_extra_info("sockname") if request.transport else ("", 0)
    peer = request.transport.get_extra_info("peername") if request.transport else ("", 0)
    body = {"name": request.app["name"], "port": sockname[1], "peer_port": peer[1], "method": request.method,
            "path": request.raw_path, "headers": {k: v for k, v in request.headers.items()}}
    return web.json_response(body)


async def ws_echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            await ws.send_str(f"{request.app['name']}: {msg.data}")
        elif msg.type == WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
    return ws


async def upload(request: web.Request) -> web.Response:
    digest = hashlib.sha256()
    total = 0
    async for chunk in request.content.iter_any():
        digest.update(chunk)
        total += len(chunk)
    return web.json_response({"bytes": total, "sha256": digest.hexdigest(), "name": request.app["name"]})


async def download(request: web.Request) -> web.StreamResponse:
    size = int(request.query.get("bytes", "0"))
    resp = web.StreamResponse()
    if request.query.get("chunked") != "1":
        resp.content_length = size
    resp.content_type = "application/octet-stream"
    await resp.prepare(request)
    left = size
    while left > 0:
        piece = CHUNK[: min(left, len(CHUNK))]
        await resp.write(piece)
        left -= len(piece)
    await resp.write_eof()
    return resp


async def sleep(request: web.Request) -> web.Response:
    await asyncio.sleep(float(request.query.get("s", "1")))
    return web.Response(text="slept\n")


async def status(request: web.Request) -> web.Response:
    return web.Response(status=int(request.query.get("code", "200")), text="status\n")


def expected_download(size: int) -> str:
    """The sha256 of /download?bytes=size, for the tests."""
    digest = hashlib.sha256()
    left = size
    while left > 0:
        piece = CHUNK[: min(left, len(CHUNK))]
        digest.update(piece)
        left -= len(piece)
    return digest.hexdigest()


def build(name: str) -> web.Application:
    app = web.Application(client_max_size=0)
    app["name"] = name
    app.router.add_get("/ws", ws_echo)
    app.router.add_post("/upload", upload)
    app.router.add_get("/download", download)
    app.router.add_get("/sleep", sleep)
    app.router.add_route("*", "/status", status)
    app.router.add_route("*", "/{tail:.*}", describe)
    return app


CLOSE_DELIMITED = b"close-delimited body\n" * 1000


async def close_delimited(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + CLOSE_DELIMITED)
        await writer.drain()
    writer.close()


async def serve(name: str, host: str, ports: list[int], raw_port: int | None = None) -> None:
    runner = web.AppRunner(build(name), access_log=None, shutdown_timeout=5)
    await runner.setup()
    for port in ports:
        await web.TCPSite(runner, host, port, reuse_address=True).start()
    if raw_port:
        await asyncio.start_server(close_delimited, host, raw_port, reuse_address=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    import signal

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(json.dumps({"serving": ports, "name": name}), flush=True)
    await stop.wait()
    await runner.cleanup()  # finishes requests in flight, then closes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, action="append", required=True)
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--name", default=socket.gethostname())
    p.add_argument("--raw-port", type=int, help="answers with a close-delimited body")
    args = p.parse_args()
    asyncio.run(serve(args.name, args.host, args.port, args.raw_port))


if __name__ == "__main__":
    main()
