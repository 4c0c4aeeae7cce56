"""A query's path: the stored wire answers first, then the zone (dnslib), then what needs
to wait (the upstreams, autopath's search, an ExternalName's outside target). No sockets:
the listeners (netplane.dns.server) hand it bytes and send what it gives back."""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from dnslib import CNAME as CNAME_RD
from dnslib import QTYPE, RCODE, RR, DNSHeader, DNSQuestion, DNSRecord

from netplane.dns import autopath
from netplane.dns.answer import (
    FORMERR,
    NOERROR,
    NOTIMP,
    SERVFAIL,
    Answer,
    Answerer,
    error_response,
    reply_header,
)
from netplane.dns.answercache import AnswerCache
from netplane.dns.edns import (
    BADVERS,
    CLASSIC_UDP,
    OPT,
    Edns,
    FormatError,
    badvers,
    header_error,
    pack,
    query_edns,
    udp_limit,
    with_opt,
)
from netplane.dns.forward import Forwarder, ForwardError
from netplane.dns.metrics import DnsMetrics
from netplane.dns.names import canonical
from netplane.dns.records import CNAME
from netplane.dns.zone import Zone

log = logging.getLogger(__name__)

Reply = bytes | None | Coroutine[Any, Any, bytes | None]


@dataclass(frozen=True)
class PathOptions:
    autopath: bool = False
    host_searches: tuple[str, ...] = ()  # the node's search domains, the end of a pod's search path


def _type_name(qtype: int) -> str:
    return str(QTYPE.get(qtype))


def _rcode_name(response: DNSRecord) -> str:
    rcode = response.header.rcode
    for rr in response.ar:
        if rr.rtype == OPT:
            rcode |= (rr.ttl >> 24) << 4
    return "BADVERS" if rcode == BADVERS else str(RCODE.get(rcode))  # dnslib names only 0..10


