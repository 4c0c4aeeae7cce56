"""The ReplicaSet controller: keeps `replicas` pods matching the selector, as Kubernetes'.

Owned pods are those whose controller reference names the ReplicaSet's uid; orphans
that match the selector are adopted, owned pods that stop matching are released.
Creates go in slow-start batches (1, 2, 4, ...); surplus pods are deleted in
`rollout.deletion_rank` order. Expectations (the pods this controller created or
deleted and the cache has not shown yet) keep a burst from being counted twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

from control.controllers.base import QueueController, object_key, split_key
from control.controllers.informers import NAMESPACE_INDEX, InformerSet, namespace_of
from control.controllers.rollout import deletion_rank
from netplane.client.rest import ApiClient, ApiError, resource_path
from netplane.model import Pod, ReplicaSet, selector_from_label_selector

log = logging.getLogger(__name__)

PODS = "/api/v1/pods"
REPLICASETS = "/apis/apps/v1/replicasets"
_EXPECTATION_TTL = 30.0
_SLOW_START_MAX = 500


def is_active(pod: Pod) -> bool:
    return not pod.metadata.deletion_timestamp and pod.status.phase not in ("Succeeded", "Failed")


def is_ready(pod: Pod, min_ready_seconds: int = 0) -> bool:
    for c in pod.status.conditions or []:
        if c.type == "Ready" and c.status == "True":
            if not min_ready_seconds:
                return True
            since = c.last_transition_time
            if not since:
                return True
            t = datetime.strptime(since, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            return (datetime.now(UTC) - t).total_seconds() >= min_ready_seconds
    return False


class Expectations:
    """Pods created (names) and deleted (uids) by us that the cache does not show yet."""

    def __init__(self) -> None:
        self._pending: dict[str, tuple[set[str], set[str], float]] = {}

    def expect(self, key: str, created: set[str], deleted: set[str]) -> None:
        self._pending[key] = (created, deleted, time.monotonic())

    def satisfied(self, key: str, pods: list[Pod]) -> bool:
        entry = self._pending.get(key)
        if entry is None:
            return True
        created, deleted, since = entry
        seen = {p.metadata.name for p in pods}
        live_uids = {p.metadata.uid for p in pods if not p.metadata.deletion_timestamp}
        if (created <= seen and not (deleted & live_uids)) or time.monotonic() - since > _EXPECTATION_TTL:
            del self._pending[key]
            return True
        return False

    def forget(self, key: str) -> None:
        self._pending.pop(key, None)


class ReplicaSetController(QueueController):
    name = "replicaset"

    def __init__(self, client: ApiClient, informers: InformerSet, **options: Any) -> None:
        super().__init__(client, informers, **options)
        self.replicasets = informers.ensure_index(REPLICASETS, NAMESPACE_INDEX, namespace_of)
        self.pods = informers.ensure_index(PODS, NAMESPACE_INDEX, namespace_of)
        self.expectations = Expectations()
        self.replicasets.add_handler(self.enqueue, lambda _o, n: self.enqueue(n), self._rs_deleted)
        self.pods.add_handler(self._pod_event, lambda _o, n: self._pod_event(n), self._pod_event)

    def _rs_deleted(self, rs: ReplicaSet) -> None:
        self.expectations.forget(object_key(rs))

    def _pod_event(self, pod: Pod) -> None:
        ref = pod.metadata.controller_ref()
        if ref is not None:
            if ref.kind == "ReplicaSet":
                self.queue.add(f"{pod.metadata.namespace}/{ref.name}")
            return
        for rs in self.replicasets.cache.by_index(NAMESPACE_INDEX, pod.metadata.namespace):
            if selector_from_label_selector(rs.spec.selector).matches(pod.metadata.labels):
                self.enqueue(rs)

    async def sync(self, key: str) -> None:
        rs: ReplicaSet | None = self.replicasets.cache.get(key)
        if rs is None or rs.metadata.deletion_timestamp:
            self.expectations.forget(key)
            return
        ns, name = split_key(key)
        selector = selector_from_label_selector(rs.spec.selector)
        in_ns = self.pods.cache.by_index(NAMESPACE_INDEX, ns)
        owned: list[Pod] = []
        for pod in in_ns:
            ref = pod.metadata.controller_ref()
            matches = selector.matches(pod.metadata.labels)
            if ref is not None and ref.uid == rs.metadata.uid:
                if matches:
                    owned.append(pod)
                elif is_active(pod):
                    await self._set_owner(pod, None)
            elif ref is None and matches and is_active(pod) and await self._set_owner(pod, rs):
                owned.append(pod)
        active = [p for p in owned if is_active(p)]
        if self.expectations.satisfied(key, in_ns):
            diff = len(active) - rs.spec.replicas
            if diff < 0:
                await self._create(rs, ns, name, -diff)
            elif diff > 0:
                victims = sorted(active, key=deletion_rank)[:diff]
                await self._delete(key, victims)
        await self._update_status(rs, ns, name, active)

    async def _set_owner(self, pod: Pod, rs: ReplicaSet | None) -> bool:
        refs = [r for r in pod.metadata.owner_references if not r.controller]
        body_refs: list[dict[str, Any]] = [{"apiVersion": r.api_version, "kind": r.kind, "name": r.name,
                                            "uid": r.uid} for r in refs]
        if rs is not None:
            body_refs.append(_owner_ref(rs))
        path = resource_path("v1", "pods", pod.metadata.namespace, pod.metadata.name)
        try:
            await self.client.patch(path, {"metadata": {"ownerReferences": body_refs,
                                                        "resourceVersion": pod.metadata.resource_version}})
        except ApiError as exc:
            if exc.code in (404, 409):
                return False
            raise
        return True

    async def _create(self, rs: ReplicaSet, ns: str, name: str, count: int) -> None:
        raw = await self.client.get(resource_path("apps/v1", "replicasets", ns, name))
        template = (raw.get("spec") or {}).get("template") or {}
        meta = template.get("metadata") or {}
        body = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"generateName": f"{name}-", "namespace": ns,
                             "labels": meta.get("labels") or {}, "annotations": meta.get("annotations") or {},
                             "ownerReferences": [_owner_ref(rs)]},
                "spec": template.get("spec") or {}}
        created: set[str] = set()
        self.expectations.expect(object_key(rs), created, set())
        batch, remaining = 1, count
        while remaining > 0:
            size = min(batch, remaining)
            results = await asyncio.gather(*(self.client.create(resource_path("v1", "pods", ns), body)
                                             for _ in range(size)), return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            created.update(r["metadata"]["name"] for r in results if isinstance(r, dict))
            if errors:  # slow start: a failing batch stops the rest (quota, namespace closing)
                raise errors[0]
            remaining -= size
            batch = min(batch * 2, _SLOW_START_MAX)

    async def _delete(self, key: str, victims: list[Pod]) -> None:
        self.expectations.expect(key, set(), {p.metadata.uid for p in victims})
        for pod in victims:
            path = resource_path("v1", "pods", pod.metadata.namespace, pod.metadata.name)
            try:
                await self.client.delete(path, body={"preconditions": {"uid": pod.metadata.uid}})
            except ApiError as exc:
                if exc.code not in (404, 409):
                    raise

    async def _update_status(self, rs: ReplicaSet, ns: str, name: str, active: list[Pod]) -> None:
        labels = rs.spec.template.metadata.labels
        status = {
            "replicas": len(active),
            "fullyLabeledReplicas": sum(1 for p in active if all(
                p.metadata.labels.get(k) == v for k, v in labels.items())),
            "readyReplicas": sum(1 for p in active if is_ready(p)),
            "availableReplicas": sum(1 for p in active if is_ready(p, rs.spec.min_ready_seconds)),
            "observedGeneration": rs.metadata.generation,
        }
        current = rs.status
        if (current.replicas, current.fully_labeled_replicas, current.ready_replicas,
                current.available_replicas, current.observed_generation) == tuple(status.values()):
            return
        try:
            await self.client.patch(resource_path("apps/v1", "replicasets", ns, name, "status"),
                                    {"status": status})
        except ApiError as exc:
            if exc.code != 404:
                raise


def _owner_ref(rs: ReplicaSet) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs.metadata.name,
            "uid": rs.metadata.uid, "controller": True, "blockOwnerDeletion": True}
