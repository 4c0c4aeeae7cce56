"""Generic object storage with Kubernetes semantics, over any `Store`.

What Kubernetes' genericregistry.Store does: naming, uid and timestamps,
defaulting and validation, optimistic concurrency on resourceVersion, no-op
update detection, finalizers and graceful deletion, paged consistent lists.
Kind-specific hooks live in `strategies`, `services` and `namespaces`.
"""

from __future__ import annotations

import base64
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from control.apiserver import errors
from control.apiserver.codec import decode_kv, encode, encode_kv, json_copy
from control.apiserver.errors import ApiError
from control.apiserver.resources import NAMESPACE, POD, ResourceInfo
from control.apiserver.selection import ObjectFilter
from control.apiserver.services import ServiceAllocations
from control.apiserver.strategies import (
    deletion_finalizers,
    now_rfc3339,
    prepare_for_create,
    prepare_for_update,
)
from control.store import (
    CompactedError,
    ConflictError,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    ListResult,
    Store,
)
from netplane.model.defaults import apply_defaults
from netplane.model.validation import summarize, validate, validate_update

Mutation = Callable[[dict[str, Any]], Awaitable[dict[str, Any]] | dict[str, Any]]

# generateName suffixes use Kubernetes' alphabet (no vowels, no look-alikes).
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_PROTECTED_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
_MAX_UPDATE_RETRIES = 16


@dataclass
class ListPage:
    items: list[dict[str, Any]]
    resource_version: int
    continue_token: str
    remaining: int | None
    # With `raw=True` and no filter: the items as JSON (see codec.encode_kv), not dicts.
    raw: list[bytes] | None = None