class QueryPath:
    def __init__(self, zone: Zone, forwarder: Forwarder, metrics: DnsMetrics,
                 options: PathOptions | None = None) -> None:
        self.zone = zone
        self.options = options or PathOptions()
        self.answerer = Answerer(zone, autopath=self.options.autopath)
        self.forwarder = forwarder
        self.metrics = metrics
        self.cache: AnswerCache = metrics.answers

    def zone_changed(self) -> None:
        """Stored answers may be stale now: all go (they come back at the next queries)."""
        self.cache.clear()

    def handle(self, data: bytes, client: str, tcp: bool) -> Reply:
        """The reply to one message: bytes, None (no reply), or a coroutine giving either."""
        out = self.cache.respond(data, tcp)
        if out is not None:
            return out
        return self.handle_uncached(data, client, tcp)

    def handle_uncached(self, data: bytes, client: str, tcp: bool) -> Reply:
        """`handle` past the stored answers (which the caller has asked already)."""
        try:
            return self._slow(data, client, tcp)
        except Exception:  # a bug must cost one answer, never the server
            log.exception("cannot answer a %d-byte query from %s", len(data), client)
            self.metrics.dropped["error"] += 1
            return header_error(data, SERVFAIL)

    def _slow(self, data: bytes, client: str, tcp: bool) -> Reply:
        try:
            query = DNSRecord.parse(data)
        except Exception:  # dnslib raises several kinds for a broken packet; all mean FORMERR
            reply = header_error(data, FORMERR)
            if reply is None:
                self.metrics.dropped["malformed"] += 1
            else:
                self.metrics.stats.responses["FORMERR"] += 1
            return reply
        if query.header.qr:
            self.metrics.dropped["response"] += 1
            return None
        limit = None if tcp else CLASSIC_UDP
        if query.header.opcode != 0:
            return self._finish(query, with_opt(error_response(query, NOTIMP), None), tcp, limit)
        if len(query.questions) != 1:
            return self._finish(query, with_opt(error_response(query, FORMERR), None), tcp, limit)
        try:
            edns = query_edns(query)
        except FormatError:
            return self._finish(query, with_opt(error_response(query, FORMERR), None), tcp, limit)
        limit = None if tcp else udp_limit(edns)
        if edns is not None and edns.version != 0:
            return self._finish(query, badvers(query, edns), tcp, limit)
        answer = self.answerer.answer(query)
        search: list[str] = []
        if answer.searchable and self.options.autopath:
            search = self._search(query, client)
        if answer.response is not None and answer.chase is None and not search:
            return self._finish(query, with_opt(answer.response, edns), tcp, limit,
                                cache_for=data if answer.cacheable else None)
        return self._resolve(query, answer, edns, search, tcp, limit)

    def _finish(self, query: DNSRecord, response: DNSRecord, tcp: bool, limit: int | None,
                cache_for: bytes | None = None) -> bytes:
        full = bytes(response.pack())
        wire = full if limit is None or len(full) <= limit else pack(response, limit)
        qtype = _type_name(query.q.qtype) if query.questions else "none"
        rcode = _rcode_name(response)
        stats = self.metrics.stats
        stats.requests[f"{'tcp' if tcp else 'udp'} {qtype}"] += 1
        stats.responses[rcode] += 1
        if cache_for is not None:
            small = pack(response, CLASSIC_UDP) if len(full) > CLASSIC_UDP else None
            self.cache.store(cache_for, full, small, qtype, rcode)
        return wire

    def _search(self, query: DNSRecord, client: str) -> list[str]:
        """The names autopath would try for this client's query (none: not a pod, or a name
        outside its namespace's first search domain)."""
        namespace = self.zone.namespace_of(client)
        qname = canonical(query.q.qname.label)
        if namespace is None or qname is None:
            return []
        return autopath.candidates(qname, namespace, self.zone.domain, self.options.host_searches)

    async def _resolve(self, query: DNSRecord, answer: Answer, edns: Edns | None, search: list[str],
                       tcp: bool, limit: int | None) -> bytes | None:
        if search and answer.response is not None:
            response = await self._autopath(query, answer.response, search)
        elif answer.chase is not None and answer.response is not None:
            response = await self._chase(query, answer.response, answer.chase)
        else:
            response = await self._forward(query)
        return self._finish(query, with_opt(response, edns), tcp, limit)

    async def _forward(self, query: DNSRecord) -> DNSRecord:
        q = query.q
        name = b".".join(q.qname.label).lower().decode(errors="replace")
        try:
            up = await self.forwarder.resolve(name, q.qtype, q.qclass)
        except ForwardError as exc:
            log.debug("%s", exc)
            return error_response(query, SERVFAIL)
        resp = DNSRecord(reply_header(query, up.header.rcode, aa=False), q=q)
        for rr in up.rr:
            # The answer's owner in the query's own letter case, as the question.
            owner = q.qname if rr.rname == q.qname else rr.rname
            resp.add_answer(RR(owner, rr.rtype, rr.rclass, rr.ttl, rr.rdata))
        resp.auth = list(up.auth)
        resp.ar = [rr for rr in up.ar if rr.rtype != OPT]
        return resp

    async def _chase(self, query: DNSRecord, response: DNSRecord, target: str) -> DNSRecord:
        """Appends the upstream's answer for a CNAME target outside the zone."""
        try:
            up = await self.forwarder.resolve(target, query.q.qtype, query.q.qclass)
        except ForwardError:
            return response  # the CNAME alone: the client may follow it itself
        for rr in up.rr:
            response.add_answer(rr)
        if not up.rr:
            response.header.rcode = up.header.rcode  # RFC 6604: the chain's last name speaks
            response.auth = list(up.auth)
        return response

    async def _autopath(self, query: DNSRecord, original: DNSRecord, names: list[str]) -> DNSRecord:
        q = query.q
        for name in names:
            sub = DNSRecord(DNSHeader(id=0, rd=1), q=DNSQuestion(name, q.qtype, q.qclass))
            found = self.answerer.answer(sub)
            if found.response is None:
                found_response = await self._forward(sub)
            elif found.chase is not None:
                found_response = await self._chase(sub, found.response, found.chase)
            else:
                found_response = found.response
            rcode = found_response.header.rcode
            if rcode == SERVFAIL:
                break  # the client would get SERVFAIL here too: let it retry the walk itself
            if rcode != NOERROR or not found_response.rr:
                continue
            self.metrics.autopath["hit"] += 1
            resp = DNSRecord(reply_header(query, NOERROR, aa=found.response is not None), q=q)
            resp.add_answer(RR(q.qname, CNAME, ttl=self.zone.config.ttl, rdata=CNAME_RD(name)))
            for rr in found_response.rr:
                resp.add_answer(rr)
            return resp
        self.metrics.autopath["miss"] += 1
        return original
