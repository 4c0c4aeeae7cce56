"""One UDP listener of one service port. Each client address gets an association: a socket
connected to the endpoint the balancer chose, whose replies go back to the client from
the service's socket; an association idle for `idle_timeout` is closed (kube-proxy
userspace's --udp-timeout, default 250 ms). An endpoint that answers with ICMP
port-unreachable ends its associations, so the client's next datagram picks another."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable

from netplane.model import Endpoint
from netplane.proxy_userspace.balancer import Balancer
from netplane.proxy_userspace.picks import PickLog

log = logging.getLogger(__name__)
IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)

_MAX_DATAGRAM = 65535
_READS_PER_WAKEUP = 64


class _Association:
    __slots__ = ("client", "endpoint", "last", "sock")

    def __init__(self, client: tuple[str, int], endpoint: Endpoint, sock: socket.socket, now: float) -> None:
        self.client = client
        self.endpoint = endpoint
        self.sock = sock
        self.last = now


class UdpService:
    def __init__(self, loop: asyncio.AbstractEventLoop, name: str, host: str, port: int,
                 balancer: Balancer, idle_timeout: float = 0.25, picks: PickLog | None = None) -> None:
        self.loop = loop
        self.picks = picks
        self.name = name
        self.balancer = balancer
        self.idle_timeout = idle_timeout
        self.associations: dict[tuple[str, int], _Association] = {}
        self.datagrams = 0
        self.dropped = 0
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            # The address may be added to the node just after (the ClusterIP of a new service).
            self.sock.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
            self.sock.bind((host, port))
            self.sock.setblocking(False)
        except BaseException:
            self.sock.close()
            raise
        self.port: int = self.sock.getsockname()[1]
        loop.add_reader(self.sock.fileno(), self._on_datagram)
        self._sweeper = loop.call_later(max(idle_timeout / 2, 0.05), self._sweep)

    def _on_datagram(self) -> None:
        now = time.monotonic()
        for _ in range(_READS_PER_WAKEUP):
            try:
                data, client = self.sock.recvfrom(_MAX_DATAGRAM)
            except BlockingIOError:
                return
            except OSError as exc:
                log.debug("%s: recvfrom: %s", self.name, exc)
                return
            self.datagrams += 1
            assoc = self.associations.get(client)
            if assoc is None:
                assoc = self._associate(client, now)
                if assoc is None:
                    self.dropped += 1
                    continue
            assoc.last = now
            try:
                assoc.sock.send(data)
            except BlockingIOError:
                self.dropped += 1  # UDP: a full socket buffer drops, as the kernel would
            except OSError:
                self._close(assoc)  # e.g. ECONNREFUSED from an earlier ICMP error

    def _associate(self, client: tuple[str, int], now: float) -> _Association | None:
        ep = self.balancer.next(client[0])
        if self.picks is not None:
            self.picks.record(self.name, client[0], client[1], None if ep is None else str(ep))
        if ep is None:
            return None
        sock = socket.socket(socket.AF_INET6 if ":" in ep.ip else socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        try:
            sock.connect((ep.ip, ep.port))
        except OSError as exc:
            log.debug("%s: cannot associate with %s: %s", self.name, ep, exc)
            sock.close()
            return None
        assoc = _Association(client, ep, sock, now)
        self.associations[client] = assoc
        self.loop.add_reader(sock.fileno(), self._on_reply, assoc)
        return assoc

    def _on_reply(self, assoc: _Association) -> None:
        assoc.last = time.monotonic()
        for _ in range(_READS_PER_WAKEUP):
            try:
                data = assoc.sock.recv(_MAX_DATAGRAM)
            except BlockingIOError:
                return
            except OSError:
                self._close(assoc)  # ICMP port unreachable: the endpoint does not serve
                return
            try:
                self.sock.sendto(data, assoc.client)
            except OSError as exc:
                log.debug("%s: reply to %s: %s", self.name, assoc.client, exc)

    def _close(self, assoc: _Association) -> None:
        if self.associations.get(assoc.client) is assoc:
            del self.associations[assoc.client]
        if assoc.sock.fileno() >= 0:
            self.loop.remove_reader(assoc.sock.fileno())
            assoc.sock.close()

    def _sweep(self) -> None:
        limit = time.monotonic() - self.idle_timeout
        for assoc in [a for a in self.associations.values() if a.last < limit]:
            self._close(assoc)
        self._sweeper = self.loop.call_later(max(self.idle_timeout / 2, 0.05), self._sweep)

    def close_associations_to(self, gone: Callable[[str], bool]) -> int:
        """Closes the associations whose endpoint `gone(str(endpoint))` says was removed."""
        doomed = [a for a in self.associations.values() if gone(str(a.endpoint))]
        for assoc in doomed:
            self._close(assoc)
        return len(doomed)

    def close(self) -> None:
        self._sweeper.cancel()
        for assoc in list(self.associations.values()):
            self._close(assoc)
        if self.sock.fileno() >= 0:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()
