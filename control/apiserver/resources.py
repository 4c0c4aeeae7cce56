"""The kinds the apiserver serves: their REST names, scope, verbs and field selectors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

FieldGetter = Callable[[dict[str, Any]], dict[str, str]]

_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


def _meta_fields(obj: dict[str, Any], namespaced: bool) -> dict[str, str]:
    meta = obj.get("metadata") or {}
    out = {"metadata.name": meta.get("name", "")}
    if namespaced:
        out["metadata.namespace"] = meta.get("namespace", "")
    return out


def _pod_fields(obj: dict[str, Any]) -> dict[str, str]:
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    return {
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.restartPolicy": spec.get("restartPolicy", ""),
        "spec.schedulerName": spec.get("schedulerName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "spec.hostNetwork": str(bool(spec.get("hostNetwork", False))).lower(),
        "status.phase": status.get("phase", ""),
        "status.podIP": status.get("podIP", ""),
        "status.nominatedNodeName": status.get("nominatedNodeName", ""),
    }


def _event_fields(obj: dict[str, Any]) -> dict[str, str]:
    inv = obj.get("involvedObject") or {}
    src = obj.get("source") or {}
    out = {f"involvedObject.{k}": str(inv.get(k, "")) for k in (
        "kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")}
    out.update({"reason": obj.get("reason", ""), "type": obj.get("type", ""),
                "source": src.get("component", ""),
                "reportingComponent": obj.get("reportingComponent", "")})
    return out


def _secret_fields(obj: dict[str, Any]) -> dict[str, str]:
    return {"type": obj.get("type", "")}


def _node_fields(obj: dict[str, Any]) -> dict[str, str]:
    return {"spec.unschedulable": str(bool((obj.get("spec") or {}).get("unschedulable"))).lower()}


def _namespace_fields(obj: dict[str, Any]) -> dict[str, str]:
    return {"status.phase": (obj.get("status") or {}).get("phase", "")}


def _replicaset_fields(obj: dict[str, Any]) -> dict[str, str]:
    return {"status.replicas": str((obj.get("status") or {}).get("replicas", 0))}


@dataclass(frozen=True)
class ResourceInfo:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    # Kinds with a status subresource: the main resource ignores status changes and
    # /status ignores everything but status (Kubernetes' strategies do the same).
    status_subresource: bool = False
    # PUT of a missing object creates it (Kubernetes' AllowCreateOnUpdate).
    create_on_update: bool = False
    extra_fields: FieldGetter | None = None
    verbs: tuple[str, ...] = _VERBS
    # Kubernetes' own storage prefix when it differs from the plural.
    storage_name: str = ""
    subresources: tuple[str, ...] = field(default=())

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def prefix(self) -> str:
        """The store prefix holding every object of this kind."""
        return f"/registry/{self.storage_name or self.plural}/"

    def key(self, namespace: str | None, name: str) -> str:
        return f"{self.prefix}{namespace}/{name}" if self.namespaced else f"{self.prefix}{name}"

    def namespace_prefix(self, namespace: str | None) -> str:
        return f"{self.prefix}{namespace}/" if self.namespaced and namespace else self.prefix

    def field_values(self, obj: dict[str, Any]) -> dict[str, str]:
        out = _meta_fields(obj, self.namespaced)
        if self.extra_fields:
            out.update(self.extra_fields(obj))
        return out


RESOURCES: tuple[ResourceInfo, ...] = (
    ResourceInfo("", "v1", "namespaces", "namespace", "Namespace", False, ("ns",),
                 status_subresource=True, extra_fields=_namespace_fields,
                 subresources=("status", "finalize")),
    ResourceInfo("", "v1", "pods", "pod", "Pod", True, ("po",), ("all",),
                 status_subresource=True, extra_fields=_pod_fields,
                 subresources=("status", "binding", "log")),
    ResourceInfo("", "v1", "services", "service", "Service", True, ("svc",), ("all",),
                 status_subresource=True, storage_name="services/specs",
                 subresources=("status",)),
    ResourceInfo("", "v1", "endpoints", "endpoints", "Endpoints", True, ("ep",),
                 create_on_update=True, storage_name="services/endpoints"),
    ResourceInfo("", "v1", "nodes", "node", "Node", False, ("no",), status_subresource=True,
                 extra_fields=_node_fields, storage_name="minions", subresources=("status",)),
    ResourceInfo("", "v1", "secrets", "secret", "Secret", True, extra_fields=_secret_fields),
    ResourceInfo("", "v1", "configmaps", "configmap", "ConfigMap", True, ("cm",)),
    ResourceInfo("", "v1", "events", "event", "Event", True, ("ev",), create_on_update=True,
                 extra_fields=_event_fields),
    ResourceInfo("discovery.k8s.io", "v1", "endpointslices", "endpointslice", "EndpointSlice",
                 True),
    ResourceInfo("networking.k8s.io", "v1", "ingresses", "ingress", "Ingress", True, ("ing",),
                 status_subresource=True, subresources=("status",)),
    ResourceInfo("networking.k8s.io", "v1", "ingressclasses", "ingressclass", "IngressClass",
                 False),
    ResourceInfo("apps", "v1", "replicasets", "replicaset", "ReplicaSet", True, ("rs",),
                 ("all",), status_subresource=True, extra_fields=_replicaset_fields,
                 subresources=("status", "scale")),
    ResourceInfo("apps", "v1", "deployments", "deployment", "Deployment", True, ("deploy",),
                 ("all",), status_subresource=True, subresources=("status", "scale")),
    ResourceInfo("coordination.k8s.io", "v1", "leases", "lease", "Lease", True,
                 create_on_update=True),
    ResourceInfo("gateway.networking.k8s.io", "v1", "httproutes", "httproute", "HTTPRoute", True,
                 categories=("gateway-api",), status_subresource=True, subresources=("status",)),
)

_BY_PATH: dict[tuple[str, str, str], ResourceInfo] = {
    (r.group, r.version, r.plural): r for r in RESOURCES
}
_BY_KIND: dict[tuple[str, str], ResourceInfo] = {(r.api_version, r.kind): r for r in RESOURCES}


def lookup(group: str, version: str, plural: str) -> ResourceInfo | None:
    return _BY_PATH.get((group, version, plural))


def by_kind(api_version: str, kind: str) -> ResourceInfo | None:
    return _BY_KIND.get((api_version, kind))


def groups() -> dict[str, list[str]]:
    """API group -> versions served, core group ("") included, in discovery order."""
    out: dict[str, list[str]] = {}
    for r in RESOURCES:
        versions = out.setdefault(r.group, [])
        if r.version not in versions:
            versions.append(r.version)
    return out


NAMESPACE = _BY_PATH[("", "v1", "namespaces")]
SERVICE = _BY_PATH[("", "v1", "services")]
POD = _BY_PATH[("", "v1", "pods")]
NODE = _BY_PATH[("", "v1", "nodes")]
ENDPOINTS = _BY_PATH[("", "v1", "endpoints")]
ENDPOINTSLICE = _BY_PATH[("discovery.k8s.io", "v1", "endpointslices")]
LEASE = _BY_PATH[("coordination.k8s.io", "v1", "leases")]
