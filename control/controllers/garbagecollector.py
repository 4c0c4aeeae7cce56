"""The garbage collector: an object whose every owner is gone is deleted (background
propagation), so deleting a Deployment removes its ReplicaSets, then their Pods.

Owners are looked up by kind, namespace and name in the informer caches and must have
the referenced uid; before deleting, the owner's absence is confirmed with a GET, so a
cache that is merely behind never costs a live object.
"""

from __future__ import annotations

import logging
from typing import Any

from control.controllers.base import QueueController
from control.controllers.informers import InformerSet
from netplane.client.rest import ApiClient, ApiError, resource_path

log = logging.getLogger(__name__)

# kind -> (api version, plural, informer path). Dependents are watched; owners looked up.
_KINDS: dict[str, tuple[str, str, str]] = {
    "Pod": ("v1", "pods", "/api/v1/pods"),
    "ReplicaSet": ("apps/v1", "replicasets", "/apis/apps/v1/replicasets"),
    "Deployment": ("apps/v1", "deployments", "/apis/apps/v1/deployments"),
    "Service": ("v1", "services", "/api/v1/services"),
    "EndpointSlice": ("discovery.k8s.io/v1", "endpointslices", "/apis/discovery.k8s.io/v1/endpointslices"),
}
_DEPENDENTS = ("Pod", "ReplicaSet", "EndpointSlice")


def _meta(obj: Any) -> Any:
    return obj.metadata


class GarbageCollector(QueueController):
    name = "garbagecollector"

    def __init__(self, client: ApiClient, informers: InformerSet, **options: Any) -> None:
        super().__init__(client, informers, **options)
        self.caches = {kind: informers.get(path) for kind, (_v, _p, path) in _KINDS.items()}
        for kind in _DEPENDENTS:
            self.caches[kind].add_handler(lambda o, k=kind: self._check(k, o),
                                          lambda _old, o, k=kind: self._check(k, o), None)
        for kind, informer in self.caches.items():
            informer.add_handler(None, None, lambda o, k=kind: self._owner_gone(k, o))

    def _check(self, kind: str, obj: Any) -> None:
        meta = _meta(obj)
        if meta.owner_references and not meta.deletion_timestamp:
            self.queue.add(f"{kind}|{meta.namespace}/{meta.name}")

    def _owner_gone(self, kind: str, owner: Any) -> None:
        uid = _meta(owner).uid
        for dep_kind in _DEPENDENTS:
            for obj in self.caches[dep_kind].cache.list():
                if any(ref.uid == uid for ref in _meta(obj).owner_references):
                    self._check(dep_kind, obj)

    def _owner_live_in_cache(self, namespace: str, ref: Any) -> bool:
        informer = self.caches.get(ref.kind)
        if informer is None:
            return True  # a kind we do not watch: never collect on its account
        owner = informer.cache.get(f"{namespace}/{ref.name}") or informer.cache.get(ref.name)
        return owner is not None and _meta(owner).uid == ref.uid

    async def _owner_exists(self, namespace: str, ref: Any) -> bool:
        version, plural, _path = _KINDS[ref.kind]
        try:
            owner = await self.client.get(resource_path(version, plural, namespace, ref.name))
        except ApiError as exc:
            if exc.code == 404:
                return False
            raise
        return bool(owner["metadata"].get("uid") == ref.uid)

    async def sync(self, key: str) -> None:
        kind, _, obj_key = key.partition("|")
        obj = self.caches[kind].cache.get(obj_key)
        if obj is None:
            return
        meta = _meta(obj)
        refs = meta.owner_references
        if not refs or meta.deletion_timestamp:
            return
        if any(self._owner_live_in_cache(meta.namespace, ref) for ref in refs):
            return
        for ref in refs:
            if await self._owner_exists(meta.namespace, ref):
                return
        version, plural, _path = _KINDS[kind]
        log.info("deleting %s %s: its owners %s are gone", kind, obj_key,
                 ", ".join(f"{r.kind}/{r.name}" for r in refs))
        try:
            await self.client.delete(resource_path(version, plural, meta.namespace, meta.name),
                                     body={"propagationPolicy": "Background",
                                           "preconditions": {"uid": meta.uid}})
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise
