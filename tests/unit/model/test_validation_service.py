"""Service validation follows Kubernetes' ValidateService and ValidateServiceUpdate."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from netplane.model import validate, validate_update
from tests.unit.model.builders import messages, valid_service

PORT_RANGE = "must be between 1 and 65535, inclusive"


def test_a_well_formed_service_is_valid() -> None:
    assert validate(valid_service()) == []


@pytest.mark.parametrize("spec", [
    {"clusterIP": "10.0.0.1"},
    {"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1", "fd00::1"],
     "ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "RequireDualStack"},
    {"clusterIP": "None", "ports": []},
    {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30000}]},
    {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 31000},
    {"sessionAffinity": "ClientIP"},
    {"externalIPs": ["192.0.2.10", "2001:db8::1"]},
    {"internalTrafficPolicy": "Local"},
    {"ports": [{"port": 53, "protocol": "UDP", "name": "a"},
               {"port": 53, "protocol": "TCP", "name": "b"}]},
])
def test_these_services_are_valid(spec: dict[str, Any]) -> None:
    assert messages(valid_service(**spec)) == []


def test_an_external_name_service_needs_no_ports() -> None:
    obj = valid_service(type="ExternalName", externalName="db.example.com.", ports=[])
    obj["spec"].pop("selector")
    assert messages(obj) == []


CASES: list[tuple[dict[str, Any], str]] = [
    ({"ports": []}, "spec.ports: Required value"),
    ({"ports": [{"port": 0}]}, f"spec.ports[0].port: Invalid value: 0: {PORT_RANGE}"),
    ({"ports": [{"port": 70000}]}, f"spec.ports[0].port: Invalid value: 70000: {PORT_RANGE}"),
    ({"ports": [{"port": 80, "protocol": "FOO"}]},
     'spec.ports[0].protocol: Unsupported value: "FOO": supported values: "SCTP", "TCP", "UDP"'),
    ({"ports": [{"port": 80, "name": "a"}, {"port": 81}]}, "spec.ports[1].name: Required value"),
    ({"ports": [{"port": 80, "name": "a"}, {"port": 81, "name": "a"}]},
     'spec.ports[1].name: Duplicate value: "a"'),
    ({"ports": [{"port": 80, "name": "Http"}]}, 'spec.ports[0].name: Invalid value: "Http"'),
    ({"ports": [{"port": 80, "name": "a"}, {"port": 80, "name": "b"}]},
     'spec.ports[1]: Duplicate value: {"port":80,"protocol":"TCP"}'),
    ({"ports": [{"port": 80, "targetPort": 99999}]},
     f"spec.ports[0].targetPort: Invalid value: 99999: {PORT_RANGE}"),
    ({"ports": [{"port": 80, "targetPort": "8080"}]},
     'spec.ports[0].targetPort: Invalid value: "8080": must contain at least one letter (a-z)'),
    ({"ports": [{"port": 80, "targetPort": "a--b"}]},
     "spec.ports[0].targetPort: Invalid value: \"a--b\": must not contain consecutive hyphens"),
    ({"ports": [{"port": 80, "targetPort": "-ab"}]},
     'spec.ports[0].targetPort: Invalid value: "-ab": must not begin or end with a hyphen'),
    ({"ports": [{"port": 80, "targetPort": "averyveryverylongname"}]},
     "must be no more than 15 characters"),
    ({"ports": [{"port": 80, "nodePort": 30000}]},
     "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"),
    ({"type": "NodePort", "ports": [{"port": 80, "nodePort": 70000}]},
     "spec.ports[0].nodePort: Invalid value: 70000: must be between 0 and 65535, inclusive"),
    ({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30000, "name": "a"},
                                    {"port": 81, "nodePort": 30000, "name": "b"}]},
     "spec.ports[1].nodePort: Duplicate value: 30000"),
    ({"type": "Weird"}, 'spec.type: Unsupported value: "Weird": supported values: '
     '"ClusterIP", "ExternalName", "LoadBalancer", "NodePort"'),
    ({"clusterIP": "10.0.0.300"}, 'spec.clusterIPs[0]: Invalid value: "10.0.0.300": must be a '
     "valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"),
    ({"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.2"]},
     'spec.clusterIPs: Invalid value: ["10.0.0.2"]: first value must match `clusterIP`'),
    ({"clusterIPs": ["10.0.0.2"]}, "must be empty when `clusterIP` is not specified"),
    ({"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1", "10.0.0.2"]},
     "may specify no more than one IP for each IP family"),
    ({"clusterIP": "None", "clusterIPs": ["None", "10.0.0.2"]},
     "'None' must be the first and only value"),
    ({"clusterIP": "fd00::1", "ipFamilies": ["IPv4"]},
     "expected an IPv4 value as indicated by `ipFamilies[0]`"),
    ({"ipFamilies": ["IPv5"]}, 'spec.ipFamilies[0]: Unsupported value: "IPv5"'),
    ({"ipFamilies": ["IPv4", "IPv4"]}, 'spec.ipFamilies[1]: Duplicate value: "IPv4"'),
    ({"ipFamilyPolicy": "Sometimes"}, 'spec.ipFamilyPolicy: Unsupported value: "Sometimes"'),
    ({"type": "NodePort", "clusterIP": "None"},
     "may not be set to 'None' for NodePort services"),
    ({"type": "LoadBalancer", "ports": [{"port": 10250}]},
     "may not expose port 10250 externally since it is used by kubelet"),
    ({"type": "ExternalName", "externalName": ""}, "spec.externalName: Required value"),
    ({"type": "ExternalName", "externalName": "Bad_Name"},
     'spec.externalName: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain'),
    ({"type": "ExternalName", "externalName": "a.b", "clusterIP": "10.0.0.1"},
     "spec.clusterIPs: Forbidden: may not be set for ExternalName services"),
    ({"sessionAffinity": "Sticky"}, 'spec.sessionAffinity: Unsupported value: "Sticky"'),
    ({"sessionAffinity": "ClientIP",
      "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}}},
     "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 0: must be greater "
     "than 0 and less than 86400"),
    ({"sessionAffinity": "ClientIP",
      "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86401}}},
     "less than 86400"),
    ({"externalTrafficPolicy": "Local"}, "spec.externalTrafficPolicy: Invalid value: \"Local\": "
     "may only be set for externally-accessible services"),
    ({"type": "NodePort", "externalTrafficPolicy": "Global"},
     'spec.externalTrafficPolicy: Unsupported value: "Global"'),
    ({"type": "NodePort", "healthCheckNodePort": 31000},
     "spec.healthCheckNodePort: Invalid value: 31000: may only be set when `type` is "
     "'LoadBalancer' and `externalTrafficPolicy` is 'Local'"),
    ({"internalTrafficPolicy": "Nearby"},
     'spec.internalTrafficPolicy: Unsupported value: "Nearby"'),
    ({"externalIPs": ["not-an-ip"]}, 'spec.externalIPs[0]: Invalid value: "not-an-ip"'),
    ({"externalIPs": ["127.0.0.1"]}, "may not be in the loopback range"),
    ({"externalIPs": ["0.0.0.0"]}, "may not be unspecified (0.0.0.0)"),
    ({"selector": {"app": "-bad"}}, 'spec.selector: Invalid value: "-bad"'),
]


@pytest.mark.parametrize(("spec", "expected"), CASES)
def test_an_invalid_service_reports_the_kubernetes_error(
    spec: dict[str, Any], expected: str
) -> None:
    found = messages(valid_service(**spec))
    assert any(expected in m for m in found), found


def test_affinity_config_is_forbidden_when_affinity_is_none() -> None:
    obj = valid_service()
    obj["spec"]["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": 1}}
    assert messages(obj) == ["spec.sessionAffinityConfig: Forbidden: must not be set when "
                             "session affinity is None"]


def test_missing_defaults_are_required() -> None:
    obj = valid_service()
    for key in ("type", "sessionAffinity", "internalTrafficPolicy"):
        del obj["spec"][key]
    obj["spec"]["ports"][0]["protocol"] = ""
    found = messages(obj)
    assert "spec.sessionAffinity: Required value" in found
    assert "spec.type: Required value" in found
    assert "spec.ports[0].protocol: Required value" in found


@pytest.mark.parametrize(("name", "ok"), [
    ("web", True), ("a-1", True), ("1web", False), ("Web", False), ("web.svc", False),
    ("a" * 63, True), ("a" * 64, False),
])
def test_service_names_must_be_dns_1035_labels(name: str, ok: bool) -> None:
    obj = valid_service()
    obj["metadata"]["name"] = name
    assert (messages(obj) == []) is ok


def test_a_service_without_namespace_is_rejected() -> None:
    obj = valid_service()
    del obj["metadata"]["namespace"]
    assert messages(obj) == ["metadata.namespace: Required value"]


def _with_ip(ip: str, **spec: Any) -> dict[str, Any]:
    obj = valid_service(clusterIP=ip, **spec)
    obj["spec"]["clusterIPs"] = [ip]
    return obj


def test_the_cluster_ip_may_not_change_once_set() -> None:
    old = _with_ip("10.0.0.1")
    new = _with_ip("10.0.0.2")
    assert [str(e) for e in validate_update(new, old)] == [
        'spec.clusterIPs[0]: Invalid value: ["10.0.0.2"]: may not change once set']


def test_the_cluster_ip_may_be_dropped_when_switching_to_external_name() -> None:
    old = _with_ip("10.0.0.1")
    new = valid_service(type="ExternalName", externalName="example.com")
    new["spec"].pop("selector")
    assert validate_update(new, old) == []


def test_the_primary_cluster_ip_can_not_be_unset() -> None:
    old = _with_ip("10.0.0.1")
    new = valid_service()
    assert any("primary clusterIP can not be unset" in str(e)
               for e in validate_update(new, old))


def test_adding_a_secondary_cluster_ip_is_allowed() -> None:
    old = _with_ip("10.0.0.1")
    new = copy.deepcopy(old)
    new["spec"]["clusterIPs"] = ["10.0.0.1", "fd00::1"]
    assert validate_update(new, old) == []


def test_releasing_the_secondary_ip_needs_single_stack() -> None:
    old = _with_ip("10.0.0.1")
    old["spec"]["clusterIPs"] = ["10.0.0.1", "fd00::1"]
    new = _with_ip("10.0.0.1")
    assert any("must be set to 'SingleStack'" in str(e) for e in validate_update(new, old))
    new["spec"]["ipFamilyPolicy"] = "SingleStack"
    assert validate_update(new, old) == []


def test_the_service_name_is_immutable() -> None:
    old = valid_service()
    new = copy.deepcopy(old)
    new["metadata"]["name"] = "other"
    assert 'metadata.name: Invalid value: "other": field is immutable' in [
        str(e) for e in validate_update(new, old)]
