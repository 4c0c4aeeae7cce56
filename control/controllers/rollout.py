"""The pure arithmetic of Deployments, after Kubernetes' `pkg/controller/deployment`:
the pod-template-hash, maxSurge/maxUnavailable, one step of a rolling update, the
proportional scaling of a rollout that is resized, and which old ReplicaSets to prune.

A ReplicaSet is seen through `RS` (spec replicas, status counts, age, annotations);
every function returns target replica counts by ReplicaSet name and writes nothing.
"""

from __future__ import annotations

import copy
import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from netplane.model import Deployment, ReplicaSet

HASH_LABEL = "pod-template-hash"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
DESIRED_REPLICAS_ANNOTATION = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS_ANNOTATION = "deployment.kubernetes.io/max-replicas"
# Annotations of a Deployment that are not copied to its ReplicaSets (annotationsToSkip).
SKIP_ANNOTATIONS = frozenset({
    "kubectl.kubernetes.io/last-applied-configuration", REVISION_ANNOTATION,
    "deployment.kubernetes.io/revision-history", DESIRED_REPLICAS_ANNOTATION, MAX_REPLICAS_ANNOTATION,
    "deprecated.deployment.rollback.to"})
# Kubernetes' rand.SafeEncodeString alphabet: no vowels (no words), no look-alikes.
_SAFE = "bcdfghjklmnpqrstvwxz2456789"


def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    """Kubernetes' rand.SafeEncodeString: each character to one of the safe alphabet."""
    return "".join(_SAFE[ord(ch) % len(_SAFE)] for ch in text)


def template_hash(template: Mapping[str, Any], collision_count: int | None = None) -> str:
    """The pod-template-hash of a pod template (its JSON, keys sorted): FNV-32a, plus the
    collision count as Kubernetes' ComputeHash adds it, spelled with the safe alphabet.

    Not byte-identical to Kubernetes' (which hashes Go's printing of the struct), but
    as stable: the same template always gives the same hash."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    if collision_count is not None:
        data += struct.pack("<Q", collision_count & 0xFFFFFFFF)
    return safe_encode(str(fnv32a(data)))


def new_replicaset(d: Deployment, template: Mapping[str, Any], pod_hash: str, revision: int,
                   replicas: int, max_surge: int) -> dict[str, Any]:
    """The new ReplicaSet of a Deployment (getNewReplicaSet): `<name>-<hash>`, the hash
    label added to its template, selector and labels, controlled by the Deployment, and
    annotated with the revision and the size it is made for."""
    meta = d.metadata
    rs_template = copy.deepcopy(dict(template))
    tmeta = rs_template.setdefault("metadata", {})
    tmeta["labels"] = {**(tmeta.get("labels") or {}), HASH_LABEL: pod_hash}
    selector = msgspec.to_builtins(d.spec.selector) or {}
    selector["matchLabels"] = {**selector.get("matchLabels", {}), HASH_LABEL: pod_hash}
    annotations = {k: v for k, v in meta.annotations.items() if k not in SKIP_ANNOTATIONS}
    annotations.update({REVISION_ANNOTATION: str(revision), DESIRED_REPLICAS_ANNOTATION: str(d.spec.replicas),
                        MAX_REPLICAS_ANNOTATION: str(d.spec.replicas + max_surge)})
    owner = {"apiVersion": "apps/v1", "kind": "Deployment", "name": meta.name, "uid": meta.uid,
             "controller": True, "blockOwnerDeletion": True}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{meta.name}-{pod_hash}", "namespace": meta.namespace,
                         "labels": dict(tmeta["labels"]), "annotations": annotations,
                         "ownerReferences": [owner]},
            "spec": {"replicas": replicas, "minReadySeconds": d.spec.min_ready_seconds,
                     "selector": selector, "template": rs_template}}


def equal_ignoring_hash(rs_template: Mapping[str, Any], template: Mapping[str, Any]) -> bool:
    """EqualIgnoreHash: a ReplicaSet's template is the Deployment's plus the hash label."""
    def strip(t: Mapping[str, Any]) -> Any:
        t = copy.deepcopy(dict(t))
        meta = t.setdefault("metadata", {})
        labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != HASH_LABEL}
        meta.pop("labels", None)
        return (t, labels)

    return bool(strip(rs_template) == strip(template))


# --- maxSurge / maxUnavailable -------------------------------------------------------


def scaled_value(value: int | str | None, total: int, *, round_up: bool) -> int:
    """Kubernetes' GetScaledValueFromIntOrPercent: an int as is, "N%" of `total` rounded
    up or down. Anything else is a ValueError (the apiserver should have refused it)."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    text = value.strip()
    if not text.endswith("%"):
        raise ValueError(f"invalid value for IntOrString: string is not a percentage: {value!r}")
    try:
        percent = int(text[:-1])
    except ValueError:
        raise ValueError(f"invalid value {value!r}: not an integer percentage") from None
    scaled = percent * total / 100
    return math.ceil(scaled) if round_up else math.floor(scaled)


