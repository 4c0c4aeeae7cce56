"""One TCP listener of one service port: accepts, picks an endpoint, dials it (retrying the
next endpoint on refusal or time-out, with kube-proxy userspace's growing dial time-outs)
and hands both sockets to a splice relay."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import struct
from collections.abc import Callable

from netplane.model import Endpoint
from netplane.proxy_userspace.balancer import Balancer
from netplane.proxy_userspace.relay import PipePool, Relay

log = logging.getLogger(__name__)

# kube-proxy userspace's EndpointDialTimeouts: one attempt per entry.
DIAL_TIMEOUTS = (0.25, 0.5, 1.0, 2.0)
_ACCEPTS_PER_WAKEUP = 64
_RESET = struct.pack("ii", 1, 0)


def _reset(sock: socket.socket) -> None:
    """Closes with a reset: a client of a service without endpoints is refused at once,
    as kube-proxy's REJECT does, instead of hanging or reading a clean EOF."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
    sock.close()


class _Dial:
    __slots__ = ("attempt", "client", "client_ip", "endpoint", "timer", "upstream")

    def __init__(self, client: socket.socket, client_ip: str) -> None:
        self.client = client
        self.client_ip = client_ip
        self.attempt = 0
        self.upstream: socket.socket | None = None
        self.endpoint: Endpoint | None = None
        self.timer: asyncio.TimerHandle | None = None


class TcpService:
    def __init__(self, loop: asyncio.AbstractEventLoop, name: str, host: str, port: int,
                 balancer: Balancer, pool: PipePool,
                 dial_timeouts: tuple[float, ...] = DIAL_TIMEOUTS) -> None:
        self.loop = loop
        self.name = name
        self.balancer = balancer
        self._pool = pool
        self._timeouts = dial_timeouts
        self._dials: set[_Dial] = set()
        self.relays: set[Relay] = set()
        self.accepted = 0
        self.refused = 0
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind((host, port))
            self.sock.listen(4096)
            self.sock.setblocking(False)
        except BaseException:
            self.sock.close()
            raise
        self.port: int = self.sock.getsockname()[1]
        loop.add_reader(self.sock.fileno(), self._on_accept)

    def _on_accept(self) -> None:
        for _ in range(_ACCEPTS_PER_WAKEUP):
            try:
                conn, addr = self.sock.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                # EMFILE and friends: log, and let the backlog hold the rest until fds free up.
                log.warning("%s: accept failed: %s", self.name, exc)
                return
            self.accepted += 1
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            dial = _Dial(conn, addr[0])
            self._dials.add(dial)
            self._dial(dial)

    def _dial(self, dial: _Dial) -> None:
        while dial.attempt < len(self._timeouts):
            ep = self.balancer.next(dial.client_ip, reset=dial.attempt > 0)
            if ep is None:
                break
            dial.endpoint = ep
            up = socket.socket(socket.AF_INET6 if ":" in ep.ip else socket.AF_INET, socket.SOCK_STREAM)
            up.setblocking(False)
            up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            err = up.connect_ex((ep.ip, ep.port))
            if err == 0:
                dial.upstream = up
                self._connected(dial)
                return
            if err == errno.EINPROGRESS:
                dial.upstream = up
                self.loop.add_writer(up.fileno(), self._on_connect, dial)
                dial.timer = self.loop.call_later(self._timeouts[dial.attempt], self._on_timeout, dial)
                return
            up.close()
            dial.attempt += 1
        self.refused += 1
        self._dials.discard(dial)
        _reset(dial.client)

    def _on_connect(self, dial: _Dial) -> None:
        assert dial.upstream is not None
        self.loop.remove_writer(dial.upstream.fileno())
        if dial.timer is not None:
            dial.timer.cancel()
        err = dial.upstream.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            log.debug("%s: dial %s failed: %s", self.name, dial.endpoint, errno.errorcode.get(err, err))
            self._retry(dial)
        else:
            self._connected(dial)

    def _on_timeout(self, dial: _Dial) -> None:
        log.debug("%s: dial %s timed out", self.name, dial.endpoint)
        if dial.upstream is not None:
            self.loop.remove_writer(dial.upstream.fileno())
        self._retry(dial)

    def _retry(self, dial: _Dial) -> None:
        if dial.upstream is not None:
            dial.upstream.close()
            dial.upstream = None
        dial.attempt += 1
        self._dial(dial)

    def _connected(self, dial: _Dial) -> None:
        self._dials.discard(dial)
        assert dial.upstream is not None and dial.endpoint is not None
        relay = Relay(self.loop, self._pool, dial.client, dial.upstream, str(dial.endpoint),
                      self.relays.discard)
        self.relays.add(relay)
        relay.start()

    def close_connections_to(self, gone: Callable[[str], bool]) -> int:
        """Closes the connections whose endpoint `gone(endpoint)` says was removed."""
        doomed = [r for r in self.relays if gone(r.endpoint)]
        for relay in doomed:
            relay.abort()
        return len(doomed)

    def close(self) -> None:
        """Stops listening and ends every connection of this listener."""
        if self.sock.fileno() >= 0:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()
        for dial in list(self._dials):
            if dial.timer is not None:
                dial.timer.cancel()
            if dial.upstream is not None:
                self.loop.remove_writer(dial.upstream.fileno())
                dial.upstream.close()
            _reset(dial.client)
        self._dials.clear()
        for relay in list(self.relays):
            relay.abort()
