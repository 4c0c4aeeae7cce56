"""The pure arithmetic of ReplicaSets and Deployments: template hashes, surge and
unavailability bounds, one rolling-update step, and which pods to delete first."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

# Kubernetes' rand.SafeEncodeString alphabet: no vowels, no look-alikes.
_SAFE = "bcdfghjklmnpqrstvwxz2456789"
HASH_LABEL = "pod-template-hash"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"


def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def template_hash(template: dict[str, Any], collision_count: int = 0) -> str:
    """A stable hash of a pod template, spelled like Kubernetes' pod-template-hash."""
    canonical = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        canonical += str(collision_count).encode()
    return "".join(_SAFE[int(ch) % len(_SAFE)] for ch in str(fnv32a(canonical)))


def resolve(value: int | str | None, total: int, *, round_up: bool, default: str = "25%") -> int:
    """An int-or-percent of `total` (maxSurge rounds up, maxUnavailable down)."""
    value = default if value is None else value
    if isinstance(value, int):
        return value
    text = str(value)
    if text.endswith("%"):
        fraction = int(text[:-1]) * total / 100
        return math.ceil(fraction) if round_up else math.floor(fraction)
    return int(text)


def surge_and_unavailable(replicas: int, max_surge: Any, max_unavailable: Any) -> tuple[int, int]:
    surge = resolve(max_surge, replicas, round_up=True)
    unavailable = resolve(max_unavailable, replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1  # Kubernetes: a rollout must be able to make progress
    return surge, unavailable


@dataclass(frozen=True)
class RSState:
    name: str
    replicas: int  # spec
    available: int  # status


def rolling_step(desired: int, surge: int, unavailable: int, new: RSState,
                 olds: list[RSState]) -> dict[str, int]:
    """Target replicas per ReplicaSet after one step of a rolling update (olds oldest
    first): scale the new one up within the surge, then scale old ones down as far as
    availability allows, as Kubernetes' reconcileNewReplicaSet/reconcileOldReplicaSets."""
    targets = {new.name: new.replicas, **{o.name: o.replicas for o in olds}}
    if new.replicas > desired:  # scaled down: the new set follows at once
        targets[new.name] = desired
    total = sum(targets.values())
    room = desired + surge - total
    if new.replicas < desired and room > 0:
        targets[new.name] = min(desired, new.replicas + room)
    min_available = desired - unavailable
    new_unavailable = max(targets[new.name] - new.available, 0)
    budget = sum(targets.values()) - min_available - new_unavailable
    for old in olds:
        if budget <= 0:
            break
        # Old pods that are not available cost no availability: they go first and free.
        unhealthy = max(old.replicas - old.available, 0)
        cut = min(targets[old.name], unhealthy + budget)
        budget -= max(cut - unhealthy, 0)
        targets[old.name] -= cut
    return targets


def deletion_rank(pod: Any) -> tuple[int, int, int, int, str]:
    """Sort key: pods to delete first come first (Kubernetes' ActivePods ordering):
    unscheduled, then pending/unknown before running, not ready before ready, more
    restarts, newer."""
    status = pod.status
    ready = any(c.type == "Ready" and c.status == "True" for c in status.conditions or [])
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(status.phase or "Pending", 0)
    restarts = sum(c.restart_count for c in status.container_statuses or [])
    created = pod.metadata.creation_timestamp or ""
    inverted = "".join(chr(0x10FFFF - ord(ch)) for ch in created)  # newer first
    return (1 if pod.spec.node_name else 0, phase_rank, 1 if ready else 0, -restarts, inverted)
