"""The `scale` subresource of Deployments and ReplicaSets (autoscaling/v1 Scale), which
`kubectl scale` and autoscalers use: a view of spec.replicas and the pod selector."""

from __future__ import annotations

from typing import Any

from control.apiserver import errors
from control.apiserver.patch import PatchError, apply_json_patch, apply_merge_patch
from control.apiserver.registry import Registry
from control.apiserver.resources import ResourceInfo


def _selector_text(selector: dict[str, Any] | None) -> str:
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, key, values = expr.get("operator"), expr.get("key"), expr.get("values") or []
        if op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
        else:
            parts.append(f"{key} {'in' if op == 'In' else 'notin'} ({','.join(values)})")
    return ",".join(parts)


def to_scale(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return {"kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                              "creationTimestamp") if k in meta},
            "spec": {"replicas": spec.get("replicas", 1)},
            "status": {"replicas": status.get("replicas", 0),
                       "selector": _selector_text(spec.get("selector"))}}


def _replicas(scale: Any) -> int:
    replicas = (scale.get("spec") or {}).get("replicas") if isinstance(scale, dict) else None
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise errors.invalid("Scale", "autoscaling", "", "spec.replicas must be a non-negative integer",
                             [{"reason": "FieldValueInvalid", "field": "spec.replicas",
                               "message": "must be greater than or equal to 0"}])
    return replicas


async def get(registry: Registry, res: ResourceInfo, ns: str | None, name: str) -> dict[str, Any]:
    return to_scale(await registry.get(res, ns, name))


async def update(registry: Registry, res: ResourceInfo, ns: str | None, name: str, body: Any,
                 *, dry_run: bool) -> dict[str, Any]:
    replicas = _replicas(body)
    wanted_rv = ((body.get("metadata") or {}).get("resourceVersion")) if isinstance(body, dict) else None

    def mutate(old: dict[str, Any]) -> dict[str, Any]:
        if wanted_rv and wanted_rv != old["metadata"]["resourceVersion"]:
            raise errors.conflict(res.plural, res.group, name, errors.STALE_OBJECT)
        old.setdefault("spec", {})["replicas"] = replicas
        return old

    return to_scale(await registry.guaranteed_update(res, ns, name, mutate, dry_run=dry_run))


async def patch(registry: Registry, res: ResourceInfo, ns: str | None, name: str, body: Any,
                content_type: str, *, dry_run: bool) -> dict[str, Any]:
    current = await get(registry, res, ns, name)
    try:
        if content_type == "application/json-patch+json":
            if not isinstance(body, list):
                raise PatchError("a JSON patch must be a list of operations")
            patched = apply_json_patch(current, body)
        else:  # merge and strategic merge are the same on a Scale
            if not isinstance(body, dict):
                raise PatchError("a merge patch must be a JSON object")
            patched = apply_merge_patch(current, body)
    except PatchError as exc:
        raise errors.ApiError(422, "Invalid", f"the patch could not be applied: {exc}") from exc
    patched.get("metadata", {}).pop("resourceVersion", None)
    return await update(registry, res, ns, name, patched, dry_run=dry_run)
