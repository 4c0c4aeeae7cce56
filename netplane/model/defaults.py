"""Kubernetes' defaulting (SetDefaults_* of the v1 API groups) on raw JSON dicts.

`apply_defaults` mutates in place and is idempotent. Nothing here allocates (cluster IPs,
node ports, IP families): that is the apiserver's job, after validation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Obj = dict[str, Any]

DEFAULT_CLIENT_IP_TIMEOUT_SECONDS = 10800


def _sub(parent: Obj, key: str) -> Obj:
    """parent[key] as a dict, created when absent or null."""
    value = parent.get(key)
    if not isinstance(value, dict):
        value = {}
        parent[key] = value
    return value


def _items(parent: Obj, key: str) -> list[Obj]:
    value = parent.get(key)
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)]


# ---- core/v1 ----------------------------------------------------------------------------


def _externally_accessible(spec: Obj) -> bool:
    # Kubernetes' service.ExternallyAccessible.
    kind = spec.get("type")
    return kind in ("LoadBalancer", "NodePort") or (
        kind == "ClusterIP" and bool(spec.get("externalIPs")))


def default_service(obj: Obj) -> None:
    spec = _sub(obj, "spec")
    if not spec.get("sessionAffinity"):
        spec["sessionAffinity"] = "None"
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        client_ip = _sub(_sub(spec, "sessionAffinityConfig"), "clientIP")
        if client_ip.get("timeoutSeconds") is None:
            client_ip["timeoutSeconds"] = DEFAULT_CLIENT_IP_TIMEOUT_SECONDS
    if not spec.get("type"):
        spec["type"] = "ClusterIP"
    for port in _items(spec, "ports"):
        if not port.get("protocol"):
            port["protocol"] = "TCP"
        if port.get("targetPort") in (None, 0, "") and "port" in port:
            port["targetPort"] = port["port"]
    if _externally_accessible(spec) and not spec.get("externalTrafficPolicy"):
        spec["externalTrafficPolicy"] = "Cluster"
    if spec.get("internalTrafficPolicy") is None and spec["type"] in (
            "ClusterIP", "NodePort", "LoadBalancer"):
        spec["internalTrafficPolicy"] = "Cluster"
    if spec["type"] == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is None:
        spec["allocateLoadBalancerNodePorts"] = True


def _image_tag(image: str) -> str:
    """The tag of an image reference; "latest" when it has neither tag nor digest."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        return last.split(":", 1)[1]
    return "" if digest else "latest"


def _default_probe(probe: Obj) -> None:
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    http_get = probe.get("httpGet")
    if isinstance(http_get, dict):
        if not http_get.get("path"):
            http_get["path"] = "/"
        if not http_get.get("scheme"):
            http_get["scheme"] = "HTTP"


def _default_container(container: Obj, host_network: bool) -> None:
    if not container.get("imagePullPolicy"):
        tag = _image_tag(str(container.get("image", "")))
        container["imagePullPolicy"] = "Always" if tag == "latest" else "IfNotPresent"
    if not container.get("terminationMessagePath"):
        container["terminationMessagePath"] = "/dev/termination-log"
    if not container.get("terminationMessagePolicy"):
        container["terminationMessagePolicy"] = "File"
    for port in _items(container, "ports"):
        if not port.get("protocol"):
            port["protocol"] = "TCP"
        # With host networking the container port is the host port (defaultHostNetworkPorts).
        if host_network and not port.get("hostPort") and "containerPort" in port:
            port["hostPort"] = port["containerPort"]
    for env in _items(container, "env"):
        field_ref = (env.get("valueFrom") or {}).get("fieldRef")
        if isinstance(field_ref, dict) and not field_ref.get("apiVersion"):
            field_ref["apiVersion"] = "v1"
    for probe_name in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = container.get(probe_name)
        if isinstance(probe, dict):
            _default_probe(probe)
    resources = container.get("resources")
    if isinstance(resources, dict) and isinstance(resources.get("limits"), dict):
        # SetDefaults_Pod: a limit without a request requests the limit.
        requests = _sub(resources, "requests")
        for name, quantity in resources["limits"].items():
            requests.setdefault(name, quantity)


