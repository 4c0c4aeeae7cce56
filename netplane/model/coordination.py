"""coordination.k8s.io/v1 Lease (leader election, node heartbeats)."""

from __future__ import annotations

import msgspec

from netplane.model.meta import KubeStruct, TypedObject


class LeaseSpec(KubeStruct, frozen=True):
    holder_identity: str | None = None
    lease_duration_seconds: int | None = None
    # MicroTime strings ("2024-01-01T00:00:00.000000Z"), kept as on the wire.
    acquire_time: str | None = None
    renew_time: str | None = None
    lease_transitions: int | None = None


class Lease(TypedObject, frozen=True):
    spec: LeaseSpec = msgspec.field(default_factory=LeaseSpec)
