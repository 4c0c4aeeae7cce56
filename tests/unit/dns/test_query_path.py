"""A query's path through the server (stored answers, the zone, the upstreams, autopath,
ExternalName chasing, errors), without sockets: the upstream exchange is a fake here;
tests/integration/dns runs the same path against real resolvers over real sockets."""

from __future__ import annotations

import asyncio
import inspect
import struct

from dnslib import EDNS0, QTYPE, RR, SOA, A, DNSRecord

from netplane.dns.answercache import AnswerCache
from netplane.dns.forward import Forwarder, ForwardError
from netplane.dns.metrics import DnsMetrics
from netplane.dns.querypath import PathOptions, QueryPath
from netplane.dns.upstreamcache import UpstreamCache
from netplane.dns.upstreams import UpstreamConfig
from tests.unit.dns.objects import ZONE, pod, service, zone_with

CLIENT_IP = "10.244.1.9"  # the pod "client" in namespace "team"


class FakeUpstreams(Forwarder):
    """The real forwarder (cache, in-flight sharing) with the network exchange replaced."""

    def __init__(self, names: dict[str, str]) -> None:
        super().__init__(UpstreamConfig(), UpstreamCache())
        self.names = names
        self.asked: list[str] = []

    async def _ask(self, name: str, qtype: int, qclass: int) -> DNSRecord:
        self.asked.append(name)
        if name == "broken.example":
            raise ForwardError("no upstream answered")
        resp = DNSRecord.question(name, QTYPE[qtype]).reply()
        if name in self.names:
            resp.add_answer(RR(name, QTYPE.A, ttl=60, rdata=A(self.names[name])))
        else:
            resp.header.rcode = 3
            soa = SOA("ns.example", "h.example", (1, 2, 3, 4, 60))
            resp.add_auth(RR("example", QTYPE.SOA, ttl=60, rdata=soa))
        return resp


def _server(autopath: bool = True) -> tuple[QueryPath, FakeUpstreams]:
    zone = zone_with((service("web"), []),
                     (service("ext", cluster_ip="", type="ExternalName", externalName="www.example.com"), []),
                     pods=(pod("client", CLIENT_IP, "team"),))
    upstreams = FakeUpstreams({"www.example.com": "192.0.2.10"})
    answers = AnswerCache()
    metrics = DnsMetrics(zone, answers, upstreams.cache, upstreams.stats)
    return QueryPath(zone, upstreams, metrics, PathOptions(autopath=autopath)), upstreams


async def _ask(server: QueryPath, query: DNSRecord | bytes, client: str = CLIENT_IP,
               tcp: bool = False) -> DNSRecord | None:
    wire = bytes(query.pack()) if isinstance(query, DNSRecord) else query
    reply = server.handle(wire, client, tcp)
    if inspect.isawaitable(reply):
        reply = await reply
    return None if reply is None else DNSRecord.parse(reply)


def _rdata(resp: DNSRecord) -> list[tuple[str, str]]:
    return [(QTYPE[rr.rtype], str(rr.rdata)) for rr in resp.rr]


async def test_a_zone_answer_is_stored_and_the_next_query_takes_the_fast_path() -> None:
    server, _ = _server()
    q = DNSRecord.question(f"web.default.svc.{ZONE}")
    first = await _ask(server, q)
    second = await _ask(server, q)
    assert _rdata(first) == _rdata(second) == [("A", "10.96.0.20")]
    assert server.cache.stats.hits == 1
    server.zone_changed()
    assert len(server.cache) == 0


async def test_a_name_outside_the_zone_is_forwarded_once_and_then_cached() -> None:
    server, upstreams = _server()
    q = DNSRecord.question("WWW.Example.com")
    for _ in range(3):
        resp = await _ask(server, q)
        assert _rdata(resp) == [("A", "192.0.2.10")]
        assert str(resp.rr[0].rname) == "WWW.Example.com.", "the owner in the query's case"
        assert resp.header.aa == 0 and resp.header.ra == 1
    assert upstreams.asked == ["www.example.com"]
    assert server.forwarder.cache.hits["success"] == 2


async def test_identical_queries_in_flight_share_one_upstream_query() -> None:
    server, upstreams = _server()
    replies = [server.handle(bytes(DNSRecord.question("www.example.com").pack()), CLIENT_IP, False)
               for _ in range(5)]
    results = await asyncio.gather(*replies)
    assert all(DNSRecord.parse(r).rr for r in results)
    assert upstreams.asked == ["www.example.com"]


