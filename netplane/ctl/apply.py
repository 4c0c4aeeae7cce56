"""`netplane ctl apply` and `delete -f`: objects from manifests, one API call each."""

from __future__ import annotations

from typing import Any

from netplane.client.rest import ApiClient, ApiError, ResourceRef, resource_path
from netplane.ctl.threeway import last_applied, three_way_patch, with_last_applied


class ApplyError(Exception):
    """One object could not be applied; the message names it."""


def _ref(refs: dict[str, ResourceRef], obj: dict[str, Any]) -> ResourceRef:
    ref = refs.get(str(obj["kind"]).lower())
    if ref is None or ref.group_version != obj["apiVersion"]:
        raise ApplyError(f'no kind "{obj["kind"]}" in version "{obj["apiVersion"]}" on this server')
    return ref


def _label(ref: ResourceRef, name: str) -> str:
    group = ref.group_version.split("/")[0] if "/" in ref.group_version else ""
    return f"{ref.kind.lower()}{'.' + group if group else ''}/{name}"


def object_path(ref: ResourceRef, obj: dict[str, Any], default_ns: str, *, named: bool = True) -> str:
    meta = obj.get("metadata") or {}
    ns = (meta.get("namespace") or default_ns) if ref.namespaced else None
    return resource_path(ref.group_version, ref.plural, ns, meta.get("name") if named else None)


async def apply_one(api: ApiClient, refs: dict[str, ResourceRef], obj: dict[str, Any],
                    default_ns: str) -> str:
    """Creates or three-way-patches `obj`; returns kubectl's line ("service/web created")."""
    ref = _ref(refs, obj)
    modified = with_last_applied(obj)
    name = obj["metadata"]["name"]
    try:
        current = await api.get(object_path(ref, obj, default_ns))
    except ApiError as exc:
        if exc.code != 404:
            raise ApplyError(f"{_label(ref, name)}: {exc.message}") from exc
        try:
            await api.create(object_path(ref, obj, default_ns, named=False), modified)
        except ApiError as exc2:
            raise ApplyError(f"{_label(ref, name)}: {exc2.message}") from exc2
        return f"{_label(ref, name)} created"
    patch = three_way_patch(last_applied(current), modified, current)
    if not patch:
        return f"{_label(ref, name)} unchanged"
    try:
        await api.patch(object_path(ref, obj, default_ns), patch, "merge")
    except ApiError as exc:
        raise ApplyError(f"{_label(ref, name)}: {exc.message}") from exc
    return f"{_label(ref, name)} configured"


async def delete_one(api: ApiClient, refs: dict[str, ResourceRef], obj: dict[str, Any],
                     default_ns: str, *, ignore_not_found: bool = False) -> str | None:
    ref = _ref(refs, obj)
    name = obj["metadata"]["name"]
    try:
        await api.delete(object_path(ref, obj, default_ns), body={"propagationPolicy": "Background"})
    except ApiError as exc:
        if exc.code == 404 and ignore_not_found:
            return None
        raise ApplyError(f"{_label(ref, name)}: {exc.message}") from exc
    return f'{_label(ref, name)} deleted'
