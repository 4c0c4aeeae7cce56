"""The matcher: the match subset kube-proxy (and common node rules) use, three-valued."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netplane.trace.matches import Tri, Where, evaluate
from netplane.trace.node import NodeView
from netplane.trace.packet import Packet
from netplane.trace.ruleset import Rule, parse_spec
from tests.unit.trace.fixtures import NODE

SYN = Packet("tcp", "10.0.0.5", 40000, "10.96.0.20", 80)
AT = Where("PREROUTING", "cbr0", None)


def rule(spec: str) -> Rule:
    import shlex

    words = shlex.split(spec)
    matches, target = parse_spec(words)
    return Rule("nat", "X", 1, spec, matches, target)


def tri(spec: str, pkt: Packet = SYN, where: Where = AT, node: NodeView = NODE) -> Tri:
    return evaluate(rule(spec), pkt, where, node).tri


@pytest.mark.parametrize(("spec", "expected"), [
    ("-d 10.96.0.20/32 -p tcp -m tcp --dport 80 -j ACCEPT", Tri.YES),
    ("-d 10.96.0.20 -p tcp -m tcp --dport 81 -j ACCEPT", Tri.NO),
    ("-d 10.96.0.0/12 -j ACCEPT", Tri.YES),
    ("! -s 10.0.0.0/24 -j ACCEPT", Tri.NO),
    ("! -s 10.1.0.0/16 -j ACCEPT", Tri.YES),
    ("-p udp -m udp --dport 80 -j ACCEPT", Tri.NO),
    ("-m udp -p udp --dport 80 -j ACCEPT", Tri.NO),
    ("-p tcp -m tcp -j DNAT --to-destination 10.0.0.9:80", Tri.YES),
    ("-p tcp --dport 80 -j ACCEPT", Tri.YES),  # a bare -p tcp loads the tcp options itself
    ("-p tcp -m tcp --dport 70:90 -j ACCEPT", Tri.YES),
    ("-p tcp -m tcp --sport 1024: -j ACCEPT", Tri.YES),
    ("-p tcp -m multiport --dports 443,8000:8080 -j ACCEPT", Tri.NO),
    ("-p tcp -m multiport --dports 443,79:81 -j ACCEPT", Tri.YES),
    ("-i cbr0 -j ACCEPT", Tri.YES),
    ("-i veth+ -j ACCEPT", Tri.NO),
    ("-i cb+ -j ACCEPT", Tri.YES),
    ("-o eth0 -j ACCEPT", Tri.NO),  # no output interface in PREROUTING
    ("-m comment --comment \"anything at all\" -j ACCEPT", Tri.YES),
    ("-m conntrack --ctstate NEW -j ACCEPT", Tri.YES),
    ("-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT", Tri.NO),
    ("-m conntrack --ctstate INVALID -j DROP", Tri.NO),
    ("-m state --state NEW -j ACCEPT", Tri.YES),
    ("-m mark --mark 0x4000/0x4000 -j ACCEPT", Tri.NO),
    ("-m mark ! --mark 0x4000/0x4000 -j RETURN", Tri.YES),
    ("-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS", Tri.NO),
    ("-m addrtype --src-type LOCAL -j KUBE-MARK-MASQ", Tri.NO),
    ("-m addrtype ! --dst-type LOCAL -j ACCEPT", Tri.YES),
    ("-p tcp -m tcp --tcp-flags SYN,RST,ACK SYN -j ACCEPT", Tri.YES),
    ("-p tcp -m tcp --syn -j ACCEPT", Tri.YES),
    ("-p tcp -m tcp --tcp-flags RST RST -j DROP", Tri.NO),
    ("-f -j DROP", Tri.NO),
    ("-m statistic --mode random --probability 0.25 -j KUBE-SEP-A", Tri.MAYBE),
    ("-m recent --name KUBE-SEP-A --rcheck --seconds 10800 --reap -j KUBE-SEP-A", Tri.MAYBE),
    ("-m recent --name KUBE-SEP-A --set -p tcp -m tcp -j DNAT --to-destination 10.0.0.9:80", Tri.YES),
    ("-m physdev --physdev-in veth1 -j ACCEPT", Tri.MAYBE),
    ("-m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT", Tri.MAYBE),  # not read: unknown
])
def test_matches(spec: str, expected: Tri) -> None:
    assert tri(spec) is expected


def test_a_maybe_carries_the_statistic_probability_and_says_why() -> None:
    v = evaluate(rule("-m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-A"), SYN, AT, NODE)
    assert v.probability == pytest.approx(1 / 3)
    assert "statistic" in v.why
    recent = evaluate(rule("-m recent --name KUBE-SEP-A --rcheck --seconds 60 --reap -j KUBE-SEP-A"), SYN, AT,
                      NODE)
    assert recent.probability is None and "KUBE-SEP-A" in recent.why


def test_a_no_beside_a_maybe_is_a_no() -> None:
    assert tri("-d 10.9.9.9/32 -m statistic --mode random --probability 0.5 -j X") is Tri.NO


def test_addrtype_local_knows_the_nodes_addresses_and_loopback() -> None:
    to_node = Packet("tcp", "10.0.0.5", 40000, "192.168.0.1", 30080)
    assert tri("-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS", to_node) is Tri.YES
    assert tri("! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j X", to_node) is Tri.YES
    local = Packet("tcp", "127.0.0.1", 40000, "127.0.0.5", 30080)
    assert tri("-m addrtype --dst-type LOCAL -j X", local) is Tri.YES
    broadcast = Packet("udp", "10.0.0.5", 1, "10.0.0.255", 9)
    assert tri("-m addrtype --dst-type BROADCAST -j X", broadcast) is Tri.YES


def test_ipsets_that_were_read_decide_set_matches() -> None:
    node = NodeView("n", NODE.addresses, NODE.routes,
                    ipsets={"KUBE-CLUSTER-IP": frozenset({"10.96.0.20,tcp:80"}),
                            "KUBE-LOOP-BACK": frozenset({"10.0.0.0/24"})})
    assert tri("-m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT", node=node) is Tri.YES
    assert tri("-m set ! --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT", node=node) is Tri.NO
    assert tri("-m set --match-set KUBE-LOOP-BACK src -j ACCEPT", node=node) is Tri.YES
    other = Packet("tcp", "10.0.0.5", 40000, "10.96.0.20", 81)
    assert tri("-m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT", other, node=node) is Tri.NO


def test_without_conntrack_a_packet_is_invalid_to_the_conntrack_match() -> None:
    untracked = NodeView("n", NODE.addresses, NODE.routes, conntrack=False)
    assert tri("-m conntrack --ctstate NEW -j ACCEPT", node=untracked) is Tri.NO
    assert tri("-m conntrack --ctstate INVALID -j DROP", node=untracked) is Tri.YES


@given(port=st.integers(1, 65535), low=st.integers(1, 65535), span=st.integers(0, 1000))
def test_a_port_range_matches_exactly_the_ports_inside_it(port: int, low: int, span: int) -> None:
    high = min(65535, low + span)
    pkt = Packet("tcp", "10.0.0.5", 40000, "10.96.0.20", port)
    inside = tri(f"-p tcp -m tcp --dport {low}:{high} -j ACCEPT", pkt) is Tri.YES
    assert inside == (low <= port <= high)
    negated = tri(f"-p tcp -m tcp ! --dport {low}:{high} -j ACCEPT", pkt) is Tri.YES
    assert negated != inside


@given(mark=st.integers(0, 0xFFFFFFFF), value=st.integers(0, 0xFFFF), mask=st.integers(0, 0xFFFF))
def test_a_mark_match_compares_the_masked_mark(mark: int, value: int, mask: int) -> None:
    pkt = Packet("tcp", "10.0.0.5", 1, "10.96.0.20", 80, mark=mark)
    assert (tri(f"-m mark --mark {value:#x}/{mask:#x} -j X", pkt) is Tri.YES) == (mark & mask == value)
