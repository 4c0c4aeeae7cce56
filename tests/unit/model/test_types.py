"""Typed views decode Kubernetes JSON, ignoring fields they do not model."""

from __future__ import annotations

import msgspec
import orjson
import pytest

from netplane.model import (
    KINDS,
    Deployment,
    EndpointSlice,
    Ingress,
    Pod,
    Service,
    UnknownKindError,
    decode,
    decode_object,
)

SERVICE = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "web", "namespace": "default", "uid": "u1",
                 "resourceVersion": "42", "labels": {"app": "web"},
                 "creationTimestamp": "2024-01-01T00:00:00Z", "managedFields": [{}]},
    "spec": {"type": "LoadBalancer", "clusterIP": "10.0.0.10",
             "clusterIPs": ["10.0.0.10", "fd00::10"], "ipFamilies": ["IPv4", "IPv6"],
             "ipFamilyPolicy": "PreferDualStack",
             "ports": [{"name": "http", "port": 80, "targetPort": "http", "nodePort": 30080,
                        "protocol": "TCP", "appProtocol": "http"}],
             "externalIPs": ["192.0.2.1"], "sessionAffinity": "ClientIP",
             "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
             "externalTrafficPolicy": "Local", "internalTrafficPolicy": "Cluster",
             "healthCheckNodePort": 32000, "publishNotReadyAddresses": True,
             "selector": {"app": "web"}, "somethingNew": 1},
    "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.1"}]}},
}


def test_a_service_decodes_from_a_dict_and_from_bytes_alike() -> None:
    from_dict = decode(Service, SERVICE)
    from_bytes = decode(Service, orjson.dumps(SERVICE))
    assert from_dict == from_bytes
    spec = from_dict.spec
    assert spec.cluster_ip == "10.0.0.10"
    assert spec.cluster_ips == ["10.0.0.10", "fd00::10"]
    assert spec.ports[0].target_port == "http"
    assert spec.ports[0].node_port == 30080
    assert spec.session_affinity_config is not None
    assert spec.session_affinity_config.client_ip is not None
    assert spec.session_affinity_config.client_ip.timeout_seconds == 60
    assert spec.ip_families == ["IPv4", "IPv6"]
    assert spec.health_check_node_port == 32000
    assert spec.publish_not_ready_addresses is True
    assert from_dict.status.load_balancer.ingress[0].ip == "198.51.100.1"
    assert from_dict.metadata.resource_version == "42"
    assert from_dict.name == "web" and from_dict.namespace == "default"


def test_encoding_a_view_uses_kubernetes_field_names() -> None:
    body = orjson.loads(msgspec.json.encode(decode(Service, SERVICE)))
    assert body["spec"]["clusterIPs"] == ["10.0.0.10", "fd00::10"]
    assert body["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 60}}
    assert "somethingNew" not in body["spec"]


def test_a_pod_exposes_what_the_kubelet_needs() -> None:
    pod = decode(Pod, {
        "metadata": {"name": "p", "namespace": "ns",
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                          "name": "rs", "uid": "1", "controller": True}]},
        "spec": {"nodeName": "n1", "containers": [{
            "name": "c", "image": "busybox", "command": ["sh"], "args": ["-c", "x"],
            "env": [{"name": "A", "value": "1"},
                    {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
            "ports": [{"containerPort": 80, "name": "http"}],
            "readinessProbe": {"httpGet": {"port": "http", "path": "/ready"},
                               "periodSeconds": 2, "initialDelaySeconds": 1},
            "livenessProbe": {"tcpSocket": {"port": 80}, "failureThreshold": 5},
            "startupProbe": {"exec": {"command": ["true"]}},
            "resources": {"requests": {"cpu": "100m"}, "limits": {"memory": 1024}},
        }]},
        "status": {"podIP": "10.1.0.5", "podIPs": [{"ip": "10.1.0.5"}],
                   "conditions": [{"type": "Ready", "status": "True"}]},
    })
    container = pod.spec.containers[0]
    assert container.env[1].value_from is not None
    assert container.env[1].value_from.field_ref is not None
    assert container.env[1].value_from.field_ref.field_path == "status.podIP"
    assert container.ports[0].protocol == "TCP"
    assert container.readiness_probe is not None
    assert container.readiness_probe.http_get is not None
    assert container.readiness_probe.http_get.port == "http"
    assert container.readiness_probe.timeout_seconds == 1
    assert container.liveness_probe is not None and container.liveness_probe.tcp_socket
    assert container.startup_probe is not None and container.startup_probe.exec
    assert container.resources.limits == {"memory": 1024}
    assert pod.status.pod_ip == "10.1.0.5"
    assert pod.is_ready()
    ref = pod.metadata.controller_ref()
    assert ref is not None and ref.name == "rs"


def test_an_endpoint_slice_keeps_conditions_tri_state() -> None:
    es = decode(EndpointSlice, {
        "metadata": {"name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.1.0.5"], "conditions": {"ready": False},
                       "nodeName": "n1", "zone": "z", "hostname": "h",
                       "targetRef": {"kind": "Pod", "name": "p"}}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"}],
    })
    assert es.service_name == "web"
    assert es.endpoints[0].conditions.ready is False
    assert es.endpoints[0].conditions.serving is None
    assert es.endpoints[0].target_ref is not None
    assert es.ports[0].port == 8080


def test_an_ingress_backend_names_a_port_by_number_or_name() -> None:
    ing = decode(Ingress, {
        "metadata": {"name": "i", "annotations": {"a": "b"}},
        "spec": {"ingressClassName": "netplane",
                 "defaultBackend": {"service": {"name": "d", "port": {"name": "http"}}},
                 "tls": [{"hosts": ["a.example.com"], "secretName": "tls"}],
                 "rules": [{"host": "a.example.com", "http": {"paths": [
                     {"path": "/", "pathType": "Prefix",
                      "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]},
    })
    backend = ing.spec.rules[0].http.paths[0].backend  # type: ignore[union-attr]
    assert backend.service is not None and backend.service.port.number == 80
    assert ing.spec.default_backend is not None
    assert ing.spec.default_backend.service is not None
    assert ing.spec.default_backend.service.port.name == "http"
    assert ing.spec.tls[0].secret_name == "tls"


def test_a_deployment_carries_its_strategy_and_template() -> None:
    dep = decode(Deployment, {
        "spec": {"selector": {"matchLabels": {"app": "a"}},
                 "strategy": {"type": "RollingUpdate",
                              "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "10%"}},
                 "template": {"metadata": {"labels": {"app": "a"}},
                              "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
    assert dep.spec.replicas == 1
    assert dep.spec.strategy.rolling_update is not None
    assert dep.spec.strategy.rolling_update.max_surge == 1
    assert dep.spec.selector is not None
    assert dep.spec.selector.match_labels == {"app": "a"}


def test_every_kind_decodes_through_the_kinds_registry() -> None:
    for (api_version, kind), cls in KINDS.items():
        obj = decode_object({"apiVersion": api_version, "kind": kind,
                             "metadata": {"name": "x"}})
        assert isinstance(obj, cls)
        assert obj.kind == kind


def test_an_unknown_kind_is_reported() -> None:
    with pytest.raises(UnknownKindError):
        decode_object(b'{"apiVersion": "v1", "kind": "Nope"}')


def test_a_wrongly_typed_field_fails_to_decode() -> None:
    with pytest.raises(msgspec.ValidationError):
        decode(Service, {"spec": {"ports": [{"port": "eighty"}]}})