@dataclass(frozen=True)
class Strategy:
    """A Deployment's strategy and the numbers it resolves to for a replica count."""

    type: str = "RollingUpdate"
    max_surge: int | str | None = "25%"
    max_unavailable: int | str | None = "25%"

    @property
    def rolling(self) -> bool:
        return self.type == "RollingUpdate"

    def fenceposts(self, replicas: int) -> tuple[int, int]:
        """ResolveFenceposts: maxSurge rounds up, maxUnavailable down; both zero would
        never progress, so maxUnavailable becomes 1."""
        surge = scaled_value(self.max_surge, replicas, round_up=True)
        unavailable = scaled_value(self.max_unavailable, replicas, round_up=False)
        if surge == 0 and unavailable == 0:
            unavailable = 1
        return surge, unavailable

    def surge(self, replicas: int) -> int:
        return self.fenceposts(replicas)[0] if self.rolling else 0

    def unavailable(self, replicas: int) -> int:
        if not self.rolling or replicas == 0:
            return 0
        return min(self.fenceposts(replicas)[1], replicas)


# --- ReplicaSets as the arithmetic sees them ---------------------------------------------


def _int_annotation(annotations: Mapping[str, str], name: str) -> int | None:
    try:
        return int(annotations[name])
    except (KeyError, ValueError):
        return None


@dataclass(frozen=True)
class RS:
    name: str
    replicas: int  # spec.replicas
    available: int = 0  # status.availableReplicas
    status_replicas: int = 0
    ready: int = 0
    created: str = ""  # creationTimestamp (RFC 3339 sorts as text)
    revision: int = 0
    desired_annotation: int | None = None
    max_annotation: int | None = None
    generation: int = 0
    observed_generation: int = 0
    deleting: bool = False

    @classmethod
    def of(cls, rs: ReplicaSet) -> RS:
        meta, st = rs.metadata, rs.status
        return cls(meta.name, rs.spec.replicas, st.available_replicas, st.replicas, st.ready_replicas,
                   meta.creation_timestamp or "", _int_annotation(meta.annotations, REVISION_ANNOTATION) or 0,
                   _int_annotation(meta.annotations, DESIRED_REPLICAS_ANNOTATION),
                   _int_annotation(meta.annotations, MAX_REPLICAS_ANNOTATION),
                   meta.generation, st.observed_generation, bool(meta.deletion_timestamp))


def oldest_first(rses: list[RS]) -> list[RS]:
    """ReplicaSetsByCreationTimestamp (revision breaks a tie of the same second)."""
    return sorted(rses, key=lambda r: (r.created, r.revision, r.name))


def total_replicas(rses: list[RS]) -> int:
    return sum(r.replicas for r in rses)


# --- rolling update ----------------------------------------------------------------------


def new_rs_replicas(desired: int, strategy: Strategy, all_rs: list[RS], new: RS) -> int:
    """NewRSNewReplicas: how far the new ReplicaSet may grow now. Recreate: all at once;
    RollingUpdate: until all ReplicaSets together reach desired + maxSurge."""
    if not strategy.rolling:
        return desired
    current = total_replicas(all_rs)
    max_total = desired + strategy.surge(desired)
    if current >= max_total:
        return new.replicas
    return new.replicas + min(max_total - current, desired - new.replicas)


def rolling_step(desired: int, strategy: Strategy, new: RS, olds: list[RS]) -> dict[str, int]:
    """One sync of rolloutRolling: scale the new ReplicaSet up if it may grow
    (reconcileNewReplicaSet); if it did not change, scale old ones down as far as
    maxUnavailable allows (reconcileOldReplicaSets): first their unavailable pods, oldest
    ReplicaSet first, then available ones down to desired - maxUnavailable. Returns the
    ReplicaSets whose spec.replicas changes."""
    all_rs = [*olds, new]
    if new.replicas > desired:
        return {new.name: desired}
    if new.replicas < desired:
        grown = new_rs_replicas(desired, strategy, all_rs, new)
        if grown != new.replicas:
            return {new.name: grown}
    old_total = total_replicas(olds)
    if old_total == 0:
        return {}
    min_available = desired - strategy.unavailable(desired)
    new_unavailable = new.replicas - new.available
    max_scaled_down = total_replicas(all_rs) - min_available - new_unavailable
    if max_scaled_down <= 0:
        return {}
    targets: dict[str, int] = {}
    # cleanupUnhealthyReplicas: pods that are not available cost no availability.
    cleaned = 0
    for rs in oldest_first(olds):
        if cleaned >= max_scaled_down:
            break
        if rs.replicas == 0 or rs.replicas <= rs.available:
            continue
        cut = min(max_scaled_down - cleaned, rs.replicas - rs.available)
        targets[rs.name] = rs.replicas - cut
        cleaned += cut
    # scaleDownOldReplicaSetsForRollingUpdate, on the ReplicaSets as just cleaned.
    available = sum(r.available for r in all_rs)
    if available > min_available:
        budget, done = available - min_available, 0
        for rs in oldest_first(olds):
            if done >= budget:
                break
            current = targets.get(rs.name, rs.replicas)
            if current == 0:
                continue
            cut = min(current, budget - done)
            targets[rs.name] = current - cut
            done += cut
    return {name: n for name, n in targets.items()
            if n != next(r.replicas for r in olds if r.name == name)}


