"""The real DNS server over real UDP and TCP sockets, fed by a real apiserver: answers follow
the API, large answers truncate over UDP and come whole over TCP, names outside the zone go
to a real upstream resolver once and then come from the cache, autopath, kube-dns's
ConfigMap, /health, /ready and /metrics."""

from __future__ import annotations

import pytest
from dnslib import EDNS0, DNSRecord

from tests.integration.dns.conftest import Api, Dnsmasq, DnsProcess, addresses, eventually, query

ZONE = "cluster.local"


def _ns(api: Api, name: str) -> None:
    api.core.create_namespace({"metadata": {"name": name}})


def test_answers_follow_the_api(api: Api, dns: DnsProcess) -> None:
    api.service("follow", clusterIP="None")
    name = f"follow.default.svc.{ZONE}"
    eventually(lambda: query(dns.port, name).header.rcode == 0, "the headless service to exist")
    assert addresses(query(dns.port, name)) == []
    api.endpoint_slice("follow", ["10.244.1.5", "10.244.1.6"])
    eventually(lambda: addresses(query(dns.port, name)) == ["10.244.1.5", "10.244.1.6"], "the endpoints")
    api.discovery.patch_namespaced_endpoint_slice("follow-1", "default", {"endpoints": [
        {"addresses": ["10.244.1.7"], "conditions": {"ready": True}}]})
    eventually(lambda: addresses(query(dns.port, name)) == ["10.244.1.7"], "the new endpoint")
    assert addresses(query(dns.port, name, tcp=True)) == ["10.244.1.7"]
    api.core.delete_namespaced_service("follow", "default")
    eventually(lambda: query(dns.port, name).header.rcode == 3, "NXDOMAIN after the delete")


def test_every_record_kind_over_udp_and_tcp(api: Api, dns: DnsProcess) -> None:
    svc = api.service("kinds", ports=[{"name": "http", "port": 80, "protocol": "TCP"}])
    ip = svc.spec.cluster_ip
    api.service("kinds-ext", type="ExternalName", externalName="www.example.test", ports=[])
    base = f"kinds.default.svc.{ZONE}"
    ext_name = f"kinds-ext.default.svc.{ZONE}"
    eventually(lambda: addresses(query(dns.port, base)) == [ip], "the ClusterIP")
    for tcp in (False, True):
        srv = query(dns.port, f"_http._tcp.{base}", "SRV", tcp=tcp)
        assert [str(rr.rdata) for rr in srv.rr] == [f"0 100 80 {base}."]
        ptr = query(dns.port, ".".join(reversed(ip.split("."))) + ".in-addr.arpa", "PTR", tcp=tcp)
        assert [str(rr.rdata) for rr in ptr.rr] == [f"{base}."]
        ext = eventually(lambda t=tcp: query(dns.port, ext_name, tcp=t).rr, "the CNAME")
        assert [(rr.rtype, str(rr.rdata)) for rr in ext] == [(5, "www.example.test."), (1, "192.0.2.10")]
        txt = query(dns.port, f"dns-version.{ZONE}", "TXT", tcp=tcp)
        assert [str(rr.rdata) for rr in txt.rr] == ['"1.1.0"']
        nx = query(dns.port, f"missing.default.svc.{ZONE}", tcp=tcp)
        assert nx.header.rcode == 3 and nx.auth[0].rtype == 6


def test_a_large_answer_truncates_over_udp_and_comes_whole_over_tcp(api: Api, dns: DnsProcess) -> None:
    api.service("many", clusterIP="None")
    ips = [f"10.244.{i // 200}.{i % 200 + 1}" for i in range(120)]
    api.endpoint_slice("many", ips)
    name = f"many.default.svc.{ZONE}"
    whole = eventually(lambda: len(query(dns.port, name, tcp=True).rr) == 120 and
                       query(dns.port, name, tcp=True), "all 120 endpoints")
    assert whole.header.tc == 0
    for edns in (None, EDNS0(udp_len=1232)):
        for _ in range(2):  # the second time from the stored answer
            udp = query(dns.port, name, edns=edns)
            assert udp.header.tc == 1 and 0 < len(udp.rr) < 120
            assert len(udp.pack()) <= (512 if edns is None else 1232)


