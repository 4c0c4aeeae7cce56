"""Pod and ObjectMeta validation follow Kubernetes' ValidatePod and ValidateObjectMeta."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from netplane.model import validate, validate_update
from tests.unit.model.builders import messages, valid_pod


def test_a_well_formed_pod_is_valid() -> None:
    assert validate(valid_pod()) == []


def _container(**fields: Any) -> dict[str, Any]:
    return {"name": "app", "image": "busybox:1", **fields}


CASES: list[tuple[dict[str, Any], str]] = [
    ({"containers": []}, "spec.containers: Required value"),
    ({"containers": [{"image": "i"}]}, "spec.containers[0].name: Required value"),
    ({"containers": [_container(name="App")]}, 'spec.containers[0].name: Invalid value: "App"'),
    ({"containers": [_container(), _container()]},
     'spec.containers[1].name: Duplicate value: "app"'),
    ({"containers": [_container(image="")]}, "spec.containers[0].image: Required value"),
    ({"containers": [_container(image=" x")]},
     "must not have leading or trailing whitespace"),
    ({"containers": [_container(ports=[{"containerPort": 0, "protocol": "TCP"}])]},
     "spec.containers[0].ports[0].containerPort: Required value"),
    ({"containers": [_container(ports=[{"containerPort": 70000, "protocol": "TCP"}])]},
     "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and "
     "65535, inclusive"),
    ({"containers": [_container(ports=[{"containerPort": 80, "protocol": "ICMP"}])]},
     'spec.containers[0].ports[0].protocol: Unsupported value: "ICMP"'),
    ({"containers": [_container(ports=[{"containerPort": 80, "name": "a", "protocol": "TCP"},
                                       {"containerPort": 81, "name": "a", "protocol": "TCP"}])]},
     'spec.containers[0].ports[1].name: Duplicate value: "a"'),
    ({"containers": [_container(env=[{"name": "1A"}])]},
     'spec.containers[0].env[0].name: Invalid value: "1A": a valid environment variable name'),
    ({"containers": [_container(env=[{"name": "A", "value": "x", "valueFrom": {
        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}])]},
     "may not be specified when `value` is not empty"),
    ({"containers": [_container(env=[{"name": "A", "valueFrom": {
        "fieldRef": {"apiVersion": "v1", "fieldPath": "spec.bogus"}}}])]},
     'spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Unsupported value: "spec.bogus"'),
    ({"containers": [_container(readinessProbe={"periodSeconds": 1})]},
     "spec.containers[0].readinessProbe: Required value: must specify a handler type"),
    ({"containers": [_container(readinessProbe={"exec": {"command": ["a"]},
                                                "tcpSocket": {"port": 80}})]},
     "spec.containers[0].readinessProbe.tcpSocket: Forbidden: may not specify more than 1 "
     "handler type"),
    ({"containers": [_container(livenessProbe={"tcpSocket": {"port": 80},
                                               "successThreshold": 2})]},
     "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"),
    ({"containers": [_container(readinessProbe={"httpGet": {"port": 0, "path": "/",
                                                            "scheme": "HTTP"}})]},
     "spec.containers[0].readinessProbe.httpGet.port: Invalid value: 0"),
    ({"containers": [_container(readinessProbe={"httpGet": {"port": 1, "path": "/",
                                                            "scheme": "FTP"}})]},
     'readinessProbe.httpGet.scheme: Unsupported value: "FTP": supported values: "HTTP", '
     '"HTTPS"'),
    ({"containers": [_container(readinessProbe={"exec": {"command": []}})]},
     "spec.containers[0].readinessProbe.exec.command: Required value"),
    ({"containers": [_container(readinessProbe={"exec": {"command": ["a"]},
                                                "periodSeconds": -1})]},
     "readinessProbe.periodSeconds: Invalid value: -1: must be greater than or equal to 0"),
    ({"restartPolicy": "Sometimes"}, 'spec.restartPolicy: Unsupported value: "Sometimes": '
     'supported values: "Always", "OnFailure", "Never"'),
    ({"dnsPolicy": "Google"}, 'spec.dnsPolicy: Unsupported value: "Google"'),
    ({"dnsPolicy": "None"}, "spec.dnsConfig: Required value"),
    ({"nodeSelector": {"a b": "c"}}, 'spec.nodeSelector: Invalid value: "a b"'),
    ({"activeDeadlineSeconds": 0}, "spec.activeDeadlineSeconds: Invalid value: 0"),
    ({"terminationGracePeriodSeconds": -5},
     "spec.terminationGracePeriodSeconds: Invalid value: -5"),
    ({"tolerations": [{"key": "k", "operator": "Maybe"}]},
     'spec.tolerations[0].operator: Unsupported value: "Maybe"'),
]


@pytest.mark.parametrize(("spec", "expected"), CASES)
def test_an_invalid_pod_reports_the_kubernetes_error(spec: dict[str, Any], expected: str) -> None:
    found = messages(valid_pod(**spec))
    assert any(expected in m for m in found), found


@pytest.mark.parametrize(("meta", "expected"), [
    ({"name": ""}, "metadata.name: Required value: name or generateName is required"),
    ({"name": "Web"}, 'metadata.name: Invalid value: "Web": a lowercase RFC 1123 subdomain'),
    ({"name": "a" * 254}, "must be no more than 253 characters"),
    ({"namespace": "Bad"}, 'metadata.namespace: Invalid value: "Bad"'),
    ({"generateName": "Web-"}, 'metadata.generateName: Invalid value: "Web-"'),
    ({"labels": {"-a": "b"}}, 'metadata.labels: Invalid value: "-a": name part must consist'),
    ({"labels": {"a": "b" * 64}}, "must be no more than 63 characters"),
    ({"labels": {"x/y/z": "b"}}, "a qualified name must consist of"),
    ({"labels": {"Example.com/a": "b"}}, "prefix part a lowercase RFC 1123 subdomain"),
    ({"annotations": {"a": "x" * (256 * 1024)}},
     "metadata.annotations: Too long: may not be more than 262144 bytes"),
    ({"annotations": {"!bad": "x"}}, 'metadata.annotations: Invalid value: "!bad"'),
    ({"generation": -1}, "metadata.generation: Invalid value: -1"),
    ({"finalizers": ["custom"]}, "name is neither a standard finalizer name nor is it fully "
     "qualified"),
    ({"ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "n"}]},
     'metadata.ownerReferences[0].uid: Invalid value: "": uid must not be empty'),
])
def test_object_meta_is_checked_for_every_kind(meta: dict[str, Any], expected: str) -> None:
    obj = valid_pod()
    obj["metadata"].update(meta)
    found = messages(obj)
    assert any(expected in m for m in found), found


def test_a_generate_name_prefix_may_end_with_a_dash() -> None:
    obj = valid_pod()
    obj["metadata"]["generateName"] = "web-"
    assert messages(obj) == []


def test_label_keys_with_a_dns_prefix_and_empty_values_are_valid() -> None:
    obj = valid_pod()
    obj["metadata"]["labels"] = {"app.kubernetes.io/name": "web", "empty": "", "A_b.c": "X"}
    obj["metadata"]["finalizers"] = ["example.com/cleanup", "kubernetes"]
    assert messages(obj) == []


def test_only_mutable_pod_fields_may_change() -> None:
    old = valid_pod(activeDeadlineSeconds=100)
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "busybox:2"
    new["spec"]["activeDeadlineSeconds"] = 50
    new["spec"]["tolerations"] = [{"key": "k", "operator": "Exists"}]
    new["metadata"]["labels"]["extra"] = "yes"
    assert validate_update(new, old) == []


def test_changing_the_command_of_a_pod_is_forbidden() -> None:
    old = valid_pod()
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["command"] = ["sh"]
    errs = validate_update(new, old)
    assert [e.field for e in errs] == ["spec"]
    assert errs[0].message.startswith("Forbidden: pod updates may not change fields other "
                                      "than `spec.containers[*].image`")


def test_active_deadline_may_not_be_raised_or_removed() -> None:
    old = valid_pod(activeDeadlineSeconds=100)
    raised = copy.deepcopy(old)
    raised["spec"]["activeDeadlineSeconds"] = 200
    assert "must be less than or equal to previous value" in [
        e.detail for e in validate_update(raised, old)]
    removed = copy.deepcopy(old)
    del removed["spec"]["activeDeadlineSeconds"]
    assert "must not update from a positive integer to nil value" in [
        e.detail for e in validate_update(removed, old)]


def test_removing_a_toleration_is_forbidden() -> None:
    old = valid_pod(tolerations=[{"key": "k", "operator": "Exists"}])
    new = copy.deepcopy(old)
    new["spec"]["tolerations"] = []
    assert [e.field for e in validate_update(new, old)] == ["spec"]


def test_clearing_an_image_is_required_back() -> None:
    old = valid_pod()
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = ""
    assert "spec.containers[0].image" in [e.field for e in validate_update(new, old)]


def test_the_uid_of_an_object_is_immutable() -> None:
    old = valid_pod()
    old["metadata"]["uid"] = "a"
    new = copy.deepcopy(old)
    new["metadata"]["uid"] = "b"
    assert [str(e) for e in validate_update(new, old)] == [
        'metadata.uid: Invalid value: "b": field is immutable']