# --- resizing a Deployment (during a rollout or not) -------------------------------------


def is_scaling_event(desired: int, rses: list[RS]) -> bool:
    """isScalingEvent: an active ReplicaSet was sized for another Deployment size."""
    return any(r.replicas > 0 and r.desired_annotation is not None and r.desired_annotation != desired
               for r in rses)


def _round_half_away(x: float) -> int:
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def _fraction(rs: RS, desired: int, surge: int, status_replicas: int) -> int:
    """getReplicaSetFraction: this ReplicaSet's share of the new size, as it had of the
    size it was last scaled for (its max-replicas annotation)."""
    if desired == 0:
        return -rs.replicas
    allowed = desired + surge
    annotated = rs.max_annotation if rs.max_annotation is not None else status_replicas
    if annotated <= 0:
        return 0
    return _round_half_away(rs.replicas * allowed / annotated) - rs.replicas


def scale(desired: int, strategy: Strategy, new: RS | None, olds: list[RS],
          status_replicas: int) -> dict[str, int]:
    """Kubernetes' DeploymentController.scale: target replicas per ReplicaSet when the
    Deployment's size changes. One active (or only the newest) ReplicaSet takes the whole
    size; a saturated new one means old ones go to zero; otherwise, in a rolling update,
    the difference is shared in proportion to the sizes the ReplicaSets were given
    (larger first; the leftover goes to the largest). `status_replicas` is the
    Deployment's status.replicas, the fallback for a ReplicaSet without annotation."""
    active = [r for r in ([new] if new else []) + olds if r.replicas > 0]
    if len(active) == 1 or not active:
        target = active[0] if active else (new or (max(olds, key=lambda r: (r.created, r.revision, r.name))
                                                   if olds else None))
        if target is None or target.replicas == desired:
            return {}
        return {target.name: desired}
    if (new is not None and new.replicas == desired and new.desired_annotation == desired
            and new.available == desired):  # IsSaturated
        return {r.name: 0 for r in olds if r.replicas > 0}
    if not strategy.rolling:
        return {}
    surge = strategy.surge(desired)
    to_add = (desired + surge if desired > 0 else 0) - total_replicas(active)
    if to_add == 0:
        return {}
    # Larger first; a tie goes to the newer when growing (ReplicaSetsBySizeNewer) and to
    # the older when shrinking (ReplicaSetsBySizeOlder).
    by_age = oldest_first(active)
    if to_add > 0:
        by_age.reverse()
    ordered = sorted(by_age, key=lambda r: -r.replicas)
    sizes: dict[str, int] = {}
    added = 0
    for rs in ordered:
        proportion = 0
        if rs.replicas and to_add != added:
            share = _fraction(rs, desired, surge, status_replicas)
            allowed = to_add - added
            proportion = min(share, allowed) if to_add > 0 else max(share, allowed)
        sizes[rs.name] = rs.replicas + proportion
        added += proportion
    first = ordered[0].name
    sizes[first] = max(sizes[first] + to_add - added, 0)
    return {name: n for name, n in sizes.items() if n != next(r.replicas for r in active if r.name == name)}


# --- history -------------------------------------------------------------------------------


def prunable(olds: list[RS], revision_history_limit: int | None) -> list[str]:
    """cleanupDeployment: the oldest (by revision) old ReplicaSets beyond the history
    limit, skipping any that still has pods or an unobserved change."""
    if revision_history_limit is None:
        return []
    alive = sorted((r for r in olds if not r.deleting), key=lambda r: (r.revision, r.created, r.name))
    excess = len(alive) - revision_history_limit
    return [r.name for r in alive[:max(excess, 0)]
            if r.status_replicas == 0 and r.replicas == 0 and r.generation <= r.observed_generation]
