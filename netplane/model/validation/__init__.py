"""Kubernetes' validation rules for the kinds netplane serves, on raw (defaulted) dicts.

`validate` checks a new object, `validate_update` a replacement (including Kubernetes'
immutability rules); both return FieldErrors, empty when the object is valid."""

from __future__ import annotations

from collections.abc import Callable

from netplane.model.fielderrors import FieldError, summarize
from netplane.model.validation.apps import (
    validate_deployment,
    validate_deployment_update,
    validate_replica_set,
    validate_replica_set_update,
)
from netplane.model.validation.cluster import (
    validate_event,
    validate_event_update,
    validate_lease,
    validate_lease_update,
    validate_namespace,
    validate_namespace_update,
    validate_node,
    validate_node_update,
)
from netplane.model.validation.config import (
    validate_config_map,
    validate_config_map_update,
    validate_secret,
    validate_secret_update,
)
from netplane.model.validation.discovery import (
    validate_endpoint_slice,
    validate_endpoint_slice_update,
    validate_endpoints,
)
from netplane.model.validation.gateway import validate_http_route, validate_http_route_update
from netplane.model.validation.meta import Obj, object_meta_update
from netplane.model.validation.networking import (
    validate_ingress,
    validate_ingress_class,
    validate_ingress_class_update,
    validate_ingress_update,
)
from netplane.model.validation.pod import validate_pod, validate_pod_update
from netplane.model.validation.service import validate_service, validate_service_update

Create = Callable[[Obj], list[FieldError]]
Update = Callable[[Obj, Obj], list[FieldError]]


def _plain_update(create: Create) -> Update:
    def run(new: Obj, old: Obj) -> list[FieldError]:
        return [*object_meta_update(new, old), *create(new)]
    return run


VALIDATORS: dict[tuple[str, str], tuple[Create, Update]] = {
    ("v1", "Namespace"): (validate_namespace, validate_namespace_update),
    ("v1", "Pod"): (validate_pod, validate_pod_update),
    ("v1", "Service"): (validate_service, validate_service_update),
    ("v1", "Endpoints"): (validate_endpoints, _plain_update(validate_endpoints)),
    ("v1", "Node"): (validate_node, validate_node_update),
    ("v1", "Secret"): (validate_secret, validate_secret_update),
    ("v1", "ConfigMap"): (validate_config_map, validate_config_map_update),
    ("v1", "Event"): (validate_event, validate_event_update),
    ("discovery.k8s.io/v1", "EndpointSlice"): (
        validate_endpoint_slice, validate_endpoint_slice_update),
    ("networking.k8s.io/v1", "Ingress"): (validate_ingress, validate_ingress_update),
    ("networking.k8s.io/v1", "IngressClass"): (
        validate_ingress_class, validate_ingress_class_update),
    ("apps/v1", "ReplicaSet"): (validate_replica_set, validate_replica_set_update),
    ("apps/v1", "Deployment"): (validate_deployment, validate_deployment_update),
    ("coordination.k8s.io/v1", "Lease"): (validate_lease, validate_lease_update),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): (validate_http_route, validate_http_route_update),
}


def validate(obj: Obj) -> list[FieldError]:
    """Errors in a new object; kinds without rules here are accepted as they are."""
    rules = VALIDATORS.get((obj.get("apiVersion", ""), obj.get("kind", "")))
    return rules[0](obj) if rules else []


def validate_update(new: Obj, old: Obj) -> list[FieldError]:
    """Errors in `new` replacing `old`, including fields that may not change."""
    rules = VALIDATORS.get((new.get("apiVersion", ""), new.get("kind", "")))
    if rules is None:
        return object_meta_update(new, old)
    return rules[1](new, old)


__all__ = ["VALIDATORS", "FieldError", "summarize", "validate", "validate_update"]
