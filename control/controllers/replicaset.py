"""The ReplicaSet controller: keeps `spec.replicas` active pods for each ReplicaSet, as
Kubernetes' (pkg/controller/replicaset).

A ReplicaSet owns the active pods whose controller reference names its uid and that its
selector matches; it adopts orphans that match and releases pods that stop matching.
Missing pods are created from the template in slow-start batches, surplus ones deleted
in `podcontrol.deletion_key` order; expectations keep a burst of its own writes from
being counted twice before the pod informer shows them. The arithmetic lives in
`podcontrol`; this module reads the caches and writes to the apiserver.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from control.controllers.base import QueueController, object_key
from control.controllers.informers import NAMESPACE_INDEX, InformerSet, namespace_of
from control.controllers.podcontrol import (
    BURST_REPLICAS,
    Expectations,
    controller_ref,
    is_pod_active,
    pod_from_template,
    pod_key,
    pods_to_delete,
    replica_set_status,
    slow_start_batch,
    status_matches,
)
from control.controllers.refmanager import TemplateMemo, claim_objects, namespace_terminating
from netplane.client.rest import ApiClient, ApiError, resource_path
from netplane.model import Pod, ReplicaSet, SelectorError, selector_from_label_selector

log = logging.getLogger(__name__)

PODS = "/api/v1/pods"
REPLICASETS = "/apis/apps/v1/replicasets"
KIND = "ReplicaSet"


class ReplicaSetController(QueueController):
    name = "replicaset"

    def __init__(self, client: ApiClient, informers: InformerSet, *,
                 burst_replicas: int = BURST_REPLICAS, **options: Any) -> None:
        super().__init__(client, informers, **options)
        self.burst_replicas = burst_replicas
        self.expectations = Expectations()
        self.templates = TemplateMemo(client, "apps/v1", "replicasets")
        self.replicasets = informers.ensure_index(REPLICASETS, NAMESPACE_INDEX, namespace_of)
        self.pods = informers.ensure_index(PODS, NAMESPACE_INDEX, namespace_of)
        self.replicasets.add_handler(self.enqueue, self._rs_updated, self._rs_deleted)
        self.pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)

    # --- event handlers ----------------------------------------------------------------

    def _rs_updated(self, old: ReplicaSet, new: ReplicaSet) -> None:
        if old.metadata.uid != new.metadata.uid:
            self.expectations.delete(object_key(new))  # deleted and recreated in between
        self.enqueue(new)

    def _rs_deleted(self, rs: ReplicaSet) -> None:
        key = object_key(rs)
        self.expectations.delete(key)
        self.templates.forget(key)

    def _owner_key(self, pod: Pod) -> str | None:
        """The key of the cached ReplicaSet that controls the pod (uid checked)."""
        ref = pod.metadata.controller_ref()
        if ref is None or ref.kind != KIND:
            return None
        key = f"{pod.metadata.namespace}/{ref.name}"
        rs = self.replicasets.cache.get(key)
        return key if rs is not None and rs.metadata.uid == ref.uid else None

    def _enqueue_matching(self, pod: Pod) -> None:
        """An orphan: every ReplicaSet that could adopt it takes a look."""
        for rs in self.replicasets.cache.by_index(NAMESPACE_INDEX, pod.metadata.namespace):
            try:
                if selector_from_label_selector(rs.spec.selector).matches(pod.metadata.labels):
                    self.enqueue(rs)
            except SelectorError:
                continue

    def _pod_added(self, pod: Pod) -> None:
        if pod.metadata.deletion_timestamp:
            self._pod_deleted(pod)  # e.g. a relist after a restart shows it terminating
            return
        if pod.metadata.controller_ref() is not None:
            key = self._owner_key(pod)
            if key is not None:
                self.expectations.creation_observed(key)
                self.queue.add(key)
            return
        self._enqueue_matching(pod)

    def _pod_updated(self, old: Pod, new: Pod) -> None:
        if old.metadata.resource_version == new.metadata.resource_version:
            return
        labels_changed = old.metadata.labels != new.metadata.labels
        if new.metadata.deletion_timestamp:
            # Graceful deletion starts: the pod stops counting now, not when it is gone.
            self._pod_deleted(new)
            if labels_changed:
                self._pod_deleted(old)
            return
        old_ref, new_ref = old.metadata.controller_ref(), new.metadata.controller_ref()
        if old_ref != new_ref and old_ref is not None:
            key = self._owner_key(old)
            if key is not None:
                self.queue.add(key)
        if new_ref is not None:
            key = self._owner_key(new)
            if key is not None:
                self.queue.add(key)
        elif labels_changed or old_ref != new_ref:
            self._enqueue_matching(new)

    def _pod_deleted(self, pod: Pod) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.deletion_observed(key, pod_key(pod))
            self.queue.add(key)

    # --- sync ----------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        rs: ReplicaSet | None = self.replicasets.cache.get(key)
        if rs is None:
            self.expectations.delete(key)
            self.templates.forget(key)
            return
        needs_sync = self.expectations.satisfied(key)
        try:
            selector = selector_from_label_selector(rs.spec.selector)
        except SelectorError as exc:
            log.warning("replicaset %s: invalid selector, not managing its pods: %s", key, exc)
            return
        active = [p for p in self.pods.cache.by_index(NAMESPACE_INDEX, rs.metadata.namespace)
                  if is_pod_active(p)]
        owned = await claim_objects(self.client, rs, ("apps/v1", KIND, "replicasets"), selector, active,
                                    "v1", "pods")
        error: BaseException | None = None
        if needs_sync and not rs.metadata.deletion_timestamp:
            error = await self._manage(key, rs, owned)
        status, wake = replica_set_status(rs, owned, time.time())
        await self._write_status(rs, status)
        if error is not None:
            raise error
        if wake is not None:
            # A ready pod becomes available after minReadySeconds with no event to say so.
            self.queue.add_after(key, wake + 0.05)

    async def _manage(self, key: str, rs: ReplicaSet, owned: list[Pod]) -> BaseException | None:
        diff = len(owned) - rs.spec.replicas
        if diff < 0:
            return await self._create(key, rs, min(-diff, self.burst_replicas))
        if diff > 0:
            victims = pods_to_delete(owned, min(diff, self.burst_replicas), self._related(rs, owned))
            return await self._delete(key, victims)
        return None

    async def _create(self, key: str, rs: ReplicaSet, count: int) -> BaseException | None:
        fetched = await self.templates.fetch(rs)
        if fetched is None:
            return None  # the ReplicaSet is gone; its delete event follows
        template = fetched[0]
        ns, name = rs.metadata.namespace, rs.metadata.name
        body = pod_from_template(template, ns, name, controller_ref("apps/v1", KIND, name, rs.metadata.uid))
        path = resource_path("v1", "pods", ns)
        self.expectations.expect_creations(key, count)
        created, error = await slow_start_batch(count, lambda: self.client.create(path, body))
        # The creates that failed or were never tried will not show up in the informer.
        for _ in range(count - created):
            self.expectations.creation_observed(key)
        if created:
            log.info("replicaset %s: created %d pod(s)", key, created)
        return None if error is not None and namespace_terminating(error) else error

    async def _delete(self, key: str, victims: list[Pod]) -> BaseException | None:
        self.expectations.expect_deletions(key, [pod_key(p) for p in victims])

        async def delete(pod: Pod) -> None:
            path = resource_path("v1", "pods", pod.metadata.namespace, pod.metadata.name)
            try:
                await self.client.delete(path, body={"preconditions": {"uid": pod.metadata.uid}})
            except ApiError as exc:
                if exc.code == 404:
                    return  # already going; its delete event is the observation
                self.expectations.deletion_observed(key, pod_key(pod))
                if exc.code != 409:  # 409: another pod by that name now; nothing to do
                    raise

        results = await asyncio.gather(*(delete(p) for p in victims), return_exceptions=True)
        log.info("replicaset %s: deleted %d pod(s)", key, len(victims))
        return next((r for r in results if isinstance(r, BaseException)), None)

    def _related(self, rs: ReplicaSet, owned: list[Pod]) -> list[Pod]:
        """The active pods of this ReplicaSet and of its siblings (same controller)."""
        owner = rs.metadata.controller_ref()
        if owner is None:
            return owned
        ns = rs.metadata.namespace
        uids = {s.metadata.uid for s in self.replicasets.cache.by_index(NAMESPACE_INDEX, ns)
                if (r := s.metadata.controller_ref()) is not None and r.uid == owner.uid}
        return [p for p in self.pods.cache.by_index(NAMESPACE_INDEX, ns)
                if (r := p.metadata.controller_ref()) is not None and r.uid in uids and is_pod_active(p)]

    async def _write_status(self, rs: ReplicaSet, status: dict[str, int]) -> None:
        if status_matches(rs, status):
            return
        path = resource_path("apps/v1", "replicasets", rs.metadata.namespace, rs.metadata.name, "status")
        try:
            await self.client.patch(path, {"metadata": {"uid": rs.metadata.uid}, "status": status})
        except ApiError as exc:
            if exc.code != 404:
                raise
