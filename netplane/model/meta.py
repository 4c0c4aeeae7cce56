"""Object metadata and the shared building blocks of every typed Kubernetes view."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

# A Kubernetes IntOrString (targetPort, maxSurge, probe ports): JSON number or string.
IntOrString = int | str
# Quantities ("100m", "1Gi") are strings on the wire, but hand-written manifests use numbers.
Quantity = str | int | float


class KubeStruct(
    msgspec.Struct, frozen=True, rename="camel", omit_defaults=True, kw_only=True
):
    """Base of all typed views: camelCase JSON names, unknown fields ignored."""


class OwnerReference(KubeStruct, frozen=True):
    api_version: str = ""
    kind: str = ""
    name: str = ""
    uid: str = ""
    controller: bool | None = None
    block_owner_deletion: bool | None = None


class ObjectMeta(KubeStruct, frozen=True):
    name: str = ""
    generate_name: str = ""
    namespace: str = ""
    uid: str = ""
    resource_version: str = ""
    generation: int = 0
    # Timestamps stay RFC 3339 strings: consumers compare and display them, and
    # keeping the wire form avoids a second, lossy representation.
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    deletion_grace_period_seconds: int | None = None
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    annotations: dict[str, str] = msgspec.field(default_factory=dict)
    owner_references: list[OwnerReference] = msgspec.field(default_factory=list)
    finalizers: list[str] = msgspec.field(default_factory=list)

    def controller_ref(self) -> OwnerReference | None:
        """The owner reference with controller=true, as Kubernetes' GetControllerOf."""
        for ref in self.owner_references:
            if ref.controller:
                return ref
        return None


class LabelSelectorRequirement(KubeStruct, frozen=True):
    key: str = ""
    operator: str = ""
    values: list[str] = msgspec.field(default_factory=list)


class LabelSelector(KubeStruct, frozen=True):
    match_labels: dict[str, str] = msgspec.field(default_factory=dict)
    match_expressions: list[LabelSelectorRequirement] = msgspec.field(default_factory=list)


class ObjectReference(KubeStruct, frozen=True):
    api_version: str = ""
    kind: str = ""
    namespace: str = ""
    name: str = ""
    uid: str = ""
    resource_version: str = ""
    field_path: str = ""


class TypedObject(KubeStruct, frozen=True):
    """Fields every top-level object carries."""

    api_version: str = ""
    kind: str = ""
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace


T = TypeVar("T", bound=msgspec.Struct)


def decode(cls: type[T], data: bytes | str | dict[str, Any]) -> T:
    """Decode Kubernetes JSON (bytes/str) or an already-parsed dict into a typed view.

    Raises msgspec.ValidationError (or DecodeError) for a wrong shape."""
    if isinstance(data, bytes | str):
        return msgspec.json.decode(data, type=cls)
    return msgspec.convert(data, cls)
