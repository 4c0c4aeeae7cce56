"""A pod's resolv.conf, hosts file and hostname, as the kubelet writes them."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from control.kubelet.dnsconfig import (
    MAX_SEARCH_CHARS,
    MAX_SEARCH_PATHS,
    HostAlias,
    ResolvConf,
    fit_searches,
    host_aliases,
    hosts_file,
    merge_options,
    pod_dns,
    pod_hostname,
    resolv_conf,
)
from netplane.model import Pod, decode

HOST = ResolvConf(("10.0.0.2", "10.0.0.3"), ("corp.example", "lab.example"), ("edns0", "timeout:2"))
CLUSTER = {"cluster_dns": ["10.96.0.10"], "cluster_domain": "cluster.local"}


def _pod(name: str = "web-0", namespace: str = "shop", **spec: Any) -> Pod:
    return decode(Pod, {"metadata": {"name": name, "namespace": namespace, "uid": "u1"}, "spec": spec})


def test_cluster_first_points_at_the_cluster_dns_and_appends_the_nodes_search_domains() -> None:
    text = resolv_conf(_pod(), **CLUSTER, host=HOST)
    assert text == ("search shop.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\n"
                    "nameserver 10.96.0.10\n"
                    "options ndots:5\n")


def test_cluster_first_is_the_default_policy_and_drops_duplicate_search_domains() -> None:
    host = ResolvConf(("10.0.0.2",), ("cluster.local", "corp.example"), ())
    conf = pod_dns(_pod(namespace=""), **CLUSTER, host=host)
    assert conf.searches == ("default.svc.cluster.local", "svc.cluster.local", "cluster.local",
                             "corp.example")


def test_default_policy_copies_the_nodes_resolver() -> None:
    assert pod_dns(_pod(dnsPolicy="Default"), **CLUSTER, host=HOST) == HOST


def test_cluster_first_on_the_host_network_falls_back_to_default_unless_with_host_net() -> None:
    assert pod_dns(_pod(hostNetwork=True), **CLUSTER, host=HOST) == HOST
    conf = pod_dns(_pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet"), **CLUSTER, host=HOST)
    assert conf.nameservers == ("10.96.0.10",)


def test_cluster_first_without_a_cluster_dns_falls_back_to_default() -> None:
    assert pod_dns(_pod(), cluster_dns=[], cluster_domain="cluster.local", host=HOST) == HOST


def test_without_a_node_resolver_default_means_localhost() -> None:
    assert pod_dns(_pod(dnsPolicy="Default"), **CLUSTER, host=None) == ResolvConf(("127.0.0.1",), (".",), ())


def test_policy_none_uses_only_dns_config() -> None:
    pod = _pod(dnsPolicy="None", dnsConfig={"nameservers": ["1.1.1.1"], "searches": ["a.example"],
                                            "options": [{"name": "ndots", "value": "2"}, {"name": "rotate"}]})
    assert resolv_conf(pod, **CLUSTER, host=HOST) == ("search a.example\nnameserver 1.1.1.1\n"
                                                      "options ndots:2 rotate\n")


def test_dns_config_merges_into_cluster_first_overriding_options_by_name() -> None:
    pod = _pod(dnsConfig={"nameservers": ["10.96.0.10", "1.1.1.1"],
                          "searches": ["corp.example", "x.example"],
                          "options": [{"name": "ndots", "value": "1"}, {"name": "edns0"}]})
    conf = pod_dns(pod, **CLUSTER, host=HOST)
    assert conf.nameservers == ("10.96.0.10", "1.1.1.1")
    assert conf.searches[-2:] == ("lab.example", "x.example")
    assert conf.options == ("ndots:1", "edns0")


def test_at_most_three_nameservers() -> None:
    pod = _pod(dnsConfig={"nameservers": ["1.1.1.1", "8.8.8.8", "9.9.9.9"]})
    assert pod_dns(pod, **CLUSTER, host=HOST).nameservers == ("10.96.0.10", "1.1.1.1", "8.8.8.8")


def test_parse_follows_the_kubelets_rules() -> None:
    text = ("# generated\nnameserver 10.0.0.2\ndomain ignored.example\nsearch old.example\n"
            "search corp.example. lab.example\noptions rotate\noptions edns0 timeout:2\n"
            "nameserver 10.0.0.3\n")
    assert ResolvConf.parse(text) == HOST


def test_merge_options_keeps_order_and_overrides() -> None:
    merged = merge_options(["ndots:5", "edns0"], [("ndots", "2"), ("rotate", None)])
    assert merged == ("ndots:2", "edns0", "rotate")


@given(st.lists(st.text("abc.", min_size=1, max_size=300), max_size=60))
def test_search_paths_always_fit_the_limits(searches: list[str]) -> None:
    fitted = fit_searches(searches)
    assert len(fitted) <= MAX_SEARCH_PATHS
    assert len(" ".join(fitted)) <= MAX_SEARCH_CHARS
    assert all(len(s) <= 253 for s in fitted)
    assert list(fitted) == [s for s in searches if len(s) <= 253][:len(fitted)]


def test_hosts_file_names_the_pod() -> None:
    text = hosts_file(_pod(), ["10.244.1.5"], cluster_domain="cluster.local")
    assert text == ("# Kubernetes-managed hosts file.\n"
                    "127.0.0.1\tlocalhost\n"
                    "::1\tlocalhost ip6-localhost ip6-loopback\n"
                    "fe00::0\tip6-localnet\n"
                    "fe00::0\tip6-mcastprefix\n"
                    "fe00::1\tip6-allnodes\n"
                    "fe00::2\tip6-allrouters\n"
                    "10.244.1.5\tweb-0\n")


def test_hosts_file_with_a_subdomain_gives_the_fqdn_first_and_lists_host_aliases() -> None:
    raw = {"metadata": {"name": "web-0", "namespace": "shop"},
           "spec": {"hostname": "db", "subdomain": "dbs",
                    "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["foo.remote", "bar.remote"]}]}}
    text = hosts_file(decode(Pod, raw), ["10.244.1.5"], cluster_domain="cluster.local",
                      aliases=host_aliases(raw))
    assert text.endswith("10.244.1.5\tdb.dbs.shop.svc.cluster.local\tdb\n"
                         "\n# Entries added by HostAliases.\n10.1.2.3\tfoo.remote\tbar.remote\n")
    assert host_aliases(raw) == [HostAlias(ip="10.1.2.3", hostnames=["foo.remote", "bar.remote"])]


def test_hostname_is_cut_to_63_characters_without_a_trailing_dash() -> None:
    assert pod_hostname(_pod(name="a" * 62 + "-b")) == "a" * 62
    assert pod_hostname(_pod(name="web-0", hostname="custom")) == "custom"
