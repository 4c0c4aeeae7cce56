"""The answer to one query from the cluster zone, as a dnslib message. Pure: the zone and
the parsed query in, a response (or "not ours: forward it") out.

Negative answers carry the zone's SOA in the authority section (RFC 2308), NXDOMAIN when
the name does not exist and NOERROR without answers (NODATA) when it exists with other
types. A CNAME (an ExternalName service) answers every type; its target is followed inside
the zone, and handed back as `chase` when it lies outside (the shell resolves it upstream,
as CoreDNS does). Records at the question's name use the question's own name object, so the
answer keeps the query's letter case.
"""

from __future__ import annotations

from dataclasses import dataclass

from dnslib import AAAA as AAAA_RD
from dnslib import CNAME as CNAME_RD
from dnslib import NS as NS_RD
from dnslib import PTR as PTR_RD
from dnslib import RR, DNSHeader, DNSLabel, DNSRecord
from dnslib import SOA as SOA_RD
from dnslib import SRV as SRV_RD
from dnslib import TXT as TXT_RD
from dnslib import A as A_RD

from netplane.dns.names import canonical, ip_of_reverse, is_reverse
from netplane.dns.records import AAAA, ANY, CNAME, NS, PTR, SOA, SRV, TXT, A, Records, RecordValue, Srv
from netplane.dns.zone import Zone

NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
CLASS_IN, CLASS_ANY = 1, 255
_MAX_CNAME_CHAIN = 8
# SOA timers (refresh, retry, expire) as CoreDNS's; the minimum is the zone's TTL.
_SOA_TIMERS = (7200, 1800, 86400)


@dataclass
class Answer:
    response: DNSRecord | None = None  # None: not ours, forward the query
    # The same bytes for every client until the zone changes: the shell may keep the wire form.
    cacheable: bool = False
    chase: str | None = None  # a CNAME target outside the zone, to resolve and append
    # NXDOMAIN for a name below some `<ns>.svc.<zone>`: a client's search path may be at work.
    searchable: bool = False

    @property
    def forward(self) -> bool:
        return self.response is None


def reply_header(query: DNSRecord, rcode: int = NOERROR, *, aa: bool = True) -> DNSHeader:
    h = query.header
    return DNSHeader(id=h.id, qr=1, aa=int(aa), rd=h.rd, ra=1, cd=h.cd, opcode=h.opcode, rcode=rcode)


def error_response(query: DNSRecord, rcode: int) -> DNSRecord:
    """A reply with only the question (if any) and `rcode`."""
    resp = DNSRecord(reply_header(query, rcode, aa=False))
    for q in query.questions[:1]:
        resp.add_question(q)
    return resp


def rdata(rtype: int, value: RecordValue) -> object:
    if rtype == A:
        return A_RD(value)
    if rtype == AAAA:
        return AAAA_RD(value)
    if rtype == CNAME:
        return CNAME_RD(value)
    if rtype == PTR:
        return PTR_RD(value)
    if rtype == NS:
        return NS_RD(value)
    if rtype == TXT:
        return TXT_RD(value)
    if rtype == SRV:
        assert isinstance(value, Srv)
        return SRV_RD(value.priority, value.weight, value.port, value.target)
    raise ValueError(f"no encoding for record type {rtype}")


