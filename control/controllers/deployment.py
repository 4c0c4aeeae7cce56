"""The Deployment controller, as Kubernetes' (pkg/controller/deployment): one ReplicaSet
per pod template, named `<deployment>-<pod-template-hash>`; a RollingUpdate within
maxSurge/maxUnavailable or a Recreate; proportional scaling when a Deployment is resized
mid-rollout; old ReplicaSets pruned past revisionHistoryLimit; the revision annotation;
status and the Available/Progressing conditions.

The arithmetic is pure (`rollout`, `rolloutstatus`); this module reads the caches, claims
ReplicaSets and writes to the apiserver. ReplicaSet writes carry their resourceVersion,
so a decision taken on a stale cache fails with a conflict and is retried.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from typing import Any

from control.controllers.base import QueueController, RetryError, object_key
from control.controllers.informers import NAMESPACE_INDEX, InformerSet, namespace_of
from control.controllers.refmanager import TemplateMemo, claim_objects, namespace_terminating
from control.controllers.rollout import (
    DESIRED_REPLICAS_ANNOTATION,
    HASH_LABEL,
    MAX_REPLICAS_ANNOTATION,
    REVISION_ANNOTATION,
    RS,
    SKIP_ANNOTATIONS,
    Strategy,
    equal_ignoring_hash,
    is_scaling_event,
    new_replicaset,
    new_rs_replicas,
    prunable,
    rolling_step,
    scale,
    template_hash,
)
from control.controllers.rolloutstatus import (
    FAILED_RS_CREATE,
    FOUND_NEW_RS,
    NEW_RS_CREATED,
    PROGRESSING,
    calculate_status,
    complete,
    condition,
    get_condition,
    has_deadline,
    paused_conditions,
    rollout_status,
    set_condition,
    status_json,
)
from netplane.client.rest import ApiClient, ApiError, resource_path
from netplane.model import Deployment, Pod, ReplicaSet, SelectorError, decode, selector_from_label_selector
from netplane.model.apps import DeploymentCondition

log = logging.getLogger(__name__)

DEPLOYMENTS = "/apis/apps/v1/deployments"
REPLICASETS = "/apis/apps/v1/replicasets"
PODS = "/api/v1/pods"
KIND = "Deployment"


def _strategy(d: Deployment) -> Strategy:
    ru = d.spec.strategy.rolling_update
    if ru is None:
        return Strategy(d.spec.strategy.type)
    return Strategy(d.spec.strategy.type, ru.max_surge, ru.max_unavailable)


class _Stop(Exception):
    """Nothing more to do in this sync (the namespace is being deleted)."""


@dataclasses.dataclass
class _State:
    """One sync's view: the Deployment (as fresh as the sync got it), its raw template,
    its ReplicaSets (typed and as arithmetic views), and the conditions so far."""

    d: Deployment
    template: dict[str, Any]
    strategy: Strategy
    rses: dict[str, ReplicaSet]
    views: dict[str, RS]
    new: str | None
    conds: list[DeploymentCondition]
    collision_count: int | None

    @property
    def olds(self) -> list[RS]:
        return [v for n, v in self.views.items() if n != self.new]

    @property
    def new_view(self) -> RS | None:
        return self.views.get(self.new) if self.new else None


class DeploymentController(QueueController):
    name = "deployment"

    def __init__(self, client: ApiClient, informers: InformerSet, **options: Any) -> None:
        super().__init__(client, informers, **options)
        self.templates = TemplateMemo(client, "apps/v1", "deployments")
        self.deployments = informers.ensure_index(DEPLOYMENTS, NAMESPACE_INDEX, namespace_of)
        self.replicasets = informers.ensure_index(REPLICASETS, NAMESPACE_INDEX, namespace_of)
        self.pods = informers.ensure_index(PODS, NAMESPACE_INDEX, namespace_of)
        self.deployments.add_handler(self.enqueue, lambda _o, n: self.enqueue(n), self.enqueue)
        self.replicasets.add_handler(self._rs_changed, self._rs_updated, self._rs_changed)
        self.pods.add_handler(None, None, self._pod_deleted)

    # --- event handlers ----------------------------------------------------------------

    def _owner(self, namespace: str, ref: Any, kind: str = KIND) -> Any:
        if ref is None or ref.kind != kind:
            return None
        informer = self.deployments if kind == KIND else self.replicasets
        obj = informer.cache.get(f"{namespace}/{ref.name}")
        return obj if obj is not None and obj.metadata.uid == ref.uid else None

    def _rs_changed(self, rs: ReplicaSet) -> None:
        d = self._owner(rs.metadata.namespace, rs.metadata.controller_ref())
        if d is not None:
            self.enqueue(d)
        elif rs.metadata.controller_ref() is None:
            self._enqueue_matching(rs)

    def _rs_updated(self, old: ReplicaSet, new: ReplicaSet) -> None:
        if old.metadata.controller_ref() != new.metadata.controller_ref():
            self._rs_changed(old)
        if new.metadata.controller_ref() is not None or old.metadata.labels != new.metadata.labels:
            self._rs_changed(new)

    def _enqueue_matching(self, rs: ReplicaSet) -> None:
        for d in self.deployments.cache.by_index(NAMESPACE_INDEX, rs.metadata.namespace):
            try:
                if selector_from_label_selector(d.spec.selector).matches(rs.metadata.labels):
                    self.enqueue(d)
            except SelectorError:
                continue

    def _pod_deleted(self, pod: Pod) -> None:
        """Recreate waits until old pods are gone; their deletion is its cue."""
        rs = self._owner(pod.metadata.namespace, pod.metadata.controller_ref(), "ReplicaSet")
        if rs is not None:
            d = self._owner(rs.metadata.namespace, rs.metadata.controller_ref())
            if d is not None and d.spec.strategy.type == "Recreate":
                self.enqueue(d)

    # --- sync ----------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        d: Deployment | None = self.deployments.cache.get(key)
        if d is None:
            self.templates.forget(key)
            return
        try:
            selector = selector_from_label_selector(d.spec.selector)
        except SelectorError as exc:
            log.warning("deployment %s: invalid selector: %s", key, exc)
            return
        fetched = await self.templates.fetch(d)
        if fetched is None:
            return  # gone; its delete event follows
        template, raw = fetched
        if raw is not None and int(raw["metadata"].get("generation") or 0) > d.metadata.generation:
            d = decode(Deployment, raw)  # the cache is behind: act on what was just read
        sel = d.spec.selector
        if sel is not None and not sel.match_labels and not sel.match_expressions:
            # Kubernetes refuses to act on a selector that selects every pod.
            log.warning("deployment %s: an empty selector selects every pod; not acting on it", key)
            return
        rses = await claim_objects(self.client, d, ("apps/v1", KIND, "deployments"), selector,
                                   self.replicasets.cache.by_index(NAMESPACE_INDEX, d.metadata.namespace),
                                   "apps/v1", "replicasets")
        now = time.time()
        st = _State(d, template, _strategy(d), {r.metadata.name: r for r in rses},
                    {r.metadata.name: RS.of(r) for r in rses}, None, list(d.status.conditions),
                    d.status.collision_count)
        pod_hash = template_hash(template, st.collision_count)
        st.new = next((r.metadata.name for r in rses
                       if r.spec.template.metadata.labels.get(HASH_LABEL) == pod_hash), None)
        if d.metadata.deletion_timestamp:
            await self._write_status(st, rollout=False)
            return
        st.conds = paused_conditions(d, st.conds, now)
        if st.new is not None:
            await self._sync_new_rs(st)
        if d.spec.paused or is_scaling_event(d.spec.replicas, list(st.views.values())):
            await self._resize(st)
            if d.spec.paused:
                await self._prune(st)
            await self._write_status(st, rollout=False)
            return
        try:
            if st.strategy.rolling:
                await self._rolling(st, pod_hash)
            else:
                await self._recreate(st, pod_hash)
        except _Stop:
            return
        await self._write_status(st, rollout=True)

    async def _rolling(self, st: _State, pod_hash: str) -> None:
        if st.new is None:
            await self._create_new_rs(st, pod_hash)
        new = st.new_view
        assert new is not None
        targets = rolling_step(st.d.spec.replicas, st.strategy, new, st.olds)
        if targets:
            await self._scale_all(st, targets)
        elif complete(st.d, st.d.status):
            await self._prune(st)

    async def _recreate(self, st: _State, pod_hash: str) -> None:
        active_olds = [o for o in st.olds if o.replicas > 0]
        if active_olds:
            await self._scale_all(st, {o.name: 0 for o in active_olds})
            return
        if self._old_pods_running(st):
            return  # Recreate: not one new pod while an old one still runs
        if st.new is None:
            await self._create_new_rs(st, pod_hash)
        new = st.new_view
        assert new is not None
        if new.replicas != st.d.spec.replicas:
            await self._scale_all(st, {new.name: st.d.spec.replicas})
        if complete(st.d, st.d.status):
            await self._prune(st)

    def _old_pods_running(self, st: _State) -> bool:
        if any(o.status_replicas > 0 for o in st.olds):
            return True
        old_uids = {st.rses[o.name].metadata.uid for o in st.olds}
        return any((ref := p.metadata.controller_ref()) is not None and ref.uid in old_uids
                   and p.status.phase not in ("Succeeded", "Failed")
                   for p in self.pods.cache.by_index(NAMESPACE_INDEX, st.d.metadata.namespace))

    async def _resize(self, st: _State) -> None:
        """A scaling event (or a paused Deployment): share the new size out; every active
        ReplicaSet is then marked with the size it was given for."""
        desired = st.d.spec.replicas
        targets = scale(desired, st.strategy, st.new_view, st.olds, st.d.status.replicas)
        marks = {name: v.replicas for name, v in st.views.items()
                 if v.replicas > 0 and (v.desired_annotation != desired
                                        or v.max_annotation != desired + st.strategy.surge(desired))}
        await self._scale_all(st, {**marks, **targets})

    async def _scale_all(self, st: _State, targets: dict[str, int]) -> None:
        desired = st.d.spec.replicas
        annotations = {DESIRED_REPLICAS_ANNOTATION: str(desired),
                       MAX_REPLICAS_ANNOTATION: str(desired + st.strategy.surge(desired))}
        for name, replicas in targets.items():
            rs = st.rses[name]
            log.info("deployment %s: scaling replicaset %s from %d to %d", object_key(st.d), name,
                     rs.spec.replicas, replicas)
            await self._patch_rs(rs, {"metadata": {"annotations": annotations},
                                      "spec": {"replicas": replicas}})
            st.views[name] = dataclasses.replace(
                st.views[name], replicas=replicas, desired_annotation=desired,
                max_annotation=int(annotations[MAX_REPLICAS_ANNOTATION]))

    async def _patch_rs(self, rs: ReplicaSet, patch: dict[str, Any]) -> None:
        patch = copy.deepcopy(patch)
        meta = patch.setdefault("metadata", {})
        meta.update(uid=rs.metadata.uid, resourceVersion=rs.metadata.resource_version)
        path = resource_path("apps/v1", "replicasets", rs.metadata.namespace, rs.metadata.name)
        try:
            await self.client.patch(path, patch)
        except ApiError as exc:
            if exc.code in (404, 409):
                raise RetryError(f"replicaset {object_key(rs)} changed since the cache saw it") from exc
            raise

    async def _set_revision(self, st: _State, revision: int) -> None:
        """The Deployment carries the revision of its new ReplicaSet (SetDeploymentRevision)."""
        if st.d.metadata.annotations.get(REVISION_ANNOTATION) == str(revision):
            return
        path = resource_path("apps/v1", "deployments", st.d.metadata.namespace, st.d.metadata.name)
        await self.client.patch(path, {"metadata": {"uid": st.d.metadata.uid,
                                                    "annotations": {REVISION_ANNOTATION: str(revision)}}})

    async def _sync_new_rs(self, st: _State) -> None:
        """The existing new ReplicaSet: a revision above every old one (a rollback makes an
        old ReplicaSet new again), the Deployment's annotations and minReadySeconds."""
        assert st.new is not None
        rs, view = st.rses[st.new], st.views[st.new]
        revision = max((o.revision for o in st.olds), default=0) + 1
        annotations = {k: v for k, v in st.d.metadata.annotations.items()
                       if k not in SKIP_ANNOTATIONS and rs.metadata.annotations.get(k) != v}
        if view.revision < revision:
            annotations[REVISION_ANNOTATION] = str(revision)
        else:
            revision = view.revision
        patch: dict[str, Any] = {}
        if annotations:
            patch["metadata"] = {"annotations": annotations}
        if rs.spec.min_ready_seconds != st.d.spec.min_ready_seconds:
            patch["spec"] = {"minReadySeconds": st.d.spec.min_ready_seconds}
        if patch:
            await self._patch_rs(rs, patch)
            st.views[st.new] = dataclasses.replace(view, revision=revision)
        await self._set_revision(st, revision)
        if has_deadline(st.d) and get_condition(st.conds, PROGRESSING) is None:
            msg = f'Found new replica set "{rs.metadata.name}"'
            st.conds = set_condition(st.conds, condition(PROGRESSING, "True", FOUND_NEW_RS, msg, time.time()))

    async def _create_new_rs(self, st: _State, pod_hash: str) -> None:
        d = st.d
        ns, name = d.metadata.namespace, d.metadata.name
        revision = max((o.revision for o in st.olds), default=0) + 1
        rs_name = f"{name}-{pod_hash}"
        zero = RS(rs_name, 0)
        replicas = new_rs_replicas(d.spec.replicas, st.strategy, [*st.olds, zero], zero)
        surge = st.strategy.surge(d.spec.replicas)
        body = new_replicaset(d, st.template, pod_hash, revision, replicas, surge)
        created = True
        try:
            raw = await self.client.create(resource_path("apps/v1", "replicasets", ns), body)
        except ApiError as exc:
            if namespace_terminating(exc):
                raise _Stop from exc
            if exc.reason != "AlreadyExists":
                if has_deadline(d):
                    st.conds = set_condition(st.conds, condition(
                        PROGRESSING, "False", FAILED_RS_CREATE,
                        f'Failed to create new replica set "{rs_name}": {exc.message}', time.time()))
                    await self._write_status(st, rollout=False)
                raise
            raw = await self._existing_new_rs(st, rs_name)
            created = False
        rs = decode(ReplicaSet, raw)
        st.rses[rs_name], st.views[rs_name], st.new = rs, RS.of(rs), rs_name
        if created:
            log.info("deployment %s: created replicaset %s with %d replicas", object_key(d), rs_name,
                     replicas)
        await self._set_revision(st, RS.of(rs).revision)
        if created and has_deadline(d):
            st.conds = set_condition(st.conds, condition(
                PROGRESSING, "True", NEW_RS_CREATED, f'Created new replica set "{rs_name}"', time.time()))

    async def _existing_new_rs(self, st: _State, rs_name: str) -> dict[str, Any]:
        """The ReplicaSet name is taken: ours with this template (our cache is behind), or
        a hash collision, which bumps collisionCount for a new name on the next sync."""
        d = st.d
        raw = await self.client.get(resource_path("apps/v1", "replicasets", d.metadata.namespace, rs_name))
        refs = (raw.get("metadata") or {}).get("ownerReferences") or []
        ours = any(r.get("controller") and r.get("uid") == d.metadata.uid for r in refs)
        if ours and equal_ignoring_hash((raw.get("spec") or {}).get("template") or {}, st.template):
            return raw
        st.collision_count = (st.collision_count or 0) + 1
        log.warning("deployment %s: hash collision on replicaset %s; collisionCount now %d",
                    object_key(d), rs_name, st.collision_count)
        await self._write_status(st, rollout=False)
        raise RetryError(f"replicaset {rs_name} exists with another template (hash collision)")

    async def _prune(self, st: _State) -> None:
        for name in prunable(st.olds, st.d.spec.revision_history_limit):
            rs = st.rses[name]
            log.info("deployment %s: deleting old replicaset %s (revisionHistoryLimit %d)",
                     object_key(st.d), name, st.d.spec.revision_history_limit)
            try:
                pre = {"uid": rs.metadata.uid, "resourceVersion": rs.metadata.resource_version}
                await self.client.delete(resource_path("apps/v1", "replicasets", rs.metadata.namespace, name),
                                         body={"preconditions": pre})
            except ApiError as exc:
                if exc.code not in (404, 409):
                    raise

    async def _write_status(self, st: _State, *, rollout: bool) -> None:
        now = time.time()
        views = list(st.views.values())
        recheck = None
        if rollout:
            result = rollout_status(st.d, st.strategy, views, st.new_view, st.conds, st.collision_count, now)
            status, recheck = result.status, result.recheck_after
        else:
            status = calculate_status(st.d, st.strategy, views, st.new_view, st.conds, st.collision_count,
                                      now)
        key = object_key(st.d)
        if status == st.d.status:
            if recheck is not None:
                self.queue.add_after(key, recheck)
            return
        path = resource_path("apps/v1", "deployments", st.d.metadata.namespace, st.d.metadata.name, "status")
        try:
            await self.client.patch(path, {"metadata": {"uid": st.d.metadata.uid},
                                           "status": status_json(status)})
        except ApiError as exc:
            if exc.code != 404:
                raise
