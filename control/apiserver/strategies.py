"""Per-kind rules applied before storing: Kubernetes' PrepareForCreate/PrepareForUpdate.

They decide what a client may set on create, what the main resource and the
`status` subresource may change, and when `metadata.generation` moves.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from control.apiserver.codec import json_copy
from control.apiserver.resources import ResourceInfo

# Metadata the server owns: kept from the stored object on every update.
_SERVER_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                "generation", "selfLink")


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def prepare_for_create(res: ResourceInfo, obj: dict[str, Any]) -> None:
    meta = obj["metadata"]
    meta.pop("deletionTimestamp", None)
    meta.pop("deletionGracePeriodSeconds", None)
    meta.pop("resourceVersion", None)
    meta.pop("selfLink", None)
    meta["generation"] = 1
    if res.kind == "Pod":
        status = {"phase": "Pending"}
        obj["status"] = status
        spec = obj.get("spec") or {}
        if spec.get("nodeName"):
            # Created already bound: the scheduler will not see it, so say it is scheduled.
            status["conditions"] = [{"type": "PodScheduled", "status": "True",
                                     "lastTransitionTime": now_rfc3339()}]
    elif res.kind == "Namespace":
        obj["status"] = {"phase": "Active"}
    elif res.kind == "Service":
        obj["status"] = {"loadBalancer": {}}
    elif res.status_subresource and res.kind != "Node":
        # Nodes may register with their status; for every other kind status is the
        # controllers' to write, through /status.
        obj.pop("status", None)


def _spec_part(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def prepare_for_update(
    res: ResourceInfo, old: dict[str, Any], new: dict[str, Any], subresource: str | None
) -> dict[str, Any]:
    """The object to store when `new` replaces `old` through the main resource or `status`."""
    if subresource == "status":
        # Only status moves; metadata stays as stored (Kubernetes'
        # ResetObjectMetaForStatus), but the precondition travels along.
        merged = json_copy(old)
        merged["status"] = new.get("status", {})
        merged["metadata"]["resourceVersion"] = (new.get("metadata") or {}).get(
            "resourceVersion", "")
        return merged
    if subresource == "finalize":
        # namespaces/finalize moves spec.finalizers and nothing else.
        merged = json_copy(old)
        merged.setdefault("spec", {})["finalizers"] = list(
            (new.get("spec") or {}).get("finalizers") or [])
        return merged
    merged = json_copy(new)
    meta = merged.setdefault("metadata", {})
    old_meta = old["metadata"]
    for field in _SERVER_META:
        if field in old_meta:
            meta[field] = old_meta[field]
        else:
            meta.pop(field, None)
    meta["name"] = old_meta["name"]
    if res.namespaced:
        meta["namespace"] = old_meta.get("namespace")
    if res.status_subresource:
        if "status" in old:
            merged["status"] = json_copy(old["status"])
        else:
            merged.pop("status", None)
    if _spec_part(merged) != _spec_part(old):
        meta["generation"] = int(old_meta.get("generation", 1)) + 1
    return merged