async def test_no_upstream_answer_is_servfail() -> None:
    server, _ = _server()
    resp = await _ask(server, DNSRecord.question("broken.example"))
    assert resp.header.rcode == 2


async def test_autopath_answers_an_outside_name_asked_through_the_search_path_in_one_round_trip() -> None:
    server, upstreams = _server()
    qname = f"www.example.com.team.svc.{ZONE}"
    resp = await _ask(server, DNSRecord.question(qname))
    assert resp.header.rcode == 0
    assert _rdata(resp) == [("CNAME", "www.example.com."), ("A", "192.0.2.10")]
    assert str(resp.rr[0].rname) == qname + "."
    assert upstreams.asked == ["www.example.com"], "the zone's own search domains need no upstream"
    assert server.metrics.autopath["hit"] == 1


async def test_autopath_finds_a_service_of_another_namespace_through_svc() -> None:
    server, _ = _server()
    resp = await _ask(server, DNSRecord.question(f"web.default.team.svc.{ZONE}"))
    assert _rdata(resp) == [("CNAME", f"web.default.svc.{ZONE}."), ("A", "10.96.0.20")]


async def test_autopath_leaves_other_clients_and_unknown_names_with_nxdomain() -> None:
    server, _ = _server()
    qname = f"www.example.com.team.svc.{ZONE}"
    resp = await _ask(server, DNSRecord.question(qname), client="10.244.2.2")
    assert resp.header.rcode == 3, "not a pod: its search path is unknown"
    resp = await _ask(server, DNSRecord.question(f"nothing.example.team.svc.{ZONE}"))
    assert resp.header.rcode == 3 and server.metrics.autopath["miss"] == 1
    plain, _ = _server(autopath=False)
    resp = await _ask(plain, DNSRecord.question(qname))
    assert resp.header.rcode == 3


async def test_an_externalname_a_query_gets_the_cname_and_the_targets_address() -> None:
    server, _ = _server()
    resp = await _ask(server, DNSRecord.question(f"ext.default.svc.{ZONE}"))
    assert _rdata(resp) == [("CNAME", "www.example.com."), ("A", "192.0.2.10")]


async def test_malformed_and_unsupported_queries() -> None:
    server, _ = _server()
    header = struct.pack("!HHHHHH", 77, 0x0100, 1, 0, 0, 0)
    resp = await _ask(server, header + b"\x05abc")
    assert resp.header.id == 77 and resp.header.rcode == 1, "FORMERR"
    assert await _ask(server, b"\x01\x02\x03") is None, "not even a header: dropped"
    reply = bytes(DNSRecord.question("www.example.com").reply().pack())
    assert await _ask(server, reply) is None, "a response: dropped"
    q = DNSRecord.question(f"web.default.svc.{ZONE}")
    q.header.opcode = 2  # STATUS
    assert (await _ask(server, q)).header.rcode == 4, "NOTIMP"
    q = DNSRecord.question(f"web.default.svc.{ZONE}")
    q.add_question(q.q)
    assert (await _ask(server, q)).header.rcode == 1, "two questions: FORMERR"
    q = DNSRecord.question(f"web.default.svc.{ZONE}")
    q.add_ar(EDNS0(version=1))
    resp = await _ask(server, q)
    assert resp.header.rcode == 0 and resp.ar[0].ttl >> 24 == 1, "BADVERS is extended rcode 16"
    assert server.metrics.stats.responses["BADVERS"] == 1
    assert server.metrics.dropped["malformed"] == 1 and server.metrics.dropped["response"] == 1


async def test_metrics_count_requests_by_type_and_rcode() -> None:
    server, _ = _server()
    await _ask(server, DNSRecord.question(f"web.default.svc.{ZONE}"))
    await _ask(server, DNSRecord.question(f"web.default.svc.{ZONE}"), tcp=True)
    await _ask(server, DNSRecord.question(f"nope.default.svc.{ZONE}", "AAAA"))
    text = server.metrics.text().decode()
    assert 'coredns_dns_requests_total{proto="udp",type="A"} 1.0' in text
    assert 'coredns_dns_requests_total{proto="tcp",type="A"} 1.0' in text
    assert 'coredns_dns_requests_total{proto="udp",type="AAAA"} 1.0' in text
    assert 'coredns_dns_responses_total{rcode="NXDOMAIN"} 1.0' in text
    assert "netplane_dns_answer_cache_hits_total 1.0" in text
