"""apply_defaults fills in what Kubernetes' defaulting fills in, and only that."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from netplane.model import apply_defaults


def _svc(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": spec}


def _pod(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": list(containers), **spec}}


def test_a_bare_service_becomes_cluster_ip_without_affinity() -> None:
    obj = _svc(ports=[{"port": 80}])
    apply_defaults(obj)
    assert obj["spec"] == {"type": "ClusterIP", "sessionAffinity": "None",
                           "internalTrafficPolicy": "Cluster",
                           "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}]}


def test_client_ip_affinity_gets_the_three_hour_timeout() -> None:
    obj = _svc(sessionAffinity="ClientIP")
    apply_defaults(obj)
    assert obj["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}


def test_an_explicit_affinity_timeout_is_kept() -> None:
    obj = _svc(sessionAffinity="ClientIP",
               sessionAffinityConfig={"clientIP": {"timeoutSeconds": 5}})
    apply_defaults(obj)
    assert obj["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"] == 5


def test_affinity_config_is_dropped_when_affinity_is_none() -> None:
    obj = _svc(sessionAffinityConfig={"clientIP": {"timeoutSeconds": 5}})
    apply_defaults(obj)
    assert "sessionAffinityConfig" not in obj["spec"]


@pytest.mark.parametrize(("svc_type", "external_ips", "expected"), [
    ("NodePort", [], "Cluster"),
    ("LoadBalancer", [], "Cluster"),
    ("ClusterIP", ["192.0.2.1"], "Cluster"),
    ("ClusterIP", [], None),
    ("ExternalName", [], None),
])
def test_external_traffic_policy_is_defaulted_only_for_externally_reachable_services(
    svc_type: str, external_ips: list[str], expected: str | None
) -> None:
    obj = _svc(type=svc_type, externalIPs=external_ips)
    apply_defaults(obj)
    assert obj["spec"].get("externalTrafficPolicy") == expected


def test_external_name_services_get_no_internal_traffic_policy() -> None:
    obj = _svc(type="ExternalName", externalName="example.com")
    apply_defaults(obj)
    assert "internalTrafficPolicy" not in obj["spec"]


def test_a_named_target_port_is_kept_and_a_zero_one_replaced() -> None:
    obj = _svc(ports=[{"port": 80, "targetPort": "http"}, {"port": 81, "targetPort": 0}])
    apply_defaults(obj)
    assert [p["targetPort"] for p in obj["spec"]["ports"]] == ["http", 81]


def test_a_service_never_gets_allocated_fields() -> None:
    obj = _svc(type="LoadBalancer", ports=[{"port": 80}])
    apply_defaults(obj)
    for key in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
        assert key not in obj["spec"]
    assert "nodePort" not in obj["spec"]["ports"][0]
    assert obj["spec"]["allocateLoadBalancerNodePorts"] is True


def test_a_pod_gets_kubernetes_spec_defaults() -> None:
    obj = _pod({"name": "c", "image": "nginx:1.25"})
    apply_defaults(obj)
    spec = obj["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["schedulerName"] == "default-scheduler"
    assert spec["enableServiceLinks"] is True
    container = spec["containers"][0]
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["terminationMessagePolicy"] == "File"


@pytest.mark.parametrize(("image", "policy"), [
    ("nginx", "Always"),
    ("nginx:latest", "Always"),
    ("nginx:1.25", "IfNotPresent"),
    ("registry:5000/nginx", "Always"),
    ("registry:5000/nginx:1", "IfNotPresent"),
    ("nginx@sha256:abc", "IfNotPresent"),
    ("nginx:latest@sha256:abc", "Always"),
])
def test_image_pull_policy_follows_the_image_tag(image: str, policy: str) -> None:
    obj = _pod({"name": "c", "image": image})
    apply_defaults(obj)
    assert obj["spec"]["containers"][0]["imagePullPolicy"] == policy


def test_probes_ports_and_field_refs_are_defaulted() -> None:
    obj = _pod({"name": "c", "image": "i",
                "ports": [{"containerPort": 80}],
                "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                "readinessProbe": {"httpGet": {"port": 80}},
                "livenessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 3}})
    apply_defaults(obj)
    c = obj["spec"]["containers"][0]
    assert c["ports"][0]["protocol"] == "TCP"
    assert c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"] == "v1"
    assert c["readinessProbe"] == {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
                                   "timeoutSeconds": 1, "periodSeconds": 10,
                                   "successThreshold": 1, "failureThreshold": 3}
    assert c["livenessProbe"]["periodSeconds"] == 3


def test_limits_without_requests_become_requests() -> None:
    obj = _pod({"name": "c", "image": "i", "resources": {"limits": {"cpu": "1"}}})
    apply_defaults(obj)
    assert obj["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "1"}


def test_host_network_pods_expose_container_ports_on_the_host() -> None:
    obj = _pod({"name": "c", "image": "i", "ports": [{"containerPort": 53}]}, hostNetwork=True)
    apply_defaults(obj)
    assert obj["spec"]["containers"][0]["ports"][0]["hostPort"] == 53


def test_deployments_get_rolling_update_and_template_defaults() -> None:
    obj = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
           "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}}
    apply_defaults(obj)
    spec = obj["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "RollingUpdate",
                                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    assert spec["template"]["spec"]["restartPolicy"] == "Always"


def test_a_recreate_deployment_gets_no_rolling_update() -> None:
    obj = {"apiVersion": "apps/v1", "kind": "Deployment",
           "spec": {"strategy": {"type": "Recreate"}, "replicas": 0}}
    apply_defaults(obj)
    assert obj["spec"]["strategy"] == {"type": "Recreate"}
    assert obj["spec"]["replicas"] == 0


def test_replica_sets_default_to_one_replica() -> None:
    obj = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "spec": {"template": {}}}
    apply_defaults(obj)
    assert obj["spec"]["replicas"] == 1
    assert obj["spec"]["template"]["spec"]["dnsPolicy"] == "ClusterFirst"


def test_namespaces_secrets_and_slices_get_their_defaults() -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}
    secret = {"apiVersion": "v1", "kind": "Secret"}
    es = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
          "ports": [{"port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]}
    for obj in (ns, secret, es):
        apply_defaults(obj)
    assert ns["spec"] == {"finalizers": ["kubernetes"]}
    assert ns["status"] == {"phase": "Active"}
    assert secret["type"] == "Opaque"
    assert es["ports"] == [{"port": 80, "name": "", "protocol": "TCP"},
                           {"name": "dns", "port": 53, "protocol": "UDP"}]


def test_ingresses_and_unknown_kinds_are_left_alone() -> None:
    ing = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "spec": {"rules": []}}
    other = {"apiVersion": "example.com/v1", "kind": "Widget", "spec": {}}
    before = copy.deepcopy((ing, other))
    apply_defaults(ing)
    apply_defaults(other)
    assert (ing, other) == before


@pytest.mark.parametrize("obj", [
    _svc(type="NodePort", sessionAffinity="ClientIP", ports=[{"port": 80}]),
    _pod({"name": "c", "image": "i", "readinessProbe": {"httpGet": {"port": 1}}}),
    {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": {}}},
    {"apiVersion": "v1", "kind": "Namespace"},
])
def test_defaulting_twice_changes_nothing_more(obj: dict[str, Any]) -> None:
    apply_defaults(obj)
    once = copy.deepcopy(obj)
    apply_defaults(obj)
    assert obj == once
