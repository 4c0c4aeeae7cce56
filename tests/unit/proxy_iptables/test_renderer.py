"""The iptables renderer: kube-proxy's chain names, rule layout and comments, checked
against a golden file that was compared line by line with kube-proxy's proxier; and what
partial renders leave out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from netplane.ctl.manifests import load
from netplane.model import ProxyState
from netplane.model.servicemap import ServicePortName
from netplane.proxy_iptables import chains
from netplane.proxy_iptables.renderer import Renderer, RenderOptions
from tests.golden import assert_golden

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


def _web(endpoints: int, ns: str = "default", name: str = "web") -> list[dict[str, Any]]:
    svc = {"kind": "Service", "metadata": {"name": name, "namespace": ns},
           "spec": {"clusterIP": f"10.96.{len(name)}.{endpoints}", "ports": [{"name": "http", "port": 80}]}}
    es = {"kind": "EndpointSlice", "metadata": {"name": f"{name}-1", "namespace": ns,
                                                 "labels": {"kubernetes.io/service-name": name}},
          "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
          "endpoints": [{"addresses": [f"10.244.0.{i + 1}"], "conditions": {"ready": True}}
                        for i in range(endpoints)]}
    return [svc, es]


def test_a_partial_render_rewrites_top_level_chains_and_only_the_changed_services_chains() -> None:
    r = Renderer(OPTIONS)
    full = r.render(_state(_web(2) + _web(3, name="api")))
    assert full.written_services == 2
    web = ServicePortName("default", "web", "http", "TCP")
    partial = r.render(_state(_web(3) + _web(3, name="api")), changed={web})
    assert partial.written_services == 1
    api_chain = chains.port_chain(chains.SVC, "default/api:http", "tcp")
    web_chain = chains.port_chain(chains.SVC, "default/web:http", "tcp")
    assert f":{web_chain} - [0:0]" in partial.text and f":{api_chain} - [0:0]" not in partial.text
    assert f"-j {api_chain}" in partial.text, "KUBE-SERVICES is rewritten whole, unchanged services included"
    assert api_chain in partial.active_chains


def test_chains_of_removed_services_and_endpoints_are_flushed_and_deleted() -> None:
    r = Renderer(OPTIONS)
    before = r.render(_state(_web(3) + _web(1, name="api")))
    after = r.render(_state(_web(2)), known_chains=before.active_chains)
    gone = set(before.active_chains) - set(after.active_chains)
    assert gone and set(after.stale_chains) == gone
    for chain in gone:
        assert f":{chain} - [0:0]" in after.text and f"-X {chain}\n" in after.text
    assert after.text.index("-X ") < after.text.index("kubernetes service nodeports")


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
    assert 'cluster IP" -m tcp -p tcp -d 10.96.3.1 --dport 80 -j KUBE-MARK-MASQ' in text
