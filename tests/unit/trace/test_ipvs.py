"""IPVS mode's tracer: the kernel's /proc/net/ip_vs and ip_vs_conn tables read back, and
what they say about one probe (the real server its connection went to, the persistence
template that chose it, a virtual server without real servers)."""

from __future__ import annotations

import shlex
from pathlib import Path

from netplane.proxy_ipvs.procfs import parse_ip_vs, parse_ip_vs_conn
from netplane.trace.ipvs import explain
from netplane.trace.matches import Tri, Where, evaluate
from netplane.trace.node import NodeView, parse_ipset_save
from netplane.trace.packet import Packet
from netplane.trace.ruleset import Rule, parse_spec

# testdata/ip_vs and ip_vs_conn, as the kernel prints them (ip_vs_ctl.c, ip_vs_conn.c):
# 10.96.0.20:80 round robin over 10.244.1.3:8080 and 10.244.2.3:8080; 10.96.0.21:80 with
# ClientIP persistence (10800 s); 10.96.0.22:80 without real servers; 10.96.0.23:90/UDP.
TESTDATA = Path(__file__).parent / "testdata"
IP_VS = (TESTDATA / "ip_vs").read_text()
IP_VS_CONN = (TESTDATA / "ip_vs_conn").read_text()
POD = "10.244.1.2"
AT = Where("PREROUTING", "eth0", None)


def test_the_virtual_servers_and_their_real_servers_are_read_as_the_kernel_prints_them() -> None:
    virtuals = {v.address: v for v in parse_ip_vs(IP_VS)}
    assert list(virtuals) == ["10.96.0.20:80", "10.96.0.21:80", "10.96.0.22:80", "10.96.0.23:90"]
    web = virtuals["10.96.0.20:80"]
    assert (web.proto, web.scheduler, web.persistent) == ("tcp", "rr", None)
    assert [(r.address, r.forward, r.weight, r.active, r.inactive) for r in web.reals] == [
        ("10.244.2.3:8080", "Masq", 1, 0, 1), ("10.244.1.3:8080", "Masq", 1, 1, 0)]
    assert virtuals["10.96.0.21:80"].persistent == 10800
    assert virtuals["10.96.0.22:80"].reals == ()
    assert virtuals["10.96.0.23:90"].proto == "udp"


def test_connections_and_persistence_templates_are_read() -> None:
    conns = parse_ip_vs_conn(IP_VS_CONN)
    assert [(c.client, c.virtual, c.real, c.state, c.expires) for c in conns[:2]] == [
        (f"{POD}:41000", "10.96.0.20:80", "10.244.1.3:8080", "SYN_RECV", 59),
        (f"{POD}:41002", "10.96.0.20:80", "10.244.2.3:8080", "CLOSE", 7)]
    assert [c.template for c in conns] == [False, False, True, False, False]


def _explain(proto: str, sport: int, dst: str, dport: int):  # type: ignore[no-untyped-def]
    return explain(Packet(proto, POD, sport, dst, dport), parse_ip_vs(IP_VS), parse_ip_vs_conn(IP_VS_CONN),
                   "default/web:http", "node-1")


def test_the_real_server_is_the_one_in_the_probes_own_connection_entry() -> None:
    d = _explain("tcp", 41002, "10.96.0.20", 80)
    assert d is not None
    assert (d.verdict, d.endpoint) == ("delivered", "10.244.2.3:8080")
    assert d.reason == "IPVS on node-1 sends it to real server 10.244.2.3:8080 (scheduler rr)"
    assert d.view.lines[0] == "virtual server TCP 10.96.0.20:80, scheduler rr"
    assert "10.244.1.3:8080 (weight 1, 1 active, 0 inactive)" in d.view.lines[1]
    assert d.view.data["connection"]["state"] == "CLOSE"
    udp = _explain("udp", 45056, "10.96.0.23", 90)
    assert udp is not None and (udp.verdict, udp.endpoint) == ("delivered", "10.244.1.3:8081")


def test_a_persistent_service_names_the_template_that_chose_the_real_server() -> None:
    d = _explain("tcp", 41004, "10.96.0.21", 80)
    assert d is not None and d.endpoint == "10.244.1.3:8080"
    assert "persistence template of 10.244.1.2 holds it (10799 s left)" in d.reason
    assert "ClientIP persistence 10800 s" in d.view.lines[0]


def test_no_real_servers_is_a_rejection_named_after_the_service() -> None:
    d = _explain("tcp", 41006, "10.96.0.22", 80)
    assert d is not None and d.verdict == "rejected" and d.endpoint is None
    assert d.reason == ("service default/web:http has no ready endpoints: IPVS virtual server 10.96.0.22:80 "
                        "on node-1 has no real servers")
    assert "ICMP port unreachable" in d.view.lines[-1]


def test_a_probe_ipvs_holds_no_connection_for_is_dropped_and_an_unserved_address_is_not_ipvs() -> None:
    d = _explain("tcp", 50000, "10.96.0.20", 80)
    assert d is not None and d.verdict == "dropped" and "scheduled no connection" in d.reason
    assert _explain("tcp", 41000, "10.96.0.20", 81) is None
    assert _explain("udp", 41000, "10.96.0.20", 80) is None


IPSET_SAVE = """create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536 bucketsize 12
add KUBE-CLUSTER-IP 10.96.0.20,tcp:80
add KUBE-CLUSTER-IP 10.96.0.23,udp:90
create KUBE-NODE-PORT-TCP bitmap:port range 0-65535
add KUBE-NODE-PORT-TCP 30080
create KUBE-LOAD-BALANCER hash:ip,port family inet hashsize 1024 maxelem 65536
"""


def test_ipsets_are_read_from_ipset_save_and_matched_by_ip_port_and_bare_port() -> None:
    sets = parse_ipset_save(IPSET_SAVE)
    assert sets == {"KUBE-CLUSTER-IP": frozenset({"10.96.0.20,tcp:80", "10.96.0.23,udp:90"}),
                    "KUBE-NODE-PORT-TCP": frozenset({"30080"}), "KUBE-LOAD-BALANCER": frozenset()}
    node = NodeView("node-1", ipsets=sets)
    cluster_ip = "-m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT"
    node_port = "-p tcp -m set --match-set KUBE-NODE-PORT-TCP dst -j KUBE-MARK-MASQ"

    def hit(spec: str, dst: str, dport: int, proto: str = "tcp") -> bool:
        words = shlex.split(spec)
        matches, target = parse_spec(words)
        pkt = Packet(proto, POD, 1000, dst, dport)
        return evaluate(Rule("nat", "X", 1, spec, matches, target), pkt, AT, node).tri is Tri.YES

    assert hit(cluster_ip, "10.96.0.20", 80) and not hit(cluster_ip, "10.96.0.20", 81)
    assert not hit(cluster_ip, "10.96.0.20", 80, "udp") and hit(cluster_ip, "10.96.0.23", 90, "udp")
    assert hit(node_port, "10.255.0.12", 30080) and not hit(node_port, "10.255.0.12", 30081)
