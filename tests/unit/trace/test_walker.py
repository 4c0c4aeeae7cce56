"""The static walk through kube-proxy's rule layout: every path a packet may take, the
NAT it gets, where it is stopped, on the rules the renderer writes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netplane.model import ProxyState
from netplane.proxy_iptables.renderer import Renderer, RenderOptions
from netplane.trace.node import NodeView, Route
from netplane.trace.packet import Packet
from netplane.trace.reasons import stop_reason
from netplane.trace.ruleset import parse
from netplane.trace.walker import Path, walk
from tests.unit.trace.fixtures import GOLDEN, NODE, POD, representative, with_jumps

RULES = representative()


def paths(dst: str, dport: int, proto: str = "tcp", src: str = POD, node: Any = NODE) -> list[Path]:
    pkt = Packet(proto, src, 40000, dst, dport)
    return walk(RULES, pkt, node, node.iface_for_source(src))


def chains(path: Path) -> list[str]:
    return [f"{s.table} {s.chain}" for s in path.fired]


def test_a_cluster_ip_with_three_endpoints_takes_one_of_three_paths_a_third_each() -> None:
    found = paths("172.30.0.43", 80)
    assert sorted(p.dnat for p in found) == [("10.180.0.1", 8080), ("10.180.1.1", 8080), ("10.180.2.1", 8080)]
    assert [p.probability for p in found] == pytest.approx([1 / 3] * 3)
    first = next(p for p in found if p.dnat == ("10.180.0.1", 8080))
    assert chains(first)[:4] == ["nat PREROUTING", "nat KUBE-SERVICES", "nat KUBE-SVC-CYJJNRDIWBDS7HGJ",
                                 "nat KUBE-SEP-OBXQLKML6L65UP2R"]
    assert first.fired[2].assumed and "statistic" in first.fired[2].why
    assert first.local is False and first.out_iface == "cbr0" and first.verdict == "accept"
    # No masquerade for a pod: KUBE-POSTROUTING returns at once.
    assert first.fired[-1].chain == "KUBE-POSTROUTING" and first.fired[-1].action == "RETURN"
    last = next(p for p in found if p.dnat == ("10.180.2.1", 8080))
    kinds = [s.kind for s in last.steps if s.chain == "KUBE-SVC-CYJJNRDIWBDS7HGJ"]
    assert kinds == ["passed", "passed", "rule"]
    assert last.out_iface == "eth0" and last.gateway == "192.168.0.3"


def test_a_service_without_endpoints_is_rejected_in_filter_with_its_reason() -> None:
    [path] = paths("172.30.0.41", 80)
    assert path.verdict == "reject" and path.dnat is None
    assert path.stopped_by is not None and (path.stopped_by.table, path.stopped_by.chain) == ("filter",
                                                                                              "KUBE-SERVICES")
    assert path.fired[-1].action == "REJECT with icmp-port-unreachable"
    assert stop_reason(path.stopped_by, "node-1") == "service ns1/svc1:p80 has no ready endpoints"


def test_a_service_whose_endpoints_are_all_elsewhere_under_local_policy_is_dropped() -> None:
    [path] = paths("172.30.0.46", 80)
    assert path.verdict == "drop" and path.stopped_by is not None
    reason = stop_reason(path.stopped_by, "node-1")
    assert "no ready endpoints on node-1 and its traffic policy is Local" in reason


def test_a_node_port_from_another_node_is_marked_dnatted_and_masqueraded() -> None:
    found = paths("192.168.0.1", 30080, src="10.0.1.7")
    assert {p.dnat for p in found} == {("10.180.0.2", 80), ("10.180.1.2", 80)}
    for p in found:
        assert chains(p)[:5] == ["nat PREROUTING", "nat KUBE-SERVICES", "nat KUBE-NODEPORTS",
                                 "nat KUBE-EXT-VH6ORI3GRTVXNCO6", "nat KUBE-MARK-MASQ"]
        assert "filter KUBE-FORWARD" in chains(p)  # accepted by the masquerade mark
        masq = p.fired[-1]
        assert masq.rule is not None and masq.rule.target.name == "MASQUERADE"
        assert p.packet.src == ("10.0.0.1" if p.out_iface == "cbr0" else "192.168.0.1")
        assert p.packet.mark == 0  # KUBE-POSTROUTING clears the mark again


def test_a_node_port_with_local_policy_and_no_local_endpoint_is_dropped_for_outsiders() -> None:
    [outsider] = paths("192.168.0.1", 30082, src="192.168.0.50")
    assert outsider.local and outsider.verdict == "drop"
    assert outsider.stopped_by is not None and outsider.stopped_by.chain == "KUBE-EXTERNAL-SERVICES"
    # A pod is short-circuited to the cluster chain, as if it went out and came back.
    [pod] = paths("192.168.0.1", 30082)
    assert pod.dnat == ("10.180.1.5", 80)


def test_off_cluster_clients_of_a_cluster_ip_are_masqueraded() -> None:
    [path] = paths("172.30.0.42", 80, src="192.168.0.50")
    assert "nat KUBE-MARK-MASQ" in chains(path)
    assert path.packet.src == "10.0.0.1"  # out of cbr0 to the local endpoint 10.180.0.1


def test_a_pod_reaching_itself_through_its_service_is_masqueraded_hairpin() -> None:
    [path] = paths("172.30.0.42", 80, src="10.180.0.1")
    assert path.dnat == ("10.180.0.1", 8080)
    assert "nat KUBE-MARK-MASQ" in chains(path) and path.packet.src == "10.0.0.1"


def test_session_affinity_adds_a_path_per_remembered_client_of_unknown_odds() -> None:
    found = paths("172.30.0.50", 80)
    assert len(found) == 4  # two recent checks, then the statistic choice between two
    recent = [p for p in found if any("recent" in s.why for s in p.fired if s.assumed)]
    assert len(recent) == 2
    # Whether the kernel remembers the client is unknown either way: no odds on any path.
    assert all(p.probability is None for p in found)
    assert {p.dnat for p in recent} == {p.dnat for p in found if p not in recent}


def test_protocols_do_not_mix_and_other_addresses_are_just_routed() -> None:
    [udp] = paths("172.30.0.10", 53, "udp")
    assert udp.dnat == ("10.180.0.9", 53)
    [tcp] = paths("172.30.0.10", 53, "tcp")
    assert tcp.dnat is None and tcp.verdict == "accept" and tcp.out_iface == "eth0"
    [other] = paths("8.8.8.8", 443)
    assert other.dnat is None and chains(other) == ["nat PREROUTING", "filter FORWARD", "filter FORWARD",
                                                    "filter FORWARD", "filter FORWARD", "nat POSTROUTING",
                                                    "nat KUBE-POSTROUTING"]


def test_the_kernel_drops_what_it_may_not_forward_or_cannot_route() -> None:
    [path] = paths("172.30.0.42", 80, node=replace(NODE, forwarding=False))
    assert path.verdict == "drop" and path.steps[-1].kind == "kernel"
    assert "ip_forward" in path.steps[-1].action
    [unroutable] = paths("172.30.0.42", 80, node=replace(NODE, routes=()))
    assert unroutable.verdict == "drop" and "no route" in unroutable.steps[-1].action


def test_without_conntrack_the_nat_table_is_not_run() -> None:
    [path] = paths("172.30.0.42", 80, node=replace(NODE, conntrack=False))
    assert path.dnat is None and not any(s.table == "nat" for s in path.fired)
    assert any(s.kind == "kernel" and "tracks no connections" in s.action for s in path.steps)


def test_a_drop_policy_stops_what_no_rule_accepted() -> None:
    rules = parse("*filter\n:FORWARD DROP [0:0]\n-A FORWARD -s 10.9.0.0/16 -j ACCEPT\nCOMMIT\n")
    [path] = walk(rules, Packet("tcp", POD, 1, "8.8.8.8", 53), NODE, "cbr0")
    assert path.verdict == "drop" and path.steps[-1].kind == "policy"


def test_a_goto_returns_to_the_callers_caller_and_a_redirect_delivers_locally() -> None:
    rules = parse("*nat\n-A PREROUTING -g PORTALS\n-A PREROUTING -j MARK --or-mark 0x1\n"
                  "-A PORTALS -d 10.1.1.1/32 -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 31000\n"
                  "COMMIT\n")
    [redirected] = walk(rules, Packet("tcp", POD, 1, "10.1.1.1", 80), NODE, "cbr0")
    assert redirected.local and (redirected.packet.dst, redirected.packet.dport) == ("10.0.0.1", 31000)
    [passed] = walk(rules, Packet("tcp", POD, 1, "10.1.1.2", 80), NODE, "cbr0")
    assert passed.packet.mark == 0  # the goto's return skipped the rest of PREROUTING


def test_paths_are_pruned_by_undecided_rules_that_could_not_have_fired() -> None:
    taken = "KUBE-SEP-UE4ACESXD6EGP3KS"
    found = walk(RULES, Packet("tcp", POD, 1, "172.30.0.43", 80), NODE, "cbr0",
                 possible=lambda rule: rule.target.name == taken)
    # The last endpoint's rule has no statistic match: the path through it always stays.
    assert sorted(p.dnat for p in found) == [("10.180.1.1", 8080), ("10.180.2.1", 8080)]


def _state(endpoints: int) -> ProxyState:
    svc = {"kind": "Service", "metadata": {"name": "web", "namespace": "default"},
           "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}]}}
    es = {"kind": "EndpointSlice", "metadata": {"name": "web-1", "namespace": "default",
                                                "labels": {"kubernetes.io/service-name": "web"}},
          "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
          "endpoints": [{"addresses": [f"10.180.{i % 3}.{10 + i}"], "conditions": {"ready": True},
                         "nodeName": f"node-{i % 3 + 1}"} for i in range(endpoints)]}
    return ProxyState.build([svc], [es])


@settings(max_examples=25, deadline=None)
@given(endpoints=st.integers(1, 12))
def test_every_rendered_endpoint_is_one_path_and_the_odds_add_up_to_one(endpoints: int) -> None:
    renderer = Renderer(RenderOptions(node_name="node-1", cluster_cidr="10.0.0.0/24"))
    text = renderer.render(_state(endpoints)).text
    found = walk(parse(with_jumps(text)), Packet("tcp", POD, 40000, "10.96.0.20", 80), NODE, "cbr0")
    wanted = sorted((f"10.180.{i % 3}.{10 + i}", 8080) for i in range(endpoints))
    assert sorted(p.dnat for p in found) == wanted
    assert sum(p.probability or 0 for p in found) == pytest.approx(1.0)
    assert all(p.probability == pytest.approx(1 / endpoints) for p in found)


REAL_NODE = NodeView("node-1",
                     {"lo": ("127.0.0.1/8",), "eth0": ("10.255.0.11/24",), "cbr0": ("10.244.1.1/24",)},
                     (Route("0.0.0.0/0", "eth0", "10.255.0.1"), Route("10.244.1.0/24", "cbr0"),
                      Route("10.244.2.0/24", "eth0", "10.255.0.12"), Route("10.255.0.0/24", "eth0")))


def test_the_rules_a_real_node_held_walk_to_its_services() -> None:
    rules = parse((GOLDEN.parents[1] / "trace" / "testdata" / "node-1.nft.save").read_text())
    web = walk(rules, Packet("tcp", "10.244.1.2", 40000, "10.105.52.54", 80), REAL_NODE, "cbr0")
    assert {p.dnat for p in web} == {("10.244.1.3", 8080), ("10.244.2.2", 8080)}
    [empty] = walk(rules, Packet("udp", "10.244.1.2", 40000, "10.96.141.4", 53), REAL_NODE, "cbr0")
    assert empty.verdict == "reject" and empty.stopped_by is not None
    assert stop_reason(empty.stopped_by, "node-1") == "service default/empty:dns has no ready endpoints"
    from_node_2 = walk(rules, Packet("tcp", "10.244.2.5", 40000, "10.255.0.11", 30308), REAL_NODE, "eth0")
    assert {p.dnat for p in from_node_2} == {("10.244.1.3", 8080), ("10.244.2.2", 8080)}
    assert all(p.packet.src in ("10.244.1.1", "10.255.0.11") for p in from_node_2)  # masqueraded
