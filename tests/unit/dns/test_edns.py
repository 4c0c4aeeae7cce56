"""EDNS0 and message size: the client's buffer size, the reply's OPT, BADVERS, truncation
with the TC bit, and replies to queries too broken to parse."""

from __future__ import annotations

import struct

import pytest
from dnslib import EDNS0, QTYPE, RR, A, DNSRecord

from netplane.dns.edns import (
    BADVERS,
    MAX_UDP,
    Edns,
    FormatError,
    badvers,
    header_error,
    pack,
    query_edns,
    udp_limit,
    with_opt,
)


def _big_answer(count: int) -> DNSRecord:
    q = DNSRecord.question("many.default.svc.cluster.local")
    resp = q.reply()
    for i in range(count):
        ip = f"10.244.{i // 250}.{i % 250}"
        resp.add_answer(RR("many.default.svc.cluster.local", QTYPE.A, ttl=5, rdata=A(ip)))
    resp.add_ar(RR("glue.example", QTYPE.A, ttl=5, rdata=A("192.0.2.1")))
    return resp


def test_the_clients_buffer_size_is_honoured_up_to_1232_bytes() -> None:
    q = DNSRecord.question("x.example")
    assert udp_limit(query_edns(q)) == 512, "no EDNS: 512 bytes"
    q.add_ar(EDNS0(udp_len=4096, flags="do"))
    edns = query_edns(q)
    assert edns == Edns(payload=4096, version=0, do=True)
    assert udp_limit(edns) == MAX_UDP, "capped to avoid fragmentation"
    assert Edns(payload=100).udp_limit == 512, "never less than 512"


def test_the_reply_carries_an_opt_exactly_when_the_query_did_and_copies_do() -> None:
    resp = with_opt(DNSRecord.question("x.example").reply(), Edns(payload=4096, do=True))
    (opt,) = resp.ar
    assert opt.rtype == 41 and opt.rclass == MAX_UDP and opt.ttl & 0x8000
    assert with_opt(resp, None).ar == []


def test_more_than_one_opt_is_a_format_error() -> None:
    q = DNSRecord.question("x.example")
    q.add_ar(EDNS0(udp_len=1232))
    q.add_ar(EDNS0(udp_len=1232))
    with pytest.raises(FormatError):
        query_edns(q)


def test_an_unknown_edns_version_gets_badvers() -> None:
    q = DNSRecord.question("x.example")
    q.add_ar(EDNS0(udp_len=1232, version=1))
    edns = query_edns(q)
    assert edns is not None and edns.version == 1
    resp = DNSRecord.parse(badvers(q, edns).pack())
    (opt,) = resp.ar
    assert (resp.header.rcode | ((opt.ttl >> 24) << 4)) == BADVERS
    assert (opt.ttl >> 16) & 0xFF == 0, "answered with version 0"


def test_a_reply_that_fits_is_left_alone() -> None:
    resp = _big_answer(3)
    assert pack(resp, 512) == resp.pack()


def test_glue_goes_first_and_silently() -> None:
    resp = _big_answer(28)  # fits in 512 bytes only without the additional record
    assert len(resp.pack()) > 512
    wire = pack(resp, 512)
    out = DNSRecord.parse(wire)
    assert len(wire) <= 512 and out.header.tc == 0 and len(out.rr) == 28 and out.ar == []


def test_an_answer_that_does_not_fit_keeps_whole_records_and_sets_tc() -> None:
    resp = _big_answer(100)
    for limit in (512, MAX_UDP):
        wire = pack(resp, limit)
        out = DNSRecord.parse(wire)
        assert len(wire) <= limit and out.header.tc == 1
        assert 0 < len(out.rr) < 100 and len(pack(resp, None)) > limit
    assert DNSRecord.parse(pack(resp, None)).header.tc == 0, "TCP: never truncated"


def test_truncation_keeps_the_opt() -> None:
    resp = with_opt(_big_answer(100), Edns(payload=512))
    out = DNSRecord.parse(pack(resp, 512))
    assert out.header.tc == 1 and [rr.rtype for rr in out.ar] == [41]


def test_a_broken_query_gets_a_header_only_formerr_and_a_response_gets_nothing() -> None:
    query = struct.pack("!HHHHHH", 0xBEEF, 0x0100, 1, 0, 0, 0) + b"\x07garbage"
    reply = header_error(query, 1)
    ident, flags, *counts = struct.unpack("!HHHHHH", reply)
    assert ident == 0xBEEF and flags & 0x8000 and flags & 0x0100 and flags & 0xF == 1
    assert counts == [0, 0, 0, 0]
    assert header_error(b"\x00" * 11, 1) is None, "shorter than a header: nothing to answer"
    response = struct.pack("!HHHHHH", 1, 0x8180, 0, 0, 0, 0)
    assert header_error(response, 1) is None, "never answer a response"
