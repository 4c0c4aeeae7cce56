"""The cache of upstream answers: positive and negative, bounded by their TTLs and by a
number of entries (least recently used goes first). Pure: the clock is injected.

A positive answer lives as long as its shortest answer TTL, at most `max_ttl` (3600 s, as
CoreDNS's cache). A negative one (NXDOMAIN, or NOERROR without answers) lives as its SOA
says (RFC 2308: the smaller of the SOA's TTL and its MINIMUM), at most `max_negative_ttl`
(1800 s); without an SOA it is not kept (RFC 2308 section 5). Other rcodes are never kept.
Answers come back with their TTLs lowered by the time they spent here.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple

from dnslib import RR, DNSRecord

from netplane.dns.edns import OPT

NOERROR, NXDOMAIN = 0, 3
SOA = 6

CacheKey = tuple[str, int, int]  # (lowercase name, type, class)


class _Entry(NamedTuple):
    stored: float
    expires: float
    negative: bool
    response: DNSRecord


def cache_ttl(response: DNSRecord, max_ttl: int, max_negative_ttl: int) -> tuple[int, bool]:
    """(seconds to keep the response, whether it is negative); 0 means do not keep it."""
    rcode = response.header.rcode
    answers = [rr for rr in response.rr if rr.rtype != OPT]
    if rcode == NOERROR and answers:
        return min(min(rr.ttl for rr in answers), max_ttl), False
    if rcode in (NOERROR, NXDOMAIN):
        soas = [rr for rr in response.auth if rr.rtype == SOA]
        if not soas:
            return 0, True
        soa = soas[0]
        return min(soa.ttl, soa.rdata.times[4], max_negative_ttl), True
    return 0, False


def _aged(rrs: list[RR], age: int) -> list[RR]:
    return [RR(rr.rname, rr.rtype, rr.rclass, max(0, rr.ttl - age), rr.rdata) for rr in rrs
            if rr.rtype != OPT]


class UpstreamCache:
    def __init__(self, capacity: int = 10000, *, max_ttl: int = 3600, max_negative_ttl: int = 1800,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = capacity
        self.max_ttl = max_ttl
        self.max_negative_ttl = max_negative_ttl
        self._clock = clock
        self._entries: OrderedDict[CacheKey, _Entry] = OrderedDict()
        self.hits = {"success": 0, "denial": 0}
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def counts(self) -> dict[str, int]:
        """Entries by kind, as CoreDNS's coredns_cache_entries{type}."""
        negative = sum(1 for e in self._entries.values() if e.negative)
        return {"success": len(self._entries) - negative, "denial": negative}

    def get(self, key: CacheKey) -> DNSRecord | None:
        """A copy of the kept response (its header's rcode and flags, its sections with
        the TTLs aged), or None."""
        entry = self._entries.get(key)
        now = self._clock()
        if entry is None or now >= entry.expires:
            if entry is not None:
                del self._entries[key]
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits["denial" if entry.negative else "success"] += 1
        age = int(now - entry.stored)
        r = entry.response
        return DNSRecord(r.header, questions=list(r.questions), rr=_aged(r.rr, age),
                         auth=_aged(r.auth, age), ar=_aged(r.ar, age))

    def put(self, key: CacheKey, response: DNSRecord) -> bool:
        ttl, negative = cache_ttl(response, self.max_ttl, self.max_negative_ttl)
        if ttl <= 0 or self.capacity <= 0:
            return False
        now = self._clock()
        self._entries[key] = _Entry(now, now + ttl, negative, response)
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        return True

    def clear(self) -> None:
        self._entries.clear()
