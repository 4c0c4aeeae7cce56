"""The records of the Kubernetes DNS specification (schema 1.1.0) that Services,
EndpointSlices and Pods put into the zone, and how the zone indexes and forgets them."""

from __future__ import annotations

from netplane.dns.names import dashed, ip_of_reverse, reverse_name, undashed
from netplane.dns.records import AAAA, CNAME, SRV, TXT, A, Srv, pod_record, service_records
from netplane.dns.zone import EMPTY, Zone, ZoneConfig
from tests.unit.dns.objects import ZONE, endpoint, endpoint_slice, pod, service, zone_with

WEB = f"web.default.svc.{ZONE}"


def test_a_clusterip_service_has_an_a_record_per_clusterip_and_srv_per_named_port() -> None:
    svc = service("web", ports=[{"name": "http", "port": 80, "protocol": "TCP"},
                                {"name": "dns", "port": 53, "protocol": "UDP"},
                                {"port": 9999, "protocol": "TCP"}])  # unnamed: no SRV
    recs = service_records(svc, [], ZONE)
    assert recs.names[WEB] == {A: ("10.96.0.20",)}
    assert recs.names[f"_http._tcp.{WEB}"] == {SRV: (Srv(0, 100, 80, WEB),)}
    assert recs.names[f"_dns._udp.{WEB}"] == {SRV: (Srv(0, 100, 53, WEB),)}
    assert not [n for n in recs.names if "9999" in n]
    assert (("10.96.0.20", WEB) in recs.ptrs)
    assert {f"_tcp.{WEB}", f"_udp.{WEB}"} <= recs.empty, "the names between exist, without records"


def test_a_dual_stack_service_has_a_and_aaaa() -> None:
    svc = service("web", cluster_ip="10.96.0.20", clusterIPs=["10.96.0.20", "fd00::20"])
    recs = service_records(svc, [], ZONE)
    assert recs.names[WEB] == {A: ("10.96.0.20",), AAAA: ("fd00::20",)}


def test_a_headless_service_answers_its_ready_endpoints_and_names_each_one() -> None:
    svc = service("db", cluster_ip="None")
    sl = endpoint_slice("db", [endpoint("10.244.1.5"), endpoint("10.244.1.6", hostname="db-0"),
                               endpoint("10.244.1.7", ready=False), endpoint("10.244.1.8", ready=None)])
    recs = service_records(svc, [sl], ZONE)
    base = f"db.default.svc.{ZONE}"
    assert recs.names[base] == {A: ("10.244.1.5", "10.244.1.6", "10.244.1.8")}, \
        "ready, and ready=null (which the API says means ready); not the not-ready one"
    assert recs.names[f"db-0.{base}"] == {A: ("10.244.1.6",)}
    assert recs.names[f"10-244-1-5.{base}"] == {A: ("10.244.1.5",)}, "no hostname: the dashed IP"
    srv = recs.names[f"_http._tcp.{base}"][SRV]
    assert srv == (Srv(0, 33, 8080, f"10-244-1-5.{base}"), Srv(0, 33, 8080, f"10-244-1-8.{base}"),
                   Srv(0, 33, 8080, f"db-0.{base}")), "the endpoint port, weight shared"
    assert ("10.244.1.6", f"db-0.{base}") in recs.ptrs
    assert not [p for p in recs.ptrs if p[0] == "10.244.1.7"]


def test_publish_not_ready_addresses_publishes_every_endpoint() -> None:
    svc = service("db", cluster_ip="None", publishNotReadyAddresses=True)
    sl = endpoint_slice("db", [endpoint("10.244.1.5"), endpoint("10.244.1.7", ready=False)])
    assert service_records(svc, [sl], ZONE).names[f"db.default.svc.{ZONE}"] == {
        A: ("10.244.1.5", "10.244.1.7")}


def test_endpoints_spread_over_slices_are_merged_and_deduplicated() -> None:
    svc = service("db", cluster_ip="None")
    a = endpoint_slice("db", [endpoint("10.244.1.5"), endpoint("10.244.1.6")], name="db-a")
    b = endpoint_slice("db", [endpoint("10.244.1.6"), endpoint("fd00::6")], name="db-b")
    v6 = endpoint_slice("db", [endpoint("fd00::6")], name="db-c", address_type="IPv6")
    recs = service_records(svc, [a, b, v6], ZONE)
    assert recs.names[f"db.default.svc.{ZONE}"] == {A: ("10.244.1.5", "10.244.1.6"), AAAA: ("fd00::6",)}
    assert recs.names[f"fd00--6.db.default.svc.{ZONE}"] == {AAAA: ("fd00::6",)}


def test_a_headless_service_without_endpoints_exists_without_records() -> None:
    recs = service_records(service("db", cluster_ip="None"), [], ZONE)
    assert recs.names[f"db.default.svc.{ZONE}"] == {}


def test_an_externalname_service_is_a_cname() -> None:
    svc = service("ext", cluster_ip="", type="ExternalName", externalName="WWW.Example.com.")
    recs = service_records(svc, [], ZONE)
    assert recs.names == {f"ext.default.svc.{ZONE}": {CNAME: ("www.example.com",)}}
    assert recs.ptrs == ()


