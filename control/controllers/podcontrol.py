"""The pure parts of the ReplicaSet controller, after Kubernetes' `pkg/controller`: which
pods a controller owns, adopts and releases (ControllerRefManager), the pod it makes
from a template, which surplus pods go first (ActivePodsWithRanks), slow-start batches,
expectations, and the status it reports."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from netplane.model import Pod, ReplicaSet
from netplane.model.meta import OwnerReference
from netplane.model.selectors import Selector

# kube-controller-manager's burstReplicas: at most this many creates or deletes per sync.
BURST_REPLICAS = 500
# client-go's ExpectationsTimeout: an expectation the informer never meets is given up.
EXPECTATIONS_TTL = 300.0
DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
# Kubernetes' podPhaseToOrdinal; any other phase counts as Pending (Go's zero value).
_PHASE_ORDINAL = {"Pending": 0, "Unknown": 1, "Running": 2}


def parse_time(text: str | None) -> float | None:
    """RFC 3339 (with or without fractional seconds) -> epoch seconds; None if absent."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


# --- pod state ---------------------------------------------------------------------------


def is_pod_active(pod: Pod) -> bool:
    """Kubernetes' IsPodActive: not finished and not being deleted."""
    return pod.status.phase not in ("Succeeded", "Failed") and not pod.metadata.deletion_timestamp


def ready_since(pod: Pod) -> float | None:
    """When the pod's Ready condition last turned True (0.0 if unknown); None if not ready."""
    for cond in pod.status.conditions:
        if cond.type == "Ready":
            if cond.status != "True":
                return None
            return parse_time(cond.last_transition_time) or 0.0
    return None


def available_after(pod: Pod, min_ready_seconds: int, now: float) -> float | None:
    """Seconds until a ready pod counts as available (0: it is), None if it is not ready.

    Kubernetes' IsPodAvailable: ready for at least minReadySeconds, and with
    minReadySeconds set, a Ready condition without a transition time never is."""
    since = ready_since(pod)
    if since is None:
        return None
    if min_ready_seconds <= 0:
        return 0.0
    if not since:
        return math.inf
    return max(0.0, since + min_ready_seconds - now)


def is_pod_available(pod: Pod, min_ready_seconds: int, now: float) -> bool:
    return available_after(pod, min_ready_seconds, now) == 0.0


def pod_key(pod: Pod) -> str:
    return f"{pod.metadata.namespace}/{pod.metadata.name}"


# --- ownership ---------------------------------------------------------------------------


def controller_ref(api_version: str, kind: str, name: str, uid: str) -> dict[str, Any]:
    """An ownerReference naming the managing controller (GC blocks on it, as Kubernetes')."""
    return {"apiVersion": api_version, "kind": kind, "name": name, "uid": uid,
            "controller": True, "blockOwnerDeletion": True}


def refs_json(refs: Iterable[OwnerReference]) -> list[dict[str, Any]]:
    return [msgspec.to_builtins(r) for r in refs]


@dataclass
class Claim:
    """What a controller does with the objects its selector could cover."""

    owned: list[Any] = field(default_factory=list)  # controlled by it and matching
    adopt: list[Any] = field(default_factory=list)  # orphans to take (then owned too)
    release: list[Any] = field(default_factory=list)  # controlled by it, no longer matching


def claim(owner: Any, selector: Selector, objects: Iterable[Any]) -> Claim:
    """Kubernetes' ControllerRefManager.ClaimObject for each object (same namespace):
    ours and matching stay; ours and not matching are released unless the owner is being
    deleted; orphans that match and are not being deleted are adopted, unless the owner
    is being deleted. Objects controlled by someone else are never touched."""
    out = Claim()
    deleting = bool(owner.metadata.deletion_timestamp)
    for obj in objects:
        meta = obj.metadata
        ref = meta.controller_ref()
        matches = selector.matches(meta.labels)
        if ref is not None:
            if ref.uid != owner.metadata.uid:
                continue
            if matches:
                out.owned.append(obj)
            elif not deleting:
                out.release.append(obj)
        elif matches and not deleting and not meta.deletion_timestamp:
            out.adopt.append(obj)
    return out


