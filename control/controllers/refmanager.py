"""Kubernetes' ControllerRefManager as one async step shared by the ReplicaSet (pods) and
Deployment (ReplicaSets) controllers: adopt matching orphans, release owned objects that
stopped matching, and return what the owner controls. The decisions are the pure
`podcontrol.claim`; this module writes them."""

from __future__ import annotations

from typing import Any

from control.controllers.base import RetryError
from control.controllers.podcontrol import adoption_patch, claim, controller_ref, release_patch
from netplane.client.rest import ApiClient, ApiError, resource_path
from netplane.model.selectors import Selector


def namespace_terminating(exc: BaseException) -> bool:
    """A create refused because the namespace is being deleted: Kubernetes' controllers
    drop such an error instead of retrying (HasStatusCause NamespaceTerminating)."""
    if not isinstance(exc, ApiError) or exc.code != 403:
        return False
    details = exc.status.get("details") or {}
    causes = {c.get("type") or c.get("reason") for c in details.get("causes") or []}
    return "NamespaceTerminating" in causes or (details.get("kind") == "namespaces"
                                                 and "being terminated" in exc.message)


async def get_or_none(client: ApiClient, path: str) -> dict[str, Any] | None:
    try:
        return await client.get(path)
    except ApiError as exc:
        if exc.code == 404:
            return None
        raise


async def claim_objects(client: ApiClient, owner: Any, owner_ref: tuple[str, str, str], selector: Selector,
                        objects: list[Any], api_version: str, plural: str) -> list[Any]:
    """The objects (`plural` in `api_version`, same namespace as `owner`) that `owner`
    (`owner_ref`: its apiVersion, kind, plural) controls after adopting and releasing.
    Writes are guarded by uid and resourceVersion; a conflict is a RetryError (the
    cache was behind: sync again on the next event)."""
    plan = claim(owner, selector, objects)
    meta = owner.metadata
    owner_api_version, kind, owner_plural = owner_ref

    async def patch(obj: Any, body: dict[str, Any]) -> bool:
        path = resource_path(api_version, plural, obj.metadata.namespace, obj.metadata.name)
        try:
            await client.patch(path, body)
        except ApiError as exc:
            if exc.code == 404:
                return False
            if exc.code == 409:
                raise RetryError(f"{plural} {obj.metadata.namespace}/{obj.metadata.name} changed "
                                 "while claiming it") from exc
            raise
        return True

    for obj in plan.release:
        await patch(obj, release_patch(obj, meta.uid))
    owned = list(plan.owned)
    if not plan.adopt:
        return owned
    # RecheckDeletionTimestamp: adopt only for an owner that still exists with this uid and
    # is not being deleted; the cache may be behind, and an object adopted by a deleted
    # owner would be taken by the garbage collector.
    path = resource_path(owner_api_version, owner_plural, meta.namespace, meta.name)
    fresh = await get_or_none(client, path)
    fresh_meta = (fresh or {}).get("metadata") or {}
    if fresh_meta.get("uid") != meta.uid or fresh_meta.get("deletionTimestamp"):
        return owned
    ref = controller_ref(owner_api_version, kind, meta.name, meta.uid)
    for obj in plan.adopt:
        if await patch(obj, adoption_patch(obj, ref)):
            owned.append(obj)
    return owned


class TemplateMemo:
    """The raw pod template of each owner (`spec.template` of ReplicaSets, Deployments),
    read from the apiserver once per generation: the typed caches drop fields the model
    does not know, and pods must get (and the pod-template-hash must cover) the template
    exactly as it was written."""

    def __init__(self, client: ApiClient, api_version: str, plural: str) -> None:
        self.client = client
        self.api_version = api_version
        self.plural = plural
        self._memo: dict[str, tuple[str, int, dict[str, Any]]] = {}

    def forget(self, key: str) -> None:
        self._memo.pop(key, None)

    async def fetch(self, obj: Any) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
        """(template, the object as just read or None if the memo served), or None if the
        object is gone or replaced by a namesake (its own events follow)."""
        meta = obj.metadata
        key = f"{meta.namespace}/{meta.name}"
        memo = self._memo.get(key)
        if memo is not None and memo[0] == meta.uid and memo[1] >= meta.generation:
            return memo[2], None
        raw = await get_or_none(self.client, resource_path(self.api_version, self.plural, meta.namespace,
                                                           meta.name))
        if raw is None or raw["metadata"].get("uid") != meta.uid:
            return None
        template = (raw.get("spec") or {}).get("template") or {}
        self._memo[key] = (meta.uid, int(raw["metadata"].get("generation") or 0), template)
        return template, raw