def test_names_outside_the_zone_go_upstream_once_then_come_from_the_cache(dns: DnsProcess,
                                                                          upstream: Dnsmasq) -> None:
    before = upstream.queries_for("api.example.test")
    hits = dns.metric("coredns_cache_hits_total", type="success")
    for _ in range(3):
        reply = query(dns.port, "API.Example.TEST")
        assert addresses(reply) == ["192.0.2.11"] and str(reply.rr[0].rname) == "API.Example.TEST."
    assert eventually(lambda: upstream.queries_for("api.example.test") - before, "the upstream's log") == 1
    assert dns.metric("coredns_cache_hits_total", type="success") - hits == 2
    refused = query(dns.port, "unknown.example.org")
    assert refused.header.rcode == 5, "the upstream's own answer (REFUSED) is passed on"


def test_autopath_answers_a_pods_search_path_lookup_in_one_round_trip(api: Api, dns: DnsProcess,
                                                                      upstream: Dnsmasq) -> None:
    _ns(api, "team")
    api.core.create_namespaced_pod("team", {"metadata": {"name": "looker"},
                                            "spec": {"containers": [{"name": "c", "image": "x"}]}})
    # This test's queries come from 127.0.0.1: make that the pod's IP.
    api.core.patch_namespaced_pod_status("looker", "team", {"status": {
        "phase": "Running", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}]}})
    qname = f"www.example.test.team.svc.{ZONE}"
    reply = eventually(lambda: query(dns.port, qname).rr, "the pod to be known")
    assert [(rr.rtype, str(rr.rdata)) for rr in reply] == [(5, "www.example.test."), (1, "192.0.2.10")]
    assert str(reply[0].rname) == qname + "."
    assert dns.metric("netplane_dns_autopath_total", result="hit") >= 1
    pod_name = f"127-0-0-1.team.pod.{ZONE}"
    assert addresses(query(dns.port, pod_name)) == ["127.0.0.1"]
    api.core.delete_namespaced_pod("looker", "team", grace_period_seconds=0)
    eventually(lambda: query(dns.port, qname).header.rcode == 3, "plain NXDOMAIN once the pod is gone")


def test_kube_dns_configmap_changes_the_upstreams_while_running(
        api: Api, dns: DnsProcess, tmp_path_factory: pytest.TempPathFactory) -> None:
    other = Dnsmasq(tmp_path_factory.mktemp("other"), {"www.example.test": "198.51.100.7"})
    other.start()
    try:
        api.core.create_namespaced_config_map("kube-system", {
            "metadata": {"name": "kube-dns"},
            "data": {"upstreamNameservers": f'["127.0.0.1:{other.port}"]'}})
        eventually(lambda: addresses(query(dns.port, "www.example.test")) == ["198.51.100.7"],
                   "answers from the ConfigMap's upstream")
        api.core.delete_namespaced_config_map("kube-dns", "kube-system")
        eventually(lambda: addresses(query(dns.port, "www.example.test")) == ["192.0.2.10"],
                   "the flag's upstream again")
    finally:
        other.stop()


def test_health_ready_and_metrics(dns: DnsProcess) -> None:
    assert dns.http("/health") == (200, "OK")
    assert dns.http("/ready") == (200, "OK")
    query(dns.port, f"dns-version.{ZONE}", "TXT")
    text = dns.http("/metrics")[1]
    for name in ("coredns_dns_requests_total", "coredns_dns_responses_total",
                 "coredns_dns_request_duration_seconds_bucket", "coredns_cache_hits_total",
                 "netplane_dns_upstream_errors_total", "netplane_dns_zone_services"):
        assert name in text, name
    assert dns.metric("coredns_dns_requests_total", proto="udp", type="TXT") >= 1


def test_an_unreachable_upstream_is_servfail_and_counted(apiserver: object, dns: DnsProcess,
                                                         tmp_path_factory: pytest.TempPathFactory) -> None:
    from control.apiserver.process import free_port

    lonely = DnsProcess(dns.kubeconfig, tmp_path_factory.mktemp("lonely"), [free_port()],
                        ["--upstream-timeout", "0.5s"])
    lonely.start()
    try:
        reply = query(lonely.port, "www.example.test")
        assert reply.header.rcode == 2
        assert lonely.metric("netplane_dns_upstream_errors_total") >= 1
    finally:
        assert lonely.stop() == 0


def test_the_server_stays_up_answering_while_a_client_sends_a_response(dns: DnsProcess) -> None:
    from tests.integration.dns.conftest import exchange

    reply = DNSRecord.question("x.example").reply()
    with pytest.raises(TimeoutError):
        exchange(dns.port, bytes(reply.pack()), timeout=0.3)
    assert query(dns.port, f"dns-version.{ZONE}", "TXT").rr