def _encode_continue(revision: int, key: str) -> str:
    raw = orjson.dumps({"v": "meta.k8s.io/v1", "rv": revision, "start": key})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_continue(token: str, prefix: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = orjson.loads(raw)
        revision, start = int(data["rv"]), str(data["start"])
    except (ValueError, KeyError, TypeError) as exc:
        raise errors.bad_request(f"continue key is not valid: {exc}") from exc
    if not start.startswith(prefix):
        raise errors.bad_request("continue key is not valid: it belongs to another list")
    return revision, start


def _raw_page(page: ListResult, revision: int) -> ListPage:
    token = _encode_continue(revision, page.items[-1].key) if page.more and page.items else ""
    return ListPage([], revision, token, page.remaining if token else None,
                    raw=[encode_kv(kv) for kv in page.items])


class Registry:
    """CRUD for every kind, as the REST handlers need it."""

    def __init__(self, store: Store, services: ServiceAllocations) -> None:
        self.store = store
        self.services = services

    # -- reads ---------------------------------------------------------------------------

    async def get(self, res: ResourceInfo, ns: str | None, name: str) -> dict[str, Any]:
        kv = await self.store.get(res.key(ns, name))
        if kv is None:
            raise errors.not_found(res.plural, res.group, name)
        return decode_kv(kv)

    async def list(
        self,
        res: ResourceInfo,
        ns: str | None,
        flt: ObjectFilter,
        *,
        limit: int = 0,
        continue_token: str = "",
        resource_version: str = "",
        resource_version_match: str = "",
        raw: bool = False,
    ) -> ListPage:
        prefix = res.namespace_prefix(ns)
        raw = raw and flt.everything
        revision, start = 0, ""
        if continue_token:
            revision, start = _decode_continue(continue_token, prefix)
        elif resource_version and resource_version_match == "Exact":
            revision = _parse_rv(resource_version)
        items: list[dict[str, Any]] = []
        # With a filter, fetch in larger pages: most rows may not match.
        page_size = 0 if not limit else (limit if flt.everything else max(limit, 500))
        while True:
            try:
                page = await self.store.list(prefix, revision, page_size, start)
            except CompactedError as exc:
                if continue_token:
                    raise errors.expired(
                        "The provided continue parameter is too old to display a consistent "
                        "list result. You can start a new list without the continue "
                        "parameter.") from exc
                raise errors.expired(f"too old resource version: {revision} "
                                     f"({exc.compacted})") from exc
            except FutureRevisionError as exc:
                raise ApiError(504, "Timeout", f"Too large resource version: {revision}, "
                               f"current: {exc.current}") from exc
            revision = page.revision
            if raw:
                return _raw_page(page, revision)
            for i, kv in enumerate(page.items):
                obj = decode_kv(kv)
                if not flt.matches(obj):
                    continue
                items.append(obj)
                if limit and len(items) >= limit:
                    more = page.more or i + 1 < len(page.items)
                    token = _encode_continue(revision, kv.key) if more else ""
                    remaining = None
                    if more and flt.everything:
                        remaining = page.remaining + (len(page.items) - i - 1)
                    return ListPage(items, revision, token, remaining)
            if not page.more or not page.items:
                return ListPage(items, revision, "", None)
            start = page.items[-1].key

    # -- create --------------------------------------------------------------------------

    async def create(
        self, res: ResourceInfo, ns: str | None, obj: dict[str, Any], *, dry_run: bool = False
    ) -> dict[str, Any]:
        meta = _check_body(res, obj, ns)
        if res.namespaced:
            await self._check_namespace_open(ns or "")
        generated = not meta.get("name") and bool(meta.get("generateName"))
        for _attempt in range(8 if generated else 1):
            if generated:
                meta["name"] = meta["generateName"] + "".join(
                    random.choices(_NAME_ALPHABET, k=5))
            try:
                return await self._create_once(res, ns, json_copy(obj), dry_run)
            except ApiError as exc:
                if not (generated and exc.reason == "AlreadyExists"):
                    raise
        raise ApiError(500, "ServerTimeout",
                       f"could not generate a unique name from {meta['generateName']!r}")

    async def _create_once(
        self, res: ResourceInfo, ns: str | None, obj: dict[str, Any], dry_run: bool
    ) -> dict[str, Any]:
        meta = obj["metadata"]
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        prepare_for_create(res, obj)
        apply_defaults(obj)
        _raise_invalid(res, meta.get("name", ""), validate(obj))
        release = await self.services.on_create(res, obj, dry_run)
        if dry_run:
            await release()
            return obj
        try:
            revision = await self.store.create(res.key(ns, meta["name"]), encode(obj))
        except KeyExistsError as exc:
            await release()
            raise errors.already_exists(res.plural, res.group, meta["name"]) from exc
        except BaseException:
            await release()
            raise
        meta["resourceVersion"] = str(revision)
        return obj

    async def _check_namespace_open(self, ns: str) -> None:
        kv = await self.store.get(NAMESPACE.key(None, ns))
        if kv is None:
            raise errors.not_found("namespaces", "", ns)
        status = orjson.loads(kv.value).get("status") or {}
        if status.get("phase") == "Terminating":
            raise errors.forbidden(
                f"unable to create new content in namespace {ns} because it is being "
                "terminated", name=ns, kind="namespaces")

    # -- update and patch ----------------------------------------------------------------

    async def update(
        self, res: ResourceInfo, ns: str | None, name: str, new: dict[str, Any], *,
        subresource: str | None = None, dry_run: bool = False,
    ) -> tuple[dict[str, Any], bool]:
        """PUT. Returns the stored object and whether it was created (create-on-update)."""
        meta = _check_body(res, new, ns)
        if meta.get("name") != name:
            raise errors.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the "
                f"URL ({name})")
        precondition = meta.get("resourceVersion") or ""
        try:
            result = await self.guaranteed_update(
                res, ns, name, lambda _old: json_copy(new), precondition=precondition,
                subresource=subresource, dry_run=dry_run)
        except ApiError as exc:
            if exc.code == 404 and res.create_on_update and subresource is None:
                return await self.create(res, ns, new, dry_run=dry_run), True
            raise
        return result, False

    async def guaranteed_update(
        self, res: ResourceInfo, ns: str | None, name: str, mutate: Mutation, *,
        precondition: str = "", subresource: str | None = None, dry_run: bool = False,
        skip_validation: bool = False,
    ) -> dict[str, Any]:
        """Read, mutate, write with the read revision; retried on a conflict unless the
        caller gave a resourceVersion precondition (then a conflict is a 409)."""
        key = res.key(ns, name)
        for _attempt in range(_MAX_UPDATE_RETRIES):
            kv = await self.store.get(key)
            if kv is None:
                raise errors.not_found(res.plural, res.group, name)
            old = decode_kv(kv)
            new = mutate(json_copy(old))
            if not isinstance(new, dict):
                new = await new
            want_rv = precondition or (new.get("metadata") or {}).get("resourceVersion") or ""
            if want_rv and _parse_rv(want_rv) != kv.mod_revision:
                raise errors.conflict(res.plural, res.group, name, errors.STALE_OBJECT)
            _check_uid(res, name, new, old)
            merged = prepare_for_update(res, old, new, subresource)
            self.services.patch_allocated(res, old, merged)
            apply_defaults(merged)
            if not skip_validation:
                _raise_invalid(res, name, validate_update(merged, old))
            meta = merged["metadata"]
            if _finalized(res, merged):
                # The last finalizer is gone from an object being deleted: delete it now.
                try:
                    return await self._delete_now(res, ns, name, kv.mod_revision, merged, dry_run)
                except ApiError as exc:
                    if exc.reason != "Conflict":
                        raise
                    continue  # written meanwhile: mutate the new version (as below)
            body = encode(merged)
            if body == kv.value:
                return old  # No-op: Kubernetes does not write, resourceVersion stays.
            release = await self.services.on_update(res, old, merged, dry_run)
            if dry_run:
                await release(True)
                return merged
            try:
                revision = await self.store.update(key, body, kv.mod_revision)
            except ConflictError:
                # Written meanwhile: mutate the new version. A resourceVersion the caller
                # gave (a precondition, or one a patch sets) fails the check above then;
                # any other patch applies again, as Kubernetes' GuaranteedUpdate does.
                await release(True)
                continue
            except KeyNotFoundError as exc:
                await release(True)
                raise errors.not_found(res.plural, res.group, name) from exc
            await release(False)
            meta["resourceVersion"] = str(revision)
            return merged
        raise errors.conflict(res.plural, res.group, name, "too many concurrent updates")

    # -- delete --------------------------------------------------------------------------

    async def delete(
        self, res: ResourceInfo, ns: str | None, name: str, options: dict[str, Any] | None = None,
        *, dry_run: bool = False,
    ) -> dict[str, Any]:
        options = options or {}
        pre = options.get("preconditions") or {}

        def mark(old: dict[str, Any]) -> dict[str, Any]:
            meta = old["metadata"]
            if pre.get("uid") and pre["uid"] != meta.get("uid"):
                raise errors.conflict(
                    res.plural, res.group, name,
                    f"Precondition failed: UID in precondition: {pre['uid']}, UID in object "
                    f"meta: {meta.get('uid')}")
            if pre.get("resourceVersion") and pre["resourceVersion"] != meta["resourceVersion"]:
                raise errors.conflict(
                    res.plural, res.group, name,
                    f"Precondition failed: ResourceVersion in precondition: "
                    f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                    f"{meta['resourceVersion']}")
            return old

        if res is NAMESPACE and name in _PROTECTED_NAMESPACES:
            raise errors.forbidden(f'namespaces "{name}" is forbidden: this namespace may '
                                   "not be deleted", name=name, kind="namespaces")
        key = res.key(ns, name)
        for _attempt in range(_MAX_UPDATE_RETRIES):
            kv = await self.store.get(key)
            if kv is None:
                raise errors.not_found(res.plural, res.group, name)
            old = mark(decode_kv(kv))
            grace = _grace_period(res, old, options)
            meta = old["metadata"]
            finalizers_changed = False
            # While a grace period runs, a new delete can only shorten it; it does not
            # switch the propagation (Kubernetes' pendingGraceful). Otherwise the request's
            # policy replaces the garbage collector's finalizers, on a second delete too.
            if not _grace_pending(meta, grace):
                current = meta.get("finalizers") or []
                wanted = deletion_finalizers(res, current, options)
                if wanted != current:
                    finalizers_changed = True
                    if wanted:
                        meta["finalizers"] = wanted
                    else:
                        meta.pop("finalizers", None)
            try:
                if res is NAMESPACE or meta.get("finalizers") or grace > 0:
                    return await self._mark_deleting(res, ns, name, kv.mod_revision, old, grace,
                                                     dry_run, force_write=finalizers_changed)
                return await self._delete_now(res, ns, name, kv.mod_revision, old, dry_run)
            except ApiError as exc:
                if exc.reason != "Conflict":
                    raise
        raise errors.conflict(res.plural, res.group, name, "too many concurrent updates")

    async def _mark_deleting(
        self, res: ResourceInfo, ns: str | None, name: str, revision: int,
        obj: dict[str, Any], grace: int, dry_run: bool, *, force_write: bool = False,
    ) -> dict[str, Any]:
        meta = obj["metadata"]
        deadline = datetime.now(UTC) + timedelta(seconds=grace)
        stamp = deadline.strftime("%Y-%m-%dT%H:%M:%SZ")
        current = meta.get("deletionGracePeriodSeconds")
        if (meta.get("deletionTimestamp") and current is not None and current <= grace
                and not force_write):
            return obj  # Already deleting, at least as soon: nothing to do.
        if not meta.get("deletionTimestamp") or grace < (current or 0):
            meta["deletionTimestamp"] = stamp
        meta["deletionGracePeriodSeconds"] = grace
        if res is NAMESPACE:
            obj.setdefault("status", {})["phase"] = "Terminating"
        if dry_run:
            return obj
        try:
            new_rev = await self.store.update(res.key(ns, name), encode(obj), revision)
        except ConflictError:
            raise errors.conflict(res.plural, res.group, name, errors.STALE_OBJECT) from None
        meta["resourceVersion"] = str(new_rev)
        return obj

    async def _delete_now(
        self, res: ResourceInfo, ns: str | None, name: str, revision: int,
        obj: dict[str, Any], dry_run: bool,
    ) -> dict[str, Any]:
        if dry_run:
            return obj
        try:
            deleted = await self.store.delete(res.key(ns, name), revision)
        except ConflictError:
            raise errors.conflict(res.plural, res.group, name, errors.STALE_OBJECT) from None
        except KeyNotFoundError as exc:
            raise errors.not_found(res.plural, res.group, name) from exc
        await self.services.on_delete(res, obj)
        obj["metadata"]["resourceVersion"] = str(deleted.mod_revision)
        return obj

    async def delete_collection(
        self, res: ResourceInfo, ns: str | None, flt: ObjectFilter,
        options: dict[str, Any] | None = None, *, dry_run: bool = False,
    ) -> list[dict[str, Any]]:
        page = await self.list(res, ns, flt)
        out = []
        for obj in page.items:
            meta = obj["metadata"]
            try:
                out.append(await self.delete(res, meta.get("namespace"), meta["name"], options,
                                             dry_run=dry_run))
            except ApiError as exc:
                if exc.code != 404:
                    raise
        return out

    # -- pods/binding --------------------------------------------------------------------

    async def bind(self, ns: str, name: str, binding: dict[str, Any]) -> None:
        target = binding.get("target") or {}
        node = target.get("name")
        if not node or target.get("kind", "Node") != "Node":
            raise errors.invalid("Binding", "", name, f'Binding "{name}" is invalid: '
                                 "target: Required value: a Node name is required",
                                 [{"reason": "FieldValueRequired", "field": "target.name",
                                   "message": "Required value"}])

        def assign(pod: dict[str, Any]) -> dict[str, Any]:
            spec = pod.setdefault("spec", {})
            if pod["metadata"].get("deletionTimestamp"):
                raise errors.conflict("pods", "", name, f"pod {name} is being deleted, cannot "
                                      "be assigned to a host")
            if spec.get("nodeName"):
                raise errors.conflict("pods", "", name, f'pod {name} is already assigned to '
                                      f'node "{spec["nodeName"]}"')
            spec["nodeName"] = node
            status = pod.setdefault("status", {})
            conds = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
            conds.append({"type": "PodScheduled", "status": "True",
                          "lastTransitionTime": now_rfc3339()})
            status["conditions"] = conds
            return pod

        # Binding writes spec.nodeName, which a Pod update may not: it goes around
        # update validation, as Kubernetes' BindingREST does.
        await self._bind_write(ns, name, assign)

    async def _bind_write(self, ns: str, name: str, assign: Callable[[dict], dict]) -> None:
        key = POD.key(ns, name)
        for _attempt in range(_MAX_UPDATE_RETRIES):
            kv = await self.store.get(key)
            if kv is None:
                raise errors.not_found("pods", "", name)
            pod = assign(decode_kv(kv))
            try:
                await self.store.update(key, encode(pod), kv.mod_revision)
                return
            except ConflictError:
                continue
        raise errors.conflict("pods", "", name, "too many concurrent updates")


