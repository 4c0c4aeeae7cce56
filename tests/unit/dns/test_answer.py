"""Answers from the zone, for every record type the specification defines: the records,
their TTL, NXDOMAIN and NODATA with the SOA, CNAMEs, PTRs, and the query's letter case."""

from __future__ import annotations

from dnslib import QTYPE, DNSRecord

from netplane.dns.answer import NOERROR, NXDOMAIN, REFUSED, Answerer
from netplane.dns.zone import ZoneConfig
from tests.unit.dns.objects import ZONE, answers, ask, endpoint, endpoint_slice, pod, service, zone_with

WEB = f"web.default.svc.{ZONE}."
DB = f"db.default.svc.{ZONE}."


def _answerer(ttl: int = 5, autopath: bool = False) -> Answerer:
    zone = zone_with(
        (service("web", ports=[{"name": "http", "port": 80, "protocol": "TCP"}]), []),
        (service("db", cluster_ip="None"),
         [endpoint_slice("db", [endpoint("10.244.1.5", hostname="db-0"), endpoint("10.244.2.6")])]),
        (service("ext", cluster_ip="", type="ExternalName", externalName="www.example.com"), []),
        (service("alias", cluster_ip="", type="ExternalName", externalName=f"web.default.svc.{ZONE}"), []),
        (service("kube-dns", "kube-system", cluster_ip="10.96.0.10"), []),
        pods=(pod("client", "10.244.1.9", "team"),), config=ZoneConfig(domain=ZONE, ttl=ttl))
    return Answerer(zone, autopath=autopath)


def _soa(resp: DNSRecord) -> tuple[str, int, int]:
    (soa,) = resp.auth
    assert QTYPE[soa.rtype] == "SOA"
    return str(soa.rname), soa.ttl, soa.rdata.times[4]


def test_a_for_a_clusterip_service_with_the_configured_ttl() -> None:
    resp = _answerer(ttl=30).answer(ask(WEB)).response
    assert resp.header.rcode == NOERROR and resp.header.aa == 1
    assert answers(resp) == [(WEB, "A", 30, "10.96.0.20")]


def test_a_for_a_headless_service_and_its_endpoints() -> None:
    a = _answerer()
    assert {r[3] for r in answers(a.answer(ask(DB)).response)} == {"10.244.1.5", "10.244.2.6"}
    assert answers(a.answer(ask(f"db-0.{DB}")).response) == [(f"db-0.{DB}", "A", 5, "10.244.1.5")]


def test_srv_for_named_ports_with_the_targets_addresses_as_glue() -> None:
    a = _answerer()
    resp = a.answer(ask(f"_http._tcp.{WEB}", "SRV")).response
    assert answers(resp) == [(f"_http._tcp.{WEB}", "SRV", 5, f"0 100 80 {WEB}")]
    assert [(str(r.rname), str(r.rdata)) for r in resp.ar] == [(WEB, "10.96.0.20")]
    resp = a.answer(ask(f"_http._tcp.{DB}", "SRV")).response
    assert sorted(r[3] for r in answers(resp)) == [f"0 50 8080 10-244-2-6.{DB}", f"0 50 8080 db-0.{DB}"]
    assert {str(r.rdata) for r in resp.ar} == {"10.244.1.5", "10.244.2.6"}


def test_ptr_for_service_and_endpoint_ips() -> None:
    a = _answerer()
    resp = a.answer(ask("20.0.96.10.in-addr.arpa", "PTR")).response
    assert answers(resp) == [("20.0.96.10.in-addr.arpa.", "PTR", 5, WEB)]
    resp = a.answer(ask("5.1.244.10.in-addr.arpa", "PTR")).response
    assert answers(resp) == [("5.1.244.10.in-addr.arpa.", "PTR", 5, f"db-0.{DB}")]


def test_unknown_reverse_names_fall_through_to_the_upstreams() -> None:
    assert _answerer().answer(ask("1.2.3.4.in-addr.arpa", "PTR")).forward
    assert _answerer().answer(ask("96.10.in-addr.arpa", "PTR")).forward


def test_an_externalname_is_a_cname_and_its_outside_target_is_handed_back_to_chase() -> None:
    a = _answerer()
    ans = a.answer(ask(f"ext.default.svc.{ZONE}"))
    assert answers(ans.response) == [(f"ext.default.svc.{ZONE}.", "CNAME", 5, "www.example.com.")]
    assert ans.chase == "www.example.com" and not ans.cacheable
    cname = a.answer(ask(f"ext.default.svc.{ZONE}", "CNAME"))
    assert cname.chase is None and answers(cname.response)[0][1] == "CNAME"


