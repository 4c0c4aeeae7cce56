"""The garbage collector: an object whose owners are all gone is deleted, and an owner
deleted with propagationPolicy Orphan or Foreground has its dependents released or
deleted first, as Kubernetes' (pkg/controller/garbagecollector). Deleting a Deployment
thus removes its ReplicaSets, and their deletion their Pods.

The informers of the kinds below feed the pure `ownergraph`; a queued uid is decided by
`ownergraph.verdict`. An owner counts as gone only once the apiserver says so: a GET by
name answers 404, or names an object with another uid (the owner was replaced). The
graph only spares that GET when it already shows the owner, so a cache that is merely
behind never costs a live object. Confirmed-absent owner uids are remembered (uids are
never reused), so the hundred pods of a deleted ReplicaSet cost one GET.

An owner being deleted with the `orphan` finalizer loses its references from every
dependent the graph knows, then the finalizer. One with `foregroundDeletion` has its
dependents deleted (in foreground themselves when they have dependents); the finalizer
goes once no dependent whose reference says blockOwnerDeletion is left.

Not done: dependents of kinds not watched here (the apiserver adds the two finalizers only
to these kinds, see control/apiserver/strategies.GARBAGE_COLLECTED_KINDS); Kubernetes'
breaking of foreground cycles (unblocking references when a dependent waits too).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Any

import msgspec

from control.controllers.base import QueueController, RetryError
from control.controllers.informers import InformerSet
from control.controllers.ownergraph import (
    FOREGROUND_FINALIZER,
    ORPHAN_FINALIZER,
    Node,
    OwnerGraph,
    OwnerState,
    group_of,
    owner_state,
    verdict,
)
from netplane.client.rest import ApiClient, ApiError, ResourceRef, resource_path
from netplane.model.meta import OwnerReference

log = logging.getLogger(__name__)

# The collections whose objects are owners or dependents: (apiVersion, kind, path).
WATCHED: tuple[tuple[str, str, str], ...] = (
    ("v1", "Pod", "/api/v1/pods"),
    ("v1", "Service", "/api/v1/services"),
    ("v1", "Node", "/api/v1/nodes"),
    ("apps/v1", "ReplicaSet", "/apis/apps/v1/replicasets"),
    ("apps/v1", "Deployment", "/apis/apps/v1/deployments"),
    ("discovery.k8s.io/v1", "EndpointSlice", "/apis/discovery.k8s.io/v1/endpointslices"),
)
_ABSENT_CACHE_SIZE = 1000
_DISCOVERY_REFRESH = 30.0


class GarbageCollector(QueueController):
    name = "garbagecollector"

    def __init__(self, client: ApiClient, informers: InformerSet, **options: Any) -> None:
        super().__init__(client, informers, **options)
        self.graph = OwnerGraph()
        self._absent: OrderedDict[str, None] = OrderedDict()  # owner uids confirmed gone
        self._resources: dict[tuple[str, str], ResourceRef] = {}
        self._discovered_at = -_DISCOVERY_REFRESH
        self._discovery = asyncio.Lock()
        self._unresolvable: set[tuple[str, str]] = set()
        for api_version, kind, path in WATCHED:
            informer = informers.get(path)
            informer.add_handler(lambda o, v=api_version, k=kind: self._seen(v, k, o),
                                 lambda _old, o, v=api_version, k=kind: self._seen(v, k, o),
                                 self._gone)

    # --- the graph -------------------------------------------------------------------

    def _seen(self, api_version: str, kind: str, obj: Any) -> None:
        meta = obj.metadata
        node = Node(meta.uid, api_version, kind, meta.namespace, meta.name, tuple(meta.owner_references),
                    meta.resource_version, bool(meta.deletion_timestamp), tuple(meta.finalizers))
        for uid in self.graph.upsert(node):
            self.queue.add(uid)

    def _gone(self, obj: Any) -> None:
        for uid in self.graph.remove(obj.metadata.uid):
            self.queue.add(uid)

    # --- deciding --------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        node = self.graph.get(key)
        if node is None:
            return
        if node.orphaning:
            await self._orphan_dependents(node)
            return
        if node.deleting_dependents:
            await self._delete_dependents(node)
            return
        if not node.owners or node.deleting:
            return  # an object on its way out is not collected again
        states = [(ref, await self._owner_state(node, ref)) for ref in node.owners]
        decision = verdict(states, has_dependents=bool(self.graph.dependents(node.uid)))
        if decision.delete:
            await self._delete(node, decision.foreground)
        elif decision.keep_owners is not None:
            await self._drop_owners(node, decision.keep_owners)

    async def _owner_state(self, node: Node, ref: OwnerReference) -> OwnerState:
        if ref.uid in self._absent:
            return OwnerState.ABSENT
        resource = await self._resource(ref)
        if resource is None:
            return OwnerState.UNKNOWN
        if resource.namespaced and not node.namespace:
            log.warning("%s %s names a namespaced owner %s/%s; ignoring that reference",
                        node.kind, node.name, ref.kind, ref.name)
            return OwnerState.UNKNOWN
        in_graph = self.graph.owner_in_graph(node, ref, resource.namespaced)
        if in_graph is not None:
            return in_graph
        namespace = node.namespace if resource.namespaced else None
        try:
            owner = await self.client.get(resource_path(resource.api_version, resource.plural, namespace,
                                                        ref.name))
        except ApiError as exc:
            if exc.code != 404:
                raise
            owner = None
        meta = (owner or {}).get("metadata") or {}
        if meta.get("uid") == ref.uid:
            return owner_state(meta)
        self._absent[ref.uid] = None
        if len(self._absent) > _ABSENT_CACHE_SIZE:
            self._absent.popitem(last=False)
        return OwnerState.ABSENT

    async def _resource(self, ref: OwnerReference) -> ResourceRef | None:
        """The served resource of an owner's kind, from discovery (refreshed when a kind is
        missing, at most every 30 s); None, logged once, for a kind nobody serves."""
        key = (group_of(ref.api_version), ref.kind)
        if key not in self._resources:
            # One discovery at a time: the other workers wait for its answer rather than
            # take a kind not looked up yet for one nobody serves.
            async with self._discovery:
                stale = time.monotonic() - self._discovered_at >= _DISCOVERY_REFRESH
                if key not in self._resources and stale:
                    found = await self.client.discover()
                    self._discovered_at = time.monotonic()
                    self._resources = {(group_of(r.group_version), r.kind): r for r in found.values()}
        resource = self._resources.get(key)
        if resource is None and key not in self._unresolvable:
            self._unresolvable.add(key)
            log.warning("owner kind %s of group %r is not served; dependents are never collected on "
                        "its account", ref.kind, key[0])
        return resource

    # --- acting ----------------------------------------------------------------------------

    def _path(self, node: Node) -> str:
        plural = next(path.rpartition("/")[2] for v, k, path in WATCHED if k == node.kind)
        return resource_path(node.api_version, plural, node.namespace or None, node.name)

    async def _delete(self, node: Node, foreground: bool) -> None:
        # Kubernetes: in foreground when an owner waits for this object's own dependents;
        # otherwise as the object's finalizers ask (a plain delete would strip them).
        if foreground or (FOREGROUND_FINALIZER in node.finalizers
                          and ORPHAN_FINALIZER not in node.finalizers):
            policy = "Foreground"
        elif ORPHAN_FINALIZER in node.finalizers:
            policy = "Orphan"
        else:
            policy = "Background"
        log.info("deleting %s %s (%s): its owner(s) %s are gone or being deleted", node.kind,
                 _label(node), policy, ", ".join(f"{r.kind}/{r.name}" for r in node.owners))
        # The verdict came from the cache: delete the object only as the cache saw it. Its
        # owners may have changed since (an Orphan deletion releasing it, an adoption); a
        # 409 then means deciding again once the informer has caught up.
        preconditions = {"uid": node.uid, "resourceVersion": node.resource_version}
        try:
            await self.client.delete(self._path(node), body={
                "propagationPolicy": policy, "preconditions": preconditions})
        except ApiError as exc:
            if exc.code == 409:
                raise RetryError(f"{node.kind} {_label(node)} changed since the cache saw it") from exc
            if exc.code != 404:
                raise

    async def _orphan_dependents(self, owner: Node) -> None:
        """propagationPolicy=Orphan: every dependent loses its reference to the owner, then
        the owner its `orphan` finalizer (and goes, unless other finalizers hold it)."""
        released = 0
        for uid in sorted(self.graph.dependents(owner.uid)):
            dep = self.graph.get(uid)
            if dep is None:
                continue
            # Strategic merge by uid: only that reference goes, whatever else changed.
            patch = {"metadata": {"uid": dep.uid,
                                  "ownerReferences": [{"$patch": "delete", "uid": owner.uid}]}}
            try:
                await self.client.patch(self._path(dep), patch, patch_type="strategic")
                released += 1
            except ApiError as exc:
                if exc.code not in (404, 409):  # gone, or a namesake: not a dependent any more
                    raise
        log.info("orphaned %d dependent(s) of %s %s", released, owner.kind, _label(owner))
        await self._remove_finalizer(owner, ORPHAN_FINALIZER)

    async def _delete_dependents(self, owner: Node) -> None:
        """propagationPolicy=Foreground: the dependents are deleted; the owner's finalizer
        goes once none whose reference blocks the owner's deletion is left."""
        if not self.graph.blocking_dependents(owner.uid):
            await self._remove_finalizer(owner, FOREGROUND_FINALIZER)
            return
        # Each dependent decides on its own (its owner now waits for it); their removal
        # from the graph brings the owner back here.
        for uid in self.graph.dependents(owner.uid):
            dep = self.graph.get(uid)
            if dep is not None and not dep.deleting:
                self.queue.add(uid)

    async def _remove_finalizer(self, node: Node, finalizer: str) -> None:
        patch = {"metadata": {"uid": node.uid, "$deleteFromPrimitiveList/finalizers": [finalizer]}}
        try:
            await self.client.patch(self._path(node), patch, patch_type="strategic")
        except ApiError as exc:
            if exc.code not in (404, 409):  # gone already, or a namesake
                raise

    async def _drop_owners(self, node: Node, keep: tuple[OwnerReference, ...]) -> None:
        """Some owners are gone, others not: only the dangling references go."""
        patch = {"metadata": {"uid": node.uid, "resourceVersion": node.resource_version,
                              "ownerReferences": [msgspec.to_builtins(r) for r in keep]}}
        try:
            await self.client.patch(self._path(node), patch)
        except ApiError as exc:
            if exc.code == 409:  # changed since the cache saw it: decide again on a fresh view
                raise RetryError(f"{node.kind} {node.name} changed while dropping its owners") from exc
            if exc.code != 404:
                raise


def _label(node: Node) -> str:
    return f"{node.namespace}/{node.name}" if node.namespace else node.name
