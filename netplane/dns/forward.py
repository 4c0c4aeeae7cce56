"""Forwarding to upstream resolvers: UDP first (a fresh socket and random ID per query, so
a spoofer must guess both), TCP when the answer comes back truncated, the next upstream on
a time-out or an error, one upstream query for many identical client queries in flight, and
the answers cached (netplane.dns.upstreamcache)."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import struct
from collections import defaultdict

from dnslib import EDNS0, RCODE, DNSError, DNSHeader, DNSQuestion, DNSRecord

from netplane.dns.edns import MAX_UDP
from netplane.dns.upstreamcache import CacheKey, UpstreamCache
from netplane.dns.upstreams import Upstream, UpstreamConfig

log = logging.getLogger(__name__)


class ForwardError(Exception):
    """No upstream answered; the client gets SERVFAIL."""


class ForwardStats:
    def __init__(self) -> None:
        self.requests: defaultdict[str, int] = defaultdict(int)  # upstream -> count
        self.responses: defaultdict[tuple[str, str], int] = defaultdict(int)  # (upstream, rcode)
        self.errors: defaultdict[tuple[str, str], int] = defaultdict(int)  # (upstream, reason)


def _matches(query: DNSRecord, resp: DNSRecord) -> bool:
    if not resp.header.qr or resp.header.id != query.header.id or len(resp.questions) != 1:
        return False
    q, r = query.q, resp.q
    return r.qname == q.qname and r.qtype == q.qtype and r.qclass == q.qclass  # names: case-insensitive


class Forwarder:
    def __init__(self, config: UpstreamConfig, cache: UpstreamCache, *, timeout: float = 2.0,
                 stats: ForwardStats | None = None) -> None:
        self.config = config
        self.cache = cache
        self.timeout = timeout
        self.stats = stats or ForwardStats()
        self._inflight: dict[CacheKey, asyncio.Future[DNSRecord]] = {}
        self._preferred: dict[tuple[Upstream, ...], int] = {}

    def reconfigure(self, config: UpstreamConfig) -> None:
        """New upstreams; what the old ones said is forgotten."""
        if config != self.config:
            self.config = config
            self.cache.clear()
            self._preferred.clear()

    async def resolve(self, name: str, qtype: int, qclass: int = 1) -> DNSRecord:
        """The upstream answer for lowercase `name` (cached or fresh); ForwardError if none
        of the upstreams for the name answered."""
        key = (name, qtype, qclass)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[DNSRecord] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            resp = await self._ask(name, qtype, qclass)
            self.cache.put(key, resp)
            future.set_result(resp)
            return resp
        except BaseException as exc:
            future.set_exception(exc if isinstance(exc, Exception) else ForwardError("cancelled"))
            future.exception()  # retrieved here, so an unwaited future logs nothing
            raise
        finally:
            del self._inflight[key]

    async def _ask(self, name: str, qtype: int, qclass: int) -> DNSRecord:
        upstreams = self.config.for_name(name)
        if not upstreams:
            raise ForwardError(f"no upstream resolver for {name}")
        start = self._preferred.get(upstreams, 0) % len(upstreams)
        order = upstreams[start:] + upstreams[:start]
        for i, upstream in enumerate(order):
            label = str(upstream)
            query = DNSRecord(DNSHeader(id=random.getrandbits(16), rd=1), q=DNSQuestion(name, qtype, qclass))
            query.add_ar(EDNS0(udp_len=MAX_UDP))
            self.stats.requests[label] += 1
            try:
                resp = await self._exchange(upstream, query)
            except TimeoutError:
                self.stats.errors[(label, "timeout")] += 1
                log.debug("upstream %s: no answer for %s within %.1fs", label, name, self.timeout)
                continue
            except (OSError, ValueError, DNSError) as exc:
                self.stats.errors[(label, type(exc).__name__)] += 1
                log.debug("upstream %s: %s for %s", label, exc, name)
                continue
            self.stats.responses[(label, str(RCODE.get(resp.header.rcode)))] += 1
            self._preferred[upstreams] = (start + i) % len(upstreams)
            return resp
        raise ForwardError(f"none of {', '.join(map(str, upstreams))} answered {name}")

    async def _exchange(self, upstream: Upstream, query: DNSRecord) -> DNSRecord:
        async with asyncio.timeout(self.timeout):
            resp = await self._udp(upstream, query)
            if resp.header.tc:
                resp = await self._tcp(upstream, query)
        return resp

    async def _udp(self, upstream: Upstream, query: DNSRecord) -> DNSRecord:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in upstream.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            # Connected: the kernel drops datagrams from anyone else, and an ICMP
            # unreachable comes back as an error instead of a silent time-out.
            sock.connect((upstream.host, upstream.port))
            await loop.sock_sendall(sock, query.pack())
            while True:
                data = await loop.sock_recv(sock, 65535)
                try:
                    resp = DNSRecord.parse(data)
                except Exception:
                    continue
                if _matches(query, resp):
                    return resp

    async def _tcp(self, upstream: Upstream, query: DNSRecord) -> DNSRecord:
        reader, writer = await asyncio.open_connection(upstream.host, upstream.port)
        try:
            wire = query.pack()
            writer.write(struct.pack("!H", len(wire)) + wire)
            await writer.drain()
            (length,) = struct.unpack("!H", await reader.readexactly(2))
            resp = DNSRecord.parse(await reader.readexactly(length))
            if not _matches(query, resp):
                raise ValueError("the TCP answer does not match the question")
            return resp
        except asyncio.IncompleteReadError as exc:
            raise ConnectionResetError("the upstream closed the TCP connection early") from exc
        finally:
            writer.close()
