"""Per-kind rules applied before storing: Kubernetes' PrepareForCreate/PrepareForUpdate,
and on delete its DeleteOptions checks and garbage-collection finalizers.

They decide what a client may set on create, what the main resource and the
`status` subresource may change, when `metadata.generation` moves, and which of the
`orphan` / `foregroundDeletion` finalizers a deletion leaves for the garbage collector.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from control.apiserver import errors
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



# --- deletion: DeleteOptions and the garbage collector's finalizers ----------------------

ORPHAN_FINALIZER = "orphan"
FOREGROUND_FINALIZER = "foregroundDeletion"
_POLICIES = ("Foreground", "Background", "Orphan")

# The kinds whose deletion propagation the garbage collector carries out: it watches these
# (control/controllers/garbagecollector.WATCHED; a unit test keeps the two in step). Every
# other kind is Kubernetes' `rest.Unsupported`: the policy is accepted and nothing is added,
# since a finalizer that no collector removes would hold the object forever. All of them
# default to Background, as apps/v1 and core/v1 do in Kubernetes.
GARBAGE_COLLECTED_KINDS = frozenset(
    {"Pod", "Service", "Node", "ReplicaSet", "Deployment", "EndpointSlice"})


def validate_delete_options(options: dict[str, Any]) -> None:
    """Kubernetes' ValidateDeleteOptions, answered with the same Status: a value of the
    wrong JSON type is a 400 (it does not decode), a bad combination or an unknown policy
    a 422 for `DeleteOptions.meta.k8s.io ""`."""
    orphan, policy = options.get("orphanDependents"), options.get("propagationPolicy")
    if orphan is not None and not isinstance(orphan, bool):
        raise errors.bad_request(f"orphanDependents must be a boolean, not {orphan!r}")
    if policy is not None and not isinstance(policy, str):
        raise errors.bad_request(f"propagationPolicy must be a string, not {policy!r}")
    causes = []
    if orphan is not None and policy is not None:
        causes.append({"reason": "FieldValueInvalid", "field": "propagationPolicy",
                       "message": f'Invalid value: "{policy}": orphanDependents and '
                                  "deletionPropagation cannot be both set"})
    if policy is not None and policy not in _POLICIES:
        supported = ", ".join(f'"{p}"' for p in (*_POLICIES, "nil"))
        causes.append({"reason": "FieldValueNotSupported", "field": "propagationPolicy",
                       "message": f'Unsupported value: "{policy}": supported values: {supported}'})
    if causes:
        listed = ", ".join(f"{c['field']}: {c['message']}" for c in causes)
        detail = listed if len(causes) == 1 else f"[{listed}]"
        raise errors.invalid("DeleteOptions", "meta.k8s.io", "",
                             f'DeleteOptions.meta.k8s.io "" is invalid: {detail}', causes)


def deletion_finalizers(res: ResourceInfo, finalizers: list[str],
                        options: dict[str, Any]) -> list[str]:
    """The finalizers an object has once this delete is accepted (Kubernetes'
    deletionFinalizersForGarbageCollection): the request's policy replaces the `orphan` and
    `foregroundDeletion` finalizers; without one, those already on the object stand; the
    default adds neither (Background)."""
    if res.kind not in GARBAGE_COLLECTED_KINDS:
        return finalizers
    orphan, foreground = _wanted_propagation(finalizers, options)
    out = [f for f in finalizers if f not in (ORPHAN_FINALIZER, FOREGROUND_FINALIZER)]
    if orphan:
        out.append(ORPHAN_FINALIZER)
    if foreground:
        out.append(FOREGROUND_FINALIZER)
    return finalizers if set(out) == set(finalizers) else out


def _wanted_propagation(finalizers: list[str], options: dict[str, Any]) -> tuple[bool, bool]:
    """(orphan, foreground): shouldOrphanDependents and shouldDeleteDependents."""
    orphan_dependents = options.get("orphanDependents")
    if orphan_dependents is not None:
        return bool(orphan_dependents), False
    policy = options.get("propagationPolicy")
    if policy is not None:
        return policy == "Orphan", policy == "Foreground"
    # No policy in the request: a finalizer set on the object decides, the first one wins.
    for f in finalizers:
        if f == ORPHAN_FINALIZER:
            return True, False
        if f == FOREGROUND_FINALIZER:
            return False, True
    return False, False