def _parse_rv(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise errors.bad_request(f"invalid resource version: {text!r}") from None
    if value < 0:
        raise errors.bad_request(f"invalid resource version: {text!r}")
    return value


def _check_body(res: ResourceInfo, obj: Any, ns: str | None) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise errors.bad_request("the request body must be a JSON object")
    kind, api_version = obj.get("kind"), obj.get("apiVersion")
    if (kind and kind != res.kind) or (api_version and api_version != res.api_version):
        raise errors.bad_request(
            f"the API version in the data ({api_version}) does not match the expected API "
            f"version ({res.api_version})" if api_version != res.api_version else
            f"the kind in the data ({kind}) does not match the expected kind ({res.kind})")
    obj["kind"], obj["apiVersion"] = res.kind, res.api_version
    meta = obj.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise errors.bad_request("metadata must be an object")
    if res.namespaced:
        if meta.get("namespace") and meta["namespace"] != ns:
            raise errors.bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request")
        meta["namespace"] = ns
    else:
        meta.pop("namespace", None)
    if not meta.get("name") and not meta.get("generateName"):
        raise errors.invalid(res.kind, res.group, "",
                             f"{res.kind} \"\" is invalid: metadata.name: Required value: "
                             "name or generateName is required",
                             [{"reason": "FieldValueRequired", "field": "metadata.name",
                               "message": "Required value: name or generateName is required"}])
    return meta


def _check_uid(res: ResourceInfo, name: str, new: dict[str, Any], old: dict[str, Any]) -> None:
    uid = (new.get("metadata") or {}).get("uid")
    if uid and uid != old["metadata"].get("uid"):
        raise errors.conflict(res.plural, res.group, name,
                              f"Precondition failed: UID in precondition: {uid}, UID in object "
                              f"meta: {old['metadata'].get('uid')}")


def _raise_invalid(res: ResourceInfo, name: str, errs: list[Any]) -> None:
    if errs:
        causes = [{"reason": e.type, "message": e.message, "field": e.field} for e in errs]
        raise errors.invalid(res.kind, res.group, name, summarize(res.kind, name, errs), causes)


def _finalized(res: ResourceInfo, obj: dict[str, Any]) -> bool:
    """Whether an object being deleted has nothing left holding it: no finalizer (for a
    namespace, no spec finalizer either), and for a pod no grace period still running."""
    meta = obj["metadata"]
    if not meta.get("deletionTimestamp") or meta.get("finalizers"):
        return False
    if res is NAMESPACE:
        return not (obj.get("spec") or {}).get("finalizers")
    return res is not POD or meta.get("deletionGracePeriodSeconds") == 0


def _grace_pending(meta: dict[str, Any], grace: int) -> bool:
    """A graceful deletion is under way and this request does not shorten it."""
    current = meta.get("deletionGracePeriodSeconds")
    return bool(meta.get("deletionTimestamp")) and bool(current) and current <= grace


def _grace_period(res: ResourceInfo, obj: dict[str, Any], options: dict[str, Any]) -> int:
    """Seconds a deletion waits. Only pods on a node get a grace period, as in Kubernetes:
    an unscheduled or finished pod, and every other kind, go at once."""
    requested = options.get("gracePeriodSeconds")
    if res is not POD:
        return 0
    spec = obj.get("spec") or {}
    phase = (obj.get("status") or {}).get("phase")
    if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
        return 0
    if requested is None:
        requested = spec.get("terminationGracePeriodSeconds", 30)
    try:
        return max(0, int(requested))
    except (TypeError, ValueError):
        raise errors.bad_request(f"invalid gracePeriodSeconds: {requested!r}") from None
