"""EDNS0 (RFC 6891) and message size: what a query's OPT record asks for, the OPT of the
reply, and truncation with the TC bit when a UDP reply does not fit. Pure.

A UDP reply fits in 512 bytes without EDNS, and in the client's advertised size, capped at
1232 bytes (the DNS Flag Day 2020 size, which avoids IP fragmentation) with it. When it
does not fit, the additional section goes first (without TC: RFC 2181 section 9 says
glue may be dropped silently), then as many whole answers as fit stay and TC is set, so
the client retries over TCP; TCP replies are never truncated.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from dnslib import EDNS0, DNSHeader, DNSRecord

OPT = 41
CLASSIC_UDP = 512
MAX_UDP = 1232  # what this server advertises, and the most it sends over UDP
BADVERS = 16  # extended rcode (RFC 6891): an EDNS version this server does not speak
_HEADER = struct.Struct("!HHHHHH")


class FormatError(Exception):
    """The query is malformed in a way that deserves FORMERR."""


@dataclass(frozen=True)
class Edns:
    payload: int
    version: int = 0
    do: bool = False

    @property
    def udp_limit(self) -> int:
        return max(CLASSIC_UDP, min(self.payload, MAX_UDP))


def query_edns(query: DNSRecord) -> Edns | None:
    """The query's EDNS parameters, None without an OPT; FormatError for more than one OPT
    or one outside the additional section (RFC 6891 section 6.1.1)."""
    opts = [rr for rr in query.ar if rr.rtype == OPT]
    if any(rr.rtype == OPT for rr in (*query.rr, *query.auth)) or len(opts) > 1:
        raise FormatError("more than one OPT record, or one outside the additional section")
    if not opts:
        return None
    opt = opts[0]
    if opt.rname.label:
        raise FormatError("the OPT record's owner must be the root")
    ttl = opt.ttl
    return Edns(payload=opt.rclass, version=(ttl >> 16) & 0xFF, do=bool(ttl & 0x8000))


def udp_limit(edns: Edns | None) -> int:
    return edns.udp_limit if edns is not None else CLASSIC_UDP


def with_opt(response: DNSRecord, edns: Edns | None, *, rcode: int | None = None) -> DNSRecord:
    """The response with this server's OPT when the query had one (its DO bit copied, RFC
    3225), and without any OPT otherwise. `rcode` may be an extended one (above 15): its
    upper bits go into the OPT."""
    response.ar = [rr for rr in response.ar if rr.rtype != OPT]
    if rcode is not None:
        response.header.rcode = rcode & 0xF
    if edns is not None:
        ext = (rcode or 0) >> 4
        response.add_ar(EDNS0(udp_len=MAX_UDP, ext_rcode=ext, flags="do" if edns.do else ""))
    return response


def badvers(query: DNSRecord, edns: Edns) -> DNSRecord:
    """RFC 6891 6.1.3: a query of an unknown EDNS version gets BADVERS and version 0."""
    h = query.header
    resp = DNSRecord(DNSHeader(id=h.id, qr=1, rd=h.rd, ra=1, opcode=h.opcode))
    for q in query.questions[:1]:
        resp.add_question(q)
    return with_opt(resp, edns, rcode=BADVERS)


def _header(h: DNSHeader, *, tc: bool = False) -> DNSHeader:
    copy = DNSHeader(h.id, h.bitmap)
    if tc:
        copy.tc = 1
    return copy


def pack(response: DNSRecord, limit: int | None) -> bytes:
    """The wire form, truncated to `limit` bytes (None: TCP, no limit but 65535)."""
    wire = bytes(response.pack())
    if limit is None or len(wire) <= limit:
        return wire
    opt = [rr for rr in response.ar if rr.rtype == OPT]
    trimmed = DNSRecord(_header(response.header), questions=list(response.questions), rr=list(response.rr),
                        auth=list(response.auth), ar=opt)
    wire = bytes(trimmed.pack())
    if len(wire) <= limit:
        return wire
    # Keep the longest prefix of the answers that fits (binary search over whole records).
    answers = list(response.rr)
    lo, hi = 0, len(answers)
    best = b""
    while lo <= hi:
        mid = (lo + hi) // 2
        part = DNSRecord(_header(response.header, tc=True), questions=list(response.questions),
                         rr=answers[:mid], ar=opt)
        candidate = bytes(part.pack())
        if len(candidate) <= limit:
            best, lo = candidate, mid + 1
        else:
            hi = mid - 1
    if not best:  # not even the question fits (a huge OPT?): the bare header with TC
        best = bytes(DNSRecord(_header(response.header, tc=True)).pack())
    return best


def header_error(data: bytes, rcode: int) -> bytes | None:
    """A header-only reply with `rcode` for a query too broken to parse, echoing its ID and
    opcode and RD; None for what must get no reply at all (shorter than a header, or a
    response: answering those would let two servers bounce packets at each other)."""
    if len(data) < _HEADER.size:
        return None
    ident, flags = struct.unpack_from("!HH", data)
    if flags & 0x8000:
        return None
    flags = 0x8000 | (flags & 0x7800) | (flags & 0x0100) | 0x0080 | (rcode & 0xF)
    return _HEADER.pack(ident, flags, 0, 0, 0, 0)
