"""The (apiVersion, kind) -> typed view registry, and decoding by the object's own kind."""

from __future__ import annotations

from typing import Any

import orjson

from netplane.model.apps import Deployment, ReplicaSet
from netplane.model.coordination import Lease
from netplane.model.core import ConfigMap, Endpoints, Event, Namespace, Node, Secret, Service
from netplane.model.discovery import EndpointSlice
from netplane.model.gateway import HTTPRoute
from netplane.model.meta import TypedObject, decode
from netplane.model.networking import Ingress, IngressClass
from netplane.model.pod import Pod

KINDS: dict[tuple[str, str], type[TypedObject]] = {
    ("v1", "Namespace"): Namespace,
    ("v1", "Pod"): Pod,
    ("v1", "Service"): Service,
    ("v1", "Endpoints"): Endpoints,
    ("v1", "Node"): Node,
    ("v1", "Secret"): Secret,
    ("v1", "ConfigMap"): ConfigMap,
    ("v1", "Event"): Event,
    ("discovery.k8s.io/v1", "EndpointSlice"): EndpointSlice,
    ("networking.k8s.io/v1", "Ingress"): Ingress,
    ("networking.k8s.io/v1", "IngressClass"): IngressClass,
    ("apps/v1", "ReplicaSet"): ReplicaSet,
    ("apps/v1", "Deployment"): Deployment,
    ("coordination.k8s.io/v1", "Lease"): Lease,
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): HTTPRoute,
}


class UnknownKindError(ValueError):
    """The object's apiVersion/kind has no typed view."""


def decode_object(data: bytes | str | dict[str, Any]) -> TypedObject:
    """Decode an object into the typed view named by its own apiVersion and kind."""
    raw = orjson.loads(data) if isinstance(data, bytes | str) else data
    key = (raw.get("apiVersion", ""), raw.get("kind", ""))
    cls = KINDS.get(key)
    if cls is None:
        raise UnknownKindError(f"no typed view for apiVersion={key[0]!r} kind={key[1]!r}")
    return decode(cls, raw)


__all__ = ["KINDS", "UnknownKindError", "decode_object"]
