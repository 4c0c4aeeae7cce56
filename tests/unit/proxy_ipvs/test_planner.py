"""The planner: kube-proxy's IPVS choices per service port, and a plan kept up to date
service port by service port equals one built from scratch."""

from __future__ import annotations

from types import MappingProxyType

from hypothesis import given, settings
from hypothesis import strategies as st

from netplane.model import ProxyState
from netplane.model.servicemap import Endpoint, ServicePort, ServicePortName
from netplane.proxy_ipvs import names as n
from netplane.proxy_ipvs.planner import Plan, PlanOptions, SetEntry, plan_service
from netplane.proxy_ipvs.table import RealKey

OPTS = PlanOptions("node-1", ("192.168.1.10",))
NAME = ServicePortName("ns", "web", "http")
NODE_PORT_LOCAL = ServicePort(("10.96.0.5",), 80, node_port=30080, external_policy_local=True,
                              service_type="NodePort")
LOCAL, REMOTE = Endpoint("10.0.1.5", 8080, node_name="node-1"), Endpoint("10.0.2.5", 8080, node_name="node-2")


def test_external_traffic_policy_local_serves_node_ports_from_local_endpoints_only() -> None:
    plan = plan_service(NAME, NODE_PORT_LOCAL, (LOCAL, REMOTE), OPTS)
    reals = {vs.key.address: rs for vs, rs in plan.virtual}
    assert reals["10.96.0.5"] == (RealKey("10.0.1.5", 8080), RealKey("10.0.2.5", 8080))
    assert reals["192.168.1.10"] == (RealKey("10.0.1.5", 8080),)
    assert (n.NODE_PORT_LOCAL_TCP, SetEntry(port=30080)) in plan.entries


def test_with_no_local_endpoint_local_policy_falls_back_to_the_cluster_as_kube_proxy_does() -> None:
    plan = plan_service(NAME, NODE_PORT_LOCAL, (REMOTE,), OPTS)
    assert all(rs == (RealKey("10.0.2.5", 8080),) for _, rs in plan.virtual)


def test_only_local_endpoints_get_a_hairpin_entry_and_an_external_ip_on_the_node_is_not_bound() -> None:
    svc = ServicePort(("10.96.0.5",), 80, external_ips=("192.168.1.10", "203.0.113.9"))
    plan = plan_service(NAME, svc, (LOCAL, REMOTE), OPTS)
    assert [e for s, e in plan.entries if s == n.LOOP_BACK] == [SetEntry("10.0.1.5", "tcp", 8080, "10.0.1.5")]
    assert plan.vips == ("10.96.0.5", "203.0.113.9")
    assert len(plan.virtual) == 3


def test_an_ipv6_service_is_left_to_the_other_family() -> None:
    assert plan_service(NAME, ServicePort(("fd00::5",), 80), (), OPTS).virtual == ()


def _state(spec: dict[int, tuple[int, tuple[int, ...]]]) -> ProxyState:
    """service index -> (port, endpoint host numbers); services 0-3 share a cluster IP in
    pairs (two ports of one Service), and endpoints repeat across services."""
    services, endpoints = {}, {}
    for i, (port, hosts) in spec.items():
        name = ServicePortName("ns", f"s{i // 2}", f"p{i}")
        node_port = 30000 + i if i % 3 == 0 else 0
        services[name] = ServicePort((f"10.96.0.{i // 2 + 1}",), port, node_port=node_port)
        endpoints[name] = tuple(Endpoint(f"10.0.0.{h}", 8080, node_name="node-1" if h % 2 else "node-2")
                                for h in sorted(set(hosts)))
    return ProxyState(MappingProxyType(services), MappingProxyType(endpoints))


SPECS = st.dictionaries(st.integers(0, 7), st.tuples(st.sampled_from([80, 443]),
                                                      st.lists(st.integers(1, 6), max_size=4).map(tuple)),
                        max_size=8)


@settings(max_examples=150, deadline=None)
@given(st.lists(SPECS, min_size=1, max_size=5))
def test_a_plan_updated_change_by_change_equals_one_built_from_scratch(specs: list) -> None:
    current = ProxyState()
    plan = Plan.build(current, OPTS)
    for spec in specs:
        new = _state(spec)
        changed = set(current.services) | set(new.services)
        change = plan.update(new, changed)
        fresh = Plan.build(new, OPTS)
        assert plan.virtual == fresh.virtual
        assert plan.vips == fresh.vips
        assert plan.ipsets() == fresh.ipsets()
        assert plan.nonempty_sets() == fresh.nonempty_sets()
        before = Plan.build(current, OPTS)
        assert change.vips_added == fresh.vips - before.vips
        assert change.vips_removed == before.vips - fresh.vips
        old_entries, new_entries = set(before.entry_refs), set(fresh.entry_refs)
        assert change.entries_added == new_entries - old_entries
        assert change.entries_removed == old_entries - new_entries
        current = new
