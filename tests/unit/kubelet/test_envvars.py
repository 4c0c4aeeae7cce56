"""A container's environment: Docker-links service variables exactly as the kubelet writes
them, the container's own env with valueFrom, and $(VAR) expansion."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control.kubelet.envvars import (
    EnvError,
    EnvSources,
    PodRuntimeInfo,
    container_env,
    env_name,
    expand,
    referenced_sources,
    service_env,
    services_for,
)
from netplane.model import Container, Pod, Service, decode

INFO = PodRuntimeInfo(["10.244.1.5"], ["10.255.0.11"])


def _pod(**spec: Any) -> Pod:
    return decode(Pod, {"metadata": {"name": "web-0", "namespace": "shop", "uid": "u-1",
                                     "labels": {"app": "web"}, "annotations": {"team": "a"}},
                        "spec": {"nodeName": "node-1", **spec}})


def _svc(name: str, ns: str, ip: str, *ports: tuple[str, int, str], **spec: Any) -> Service:
    return decode(Service, {"metadata": {"name": name, "namespace": ns},
                            "spec": {"clusterIP": ip, **spec,
                                     "ports": [{"name": n, "port": p, "protocol": proto}
                                               for n, p, proto in ports]}})


def _container(*env: dict[str, Any]) -> Container:
    return decode(Container, {"name": "c", "env": list(env)})


def test_service_variables_are_the_docker_links_ones() -> None:
    redis = _svc("redis-primary", "shop", "10.96.0.11", ("", 6379, "TCP"), ("metrics-port", 9121, "UDP"))
    assert list(service_env([redis]).items()) == [
        ("REDIS_PRIMARY_SERVICE_HOST", "10.96.0.11"), ("REDIS_PRIMARY_SERVICE_PORT", "6379"),
        ("REDIS_PRIMARY_SERVICE_PORT_METRICS_PORT", "9121"),
        ("REDIS_PRIMARY_PORT", "tcp://10.96.0.11:6379"),
        ("REDIS_PRIMARY_PORT_6379_TCP", "tcp://10.96.0.11:6379"),
        ("REDIS_PRIMARY_PORT_6379_TCP_PROTO", "tcp"),
        ("REDIS_PRIMARY_PORT_6379_TCP_PORT", "6379"), ("REDIS_PRIMARY_PORT_6379_TCP_ADDR", "10.96.0.11"),
        ("REDIS_PRIMARY_PORT_9121_UDP", "udp://10.96.0.11:9121"),
        ("REDIS_PRIMARY_PORT_9121_UDP_PROTO", "udp"),
        ("REDIS_PRIMARY_PORT_9121_UDP_PORT", "9121"), ("REDIS_PRIMARY_PORT_9121_UDP_ADDR", "10.96.0.11"),
    ]


def test_ipv6_cluster_ips_are_bracketed_in_urls_only() -> None:
    env = service_env([_svc("v6", "shop", "fd00::a", ("", 80, "TCP"))])
    assert env["V6_PORT"] == "tcp://[fd00::a]:80" and env["V6_PORT_80_TCP_ADDR"] == "fd00::a"


def test_names_are_upper_cased_with_underscores() -> None:
    assert env_name("my-svc-2") == "MY_SVC_2"


def test_services_of_the_pods_namespace_and_the_master_service_only() -> None:
    services = [_svc("kubernetes", "default", "10.96.0.1", ("https", 443, "TCP")),
                _svc("other", "default", "10.96.0.7", ("", 80, "TCP")),
                _svc("headless", "shop", "None", ("", 80, "TCP")),
                _svc("external", "shop", "", ("", 80, "TCP"), type="ExternalName", externalName="x.example"),
                _svc("web", "shop", "10.96.0.9", ("", 80, "TCP"))]
    assert [s.metadata.name for s in services_for(_pod(), services)] == ["kubernetes", "web"]
    assert [s.metadata.name for s in services_for(_pod(enableServiceLinks=False), services)] == ["kubernetes"]


def test_a_kubernetes_service_of_the_pods_namespace_wins_over_the_master_one() -> None:
    master = _svc("kubernetes", "default", "10.96.0.1", ("https", 443, "TCP"))
    own = _svc("kubernetes", "shop", "10.96.0.50", ("", 80, "TCP"))
    assert services_for(_pod(), [own, master]) == [own] == services_for(_pod(), [master, own])


def test_field_refs_resolve_from_the_pod_and_its_runtime_addresses() -> None:
    def ref(name: str, path: str) -> dict[str, Any]:
        return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}

    paths = {"N": "metadata.name", "NS": "metadata.namespace", "UID": "metadata.uid", "IP": "status.podIP",
             "IPS": "status.podIPs", "NODE": "spec.nodeName", "HOST": "status.hostIP",
             "APP": "metadata.labels['app']", "TEAM": "metadata.annotations['team']"}
    env = container_env(_pod(), _container(*(ref(k, v) for k, v in paths.items())), [], INFO)
    assert {k: env[k] for k in paths} == {"N": "web-0", "NS": "shop", "UID": "u-1", "IP": "10.244.1.5",
                                          "IPS": "10.244.1.5", "NODE": "node-1", "HOST": "10.255.0.11",
                                          "APP": "web", "TEAM": "a"}


def test_own_variables_expand_earlier_ones_and_service_variables_and_win_over_them() -> None:
    services = [_svc("web", "shop", "10.96.0.9", ("", 80, "TCP"))]
    container = _container({"name": "BASE", "value": "x"},
                           {"name": "URL", "value": "http://$(WEB_SERVICE_HOST)/$(BASE)"},
                           {"name": "LATER", "value": "$(NOT_YET)"}, {"name": "NOT_YET", "value": "y"},
                           {"name": "WEB_SERVICE_PORT", "value": "8080"}, {"name": "EMPTY", "value": ""})
    env = container_env(_pod(), container, services, INFO)
    assert env["URL"] == "http://10.96.0.9/x"
    assert env["LATER"] == "$(NOT_YET)"
    assert env["WEB_SERVICE_PORT"] == "8080" and env["EMPTY"] == ""


@pytest.mark.parametrize(("text", "expanded"), [
    ("$(A)", "a"), ("$$(A)", "$(A)"), ("$(B)", "$(B)"), ("$(A", "$(A"), ("$A", "$A"), ("a$", "a$"),
    ("$(A)$(A)-$$", "aa-$"), ("", ""),
])
def test_expansion_follows_kubernetes(text: str, expanded: str) -> None:
    assert expand(text, {"A": "a"}.get) == expanded


@given(st.text("ab$()", max_size=30).filter(lambda t: "$$" not in t))
def test_unknown_references_and_stray_operators_stay_as_written(text: str) -> None:
    assert expand(text, lambda _n: None) == text


def test_config_map_and_secret_keys() -> None:
    container = _container({"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
                           {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
                           {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k",
                                                                             "optional": True}}})
    assert referenced_sources(container) == ({"cfg", "gone"}, {"s"})
    sources = EnvSources({"cfg": {"mode": "fast"}}, {"s": {"pw": base64.b64encode(b"hunter2").decode()}})
    env = container_env(_pod(), container, [], INFO, sources)
    assert (env["MODE"], env["PW"]) == ("fast", "hunter2") and "OPT" not in env


def test_a_missing_required_key_is_a_config_error() -> None:
    container = _container({"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}})
    with pytest.raises(EnvError, match='configmap "cfg" not found'):
        container_env(_pod(), container, [], INFO)
    with pytest.raises(EnvError, match="couldn't find key mode in ConfigMap shop/cfg"):
        container_env(_pod(), container, [], INFO, EnvSources({"cfg": {}}))
