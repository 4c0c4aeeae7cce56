"""The kubelet's port forwarding, `GET /portForward/{namespace}/{pod}?port=P`: a WebSocket
that carries one TCP connection, which the kubelet opens from the node's namespace to the
pod's IP:P (the host cannot route there; `netplane ctl port-forward` bridges loopback to it).

The protocol, per direction:
- client -> kubelet: binary messages are bytes for the pod. An empty one says the client
  will send nothing more: the kubelet shuts down the write side of the connection, so that a
  request followed by a half-close still gets its whole answer.
- kubelet -> client: binary messages are bytes from the pod. When the pod closes its side
  the WebSocket closes normally (1000); a pod that refuses the connection or resets it closes
  it with 1011 and a message that names the port.
- When the WebSocket closes (the client went away) the kubelet closes the connection.

Errors that come before the upgrade answer plainly: 400 (bad port, no upgrade), 404 (no
such pod on this node), 409 (the pod runs no container or has no IP)."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING

from aiohttp import WSCloseCode, WSMsgType, web

if TYPE_CHECKING:
    from control.kubelet.kubelet import Kubelet

log = logging.getLogger(__name__)

CHUNK = 65536
CONNECT_TIMEOUT = 10.0
# Bigger than any message netplane ctl sends (CHUNK); other clients may send bigger ones.
MAX_MESSAGE = 4 * 1024 * 1024
# RFC 6455: a close frame's reason fits in 123 bytes.
_MAX_REASON = 123


def close_reason(text: str) -> bytes:
    """`text` as a WebSocket close reason, cut to what a close frame carries."""
    return text.encode()[:_MAX_REASON].decode(errors="ignore").encode()


def _why(exc: OSError) -> str:
    # The errno's own words: asyncio's loop says "Connect call failed (addr)" for a refusal.
    return os.strerror(exc.errno) if exc.errno else str(exc)


def _port(request: web.Request) -> int:
    text = request.query.get("port", "")
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise web.HTTPBadRequest(text=f"port must be a number from 1 to 65535, not {text!r}")
    return int(text)


class PortForwarder:
    """Serves /portForward and owns every WebSocket it opened, so that a stopping kubelet can
    close them instead of waiting for their clients."""

    def __init__(self, kubelet: Kubelet) -> None:
        self.kubelet = kubelet
        self._open: set[web.WebSocketResponse] = set()

    def _pod_ip(self, namespace: str, name: str) -> str:
        worker = self.kubelet.worker_for(namespace, name)
        if worker is None:
            raise web.HTTPNotFound(text=f'pod "{name}" in namespace "{namespace}" is not on this node')
        if worker.finished or not any(c.running for c in worker.containers):
            raise web.HTTPConflict(text=f'pod "{name}" in namespace "{namespace}" is not running: '
                                        f"no container of it runs")
        if not worker.network_ready or not worker.pod_ip:
            raise web.HTTPConflict(text=f'pod "{name}" in namespace "{namespace}" has no IP address yet')
        return worker.pod_ip

    async def handle(self, request: web.Request) -> web.StreamResponse:
        namespace, name = request.match_info["ns"], request.match_info["pod"]
        port = _port(request)
        ip = self._pod_ip(namespace, name)
        ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE)
        if not ws.can_prepare(request).ok:
            raise web.HTTPBadRequest(text="port forwarding needs a WebSocket upgrade "
                                          "(Connection: Upgrade, Upgrade: websocket)")
        await ws.prepare(request)
        self._open.add(ws)
        try:
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    reader, writer = await asyncio.open_connection(ip, port, limit=CHUNK)
            except (OSError, TimeoutError) as exc:
                why = _why(exc) if isinstance(exc, OSError) else "timed out"
                await ws.close(code=WSCloseCode.INTERNAL_ERROR,
                               message=close_reason(f"cannot connect to port {port} of pod {name}: {why}"))
                return ws
            try:
                await self._relay(ws, reader, writer, port, name)
            finally:
                writer.close()
                await ws.close()
        finally:
            self._open.discard(ws)
        return ws

    async def _relay(self, ws: web.WebSocketResponse, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter, port: int, name: str) -> None:
        async def from_pod() -> None:
            # Each send waits while the client's socket is full: memory stays bounded.
            while data := await reader.read(CHUNK):
                await ws.send_bytes(data)

        async def to_pod() -> None:
            while True:
                msg = await ws.receive()
                if msg.type is not WSMsgType.BINARY:
                    return  # closed, closing or broken: the client is gone
                if msg.data:
                    writer.write(msg.data)
                    await writer.drain()
                elif writer.can_write_eof():
                    writer.write_eof()

        up = asyncio.create_task(from_pod())
        down = asyncio.create_task(to_pod())
        try:
            await asyncio.wait((up, down), return_when=asyncio.FIRST_COMPLETED)
            failure = next((t.exception() for t in (up, down) if t.done() and t.exception()), None)
            if isinstance(failure, OSError):
                # The pod reset the connection (or the client vanished, and nobody reads this).
                reason = f"port {port} of pod {name}: {_why(failure)}"
                await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=close_reason(reason))
            elif failure is not None:
                log.warning("port-forward to port %d of pod %s failed: %r", port, name, failure)
            elif up.done():
                await ws.close()  # the pod closed its side; this ends to_pod too
        finally:
            up.cancel()
            down.cancel()
            await asyncio.gather(up, down, return_exceptions=True)

    async def close_all(self) -> None:
        """Closes every open forwarding (the kubelet is stopping)."""
        await asyncio.gather(*(ws.close(code=WSCloseCode.GOING_AWAY, message=b"the kubelet is stopping")
                               for ws in list(self._open)), return_exceptions=True)
