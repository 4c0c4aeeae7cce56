"""The DNS server's I/O: a UDP and a TCP listener on one port, feeding the query path
(netplane.dns.querypath).

UDP is read straight from the socket, as many datagrams as are waiting (up to a batch) per
wake-up of the event loop, instead of through a DatagramProtocol: on this machine a
uvloop DatagramProtocol that only echoes stored replies tops out at about 0.5x dnsmasq's
queries per second (bench/dns.py's anchor), before doing any work; draining the socket
from one reader callback reaches about 0.75x. Queries that need an upstream run as tasks
(at most `max_inflight` at once; more are dropped, as a resolver under a flood must), so one
slow upstream never holds up the names the zone answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from netplane.dns.querypath import QueryPath

log = logging.getLogger(__name__)

_BATCH = 64  # datagrams handled per wake-up, so TCP and the informers get their turn
_MAX_UDP_QUERY = 4096  # a longer datagram is cut, fails to parse and gets FORMERR
_UDP_BUFFER = 4 << 20  # socket receive buffer asked for, to ride out bursts


@dataclass(frozen=True)
class ServerOptions:
    max_inflight: int = 1024
    tcp_idle_timeout: float = 10.0  # RFC 7766 asks servers to close idle connections
    max_tcp_connections: int = 256


class DnsServer:
    def __init__(self, path: QueryPath, options: ServerOptions | None = None) -> None:
        self.path = path
        self.options = options or ServerOptions()
        self.metrics = path.metrics
        self._tasks: set[asyncio.Task[None]] = set()
        self._udp: socket.socket | None = None
        self._tcp: asyncio.Server | None = None
        self._tcp_sock: socket.socket | None = None
        self._connections: set[_TcpConnection] = set()
        self.address: tuple[str, int] | None = None

    # -- UDP -------------------------------------------------------------------------------

    def _on_readable(self) -> None:
        sock = self._udp
        if sock is None:
            return
        recvfrom, sendto = sock.recvfrom, sock.sendto
        respond, observe, clock = self.path.cache.respond, self.metrics.latency.observe, time.perf_counter
        for _ in range(_BATCH):
            try:
                data, addr = recvfrom(_MAX_UDP_QUERY)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("udp receive: %s", exc)
                return
            start = clock()
            out = respond(data)
            if out is None:
                reply = self.path.handle_uncached(data, addr[0], False)
                if reply is None:
                    continue
                if not isinstance(reply, bytes):
                    self._spawn(self._udp_later(reply, addr, start))
                    continue
                out = reply
            try:
                sendto(out, addr)
            except OSError:
                self.metrics.dropped["send"] += 1
            observe(clock() - start)

    async def _udp_later(self, reply: Coroutine[Any, Any, bytes | None], addr: Any, start: float) -> None:
        out = await reply
        if out is None or self._udp is None:
            return
        try:
            self._udp.sendto(out, addr)
        except OSError:
            self.metrics.dropped["send"] += 1
        self.metrics.latency.observe(time.perf_counter() - start)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> bool:
        if len(self._tasks) >= self.options.max_inflight:
            coro.close()
            self.metrics.dropped["overload"] += 1
            return False
        task = asyncio.get_running_loop().create_task(self._guarded(coro))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    @staticmethod
    async def _guarded(coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("a query failed")

    # -- life --------------------------------------------------------------------------------

    def bind(self, host: str, port: int) -> tuple[str, int]:
        """Binds UDP and TCP `host:port` (port 0: the same free port for both). Queries that
        arrive before `serve` wait in the sockets' queues."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        for _attempt in range(20):
            udp = socket.socket(family, socket.SOCK_DGRAM)
            tcp = socket.socket(family, socket.SOCK_STREAM)
            try:
                with contextlib.suppress(OSError):
                    udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _UDP_BUFFER)
                udp.bind((host, port))
                bound = udp.getsockname()[1]
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                tcp.bind((host, bound))
                tcp.listen(128)
            except OSError:
                udp.close()
                tcp.close()
                if port == 0:
                    continue  # the free UDP port is taken for TCP: another one
                raise
            break
        else:
            raise OSError(f"no port on {host} is free for both UDP and TCP")
        udp.setblocking(False)
        tcp.setblocking(False)
        self._udp, self._tcp_sock = udp, tcp
        self.address = (host, bound)
        return self.address

    async def serve(self) -> None:
        """Starts answering on the bound sockets."""
        assert self._udp is not None and self._tcp_sock is not None, "bind() first"
        loop = asyncio.get_running_loop()
        loop.add_reader(self._udp.fileno(), self._on_readable)
        self._tcp = await loop.create_server(lambda: _TcpConnection(self), sock=self._tcp_sock)
        self._tcp_sock = None  # the server owns it now

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """`bind`, then `serve`."""
        address = self.bind(host, port)
        try:
            await self.serve()
        except BaseException:
            await self.close()
            raise
        return address

    async def close(self) -> None:
        if self._tcp_sock is not None:
            self._tcp_sock.close()
            self._tcp_sock = None
        if self._udp is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._udp.fileno())
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            for conn in list(self._connections):
                conn.close()
            await self._tcp.wait_closed()
            self._tcp = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class _TcpConnection(asyncio.Protocol):
    """One client connection: length-prefixed messages (RFC 1035 4.2.2), answered in order;
    closed after `tcp_idle_timeout` without a query."""

    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.buffer = bytearray()
        self.queue: list[tuple[bytes, float]] = []
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.busy = False
        self.paused = False
        self._idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not an asyncio.Transport
        if len(self.server._connections) >= self.server.options.max_tcp_connections:
            self.server.metrics.dropped["tcp_connections"] += 1
            self.transport.abort()
            return
        self.server._connections.add(self)
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if peer else ""
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._connections.discard(self)
        if self._idle is not None:
            self._idle.cancel()
        self.transport = None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _arm(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
        loop = asyncio.get_running_loop()
        self._idle = loop.call_later(self.server.options.tcp_idle_timeout, self.close)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        now = time.perf_counter()
        while len(self.buffer) >= 2:
            length = int.from_bytes(self.buffer[:2], "big")
            if len(self.buffer) < 2 + length:
                break
            self.queue.append((bytes(self.buffer[2:2 + length]), now))
            del self.buffer[:2 + length]
        if len(self.queue) > 64 and self.transport is not None:
            self.transport.pause_reading()  # a client pipelining faster than it reads
        self._pump()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._pump()

    def _pump(self) -> None:
        while self.queue and not self.busy and not self.paused and self.transport is not None:
            message, start = self.queue.pop(0)
            reply = self.server.path.handle(message, self.peer, True)
            if reply is None:
                continue
            if isinstance(reply, bytes):
                self._write(reply, start)
                continue
            self.busy = True
            if not self.server._spawn(self._later(reply, start)):
                self.busy = False
        if len(self.queue) <= 16 and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    async def _later(self, reply: Coroutine[Any, Any, bytes | None], start: float) -> None:
        try:
            out = await reply
            if out is not None:
                self._write(out, start)
        finally:
            self.busy = False
            self._pump()

    def _write(self, out: bytes, start: float) -> None:
        if self.transport is None:
            return
        self.transport.write(len(out).to_bytes(2, "big") + out)
        self.server.metrics.latency.observe(time.perf_counter() - start)
        self._arm()