def adoption_patch(obj: Any, ref: dict[str, Any]) -> dict[str, Any]:
    """A merge patch that adds `ref` as the controller of `obj`, guarded by its uid and
    resourceVersion so that a stale cache never overwrites someone else's claim."""
    refs = [r for r in refs_json(obj.metadata.owner_references) if r.get("uid") != ref["uid"]]
    return {"metadata": {"ownerReferences": [*refs, ref], "uid": obj.metadata.uid,
                         "resourceVersion": obj.metadata.resource_version}}


def release_patch(obj: Any, owner_uid: str) -> dict[str, Any]:
    """A merge patch that removes the owner's reference from `obj` (same guards)."""
    refs = [r for r in refs_json(obj.metadata.owner_references) if r.get("uid") != owner_uid]
    return {"metadata": {"ownerReferences": refs, "uid": obj.metadata.uid,
                         "resourceVersion": obj.metadata.resource_version}}


# --- creating --------------------------------------------------------------------------


def pod_from_template(template: Mapping[str, Any], namespace: str, owner_name: str,
                      owner_ref: dict[str, Any]) -> dict[str, Any]:
    """Kubernetes' GetPodFromTemplate: labels, annotations and finalizers of the template,
    spec as is, named `<owner>-<random>` by the apiserver (generateName)."""
    meta = template.get("metadata") or {}
    pod_meta: dict[str, Any] = {"generateName": f"{owner_name}-", "namespace": namespace,
                                "labels": dict(meta.get("labels") or {}),
                                "ownerReferences": [owner_ref]}
    if meta.get("annotations"):
        pod_meta["annotations"] = dict(meta["annotations"])
    if meta.get("finalizers"):
        pod_meta["finalizers"] = list(meta["finalizers"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta,
            "spec": dict(template.get("spec") or {})}


def slow_start_sizes(count: int, initial: int = 1) -> list[int]:
    """Batch sizes of Kubernetes' slowStartBatch: 1, 2, 4, ... until `count` is reached."""
    sizes, remaining, size = [], count, min(count, initial)
    while size > 0:
        sizes.append(size)
        remaining -= size
        size = min(2 * size, remaining)
    return sizes


async def slow_start_batch(count: int, call: Callable[[], Awaitable[Any]],
                           initial: int = 1) -> tuple[int, BaseException | None]:
    """Runs `call` `count` times in doubling concurrent batches and stops after the first
    batch that had a failure, so that a systematic error (quota, a terminating
    namespace, a bad template) costs one call instead of hundreds.

    Returns (successes, the first error or None)."""
    successes = 0
    for size in slow_start_sizes(count, initial):
        results = await asyncio.gather(*(call() for _ in range(size)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        successes += size - len(errors)
        if errors:
            return successes, errors[0]
    return successes, None


# --- deleting --------------------------------------------------------------------------


def _deletion_cost(pod: Pod) -> int:
    try:
        return int(pod.metadata.annotations.get(DELETION_COST_ANNOTATION, "0"))
    except ValueError:
        return 0


def _newer_first(stamp: float | None) -> tuple[int, float]:
    """Kubernetes' afterOrZero as a sort key: no time first, then the latest."""
    return (0, 0.0) if not stamp else (1, -stamp)


def deletion_key(pod: Pod, rank: int = 0) -> tuple[Any, ...]:
    """Sort key, the pod to delete first coming first (Kubernetes' ActivePodsWithRanks):
    unscheduled < scheduled; Pending < Unknown < Running; not ready < ready; lower
    pod-deletion-cost; more pods of the same owner on its node (`rank`); ready for less
    time; more container restarts; newer."""
    ready = ready_since(pod)
    restarts = max((c.restart_count for c in pod.status.container_statuses), default=0)
    return (1 if pod.spec.node_name else 0, _PHASE_ORDINAL.get(pod.status.phase, 0),
            0 if ready is None else 1, _deletion_cost(pod), -rank,
            _newer_first(ready) if ready is not None else (0, 0.0), -restarts,
            _newer_first(parse_time(pod.metadata.creation_timestamp)))


def pods_to_delete(pods: list[Pod], count: int, related: Iterable[Pod] = ()) -> list[Pod]:
    """The `count` pods to delete first. `related` are the active pods of the owner and of
    its siblings (the other ReplicaSets of its Deployment): a pod doubled up on a node
    with more of them goes before one that is alone (getPodsRankedByRelatedPodsOnSameNode)."""
    if count >= len(pods):
        return list(pods)
    on_node: dict[str, int] = {}
    for pod in related:
        if is_pod_active(pod):
            on_node[pod.spec.node_name] = on_node.get(pod.spec.node_name, 0) + 1
    return sorted(pods, key=lambda p: deletion_key(p, on_node.get(p.spec.node_name, 0)))[:count]


# --- expectations ----------------------------------------------------------------------


@dataclass
class _Expectation:
    add: int
    deleting: set[str]
    since: float


class Expectations:
    """client-go's UIDTrackingControllerExpectations: the creates a controller made and the
    deletes it asked for that its informer has not shown yet. While some are pending the
    controller does not act on its (stale) cache, or it would create a burst twice."""

    def __init__(self, ttl: float = EXPECTATIONS_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._pending: dict[str, _Expectation] = {}

    def expect_creations(self, key: str, count: int) -> None:
        self._pending[key] = _Expectation(count, set(), self.clock())

    def expect_deletions(self, key: str, pod_keys: Iterable[str]) -> None:
        self._pending[key] = _Expectation(0, set(pod_keys), self.clock())

    def creation_observed(self, key: str) -> None:
        exp = self._pending.get(key)
        if exp is not None:
            exp.add -= 1

    def deletion_observed(self, key: str, pod_key: str) -> None:
        """Counted once per pod, however many events (deletionTimestamp set, then gone)."""
        exp = self._pending.get(key)
        if exp is not None:
            exp.deleting.discard(pod_key)

    def satisfied(self, key: str) -> bool:
        exp = self._pending.get(key)
        if exp is None:
            return True
        if (exp.add <= 0 and not exp.deleting) or self.clock() - exp.since > self.ttl:
            del self._pending[key]
            return True
        return False

    def pending(self, key: str) -> tuple[int, int]:
        exp = self._pending.get(key)
        return (0, 0) if exp is None else (max(exp.add, 0), len(exp.deleting))

    def delete(self, key: str) -> None:
        self._pending.pop(key, None)


# --- status ----------------------------------------------------------------------------


def replica_set_status(rs: ReplicaSet, pods: list[Pod], now: float) -> tuple[dict[str, int], float | None]:
    """Kubernetes' calculateStatus over the active pods the ReplicaSet owns: its status (as
    the JSON the status subresource takes, every field explicit) and, if some ready pod
    is not available yet, in how many seconds the first one will be (to look again)."""
    template_labels = rs.spec.template.metadata.labels
    labeled = ready = available = 0
    wake: float | None = None
    for pod in pods:
        if all(pod.metadata.labels.get(k) == v for k, v in template_labels.items()):
            labeled += 1
        after = available_after(pod, rs.spec.min_ready_seconds, now)
        if after is None:
            continue
        ready += 1
        if after == 0.0:
            available += 1
        elif after != math.inf:
            wake = after if wake is None else min(wake, after)
    return ({"replicas": len(pods), "fullyLabeledReplicas": labeled, "readyReplicas": ready,
             "availableReplicas": available, "observedGeneration": rs.metadata.generation}, wake)


def status_matches(rs: ReplicaSet, status: Mapping[str, int]) -> bool:
    s = rs.status
    return (s.replicas, s.fully_labeled_replicas, s.ready_replicas, s.available_replicas,
            s.observed_generation) == (status["replicas"], status["fullyLabeledReplicas"],
                                       status["readyReplicas"], status["availableReplicas"],
                                       status["observedGeneration"])
