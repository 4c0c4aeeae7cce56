"""The iptables renderer: kube-proxy's chain names, rule layout and comments, checked
against a golden file that was compared line by line with kube-proxy's proxier; and what
partial renders leave out."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netplane.ctl.manifests import load
from netplane.model import ProxyState
from netplane.model.servicemap import ServicePortName
from netplane.proxy_iptables import chains
from netplane.proxy_iptables.renderer import Renderer, RenderOptions
from tests.golden import assert_golden
from tests.unit.proxy_iptables.fake_restore import FakeTables

DATA = Path(__file__).parent / "testdata"
OPTIONS = RenderOptions(node_name="node-1", cluster_cidr="10.0.0.0/24")


def _state(objects: list[dict[str, Any]]) -> ProxyState:
    return ProxyState.build([o for o in objects if o["kind"] == "Service"],
                            [o for o in objects if o["kind"] == "EndpointSlice"])


def _representative() -> list[dict[str, Any]]:
    return [m.obj for m in load([DATA / "representative.yaml"])]


def test_chain_names_are_kube_proxys_hashes() -> None:
    # Values from kube-proxy's own tests (pkg/proxy/iptables).
    assert chains.port_chain(chains.SVC, "ns1/svc1:p80", "tcp") == "KUBE-SVC-XPGD46QRK7WJZT7O"
    assert chains.endpoint_chain("ns1/svc1:p80", "tcp", "10.180.0.1:80") == "KUBE-SEP-SXIVWICOYRO3J4NJ"


def test_representative_services_render_as_the_golden_file() -> None:
    rendered = Renderer(OPTIONS).render(_state(_representative()))
    assert_golden(rendered.text, DATA / "representative.rules")


def test_headless_and_external_name_services_get_no_rules() -> None:
    text = Renderer(OPTIONS).render(_state(_representative())).text
    assert "ns4/" not in text


def _web(endpoints: int, ns: str = "default", name: str = "web",
         kind: str = "ClusterIP") -> list[dict[str, Any]]:
    port: dict[str, Any] = {"name": "http", "port": 80}
    if kind == "NodePort":
        port["nodePort"] = 30000 + sum(map(ord, name))
    ip = f"10.96.{sum(map(ord, name)) % 250}.{len(name)}"
    svc = {"kind": "Service", "metadata": {"name": name, "namespace": ns},
           "spec": {"type": kind, "clusterIP": ip, "ports": [port]}}
    es = {"kind": "EndpointSlice", "metadata": {"name": f"{name}-1", "namespace": ns,
                                                 "labels": {"kubernetes.io/service-name": name}},
          "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
          "endpoints": [{"addresses": [f"10.244.0.{i + 1}"], "conditions": {"ready": True}}
                        for i in range(endpoints)]}
    return [svc, es]


WEB = ServicePortName("default", "web", "http", "TCP")


def _committed(r: Renderer, objects: list[dict[str, Any]], kernel: FakeTables | None = None) -> None:
    rendered = r.render(_state(objects))
    if kernel is not None:
        kernel.restore(rendered.text)
    r.commit()


def test_an_endpoint_change_rewrites_only_that_services_chains() -> None:
    r, kernel = Renderer(OPTIONS), FakeTables()
    _committed(r, _web(2) + _web(3, name="api"), kernel)
    partial = r.render(_state(_web(3) + _web(3, name="api")), changed={WEB})
    assert not partial.full and partial.written_services == 1
    assert "*filter" not in partial.text and ":KUBE-SERVICES" not in partial.text, "top-level untouched"
    api_chain = chains.port_chain(chains.SVC, "default/api:http", "tcp")
    assert api_chain not in partial.text
    kernel.restore(partial.text)
    r.commit()


def test_a_new_service_is_appended_and_a_removed_one_deleted_rule_by_rule() -> None:
    r, kernel = Renderer(OPTIONS), FakeTables()
    _committed(r, _web(2), kernel)
    api = ServicePortName("default", "api", "http", "TCP")
    added = r.render(_state(_web(2) + _web(1, name="api")), changed={api})
    assert '-A KUBE-SERVICES -m comment --comment "default/api:http cluster IP"' in added.text
    kernel.restore(added.text)
    r.commit()
    removed = r.render(_state(_web(2)), changed={api})
    assert '-D KUBE-SERVICES -m comment --comment "default/api:http cluster IP"' in removed.text
    assert removed.stale_chains and "-X" not in removed.text, "out-of-use chains are only flushed now"
    kernel.restore(removed.text)
    r.commit()
    assert r.doomed == set(removed.stale_chains)
    kernel.restore(r.deletions())
    r.deleted()
    assert not any(ch in kernel.tables["nat"] for ch in removed.stale_chains)


def test_losing_every_endpoint_swaps_the_jump_for_a_reject() -> None:
    r, kernel = Renderer(OPTIONS), FakeTables()
    _committed(r, _web(2), kernel)
    empty = r.render(_state(_web(0)), changed={WEB})
    assert "*filter" in empty.text and "has no endpoints" in empty.text and "-D KUBE-SERVICES" in empty.text
    kernel.restore(empty.text)


def _covered(kernel: FakeTables, ip: str) -> bool:
    """Whether a SYN to `ip` is either DNATed or rejected (not routed nowhere)."""
    dnat = any(f"-d {ip} " in rule and "-j KUBE-SVC-" in rule
               for rule in kernel.tables["nat"]["KUBE-SERVICES"])
    reject = any(f"-d {ip} " in rule and "-j REJECT" in rule
                 for rule in kernel.tables["filter"].get("KUBE-SERVICES", []))
    return dnat or reject


@pytest.mark.parametrize(("before", "after"), [(0, 1), (1, 0), (2, 0), (0, 3)])
def test_between_the_tables_commits_a_service_is_always_dnated_or_rejected(before: int, after: int) -> None:
    r, kernel = Renderer(OPTIONS), FakeTables()
    _committed(r, _web(before), kernel)
    ip = _web(0)[0]["spec"]["clusterIP"]
    assert _covered(kernel, ip)
    text = r.render(_state(_web(after)), changed={WEB}).text
    sections = [part + "COMMIT\n" for part in text.split("COMMIT\n") if part.strip()]
    assert len(sections) > 1, "the change touches both tables"
    for section in sections:
        kernel.restore(section)
        assert _covered(kernel, ip), f"after committing {section.splitlines()[0]}"


def test_chains_of_removed_services_and_endpoints_are_flushed_and_deleted_in_a_full_sync() -> None:
    r = Renderer(OPTIONS)
    before = r.render(_state(_web(3) + _web(1, name="api")))
    after = r.render(_state(_web(2)), known_chains=before.active_chains)
    gone = set(before.active_chains) - set(after.active_chains)
    assert gone and set(after.stale_chains) == gone
    for chain in gone:
        assert f":{chain} - [0:0]" in after.text and f"-X {chain}\n" in after.text
    assert after.text.index("-X ") < after.text.index("kubernetes service nodeports")


def test_a_full_sync_in_batches_leaves_what_one_transaction_leaves() -> None:
    objects = [o for i in range(7) for o in _web(i % 4, name=f"svc{i}")]
    one, batched = FakeTables(), FakeTables()
    one.restore(Renderer(OPTIONS).render(_state(objects)).text)
    rendered = Renderer(OPTIONS).render(_state(objects), batch_services=3)
    assert len(rendered.chain_batches) == 3
    for text in rendered.transactions:
        batched.restore(text)
    assert batched.snapshot() == one.snapshot()


# -- property: partial syncs leave the kernel as a full render would -----------------------

steps = st.lists(st.tuples(st.sampled_from(["web", "api", "db"]), st.integers(-1, 4),
                           st.sampled_from(["ClusterIP", "NodePort"]), st.booleans()),
                 min_size=1, max_size=12)


@settings(max_examples=150, deadline=None)
@given(steps)
def test_partial_syncs_leave_the_kernel_as_a_full_sync_would(
        evolution: list[tuple[str, int, str, bool]]) -> None:
    r, kernel = Renderer(OPTIONS), FakeTables()
    current: dict[str, tuple[int, str]] = {}
    state = _state([])
    kernel.restore(r.render(state).text)
    r.commit()
    for name, endpoints, kind, delete_now in evolution:
        if endpoints < 0:
            current.pop(name, None)
        else:
            current[name] = (endpoints, kind)
        objects = [o for n, (e, k) in sorted(current.items()) for o in _web(e, name=n, kind=k)]
        new = _state(objects)
        changed = {n for n in set(state.services) | set(new.services)
                   if state.services.get(n) != new.services.get(n)
                   or state.endpoints_for(n) != new.endpoints_for(n)}
        kernel.restore(r.render(new, changed=changed).text)
        r.commit()
        if delete_now:  # the periodic deletion of chains out of use, at any point
            kernel.restore(r.deletions() or "*nat\nCOMMIT\n")
            r.deleted()
        state = new
    kernel.restore(r.deletions() or "*nat\nCOMMIT\n")
    r.deleted()
    fresh = FakeTables()
    fresh.restore(Renderer(OPTIONS).render(state).text)
    assert kernel.snapshot() == fresh.snapshot()


@pytest.mark.parametrize(("endpoints", "probabilities"), [
    (1, []), (2, ["0.5000000000"]), (4, ["0.2500000000", "0.3333333333", "0.5000000000"])])
def test_each_endpoint_is_chosen_with_kube_proxys_probabilities(endpoints: int,
                                                                probabilities: list[str]) -> None:
    text = Renderer(OPTIONS).render(_state(_web(endpoints))).text
    found = [line.split("--probability ")[1].split()[0]
             for line in text.splitlines() if "--probability" in line]
    assert found == probabilities


def test_large_clusters_drop_per_endpoint_comments_as_kube_proxy_does() -> None:
    objects = [o for i in range(11) for o in _web(100, name=f"svc{i}")]
    text = Renderer(OPTIONS).render(_state(objects)).text
    assert not [line for line in text.splitlines() if line.startswith("-A KUBE-SEP-") and "comment" in line]
    small = Renderer(OPTIONS).render(_state(_web(3))).text
    assert [line for line in small.splitlines() if line.startswith("-A KUBE-SEP-") and "--comment" in line]


def test_without_a_cluster_cidr_no_masquerade_rule_guards_the_cluster_ip() -> None:
    text = Renderer(RenderOptions(node_name="node-1")).render(_state(_web(1))).text
    assert "! -s" not in text
    text = Renderer(RenderOptions(node_name="node-1", masquerade_all=True)).render(_state(_web(1))).text
    assert re.search(r'cluster IP" -m tcp -p tcp -d \S+ --dport 80 -j KUBE-MARK-MASQ', text)


def test_a_streamed_full_render_leaves_what_the_kube_proxy_layout_leaves() -> None:
    kinds = ("ClusterIP", "NodePort")
    objects = [o for i in range(9) for o in _web(i % 4, name=f"svc{i}", kind=kinds[i % 2])]
    one, streamed = FakeTables(), FakeTables()
    one.restore(Renderer(OPTIONS).render(_state(objects)).text)
    r = Renderer(OPTIONS)
    streamed.restore("".join(r.stream_full(_state(objects), chunk_services=2)))
    r.commit()
    assert streamed.snapshot() == one.snapshot()
    assert not r.needs_full, "a streamed render is committed like any other"
