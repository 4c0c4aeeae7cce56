"""netplane's pure model: typed Kubernetes objects, selectors, defaulting, validation and
the proxy's service map. No I/O here; every component builds on it."""

from netplane.model.apps import Deployment, ReplicaSet
from netplane.model.coordination import Lease
from netplane.model.core import (
    ConfigMap,
    Endpoints,
    Event,
    Namespace,
    Node,
    Secret,
    Service,
    ServicePortSpec,
)
from netplane.model.defaults import apply_defaults
from netplane.model.discovery import SERVICE_NAME_LABEL, EndpointSlice
from netplane.model.endpoints import CategorizedEndpoints, categorize_endpoints
from netplane.model.fielderrors import FieldError, summarize
from netplane.model.fields import FieldRequirement, FieldSelector, parse_field_selector
from netplane.model.kinds import KINDS, UnknownKindError, decode_object
from netplane.model.meta import LabelSelector, ObjectMeta, OwnerReference, decode
from netplane.model.networking import Ingress, IngressClass
from netplane.model.pod import Container, Pod, PodSpec, PodTemplateSpec, Probe
from netplane.model.selectors import (
    Operator,
    Requirement,
    Selector,
    SelectorError,
    parse_selector,
    selector_from_label_selector,
    selector_from_set,
)
from netplane.model.servicemap import (
    Endpoint,
    EndpointsMap,
    ProxyState,
    ServiceMap,
    ServicePort,
    ServicePortName,
    StateChange,
    build_endpoints_map,
    build_service_map,
    diff,
    service_ports,
)
from netplane.model.validation import validate, validate_update

__all__ = [
    "KINDS",
    "SERVICE_NAME_LABEL",
    "CategorizedEndpoints",
    "ConfigMap",
    "Container",
    "Deployment",
    "Endpoint",
    "EndpointSlice",
    "Endpoints",
    "EndpointsMap",
    "Event",
    "FieldError",
    "FieldRequirement",
    "FieldSelector",
    "Ingress",
    "IngressClass",
    "LabelSelector",
    "Lease",
    "Namespace",
    "Node",
    "ObjectMeta",
    "Operator",
    "OwnerReference",
    "Pod",
    "PodSpec",
    "PodTemplateSpec",
    "Probe",
    "ProxyState",
    "ReplicaSet",
    "Requirement",
    "Secret",
    "Selector",
    "SelectorError",
    "Service",
    "ServiceMap",
    "ServicePort",
    "ServicePortName",
    "ServicePortSpec",
    "StateChange",
    "UnknownKindError",
    "apply_defaults",
    "build_endpoints_map",
    "build_service_map",
    "categorize_endpoints",
    "decode",
    "decode_object",
    "diff",
    "parse_field_selector",
    "parse_selector",
    "selector_from_label_selector",
    "selector_from_set",
    "service_ports",
    "summarize",
    "validate",
    "validate_update",
]
