"""The Deployment controller: one ReplicaSet per pod template (named by its
pod-template-hash), rolled with RollingUpdate (maxSurge/maxUnavailable) or Recreate,
scaled with the Deployment, old ones pruned past revisionHistoryLimit, and a status."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from control.controllers.base import QueueController, split_key
from control.controllers.informers import NAMESPACE_INDEX, InformerSet, namespace_of
from control.controllers.rollout import (
    HASH_LABEL,
    REVISION_ANNOTATION,
    RSState,
    rolling_step,
    surge_and_unavailable,
    template_hash,
)
from netplane.client.rest import ApiClient, ApiError, resource_path
from netplane.model import Deployment, ReplicaSet

log = logging.getLogger(__name__)

DEPLOYMENTS = "/apis/apps/v1/deployments"
REPLICASETS = "/apis/apps/v1/replicasets"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _revision(rs: ReplicaSet) -> int:
    try:
        return int(rs.metadata.annotations.get(REVISION_ANNOTATION, "0"))
    except ValueError:
        return 0


class DeploymentController(QueueController):
    name = "deployment"

    def __init__(self, client: ApiClient, informers: InformerSet, **options: Any) -> None:
        super().__init__(client, informers, **options)
        self.deployments = informers.ensure_index(DEPLOYMENTS, NAMESPACE_INDEX, namespace_of)
        self.replicasets = informers.ensure_index(REPLICASETS, NAMESPACE_INDEX, namespace_of)
        self.deployments.add_handler(self.enqueue, lambda _o, n: self.enqueue(n), None)
        self.replicasets.add_handler(self._rs_event, lambda _o, n: self._rs_event(n), self._rs_event)

    def _rs_event(self, rs: ReplicaSet) -> None:
        ref = rs.metadata.controller_ref()
        if ref is not None and ref.kind == "Deployment":
            self.queue.add(f"{rs.metadata.namespace}/{ref.name}")

    def _owned(self, d: Deployment) -> list[ReplicaSet]:
        out = []
        for rs in self.replicasets.cache.by_index(NAMESPACE_INDEX, d.metadata.namespace):
            ref = rs.metadata.controller_ref()
            if ref is not None and ref.uid == d.metadata.uid and not rs.metadata.deletion_timestamp:
                out.append(rs)
        return sorted(out, key=lambda r: (_revision(r), r.metadata.creation_timestamp or ""))

    async def sync(self, key: str) -> None:
        d: Deployment | None = self.deployments.cache.get(key)
        if d is None or d.metadata.deletion_timestamp:
            return
        ns, name = split_key(key)
        raw = await self.client.get(resource_path("apps/v1", "deployments", ns, name))
        template = (raw.get("spec") or {}).get("template") or {}
        pod_hash = template_hash(template)
        owned = self._owned(d)
        new = next((r for r in owned if r.metadata.labels.get(HASH_LABEL) == pod_hash), None)
        olds = [r for r in owned if r is not new]
        desired = d.spec.replicas
        if d.spec.paused:
            await self._status(d, ns, name, new, owned)
            return
        if new is None:
            revision = max((_revision(r) for r in owned), default=0) + 1
            initial = desired if not any(o.spec.replicas for o in olds) else 0
            if d.spec.strategy.type != "Recreate" and olds:
                surge, _ = self._bounds(d)
                initial = max(0, min(desired, desired + surge - sum(o.spec.replicas for o in olds)))
            await self._create_rs(d, raw, ns, name, pod_hash, revision, initial)
            return  # the new ReplicaSet's event brings us back
        if d.spec.strategy.type == "Recreate":
            targets = {o.metadata.name: 0 for o in olds}
            olds_gone = all(o.status.replicas == 0 for o in olds)
            targets[new.metadata.name] = desired if olds_gone else 0
        else:
            surge, unavailable = self._bounds(d)
            states = [RSState(r.metadata.name, r.spec.replicas, r.status.available_replicas)
                      for r in (new, *olds)]
            targets = rolling_step(desired, surge, unavailable, states[0], states[1:])
        for rs in owned:
            want = targets.get(rs.metadata.name, rs.spec.replicas)
            if want != rs.spec.replicas:
                await self._scale(ns, rs.metadata.name, want)
        await self._prune(d, ns, [o for o in olds if targets.get(o.metadata.name, 1) == 0])
        await self._status(d, ns, name, new, owned)

    def _bounds(self, d: Deployment) -> tuple[int, int]:
        ru = d.spec.strategy.rolling_update
        return surge_and_unavailable(d.spec.replicas, ru.max_surge if ru else None,
                                     ru.max_unavailable if ru else None)

    async def _create_rs(self, d: Deployment, raw: dict[str, Any], ns: str, name: str, pod_hash: str,
                         revision: int, replicas: int) -> None:
        spec = raw.get("spec") or {}
        template = dict(spec.get("template") or {})
        tmeta = dict(template.get("metadata") or {})
        tmeta["labels"] = {**(tmeta.get("labels") or {}), HASH_LABEL: pod_hash}
        template["metadata"] = tmeta
        selector = dict(spec.get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH_LABEL: pod_hash}
        body = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": f"{name}-{pod_hash}", "namespace": ns, "labels": tmeta["labels"],
                             "annotations": {REVISION_ANNOTATION: str(revision)},
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                                                  "uid": d.metadata.uid, "controller": True,
                                                  "blockOwnerDeletion": True}]},
                "spec": {"replicas": replicas, "minReadySeconds": spec.get("minReadySeconds", 0),
                         "selector": selector, "template": template}}
        try:
            await self.client.create(resource_path("apps/v1", "replicasets", ns), body)
        except ApiError as exc:
            if exc.code != 409:  # already there: the cache is behind; its event follows
                raise
        await self.client.patch(resource_path("apps/v1", "deployments", ns, name),
                                {"metadata": {"annotations": {REVISION_ANNOTATION: str(revision)}}})

    async def _scale(self, ns: str, rs_name: str, replicas: int) -> None:
        try:
            await self.client.patch(resource_path("apps/v1", "replicasets", ns, rs_name),
                                    {"spec": {"replicas": replicas}})
        except ApiError as exc:
            if exc.code != 404:
                raise

    async def _prune(self, d: Deployment, ns: str, idle: list[ReplicaSet]) -> None:
        """Old ReplicaSets scaled to zero beyond revisionHistoryLimit go, oldest first."""
        excess = len(idle) - max(d.spec.revision_history_limit, 0)
        for rs in idle[:max(excess, 0)]:
            if rs.status.replicas == 0:
                try:
                    await self.client.delete(resource_path("apps/v1", "replicasets", ns, rs.metadata.name))
                except ApiError as exc:
                    if exc.code != 404:
                        raise

    async def _status(self, d: Deployment, ns: str, name: str, new: ReplicaSet | None,
                      owned: list[ReplicaSet]) -> None:
        replicas = sum(r.status.replicas for r in owned)
        available = sum(r.status.available_replicas for r in owned)
        updated = new.status.replicas if new is not None else 0
        _surge, unavailable = self._bounds(d)
        complete = (new is not None and updated == d.spec.replicas == replicas
                    and new.status.available_replicas == d.spec.replicas)
        status: dict[str, Any] = {
            "observedGeneration": d.metadata.generation, "replicas": replicas,
            "updatedReplicas": updated, "readyReplicas": sum(r.status.ready_replicas for r in owned),
            "availableReplicas": available, "unavailableReplicas": max(replicas - available, 0),
        }
        is_available = available >= d.spec.replicas - unavailable
        conditions = [
            ("Available", is_available, "MinimumReplicasAvailable" if is_available
             else "MinimumReplicasUnavailable", "Deployment has minimum availability."
             if is_available else "Deployment does not have minimum availability."),
            ("Progressing", True, "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
             f'ReplicaSet "{new.metadata.name if new else name}" '
             + ("has successfully progressed." if complete else "is progressing.")),
        ]
        old = {c.type: c for c in d.status.conditions}
        status["conditions"] = [
            {"type": t, "status": "True" if ok else "False", "reason": reason, "message": message,
             "lastUpdateTime": old[t].last_update_time if t in old and old[t].reason == reason else _now(),
             "lastTransitionTime": old[t].last_transition_time
             if t in old and old[t].status == ("True" if ok else "False") else _now()}
            for t, ok, reason, message in conditions]
        current = d.status
        same = (current.observed_generation, current.replicas, current.updated_replicas,
                current.ready_replicas, current.available_replicas, current.unavailable_replicas) == (
            status["observedGeneration"], status["replicas"], status["updatedReplicas"],
            status["readyReplicas"], status["availableReplicas"], status["unavailableReplicas"])
        if same and all(t in old and old[t].reason == r and old[t].status == ("True" if ok else "False")
                        for t, ok, r, _m in conditions):
            return
        try:
            await self.client.patch(resource_path("apps/v1", "deployments", ns, name, "status"),
                                    {"status": status})
        except ApiError as exc:
            if exc.code != 404:
                raise