def test_a_service_without_a_clusterip_yet_has_no_records() -> None:
    assert service_records(service("new", cluster_ip=""), [], ZONE).names == {}


def test_pod_records_need_an_ip_and_a_running_pod_off_the_host_network() -> None:
    assert pod_record(pod("a", "10.244.1.5")) == ("default", ("10.244.1.5",))
    assert pod_record(pod("a", "")) is None
    assert pod_record(pod("a", "10.244.1.5", phase="Succeeded")) is None


def test_the_zone_answers_names_by_their_shape() -> None:
    web = service("web")
    zone = zone_with((web, []), pods=(pod("client", "10.244.1.9", "team"),))
    assert zone.lookup(WEB) == {A: ("10.96.0.20",)}
    assert zone.lookup(f"svc.{ZONE}") == EMPTY
    assert zone.lookup(f"default.svc.{ZONE}") == EMPTY, "a namespace with services exists"
    assert zone.lookup(f"other.svc.{ZONE}") is None
    assert zone.lookup(f"nope.default.svc.{ZONE}") is None
    assert zone.lookup(f"_tcp.{WEB}") == EMPTY
    assert zone.lookup(f"dns-version.{ZONE}") == {TXT: ("1.1.0",)}
    assert zone.lookup(f"10-244-1-9.team.pod.{ZONE}") == {A: ("10.244.1.9",)}
    assert zone.lookup(f"10-244-1-9.default.pod.{ZONE}") is None, "verified: the pod's own namespace only"
    assert zone.lookup(f"10-244-1-8.team.pod.{ZONE}") is None
    assert zone.lookup(f"pod.{ZONE}") == EMPTY
    assert zone.lookup(f"nothing.{ZONE}") is None
    assert zone.ptr("10.96.0.20") == (WEB,)
    assert zone.namespace_of("10.244.1.9") == "team"


def test_pod_modes_insecure_and_disabled() -> None:
    insecure = Zone(ZoneConfig(domain=ZONE, pods="insecure"))
    assert insecure.lookup(f"10-1-2-3.any.pod.{ZONE}") == {A: ("10.1.2.3",)}
    assert insecure.lookup(f"fd00--1.any.pod.{ZONE}") == {AAAA: ("fd00::1",)}
    assert insecure.lookup(f"not-an-ip.any.pod.{ZONE}") is None
    disabled = zone_with(pods=(pod("client", "10.244.1.9"),), config=ZoneConfig(domain=ZONE, pods="disabled"))
    assert disabled.lookup(f"10-244-1-9.default.pod.{ZONE}") is None


def test_changes_replace_and_forget_a_services_records() -> None:
    zone = Zone(ZoneConfig(domain=ZONE), serial=7)
    svc = service("db", cluster_ip="None")
    one = service_records(svc, [endpoint_slice("db", [endpoint("10.244.1.5")])], ZONE)
    assert zone.set_service("default", "db", one)
    assert not zone.set_service("default", "db", one), "the same records again change nothing"
    assert zone.serial == 8
    two = service_records(svc, [endpoint_slice("db", [endpoint("10.244.1.6")])], ZONE)
    assert zone.set_service("default", "db", two)
    assert zone.ptr("10.244.1.5") == ()
    assert zone.ptr("10.244.1.6") == (f"10-244-1-6.db.default.svc.{ZONE}",)
    assert zone.remove_service("default", "db")
    assert zone.lookup(f"db.default.svc.{ZONE}") is None
    assert zone.lookup(f"default.svc.{ZONE}") is None, "the last service of a namespace took it along"
    assert zone.ptr("10.244.1.6") == ()
    assert not zone.remove_service("default", "db")


def test_an_ip_shared_by_two_services_keeps_both_ptrs_until_both_are_gone() -> None:
    a = service("a", cluster_ip="None")
    b = service("b", cluster_ip="None")
    sl = [endpoint_slice("x", [endpoint("10.244.1.5")])]
    zone = zone_with((a, sl), (b, sl))
    assert zone.ptr("10.244.1.5") == (f"10-244-1-5.a.default.svc.{ZONE}", f"10-244-1-5.b.default.svc.{ZONE}")
    zone.remove_service("default", "a")
    assert zone.ptr("10.244.1.5") == (f"10-244-1-5.b.default.svc.{ZONE}",)


def test_pods_come_and_go() -> None:
    zone = zone_with(pods=(pod("a", "10.244.1.5"),))
    assert zone.remove_pod("default/a")
    assert zone.lookup(f"10-244-1-5.default.pod.{ZONE}") is None
    assert zone.lookup(f"default.pod.{ZONE}") is None
    assert zone.namespace_of("10.244.1.5") is None
    assert not zone.remove_pod("default/a")


def test_dashed_and_reverse_names_round_trip() -> None:
    assert dashed("10.244.1.5") == "10-244-1-5" and undashed("10-244-1-5") == "10.244.1.5"
    assert undashed("fd00--5") == "fd00::5" and undashed("a-b") is None
    for ip in ("10.96.0.10", "fd00::1:2"):
        assert ip_of_reverse(reverse_name(ip)) == ip
    assert ip_of_reverse("96.10.in-addr.arpa") is None
    assert ip_of_reverse("300.0.96.10.in-addr.arpa") is None
