"""One TCP listener of one service port: accepts, picks an endpoint, dials it (retrying the
next endpoint on refusal or time-out, with kube-proxy userspace's growing dial time-outs)
and hands both sockets to the relay."""

from __future__ import annotations

import _socket
import asyncio
import contextlib
import errno
import functools
import logging
import socket
import struct
from collections.abc import Callable

from netplane.model import Endpoint
from netplane.proxy_userspace.balancer import Balancer
from netplane.proxy_userspace.picks import PickLog
from netplane.proxy_userspace.poller import OUT, Poller
from netplane.proxy_userspace.relay import PipePool, Relay

log = logging.getLogger(__name__)
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)

# kube-proxy userspace's EndpointDialTimeouts: one attempt per entry.
DIAL_TIMEOUTS = (0.25, 0.5, 1.0, 2.0)
_ACCEPTS_PER_WAKEUP = 64
_SWEEP = 0.05  # how often pending dials are checked for their time-out
_RESET = struct.pack("ii", 1, 0)


def _reset(sock: _socket.socket) -> None:
    """Closes with a reset: a client of a service without endpoints is refused at once,
    as kube-proxy's REJECT does, instead of hanging or reading a clean EOF."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
    sock.close()


def _ignore(_events: int) -> None:
    pass


class _Dial:
    __slots__ = ("attempt", "client", "client_ip", "client_port", "deadline", "endpoint", "upstream")

    def __init__(self, client: _socket.socket, client_ip: str, client_port: int) -> None:
        self.client = client
        self.client_ip = client_ip
        self.client_port = client_port
        self.attempt = 0
        self.upstream: _socket.socket | None = None
        self.endpoint: Endpoint | None = None
        self.deadline = 0.0


class TcpService:
    def __init__(self, poller: Poller, name: str, host: str, port: int, balancer: Balancer,
                 pool: PipePool, dial_timeouts: tuple[float, ...] = DIAL_TIMEOUTS,
                 picks: PickLog | None = None) -> None:
        self.poller = poller
        self.picks = picks
        self.loop = loop = poller.loop
        self.name = name
        self.balancer = balancer
        self._pool = pool
        self._timeouts = dial_timeouts
        self._dials: set[_Dial] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self.relays: set[Relay] = set()
        self.accepted = 0
        self.refused = 0
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            # The address may be added to the node just after (the ClusterIP of a new service).
            self.sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
            # Accepted sockets inherit TCP_NODELAY: one setsockopt here, none per connection.
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock.bind((host, port))
            self.sock.listen(4096)
            self.sock.setblocking(False)
        except BaseException:
            self.sock.close()
            raise
        self.port: int = self.sock.getsockname()[1]
        self._family = self.sock.family
        loop.add_reader(self.sock.fileno(), self._on_accept)

    # Connections use the C-level _socket.socket: socket.socket's Python __init__ (enum
    # conversions, io refs) costs more than the accept itself (bench/proxy_userspace.py).

    def _on_accept(self) -> None:
        accept = self.sock._accept
        for _ in range(_ACCEPTS_PER_WAKEUP):
            try:
                fd, addr = accept()
            except BlockingIOError:
                return
            except OSError as exc:
                # EMFILE and friends: log, and let the backlog hold the rest until fds free up.
                log.warning("%s: accept failed: %s", self.name, exc)
                return
            self.accepted += 1
            conn = _socket.socket(self._family, _socket.SOCK_STREAM, 0, fd)
            conn.setblocking(False)
            dial = _Dial(conn, addr[0], addr[1])
            self._dials.add(dial)
            self._dial(dial)

    def _dial(self, dial: _Dial) -> None:
        while dial.attempt < len(self._timeouts):
            ep = self.balancer.next(dial.client_ip, reset=dial.attempt > 0)
            if ep is None:
                break
            dial.endpoint = ep
            up = _socket.socket(_socket.AF_INET6 if ":" in ep.ip else _socket.AF_INET,
                                _socket.SOCK_STREAM | _socket.SOCK_NONBLOCK)
            up.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            err = up.connect_ex((ep.ip, ep.port))
            if err == 0:
                dial.upstream = up
                self.poller.register(up.fileno(), OUT, _ignore)
                self._connected(dial)
                return
            if err == errno.EINPROGRESS:
                dial.upstream = up
                self.poller.register(up.fileno(), OUT, functools.partial(self._on_connect, dial))
                # One sweep timer for all dials rather than a timer per dial.
                dial.deadline = self.loop.time() + self._timeouts[dial.attempt]
                if self._sweeper is None:
                    self._sweeper = self.loop.call_later(_SWEEP, self._sweep)
                return
            up.close()
            dial.attempt += 1
        self.refused += 1
        if self.picks is not None:
            self.picks.record(self.name, dial.client_ip, dial.client_port, None)
        self._dials.discard(dial)
        _reset(dial.client)

    def _on_connect(self, dial: _Dial, _events: int) -> None:
        if dial.upstream is None:
            return
        err = dial.upstream.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            log.debug("%s: dial %s failed: %s", self.name, dial.endpoint, errno.errorcode.get(err, err))
            self._retry(dial)
        else:
            self._connected(dial)

    def _sweep(self) -> None:
        self._sweeper = None
        now = self.loop.time()
        for dial in [d for d in self._dials if d.upstream is not None and d.deadline <= now]:
            log.debug("%s: dial %s timed out", self.name, dial.endpoint)
            self._retry(dial)
        if any(d.upstream is not None for d in self._dials):
            self._sweeper = self.loop.call_later(_SWEEP, self._sweep)

    def _retry(self, dial: _Dial) -> None:
        if dial.upstream is not None:
            self.poller.close_later(dial.upstream.fileno(), dial.upstream.close)
            dial.upstream = None
        dial.attempt += 1
        self._dial(dial)

    def _connected(self, dial: _Dial) -> None:
        self._dials.discard(dial)
        assert dial.upstream is not None and dial.endpoint is not None
        if self.picks is not None:
            self.picks.record(self.name, dial.client_ip, dial.client_port, str(dial.endpoint))
        relay = Relay(self.poller, self._pool, dial.client, dial.upstream, str(dial.endpoint),
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
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for dial in list(self._dials):
            if dial.upstream is not None:
                self.poller.close_later(dial.upstream.fileno(), dial.upstream.close)
                dial.upstream = None
            _reset(dial.client)
        self._dials.clear()
        for relay in list(self.relays):
            relay.abort()