def default_pod_spec(spec: Obj) -> None:
    """SetDefaults_PodSpec plus its containers; shared by Pods and pod templates."""
    if not spec.get("dnsPolicy"):
        spec["dnsPolicy"] = "ClusterFirst"
    if not spec.get("restartPolicy"):
        spec["restartPolicy"] = "Always"
    if not isinstance(spec.get("securityContext"), dict):
        spec["securityContext"] = {}
    if spec.get("terminationGracePeriodSeconds") is None:
        spec["terminationGracePeriodSeconds"] = 30
    if not spec.get("schedulerName"):
        spec["schedulerName"] = "default-scheduler"
    if spec.get("enableServiceLinks") is None:
        spec["enableServiceLinks"] = True
    host_network = bool(spec.get("hostNetwork"))
    for key in ("initContainers", "containers"):
        for container in _items(spec, key):
            _default_container(container, host_network)


def default_pod(obj: Obj) -> None:
    default_pod_spec(_sub(obj, "spec"))


def default_namespace(obj: Obj) -> None:
    spec = _sub(obj, "spec")
    if spec.get("finalizers") is None:
        spec["finalizers"] = ["kubernetes"]
    status = _sub(obj, "status")
    if not status.get("phase"):
        status["phase"] = "Active"


def default_secret(obj: Obj) -> None:
    if not obj.get("type"):
        obj["type"] = "Opaque"


def default_endpoints(obj: Obj) -> None:
    for subset in _items(obj, "subsets"):
        for port in _items(subset, "ports"):
            if not port.get("protocol"):
                port["protocol"] = "TCP"


def default_node(obj: Obj) -> None:
    status = obj.get("status")
    if isinstance(status, dict) and status.get("allocatable") is None and isinstance(
            status.get("capacity"), dict):
        status["allocatable"] = dict(status["capacity"])


# ---- other groups -----------------------------------------------------------------------


def default_endpoint_slice(obj: Obj) -> None:
    for port in _items(obj, "ports"):
        if port.get("name") is None:
            port["name"] = ""
        if not port.get("protocol"):
            port["protocol"] = "TCP"


def _default_template(spec: Obj) -> None:
    template = spec.get("template")
    if isinstance(template, dict):
        default_pod_spec(_sub(template, "spec"))


def default_replica_set(obj: Obj) -> None:
    spec = _sub(obj, "spec")
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    _default_template(spec)


def default_deployment(obj: Obj) -> None:
    spec = _sub(obj, "spec")
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    strategy = _sub(spec, "strategy")
    if not strategy.get("type"):
        strategy["type"] = "RollingUpdate"
    if strategy["type"] == "RollingUpdate":
        rolling = _sub(strategy, "rollingUpdate")
        if rolling.get("maxUnavailable") is None:
            rolling["maxUnavailable"] = "25%"
        if rolling.get("maxSurge") is None:
            rolling["maxSurge"] = "25%"
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    if spec.get("progressDeadlineSeconds") is None:
        spec["progressDeadlineSeconds"] = 600
    _default_template(spec)


def _nothing(_obj: Obj) -> None:
    """Kinds that Kubernetes does not default (Ingress, IngressClass, ConfigMap, ...)."""


DEFAULTERS: dict[tuple[str, str], Callable[[Obj], None]] = {
    ("v1", "Service"): default_service,
    ("v1", "Pod"): default_pod,
    ("v1", "Namespace"): default_namespace,
    ("v1", "Secret"): default_secret,
    ("v1", "Endpoints"): default_endpoints,
    ("v1", "Node"): default_node,
    ("v1", "ConfigMap"): _nothing,
    ("v1", "Event"): _nothing,
    ("discovery.k8s.io/v1", "EndpointSlice"): default_endpoint_slice,
    ("apps/v1", "ReplicaSet"): default_replica_set,
    ("apps/v1", "Deployment"): default_deployment,
    ("networking.k8s.io/v1", "Ingress"): _nothing,
    ("networking.k8s.io/v1", "IngressClass"): _nothing,
    ("coordination.k8s.io/v1", "Lease"): _nothing,
}


def apply_defaults(obj: Obj) -> None:
    """Fill in Kubernetes' defaults for the object's apiVersion/kind; unknown kinds are
    left alone."""
    defaulter = DEFAULTERS.get((obj.get("apiVersion", ""), obj.get("kind", "")))
    if defaulter is not None:
        defaulter(obj)
