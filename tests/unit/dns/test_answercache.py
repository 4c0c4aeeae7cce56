"""The wire-format answer cache: a stored reply comes back patched with the query's ID,
flags and letter case, for the right EDNS shape only, and never for anything else."""

from __future__ import annotations

from dnslib import EDNS0, DNSRecord

from netplane.dns.answer import Answerer
from netplane.dns.answercache import AnswerCache, question_key
from netplane.dns.edns import CLASSIC_UDP, pack, query_edns, with_opt
from tests.unit.dns.objects import ZONE, endpoint, endpoint_slice, service, zone_with

WEB = f"web.default.svc.{ZONE}"


def _wire(name: str, qtype: str = "A", *, ident: int = 1, edns: EDNS0 | None = None, rd: int = 1) -> bytes:
    q = DNSRecord.question(name, qtype)
    q.header.id, q.header.rd = ident, rd
    if edns is not None:
        q.add_ar(edns)
    return bytes(q.pack())  # as a socket hands it over


def _stored(query: bytes, answerer: Answerer, cache: AnswerCache) -> bytes:
    """What the server's slow path does: answer, pack, store."""
    q = DNSRecord.parse(query)
    resp = with_opt(answerer.answer(q).response, query_edns(q))
    full = resp.pack()
    small = pack(resp, CLASSIC_UDP) if len(full) > CLASSIC_UDP else None
    assert cache.store(query, full, small, "A", "NOERROR")
    return full


def _answerer(endpoints: int = 2) -> Answerer:
    eps = [endpoint(f"10.244.{i // 200}.{i % 200 + 1}") for i in range(endpoints)]
    return Answerer(zone_with((service("web"), []),
                              (service("db", cluster_ip="None"), [endpoint_slice("db", eps)])))


def test_a_stored_reply_comes_back_with_the_querys_id_and_case() -> None:
    cache, answerer = AnswerCache(), _answerer()
    first = _stored(_wire(WEB, ident=7), answerer, cache)
    hit = cache.respond(_wire("WEB.Default.SVC.cluster.LOCAL", ident=9))
    assert hit is not None
    out = DNSRecord.parse(hit)
    assert out.header.id == 9
    assert str(out.q.qname) == "WEB.Default.SVC.cluster.LOCAL."
    assert str(out.rr[0].rname) == "WEB.Default.SVC.cluster.LOCAL.", "the owner points at the question"
    assert [str(r.rdata) for r in out.rr] == ["10.96.0.20"]
    assert hit[12:] != first[12:] and hit[2:] .lower() == first[2:].lower()
    assert cache.stats.hits == 1 and cache.stats.requests["udp A"] == 1


def test_rd_and_cd_are_copied_from_each_query() -> None:
    cache = AnswerCache()
    _stored(_wire(WEB, rd=1), _answerer(), cache)
    q = DNSRecord.parse(_wire(WEB, rd=0))
    q.header.cd = 1
    out = DNSRecord.parse(cache.respond(bytes(q.pack())))
    assert (out.header.rd, out.header.cd, out.header.qr, out.header.aa) == (0, 1, 1, 1)


def test_the_type_and_edns_shape_are_part_of_the_key() -> None:
    cache = AnswerCache()
    _stored(_wire(WEB), _answerer(), cache)
    assert cache.respond(_wire(WEB, "AAAA")) is None
    assert cache.respond(_wire(WEB, edns=EDNS0(udp_len=1232))) is None, "EDNS needs a reply with an OPT"
    _stored(_wire(WEB, edns=EDNS0(udp_len=1232)), _answerer(), cache)
    out = DNSRecord.parse(cache.respond(_wire(WEB, ident=3, edns=EDNS0(udp_len=4096))))
    assert out.header.id == 3 and [rr.rtype for rr in out.ar] == [41]
    assert cache.respond(_wire(WEB, edns=EDNS0(udp_len=1232, flags="do"))) is None, "DO is part of the key"


def test_a_long_reply_is_truncated_for_plain_udp_and_whole_over_tcp() -> None:
    cache, answerer = AnswerCache(), _answerer(endpoints=60)
    name = f"db.default.svc.{ZONE}"
    full = _stored(_wire(name), answerer, cache)
    assert len(full) > 512
    udp = DNSRecord.parse(cache.respond(_wire(name, ident=5)))
    assert udp.header.tc == 1 and udp.header.id == 5 and len(udp.rr) < 60
    tcp = DNSRecord.parse(cache.respond(_wire(name, ident=6), tcp=True))
    assert tcp.header.tc == 0 and len(tcp.rr) == 60
    assert cache.stats.requests["tcp A"] == 1


def test_other_shapes_are_left_to_the_parser() -> None:
    assert question_key(b"\x00" * 11) is None
    resp = bytes(DNSRecord.question(WEB).reply().pack())
    assert question_key(resp) is None, "a response"
    two = DNSRecord.question(WEB)
    two.add_question(two.q)
    assert question_key(bytes(two.pack())) is None
    bad_opt = _wire(WEB, edns=EDNS0(udp_len=1232))[:-1]
    assert question_key(bad_opt) is None, "an OPT cut short"
    v1 = _wire(WEB, edns=EDNS0(udp_len=1232, version=1))
    assert question_key(v1) is None, "EDNS version 1 gets BADVERS from the slow path"


def test_clear_and_capacity() -> None:
    cache = AnswerCache(capacity=2)
    answerer = _answerer()
    for name in (WEB, f"db.default.svc.{ZONE}", f"nope.default.svc.{ZONE}"):
        _stored(_wire(name), answerer, cache)
    assert len(cache) == 2
    assert cache.respond(_wire(WEB)) is None, "the oldest went first"
    cache.clear()
    assert len(cache) == 0 and cache.respond(_wire(f"nope.default.svc.{ZONE}")) is None


def test_a_reply_whose_question_differs_from_the_query_is_never_stored() -> None:
    cache = AnswerCache()
    query = _wire(WEB)
    other = bytes(DNSRecord.question(f"db.default.svc.{ZONE}").reply().pack())
    assert not cache.store(query, other, None, "A", "NOERROR")