def test_a_cname_inside_the_zone_is_followed() -> None:
    resp = _answerer().answer(ask(f"alias.default.svc.{ZONE}")).response
    assert answers(resp) == [(f"alias.default.svc.{ZONE}.", "CNAME", 5, WEB), (WEB, "A", 5, "10.96.0.20")]


def test_pod_names_and_the_schema_version() -> None:
    a = _answerer()
    resp = a.answer(ask(f"10-244-1-9.team.pod.{ZONE}")).response
    assert answers(resp) == [(f"10-244-1-9.team.pod.{ZONE}.", "A", 5, "10.244.1.9")]
    resp = a.answer(ask(f"dns-version.{ZONE}", "TXT")).response
    assert answers(resp) == [(f"dns-version.{ZONE}.", "TXT", 5, '"1.1.0"')]


def test_nxdomain_for_a_name_that_does_not_exist_with_the_soa() -> None:
    ans = _answerer(ttl=7).answer(ask(f"nope.default.svc.{ZONE}"))
    assert ans.response.header.rcode == NXDOMAIN and ans.response.header.aa == 1
    assert ans.response.rr == []
    assert _soa(ans.response) == (f"{ZONE}.", 7, 7), "negative TTL: the SOA's TTL and minimum"
    assert ans.searchable and ans.cacheable, "without autopath the NXDOMAIN is the same for everyone"
    assert not _answerer(autopath=True).answer(ask(f"nope.default.svc.{ZONE}")).cacheable


def test_nodata_for_a_name_that_exists_with_other_types() -> None:
    a = _answerer()
    for name, qtype in ((WEB, "AAAA"), (WEB, "TXT"), (f"svc.{ZONE}", "A"), (f"_tcp.{WEB}", "SRV"),
                        (f"default.svc.{ZONE}", "A")):
        resp = a.answer(ask(name, qtype)).response
        assert resp.header.rcode == NOERROR and resp.rr == [], (name, qtype)
        assert _soa(resp)[0] == f"{ZONE}.", (name, qtype)


def test_the_apex_answers_soa_and_ns_with_the_dns_services_address() -> None:
    a = _answerer()
    resp = a.answer(ask(ZONE, "SOA")).response
    assert answers(resp)[0][:2] == (f"{ZONE}.", "SOA")
    resp = a.answer(ask(ZONE, "NS")).response
    assert answers(resp) == [(f"{ZONE}.", "NS", 5, f"ns.dns.{ZONE}.")]
    assert [str(r.rdata) for r in resp.ar] == ["10.96.0.10"]


def test_any_returns_every_record_at_the_name() -> None:
    resp = _answerer().answer(ask(WEB, "ANY")).response
    assert [r[1] for r in answers(resp)] == ["A"]


def test_the_answer_keeps_the_querys_letter_case() -> None:
    resp = _answerer().answer(ask("WeB.DeFault.SVC.Cluster.Local")).response
    assert str(resp.q.qname) == "WeB.DeFault.SVC.Cluster.Local."
    assert str(resp.rr[0].rname) == "WeB.DeFault.SVC.Cluster.Local."
    wire = resp.pack()
    assert b"\x03WeB\x07DeFault\x03SVC\x07Cluster\x05Local" in wire


def test_names_outside_the_zone_are_forwarded_and_other_classes_refused() -> None:
    a = _answerer()
    assert a.answer(ask("www.example.com")).forward
    q = DNSRecord.question(WEB, "A", "CH")
    assert a.answer(q).response.header.rcode == REFUSED


def test_the_reply_copies_the_querys_id_and_rd_and_cd() -> None:
    q = ask(WEB)
    q.header.id, q.header.rd, q.header.cd = 4242, 0, 1
    h = _answerer().answer(q).response.header
    assert (h.id, h.qr, h.rd, h.cd, h.ra) == (4242, 1, 0, 1, 1)


def test_aaaa_and_ip6_arpa_ptr_for_a_dual_stack_service() -> None:
    zone = zone_with((service("v6", cluster_ip="10.96.0.30", clusterIPs=["10.96.0.30", "fd00::30"]), []))
    a = Answerer(zone)
    name = f"v6.default.svc.{ZONE}."
    assert answers(a.answer(ask(name, "AAAA")).response) == [(name, "AAAA", 5, "fd00::30")]
    reverse = "0.3.0.0." + "0." * 24 + "0.0.d.f.ip6.arpa"  # 32 nibbles of fd00::30, reversed
    assert answers(a.answer(ask(reverse, "PTR")).response) == [(reverse + ".", "PTR", 5, name)]