class Answerer:
    def __init__(self, zone: Zone, *, autopath: bool = False) -> None:
        self.zone = zone
        self.autopath = autopath

    @property
    def ttl(self) -> int:
        return self.zone.config.ttl

    def soa(self) -> RR:
        domain = self.zone.domain
        times = (self.zone.serial & 0xFFFFFFFF, *_SOA_TIMERS, self.ttl)
        return RR(domain, SOA, ttl=self.ttl, rdata=SOA_RD(f"ns.dns.{domain}", f"hostmaster.{domain}", times))

    def _rrs(self, owner: DNSLabel | str, records: Records, rtype: int) -> list[RR]:
        return [RR(owner, rtype, ttl=self.ttl, rdata=rdata(rtype, v)) for v in records.get(rtype, ())]

    def answer(self, query: DNSRecord) -> Answer:
        """The answer to a query with exactly one question (the shell checks that)."""
        q = query.q
        name = canonical(q.qname.label)
        loose = b".".join(q.qname.label).lower().decode(errors="replace")
        if not self.zone.contains(loose):
            if is_reverse(loose) and q.qclass in (CLASS_IN, CLASS_ANY):
                return self._reverse(query, loose)
            return Answer()  # forward
        if q.qclass not in (CLASS_IN, CLASS_ANY):
            return Answer(error_response(query, REFUSED), cacheable=True)
        return self._zone_answer(query, name)

    def _zone_answer(self, query: DNSRecord, name: str | None) -> Answer:
        q = query.q
        qtype = q.qtype
        records = self.zone.lookup(name) if name is not None else None
        resp = DNSRecord(reply_header(query), q=q)
        if records is None:
            return self._negative(resp, NXDOMAIN, searchable=self._searchable(name))
        if CNAME in records and qtype not in (CNAME, ANY):
            return self._follow_cname(resp, q.qname, records, qtype)
        if qtype == ANY:
            for rtype in sorted(records):
                for rr in self._rrs(q.qname, records, rtype):
                    resp.add_answer(rr)
            if not resp.rr:
                return self._negative(resp, NOERROR)
            return Answer(resp, cacheable=True)
        if qtype == SOA and name == self.zone.domain:
            soa = self.soa()
            soa.rname = q.qname
            resp.add_answer(soa)
            return Answer(resp, cacheable=True)
        if qtype not in records:
            return self._negative(resp, NOERROR)
        for rr in self._rrs(q.qname, records, qtype):
            resp.add_answer(rr)
        if qtype == SRV:
            self._srv_glue(resp, records)
        elif qtype == NS:
            self._ns_glue(resp)
        return Answer(resp, cacheable=True)

    def _negative(self, resp: DNSRecord, rcode: int, *, searchable: bool = False) -> Answer:
        resp.header.rcode = rcode
        resp.add_auth(self.soa())
        # An NXDOMAIN that a client's search path leads to may be answered differently for
        # each client when autopath is on, so it is not kept as wire bytes then.
        return Answer(resp, cacheable=not (searchable and self.autopath), searchable=searchable)

    def _searchable(self, name: str | None) -> bool:
        if name is None:
            return False
        labels = name[: -len(self.zone.domain) - 1].split(".") if name != self.zone.domain else []
        return len(labels) >= 3 and labels[-1] == "svc"

    def _follow_cname(self, resp: DNSRecord, owner: DNSLabel, records: Records, qtype: int) -> Answer:
        for _ in range(_MAX_CNAME_CHAIN):
            target = str(records[CNAME][0])
            resp.add_answer(RR(owner, CNAME, ttl=self.ttl, rdata=CNAME_RD(target)))
            if not self.zone.contains(target):
                return Answer(resp, chase=target)
            found = self.zone.lookup(target)
            if found is None:
                # RFC 6604: the rcode speaks of the last name of the chain.
                return self._negative(resp, NXDOMAIN)
            owner_label = DNSLabel(target)
            if CNAME in found:
                owner, records = owner_label, found
                continue
            answers = self._rrs(owner_label, found, qtype)
            for rr in answers:
                resp.add_answer(rr)
            if not answers:
                resp.add_auth(self.soa())  # NODATA at the chain's end
            return Answer(resp, cacheable=True)
        resp.header.rcode = SERVFAIL  # a CNAME loop inside the zone
        return Answer(resp)

    def _srv_glue(self, resp: DNSRecord, records: Records) -> None:
        """The targets' addresses in the additional section, as CoreDNS sends them."""
        for value in records.get(SRV, ()):
            assert isinstance(value, Srv)
            found = self.zone.lookup(value.target) if self.zone.contains(value.target) else None
            if found:
                for rtype in (A, AAAA):
                    for rr in self._rrs(DNSLabel(value.target), found, rtype):
                        resp.add_ar(rr)

    def _ns_glue(self, resp: DNSRecord) -> None:
        target = f"ns.dns.{self.zone.domain}"
        found = self.zone.lookup(target) or {}
        for rtype in (A, AAAA):
            for rr in self._rrs(DNSLabel(target), found, rtype):
                resp.add_ar(rr)

    def _reverse(self, query: DNSRecord, name: str) -> Answer:
        q = query.q
        ip = ip_of_reverse(name)
        targets = self.zone.ptr(ip) if ip is not None else ()
        if not targets or q.qtype not in (PTR, ANY):
            # Not one of ours: the rest of the reverse tree belongs to the upstreams (as
            # CoreDNS's `fallthrough in-addr.arpa ip6.arpa`).
            return Answer()
        resp = DNSRecord(reply_header(query), q=q)
        for target in targets:
            resp.add_answer(RR(q.qname, PTR, ttl=self.ttl, rdata=PTR_RD(target)))
        return Answer(resp, cacheable=True)
