"""Strategic-merge-patch metadata: per field, Kubernetes' `patchStrategy` and `patchMergeKey`.

Kubernetes reads these from struct tags on its Go types (`patchStrategy:"merge"
patchMergeKey:"name"`); netplane serves schemaless JSON, so the tags of the
fields that carry one are written down here, for the kinds the apiserver serves.
A field that is not listed behaves like an untagged Go field: maps merge key by
key, lists are replaced whole (what `kubectl` also assumes for them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class Schema:
    """The patch metadata of one struct type: only its tagged or nested fields are listed."""

    name: str
    fields: Mapping[str, Field] = field(default_factory=dict)

    def lookup(self, key: str) -> Field:
        return self.fields.get(key, UNTAGGED)


@dataclass(frozen=True)
class Field:
    """One struct field: its strategies ("merge", "replace", "retainKeys"), merge key and value type.

    For a list, `schema` describes its elements; for a map, the map itself.
    """

    strategies: tuple[str, ...] = ()
    merge_key: str = ""
    schema: Schema | None = None

    @property
    def strategy(self) -> str:
        # retainKeys only tells the client to send `$retainKeys`; merging ignores it
        # (strategicpatch's extractRetainKeysPatchStrategy).
        rest = [s for s in self.strategies if s != "retainKeys"]
        return rest[0] if rest else ""

    @property
    def value_schema(self) -> Schema:
        return self.schema or UNKNOWN


UNKNOWN = Schema("unknown")
UNTAGGED = Field()


def _s(name: str, **fields: Field) -> Schema:
    return Schema(name, MappingProxyType(dict(fields)))


def _merge(key: str = "", schema: Schema | None = None, *, retain: bool = False) -> Field:
    return Field(("merge", "retainKeys") if retain else ("merge",), key, schema)


def _nested(schema: Schema) -> Field:
    return Field((), "", schema)


_CONDITIONS = _merge("type")

OBJECT_META = _s(
    "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
    finalizers=_merge(),
    ownerReferences=_merge("uid"),
)

_CONTAINER = _s(
    "io.k8s.api.core.v1.Container",
    ports=_merge("containerPort"),
    env=_merge("name"),
    volumeMounts=_merge("mountPath"),
    volumeDevices=_merge("devicePath"),
)

POD_SPEC = _s(
    "io.k8s.api.core.v1.PodSpec",
    volumes=_merge("name", retain=True),
    initContainers=_merge("name", _CONTAINER),
    containers=_merge("name", _CONTAINER),
    ephemeralContainers=_merge("name", _CONTAINER),
    imagePullSecrets=_merge("name"),
    hostAliases=_merge("ip"),
    topologySpreadConstraints=_merge("topologyKey"),
    schedulingGates=_merge("name"),
    resourceClaims=_merge("name", retain=True),
    # tolerations, readinessGates: untagged in Kubernetes, so a patch replaces them whole.
)

POD_STATUS = _s(
    "io.k8s.api.core.v1.PodStatus",
    conditions=_CONDITIONS,
    podIPs=_merge("ip"),
    hostIPs=_merge("ip"),
    resourceClaimStatuses=_merge("name", retain=True),
    # containerStatuses and friends are untagged (atomic) in Kubernetes.
)

POD_TEMPLATE_SPEC = _s(
    "io.k8s.api.core.v1.PodTemplateSpec",
    metadata=_nested(OBJECT_META),
    spec=_nested(POD_SPEC),
)


def _kind(name: str, **fields: Field) -> Schema:
    return _s(name, metadata=_nested(OBJECT_META), **fields)


def _status(name: str, **fields: Field) -> Field:
    return _nested(_s(name, **fields))


_WORKLOAD_SELECTOR = _nested(_s("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"))

_KINDS: dict[tuple[str, str], Schema] = {
    ("", "Namespace"): _kind(
        "io.k8s.api.core.v1.Namespace",
        status=_status("io.k8s.api.core.v1.NamespaceStatus", conditions=_CONDITIONS),
    ),
    ("", "Pod"): _kind(
        "io.k8s.api.core.v1.Pod", spec=_nested(POD_SPEC), status=_nested(POD_STATUS)
    ),
    ("", "Service"): _kind(
        "io.k8s.api.core.v1.Service",
        spec=_nested(_s("io.k8s.api.core.v1.ServiceSpec", ports=_merge("port"))),
        status=_status("io.k8s.api.core.v1.ServiceStatus", conditions=_CONDITIONS),
    ),
    ("", "Endpoints"): _kind("io.k8s.api.core.v1.Endpoints"),
    ("", "Node"): _kind(
        "io.k8s.api.core.v1.Node",
        spec=_nested(_s("io.k8s.api.core.v1.NodeSpec", podCIDRs=_merge())),
        status=_status(
            "io.k8s.api.core.v1.NodeStatus", conditions=_CONDITIONS, addresses=_merge("type")
        ),
    ),
    ("", "Secret"): _kind("io.k8s.api.core.v1.Secret"),
    ("", "ConfigMap"): _kind("io.k8s.api.core.v1.ConfigMap"),
    ("", "Event"): _kind("io.k8s.api.core.v1.Event"),
    # EndpointSlice's endpoints and ports are `listType=atomic`: replaced whole.
    ("discovery.k8s.io", "EndpointSlice"): _kind("io.k8s.api.discovery.v1.EndpointSlice"),
    ("networking.k8s.io", "Ingress"): _kind("io.k8s.api.networking.v1.Ingress"),
    ("networking.k8s.io", "IngressClass"): _kind("io.k8s.api.networking.v1.IngressClass"),
    ("apps", "ReplicaSet"): _kind(
        "io.k8s.api.apps.v1.ReplicaSet",
        spec=_nested(_s(
            "io.k8s.api.apps.v1.ReplicaSetSpec",
            template=_nested(POD_TEMPLATE_SPEC), selector=_WORKLOAD_SELECTOR,
        )),
        status=_status("io.k8s.api.apps.v1.ReplicaSetStatus", conditions=_CONDITIONS),
    ),
    ("apps", "Deployment"): _kind(
        "io.k8s.api.apps.v1.Deployment",
        spec=_nested(_s(
            "io.k8s.api.apps.v1.DeploymentSpec",
            template=_nested(POD_TEMPLATE_SPEC), selector=_WORKLOAD_SELECTOR,
            strategy=Field(("retainKeys",)),
        )),
        status=_status("io.k8s.api.apps.v1.DeploymentStatus", conditions=_CONDITIONS),
    ),
    ("coordination.k8s.io", "Lease"): _kind("io.k8s.api.coordination.v1.Lease"),
    ("gateway.networking.k8s.io", "HTTPRoute"): _kind("io.k8s.networking.gateway.v1.HTTPRoute"),
}

# Kinds netplane does not know still get ObjectMeta's rules: metadata is the same for all.
_FALLBACK = _kind("unknown")


def meta_for(group: str, kind: str) -> Schema:
    """The patch metadata of `kind` in API `group` ("" for core); unknown kinds replace lists."""
    return _KINDS.get((group, kind), _FALLBACK)
