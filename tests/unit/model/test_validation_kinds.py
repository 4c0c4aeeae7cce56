"""Validation of EndpointSlice, Endpoints, ReplicaSet, Deployment, Ingress, IngressClass,
Secret, ConfigMap, Namespace, Node, Lease and Event, as Kubernetes validates them."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from netplane.model import apply_defaults, validate, validate_update


def _errs(obj: dict[str, Any]) -> list[str]:
    apply_defaults(obj)
    return [str(e) for e in validate(obj)]


def _has(obj: dict[str, Any], expected: str) -> None:
    found = _errs(obj)
    assert any(expected in m for m in found), found


# ---- EndpointSlice -------------------------------------------------------------------


def _slice(**fields: Any) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "web-x", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.1.0.5"], "conditions": {"ready": True},
                           "nodeName": "node-1", "hostname": "web-0"}],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}], **fields}


def test_a_well_formed_endpoint_slice_is_valid() -> None:
    assert _errs(_slice()) == []
    assert _errs(_slice(addressType="FQDN", endpoints=[{"addresses": ["db.example.com"]}])) == []
    assert _errs(_slice(ports=[{"port": None}])) == []


@pytest.mark.parametrize(("fields", "expected"), [
    ({"addressType": "IPX"}, 'addressType: Unsupported value: "IPX": supported values: '
     '"FQDN", "IPv4", "IPv6"'),
    ({"endpoints": [{"addresses": []}]},
     "endpoints[0].addresses: Required value: must contain at least 1 address"),
    ({"endpoints": [{"addresses": ["10.0.0.1"] * 101}]},
     "endpoints[0].addresses: Too many: 101: must have at most 100 items"),
    ({"endpoints": [{"addresses": ["10.0.0.1"]}] * 1001},
     "endpoints: Too many: 1001: must have at most 1000 items"),
    ({"endpoints": [{"addresses": ["fd00::1"]}]},
     'endpoints[0].addresses[0]: Invalid value: "fd00::1": must be a valid IPv4 address'),
    ({"addressType": "IPv6", "endpoints": [{"addresses": ["10.0.0.1"]}]},
     "must be a valid IPv6 address"),
    ({"addressType": "FQDN", "endpoints": [{"addresses": ["db"]}]},
     "should be a domain with at least two segments separated by dots"),
    ({"endpoints": [{"addresses": ["169.254.1.1"]}]}, "may not be in the link-local range"),
    ({"endpoints": [{"addresses": ["10.0.0.1"], "hostname": "Web"}]},
     'endpoints[0].hostname: Invalid value: "Web"'),
    ({"endpoints": [{"addresses": ["10.0.0.1"], "nodeName": "Node_1"}]},
     'endpoints[0].nodeName: Invalid value: "Node_1"'),
    ({"ports": [{"name": "Http", "port": 1}]}, 'ports[0].name: Invalid value: "Http"'),
    ({"ports": [{"name": "a", "port": 1}, {"name": "a", "port": 2}]},
     'ports[1].name: Duplicate value: "a"'),
    ({"ports": [{"port": 1, "protocol": "ICMP"}]}, 'ports[0].protocol: Unsupported value: "ICMP"'),
    ({"ports": [{"port": 70000}]}, "ports[0].port: Invalid value: 70000"),
])
def test_an_invalid_endpoint_slice_reports_the_kubernetes_error(
    fields: dict[str, Any], expected: str
) -> None:
    _has(_slice(**fields), expected)


def test_the_address_type_of_a_slice_is_immutable() -> None:
    old = _slice()
    new = _slice(addressType="IPv6", endpoints=[])
    assert 'addressType: Invalid value: "IPv6": field is immutable' in [
        str(e) for e in validate_update(new, old)]


def test_legacy_endpoints_need_valid_ips_and_named_ports() -> None:
    obj = {"apiVersion": "v1", "kind": "Endpoints",
           "metadata": {"name": "web", "namespace": "default"},
           "subsets": [{"addresses": [{"ip": "10.1.0.5"}],
                        "ports": [{"name": "a", "port": 80}, {"port": 81}]}]}
    assert _errs(obj) == ["subsets[0].ports[1].name: Required value"]
    obj["subsets"][0]["addresses"][0]["ip"] = "nope"
    _has(obj, 'subsets[0].addresses[0].ip: Invalid value: "nope"')


# ---- ReplicaSet / Deployment ---------------------------------------------------------


def _deployment(kind: str = "Deployment", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": kind,
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "i"}]}},
                     **spec}}


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet"])
def test_well_formed_workloads_are_valid(kind: str) -> None:
    assert _errs(_deployment(kind)) == []


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet"])
@pytest.mark.parametrize(("spec", "expected"), [
    ({"selector": None}, "spec.selector: Required value"),
    ({"selector": {}}, "spec.selector: Invalid value: {}: empty selector is invalid for "
     "deployment"),
    ({"selector": {"matchLabels": {"app": "other"}}},
     'spec.template.metadata.labels: Invalid value: {"app":"web"}: `selector` does not match '
     "template `labels`"),
    ({"selector": {"matchExpressions": [{"key": "app", "operator": "In"}]}},
     "spec.selector.matchExpressions[0].values: Required value: must be specified when "
     "`operator` is 'In' or 'NotIn'"),
    ({"selector": {"matchExpressions": [{"key": "app", "operator": "Exists",
                                         "values": ["x"]}]}},
     "spec.selector.matchExpressions[0].values: Forbidden"),
    ({"selector": {"matchExpressions": [{"key": "app", "operator": "Near"}]}},
     'spec.selector.matchExpressions[0].operator: Invalid value: "Near": not a valid selector '
     "operator"),
    ({"replicas": -1}, "spec.replicas: Invalid value: -1: must be greater than or equal to 0"),
    ({"template": {"metadata": {"labels": {"app": "web"}},
                   "spec": {"containers": [{"name": "c", "image": "i"}],
                            "restartPolicy": "Never"}}},
     'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: '
     '"Always"'),
    ({"template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}}},
     "spec.template.spec.containers: Required value"),
])
def test_invalid_workloads_report_the_kubernetes_error(
    kind: str, spec: dict[str, Any], expected: str
) -> None:
    _has(_deployment(kind, **spec), expected)


@pytest.mark.parametrize(("strategy", "expected"), [
    ({"type": "Blue"}, 'spec.strategy.type: Unsupported value: "Blue": supported values: '
     '"Recreate", "RollingUpdate"'),
    ({"type": "Recreate", "rollingUpdate": {}},
     "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is "
     "'Recreate'"),
    ({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}},
     'spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "0%": may not be 0 when '
     "`maxSurge` is 0"),
    ({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "x", "maxUnavailable": 1}},
     'spec.strategy.rollingUpdate.maxSurge: Invalid value: "x": a valid percent string'),
    ({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "150%"}},
     "must not be greater than 100%"),
    ({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": -1, "maxUnavailable": 1}},
     "spec.strategy.rollingUpdate.maxSurge: Invalid value: -1"),
])
def test_deployment_strategies_are_checked(strategy: dict[str, Any], expected: str) -> None:
    _has(_deployment(strategy=strategy), expected)


def test_progress_deadline_must_exceed_min_ready_seconds() -> None:
    _has(_deployment(progressDeadlineSeconds=10, minReadySeconds=10),
         "spec.progressDeadlineSeconds: Invalid value: 10: must be greater than minReadySeconds")


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet"])
def test_a_workload_selector_is_immutable(kind: str) -> None:
    old = _deployment(kind)
    apply_defaults(old)
    new = copy.deepcopy(old)
    new["spec"]["selector"] = {"matchLabels": {"app": "web", "v": "2"}}
    new["spec"]["template"]["metadata"]["labels"]["v"] = "2"
    assert [e.field for e in validate_update(new, old)] == ["spec.selector"]


# ---- Ingress / IngressClass ----------------------------------------------------------


def _ingress(**spec: Any) -> dict[str, Any]:
    backend = {"service": {"name": "web", "port": {"number": 80}}}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"rules": [{"host": "web.example.com", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": backend}]}}], **spec}}


def _path(**fields: Any) -> dict[str, Any]:
    return _ingress(rules=[{"http": {"paths": [fields]}}])


_SVC = {"service": {"name": "web", "port": {"number": 80}}}


def test_a_well_formed_ingress_is_valid() -> None:
    assert _errs(_ingress()) == []
    assert _errs(_ingress(rules=[{"host": "*.example.com", "http": {"paths": [
        {"pathType": "ImplementationSpecific", "backend": _SVC}]}}],
        tls=[{"hosts": ["*.example.com"], "secretName": "tls"}],
        ingressClassName="netplane")) == []
    assert _errs(_ingress(rules=[], defaultBackend={
        "service": {"name": "web", "port": {"name": "http"}}})) == []


@pytest.mark.parametrize(("obj", "expected"), [
    (_ingress(rules=[]), "spec: Invalid value: []: either `defaultBackend` or `rules` must be "
     "specified"),
    (_ingress(rules=[{"host": "10.0.0.1"}]),
     'spec.rules[0].host: Invalid value: "10.0.0.1": must be a DNS name, not an IP address'),
    (_ingress(rules=[{"host": "Web.example.com"}]), 'spec.rules[0].host: Invalid value: '
     '"Web.example.com": a lowercase RFC 1123 subdomain'),
    (_ingress(rules=[{"host": "a.*.com"}]), "a wildcard DNS-1123 subdomain must start with"),
    (_ingress(rules=[{"http": {"paths": []}}]), "spec.rules[0].http.paths: Required value"),
    (_path(path="/", backend=_SVC),
     "spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified"),
    (_path(path="/", pathType="Glob", backend=_SVC),
     'pathType: Unsupported value: "Glob": supported values: "Exact", '
     '"ImplementationSpecific", "Prefix"'),
    (_path(path="api", pathType="Prefix", backend=_SVC),
     'spec.rules[0].http.paths[0].path: Invalid value: "api": must be an absolute path'),
    (_path(path="/a//b", pathType="Exact", backend=_SVC), "must not contain '//'"),
    (_path(path="/a/..", pathType="Exact", backend=_SVC), "cannot end with '/..'"),
    (_path(path="/", pathType="Prefix", backend={}),
     'spec.rules[0].http.paths[0].backend: Invalid value: "": resource or service backend is '
     "required"),
    (_path(path="/", pathType="Prefix", backend={"service": {"name": "web", "port": {}}}),
     "backend: Required value: port name or number is required"),
    (_path(path="/", pathType="Prefix",
           backend={"service": {"name": "web", "port": {"name": "a", "number": 1}}}),
     "cannot set both port name & port number"),
    (_path(path="/", pathType="Prefix",
           backend={"service": {"name": "web", "port": {"number": 70000}}}),
     "backend.service.port.number: Invalid value: 70000"),
    (_path(path="/", pathType="Prefix",
           backend={"service": {"name": "1web", "port": {"number": 80}}}),
     'backend.service.name: Invalid value: "1web"'),
    (_path(path="/", pathType="Prefix", backend={**_SVC, "resource": {"kind": "K", "name": "n"}}),
     "cannot set both resource and service backends"),
    (_ingress(tls=[{"hosts": ["Bad"], "secretName": "Bad"}]),
     'spec.tls[0].hosts[0]: Invalid value: "Bad"'),
    (_ingress(ingressClassName="Bad"), 'spec.ingressClassName: Invalid value: "Bad"'),
])
def test_an_invalid_ingress_reports_the_kubernetes_error(
    obj: dict[str, Any], expected: str
) -> None:
    _has(obj, expected)


def test_an_ingress_class_needs_a_domain_prefixed_controller() -> None:
    obj = {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
           "metadata": {"name": "netplane"}, "spec": {"controller": "netplane.dev/ingress"}}
    assert _errs(obj) == []
    obj["spec"]["controller"] = ""
    assert _errs(obj) == ["spec.controller: Required value"]
    obj["spec"]["controller"] = "ingress"
    _has(obj, "must be a domain-prefixed path (such as \"acme.io/foo\")")
    old = copy.deepcopy(obj)
    old["spec"]["controller"] = "a.io/b"
    assert "spec.controller" in [e.field for e in validate_update(obj, old)]


# ---- Secret / ConfigMap --------------------------------------------------------------


def _secret(**fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "namespace": "default"}, **fields}


def test_secrets_need_valid_keys_base64_values_and_tls_pairs() -> None:
    assert _errs(_secret(data={"a.b": "aGk="})) == []
    _has(_secret(data={"a b": "aGk="}), 'data[a b]: Invalid value: "a b": a valid config key')
    _has(_secret(data={"..": "aGk="}), "must not be '..'")
    _has(_secret(data={"k": "not base64!"}), "data[k]: Invalid value")
    assert _errs(_secret(type="kubernetes.io/tls", data={"tls.crt": "aGk="})) == [
        "data[tls.key]: Required value"]
    assert _errs(_secret(type="kubernetes.io/tls",
                         stringData={"tls.crt": "x", "tls.key": "y"})) == []


def test_an_immutable_secret_may_not_change_its_data() -> None:
    old = _secret(data={"a": "aGk="}, immutable=True)
    apply_defaults(old)
    new = copy.deepcopy(old)
    new["data"]["a"] = "aG8="
    assert [str(e) for e in validate_update(new, old)] == [
        "data: Forbidden: field is immutable when `immutable` is set"]
    new = copy.deepcopy(old)
    new["immutable"] = False
    assert "immutable" in [e.field for e in validate_update(new, old)]
    new = copy.deepcopy(old)
    new["metadata"]["labels"] = {"a": "b"}
    assert validate_update(new, old) == []


def test_config_maps_check_keys_and_immutability() -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "c", "namespace": "default"},
           "data": {"a": "1"}, "binaryData": {"a": "aGk="}}
    _has(obj, 'binaryData[a]: Invalid value: "a": duplicate of key present in data')
    obj = {"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "c", "namespace": "default"}, "data": {"a": "1"},
           "immutable": True}
    new = copy.deepcopy(obj)
    new["data"] = {"a": "2"}
    assert [e.field for e in validate_update(new, obj)] == ["data"]


# ---- Namespace / Node / Lease / Event ------------------------------------------------


def test_namespace_names_are_dns_labels_and_not_namespaced() -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}
    assert _errs(ns) == []
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team.a"}}
    _has(ns, 'metadata.name: Invalid value: "team.a": a lowercase RFC 1123 label')
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a", "namespace": "b"}}
    assert _errs(ns) == ["metadata.namespace: Forbidden: not allowed on this type"]


def _node(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}, "spec": spec}


def test_node_pod_cidrs_must_be_valid_and_stable() -> None:
    assert _errs(_node(podCIDR="10.244.1.0/24", podCIDRs=["10.244.1.0/24", "fd00:1::/64"])) == []
    assert _errs(_node(podCIDR="10.244.1.0")) == [
        'spec.podCIDR: Invalid value: "10.244.1.0": must be a valid CIDR']
    _has(_node(podCIDRs=["10.0.0.0/24", "10.1.0.0/24"]),
         "may specify no more than one CIDR for each IP family")
    _has(_node(taints=[{"key": "k", "effect": "Sometimes"}]),
         'spec.taints[0].effect: Unsupported value: "Sometimes"')
    old = _node(podCIDR="10.244.1.0/24")
    assert validate_update(_node(podCIDR="10.244.1.0/24"), _node()) == []
    assert [e.field for e in validate_update(_node(podCIDR="10.244.2.0/24"), old)] == [
        "spec.podCIDRs"]


def test_leases_need_a_positive_duration() -> None:
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "node-1", "namespace": "kube-node-lease"},
             "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40}}
    assert _errs(lease) == []
    lease["spec"]["leaseDurationSeconds"] = 0
    assert _errs(lease) == [
        "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"]


def test_events_live_in_the_namespace_of_their_object() -> None:
    event = {"apiVersion": "v1", "kind": "Event",
             "metadata": {"name": "web.1", "namespace": "default"},
             "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
             "type": "Normal"}
    assert _errs(event) == []
    event["involvedObject"]["namespace"] = "other"
    assert _errs(event) == [
        'involvedObject.namespace: Invalid value: "other": does not match event.namespace']


def test_kinds_without_rules_are_accepted() -> None:
    assert validate({"apiVersion": "example.com/v1", "kind": "Widget"}) == []
