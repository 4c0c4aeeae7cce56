"""Upstream addresses, resolv.conf, kube-dns's ConfigMap, the search path the server walks
(autopath), and the upstream answer cache with its TTLs and bounds."""

from __future__ import annotations

import pytest
from dnslib import QTYPE, RR, SOA, A, DNSRecord

from netplane.dns import autopath
from netplane.dns.upstreamcache import UpstreamCache, cache_ttl
from netplane.dns.upstreams import (
    Upstream,
    UpstreamConfig,
    UpstreamError,
    parse_kube_dns_configmap,
    parse_resolv_conf,
    parse_upstream,
)


def test_upstream_addresses() -> None:
    assert parse_upstream("10.0.0.1") == Upstream("10.0.0.1", 53)
    assert parse_upstream("10.0.0.1:5353") == Upstream("10.0.0.1", 5353)
    assert parse_upstream("fd00::1") == Upstream("fd00::1", 53)
    assert parse_upstream("[fd00::1]:5353") == Upstream("fd00::1", 5353)
    assert str(Upstream("fd00::1", 53)) == "[fd00::1]:53"
    for bad in ("dns.google", "10.0.0.1:0", "10.0.0.1:http", "[fd00::1", "", "10.0.0.1:70000"):
        with pytest.raises(UpstreamError):
            parse_upstream(bad)


def test_resolv_conf_gives_nameservers_and_the_last_search_line() -> None:
    text = ("# comment\nsearch old.example\nnameserver 10.0.0.1\nnameserver bogus\n"
            "nameserver fe80::1%eth0\nsearch corp.example. Lab.Example\noptions ndots:2\n")
    host = parse_resolv_conf(text)
    assert host.nameservers == (Upstream("10.0.0.1"), Upstream("fe80::1"))
    assert host.searches == ("corp.example", "lab.example")


def test_kube_dns_configmap_upstreams_and_stub_domains() -> None:
    ups, stubs = parse_kube_dns_configmap({"upstreamNameservers": '["10.0.0.1", "10.0.0.2:5353"]',
                                           "stubDomains": '{"Acme.Local.": ["10.1.0.1"]}'})
    assert ups == (Upstream("10.0.0.1"), Upstream("10.0.0.2", 5353))
    assert stubs == {"acme.local": (Upstream("10.1.0.1"),)}
    cfg = UpstreamConfig(ups, stubs)
    assert cfg.for_name("db.acme.local") == (Upstream("10.1.0.1"),)
    assert cfg.for_name("acme.local") == (Upstream("10.1.0.1"),)
    assert cfg.for_name("notacme.local") == ups
    assert parse_kube_dns_configmap({}) == ((), {})


@pytest.mark.parametrize("data", [
    {"upstreamNameservers": "not json"},
    {"upstreamNameservers": '"10.0.0.1"'},
    {"upstreamNameservers": '["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]'},
    {"upstreamNameservers": '["example.com"]'},
    {"stubDomains": '["10.0.0.1"]'},
    {"stubDomains": '{"": ["10.0.0.1"]}'},
])
def test_a_bad_configmap_is_refused_with_a_reason(data: dict[str, str]) -> None:
    with pytest.raises(UpstreamError):
        parse_kube_dns_configmap(data)


def test_autopath_walks_the_pods_search_path_from_its_first_domain() -> None:
    names = autopath.candidates("www.example.com.team.svc.cluster.local", "team", "cluster.local",
                                ["corp.example"])
    assert names == ["www.example.com.svc.cluster.local", "www.example.com.cluster.local",
                     "www.example.com.corp.example", "www.example.com"]
    assert autopath.candidates("www.example.com.other.svc.cluster.local", "team", "cluster.local") == []
    assert autopath.candidates("team.svc.cluster.local", "team", "cluster.local") == []
    assert autopath.search_path("team", "cluster.local", ["cluster.local", "x"]) == [
        "team.svc.cluster.local", "svc.cluster.local", "cluster.local", "x"]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _positive(ttl: int) -> DNSRecord:
    resp = DNSRecord.question("www.example.com").reply()
    resp.add_answer(RR("www.example.com", QTYPE.A, ttl=ttl, rdata=A("192.0.2.1")))
    resp.add_answer(RR("www.example.com", QTYPE.A, ttl=ttl * 2, rdata=A("192.0.2.2")))
    return resp


def _negative(soa_ttl: int, minimum: int, rcode: int = 3) -> DNSRecord:
    resp = DNSRecord.question("nope.example.com").reply()
    resp.header.rcode = rcode
    resp.add_auth(RR("example.com", QTYPE.SOA, ttl=soa_ttl,
                     rdata=SOA("ns.example.com", "h.example.com", (1, 2, 3, 4, minimum))))
    return resp


def test_ttls_positive_negative_and_not_at_all() -> None:
    assert cache_ttl(_positive(60), 3600, 1800) == (60, False), "the shortest answer TTL"
    assert cache_ttl(_positive(7200), 3600, 1800) == (3600, False), "capped"
    assert cache_ttl(_negative(300, 30), 3600, 1800) == (30, True), "RFC 2308: min(SOA TTL, minimum)"
    assert cache_ttl(_negative(300, 30, rcode=0), 3600, 1800) == (30, True), "NODATA too"
    no_soa = DNSRecord.question("x.example").reply()
    no_soa.header.rcode = 3
    assert cache_ttl(no_soa, 3600, 1800) == (0, True), "no SOA: not kept"
    servfail = DNSRecord.question("x.example").reply()
    servfail.header.rcode = 2
    assert cache_ttl(servfail, 3600, 1800) == (0, False)


def test_cached_answers_age_and_expire() -> None:
    clock = Clock()
    cache = UpstreamCache(clock=clock)
    key = ("www.example.com", 1, 1)
    assert cache.put(key, _positive(60))
    clock.now += 25
    got = cache.get(key)
    assert got is not None and [rr.ttl for rr in got.rr] == [35, 95]
    assert cache.hits["success"] == 1
    clock.now += 35
    assert cache.get(key) is None and cache.misses == 1 and len(cache) == 0


def test_negative_answers_are_kept_as_denials() -> None:
    clock = Clock()
    cache = UpstreamCache(clock=clock)
    key = ("nope.example.com", 1, 1)
    cache.put(key, _negative(300, 30))
    assert cache.counts() == {"success": 0, "denial": 1}
    got = cache.get(key)
    assert got is not None and got.header.rcode == 3 and cache.hits["denial"] == 1


def test_the_least_recently_used_answer_goes_first() -> None:
    cache = UpstreamCache(capacity=2, clock=Clock())
    a, b, c = (("a", 1, 1), ("b", 1, 1), ("c", 1, 1))
    cache.put(a, _positive(60))
    cache.put(b, _positive(60))
    assert cache.get(a) is not None
    cache.put(c, _positive(60))
    assert cache.get(b) is None and cache.get(a) is not None and cache.get(c) is not None
    assert not UpstreamCache(capacity=0).put(a, _positive(60))
