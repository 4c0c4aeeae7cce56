"""`netplane ctl apply`: kubectl's client-side apply, one object at a time.

Absent objects are created carrying the last-applied-configuration annotation; present
ones get the three-way patch (netplane.ctl.threeway) between that annotation, the new
configuration and the live object — strategic for the kinds whose patch metadata we
know, JSON merge for the rest — or nothing, and the line says which, as kubectl's does.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from netplane.client.rest import ApiClient, ApiError, ResourceRef, resource_path
from netplane.ctl.errors import CtlError, api_error_text
from netplane.ctl.manifests import Manifest
from netplane.ctl.printers import qualified_kind
from netplane.ctl.resources import Resolver, ResourceError, group_of
from netplane.ctl.threeway import (
    LAST_APPLIED,
    PatchError,
    PatchSchema,
    last_applied,
    three_way_patch,
    with_last_applied,
)

# (API group, kind) → the kind's patch metadata, or None for "unknown: use a merge patch".
SchemaFor = Callable[[str, str], PatchSchema | None]

FIELD_MANAGER = "netplane-ctl-client-side-apply"
_DRY_RUN_SUFFIX = {"none": "", "client": " (dry run)", "server": " (server dry run)"}


@dataclass(frozen=True)
class Scope:
    """Where objects without a namespace go, and whether the user chose it with -n."""

    namespace: str
    explicit: bool = False


@dataclass(frozen=True)
class Located:
    """A manifest's object with its resource and namespace settled."""

    ref: ResourceRef
    namespace: str | None
    config: dict[str, Any]
    manifest: Manifest

    @property
    def label(self) -> str:
        return f"{qualified_kind(self.ref)}/{self.manifest.name}"

    def path(self, *, named: bool = True) -> str:
        return resource_path(self.ref.group_version, self.ref.plural, self.namespace,
                             self.manifest.name if named else None)


def locate(resolver: Resolver, m: Manifest, scope: Scope) -> Located:
    """The object's resource and namespace, as kubectl settles them: a namespaced object
    without one goes to the scope's, and one that names another than -n is an error."""
    try:
        ref = resolver.for_object(m.obj["apiVersion"], m.obj["kind"])
    except ResourceError as exc:
        raise CtlError(f"{m.source}: {exc}") from None
    config = m.obj
    namespace: str | None = None
    if ref.namespaced:
        namespace = m.namespace or scope.namespace
        if scope.explicit and m.namespace and m.namespace != scope.namespace:
            raise CtlError(f'{m.source}: the namespace from the object ("{m.namespace}") does not '
                           f'match --namespace "{scope.namespace}"; pass --namespace={m.namespace}')
        if not m.namespace:
            config = {**m.obj, "metadata": {**m.obj["metadata"], "namespace": namespace}}
    return Located(ref, namespace, config, m)


def _error(action: str, obj: Located, exc: ApiError) -> CtlError:
    return CtlError(f"error when {action} {obj.label} ({obj.manifest.source}): {api_error_text(exc)}")


async def apply_one(api: ApiClient, obj: Located, schema_for: SchemaFor, *, dry_run: str = "none") -> str:
    """Creates or patches one object; kubectl's line for it (`service/web configured`)."""
    suffix = _DRY_RUN_SUFFIX[dry_run]
    params: dict[str, Any] = {"fieldManager": FIELD_MANAGER}
    if dry_run == "server":
        params["dryRun"] = "All"
    modified = with_last_applied(obj.config)
    try:
        current = await api.get(obj.path())
    except ApiError as exc:
        if exc.code != 404:
            raise _error("retrieving current configuration of", obj, exc) from None
        if dry_run != "client":
            try:
                await api.create(obj.path(named=False), modified, params)
            except ApiError as exc2:
                raise _error("creating", obj, exc2) from None
        return f"{obj.label} created{suffix}"
    original = last_applied(current)
    if original is None:
        # kubectl's warning: without the annotation, fields dropped from the configuration
        # cannot be told from fields other writers set, so this apply deletes nothing.
        print(f"Warning: {obj.label} is missing the {LAST_APPLIED} annotation, which apply needs "
              "to know what to remove; it is being added now (create objects with apply).",
              file=sys.stderr)
    schema = schema_for(group_of(obj.ref), obj.ref.kind)
    try:
        patch = three_way_patch(original, modified, current, schema)
    except PatchError as exc:
        raise CtlError(f"{obj.manifest.source}: {obj.label}: {exc}") from None
    if not patch:
        return f"{obj.label} unchanged{suffix}"
    if dry_run != "client":
        try:
            await api.patch(obj.path(), patch, "strategic" if schema is not None else "merge", params)
        except ApiError as exc:
            raise _error("patching", obj, exc) from None
    return f"{obj.label} configured{suffix}"
