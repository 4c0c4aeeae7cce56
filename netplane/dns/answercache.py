"""The hot path: zone answers kept as wire bytes, keyed on the raw question, so that a
repeated query is answered without parsing or packing a DNS message.

The benchmark (bench/dns.py) shows why this must exist: the same server with this cache
off, parsing and packing every query with dnslib, answers 0.08x of dnsmasq's queries per
second at 12.8x its CPU per query; with it, 0.68x at 1.36x.

A query takes this path when it is a plain QUERY with one question and at most an OPT
record (version 0). The key is the question's bytes with the name lowercased (the type
and class bytes stay as they are), tagged with whether the query had EDNS and the DO bit.
The reply is the stored one with the query's ID, RD and CD bits and its question copied
in byte for byte: answers at the question's name are compression pointers into the
question, so they come back in the query's letter case. Any change of the zone clears the
cache; only answers that are the same for every client are stored (`Answer.cacheable`).
"""

from __future__ import annotations

from collections import defaultdict
from typing import NamedTuple

from netplane.dns.edns import CLASSIC_UDP, MAX_UDP

_ONE_QUESTION = b"\x00\x01\x00\x00\x00\x00\x00\x00"
_ONE_QUESTION_AND_OPT = b"\x00\x01\x00\x00\x00\x00\x00\x01"
_OPT_TYPE = b"\x00\x29"
# Tags that start an EDNS key: a plain key starts with a label length (0..63) instead.
_EDNS_TAG, _EDNS_DO_TAG = b"\xfe", b"\xff"


class Stats:
    """Request and response counters, kept as plain dict increments (the hot path pays
    for nothing more); `netplane.dns.metrics` exports them."""

    def __init__(self) -> None:
        self.requests: defaultdict[str, int] = defaultdict(int)  # "udp A" -> count
        self.responses: defaultdict[str, int] = defaultdict(int)  # "NOERROR" -> count
        self.hits = 0
        self.misses = 0


class _Variant(NamedTuple):
    heads: tuple[bytes, bytes, bytes, bytes]  # header bytes 2..12, by (RD, CD) of the query
    tail: bytes  # everything after the question
    size: int


class Entry(NamedTuple):
    full: _Variant
    small: _Variant | None  # truncated to 512 bytes, when the full reply is longer
    udp_key: str
    tcp_key: str
    rcode: str


def question_key(data: bytes) -> tuple[bytes, int, int] | None:
    """(key, end of the question, UDP size limit) of a query this cache may answer, or
    None for anything else (the full parser then deals with it)."""
    if len(data) < 17 or data[2] & 0xF8:  # a response, or an opcode other than QUERY
        return None
    counts = data[4:12]
    if counts == _ONE_QUESTION:
        end = len(data)
        return data[12:end - 4].lower() + data[end - 4:], end, CLASSIC_UDP
    if counts != _ONE_QUESTION_AND_OPT:
        return None
    i, n = 12, len(data)
    while True:
        if i >= n:
            return None
        length = data[i]
        if length == 0:
            break
        if length > 63:  # a compression pointer in a question: leave it to the parser
            return None
        i += length + 1
    end = i + 5
    # OPT: root owner, type 41, class = payload size, ttl = ext-rcode, version, flags; rdata.
    if n < end + 11 or data[end] != 0 or data[end + 1:end + 3] != _OPT_TYPE or data[end + 6] != 0:
        return None
    if end + 11 + int.from_bytes(data[end + 9:end + 11], "big") != n:
        return None
    payload = int.from_bytes(data[end + 3:end + 5], "big")
    tag = _EDNS_DO_TAG if data[end + 7] & 0x80 else _EDNS_TAG
    return tag + data[12:end - 4].lower() + data[end - 4:end], end, max(CLASSIC_UDP, min(payload, MAX_UDP))


def _variant(wire: bytes, question_end: int) -> _Variant:
    flags, low = wire[2] & 0xFE, wire[3] & 0xEF
    rest = wire[4:12]
    heads = tuple(bytes((flags | (i & 1), low | ((i & 2) << 3))) + rest for i in range(4))
    return _Variant(heads, wire[question_end:], len(wire))  # type: ignore[arg-type]


class AnswerCache:
    def __init__(self, capacity: int = 10000, stats: Stats | None = None) -> None:
        self.capacity = capacity
        self.stats = stats or Stats()
        self._entries: dict[bytes, Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def respond(self, data: bytes, tcp: bool = False) -> bytes | None:
        """The stored reply to query `data`, patched for it; None on a miss."""
        found = question_key(data)
        if found is None:
            return None
        key, end, limit = found
        entry = self._entries.get(key)
        stats = self.stats
        if entry is None:
            stats.misses += 1
            return None
        variant = entry.full
        if not tcp and variant.size > limit:
            variant = entry.small  # type: ignore[assignment]
            if variant is None or limit != CLASSIC_UDP:
                stats.misses += 1
                return None  # an EDNS size between the two: truncated by the slow path
        stats.hits += 1
        stats.requests[entry.tcp_key if tcp else entry.udp_key] += 1
        stats.responses[entry.rcode] += 1
        return data[:2] + variant.heads[(data[2] & 1) | ((data[3] >> 3) & 2)] + data[12:end] + variant.tail

    def store(self, query: bytes, full: bytes, small: bytes | None, qtype: str, rcode: str) -> bool:
        """Keeps `full` (and its 512-byte truncation `small`, if it is longer), the replies
        built for `query`; False when the query is not one the fast path would look up."""
        query, full = bytes(query), bytes(full)  # dnslib packs into bytearrays
        small = bytes(small) if small is not None else None
        found = question_key(query)
        if found is None or self.capacity <= 0:
            return False
        key, end, _limit = found
        if full[12:end] != query[12:end] or (small is not None and small[12:end] != query[12:end]):
            return False  # the reply's question is not the query's bytes: never patch it in
        if key not in self._entries and len(self._entries) >= self.capacity:
            del self._entries[next(iter(self._entries))]  # the oldest entry
        small_variant = _variant(small, end) if small is not None and len(full) > CLASSIC_UDP else None
        self._entries[key] = Entry(_variant(full, end), small_variant, f"udp {qtype}", f"tcp {qtype}", rcode)
        return True
