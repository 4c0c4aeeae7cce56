"""discovery.k8s.io/v1 EndpointSlice."""

from __future__ import annotations

import msgspec

from netplane.model.core import EndpointPort
from netplane.model.meta import KubeStruct, ObjectReference, TypedObject

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
# Set by the EndpointSlice controller to when the change behind a slice's last write was
# seen; proxies measure network programming latency from it.
TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"


class EndpointConditions(KubeStruct, frozen=True):
    # Kept tri-state: the API says a null ready means ready and a null serving means
    # "same as ready", which consumers must be able to tell apart from false.
    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None


class Endpoint(KubeStruct, frozen=True):
    addresses: list[str] = msgspec.field(default_factory=list)
    conditions: EndpointConditions = msgspec.field(default_factory=EndpointConditions)
    hostname: str | None = None
    node_name: str | None = None
    zone: str | None = None
    target_ref: ObjectReference | None = None


class EndpointSlice(TypedObject, frozen=True):
    address_type: str = ""
    endpoints: list[Endpoint] = msgspec.field(default_factory=list)
    ports: list[EndpointPort] = msgspec.field(default_factory=list)

    @property
    def service_name(self) -> str:
        return self.metadata.labels.get(SERVICE_NAME_LABEL, "")
