"""Namespace, Node, Lease and Event validation."""

from __future__ import annotations

from netplane.model.fielderrors import FieldError, forbidden, invalid, not_supported
from netplane.model.names import is_qualified_name, is_valid_cidr
from netplane.model.validation.meta import (
    Obj,
    as_dict,
    as_int,
    as_list,
    finalizers,
    nonnegative,
    object_meta,
    object_meta_update,
)

TAINT_EFFECTS = ["NoExecute", "NoSchedule", "PreferNoSchedule"]


def validate_namespace(obj: Obj) -> list[FieldError]:
    errs = object_meta(obj, namespaced=False, name_rule="label")
    errs.extend(finalizers(as_dict(obj.get("spec")).get("finalizers"), "spec.finalizers"))
    return errs


def validate_namespace_update(new: Obj, old: Obj) -> list[FieldError]:
    return [*object_meta_update(new, old), *validate_namespace(new)]


def _pod_cidrs(spec: Obj) -> list[str]:
    cidrs = [str(c) for c in as_list(spec.get("podCIDRs"))]
    if not cidrs and spec.get("podCIDR"):
        cidrs = [str(spec["podCIDR"])]
    return cidrs


def validate_node(obj: Obj) -> list[FieldError]:
    errs = object_meta(obj, namespaced=False)
    spec = as_dict(obj.get("spec"))
    pod_cidr = spec.get("podCIDR") or ""
    if pod_cidr and not is_valid_cidr(pod_cidr):
        errs.append(invalid("spec.podCIDR", pod_cidr, "must be a valid CIDR"))
    cidrs = [str(c) for c in as_list(spec.get("podCIDRs"))]
    for i, cidr in enumerate(cidrs):
        if not is_valid_cidr(cidr):
            errs.append(invalid(f"spec.podCIDRs[{i}]", cidr, "must be a valid CIDR"))
    if len(cidrs) > 1 and all(is_valid_cidr(c) for c in cidrs):
        families = {":" in c.split("/")[0] for c in cidrs}
        if len(cidrs) > 2 or len(families) != len(cidrs):
            errs.append(invalid("spec.podCIDRs", cidrs,
                                "may specify no more than one CIDR for each IP family"))
    if pod_cidr and cidrs and cidrs[0] != pod_cidr:
        errs.append(invalid("spec.podCIDRs", cidrs, "first value must match `podCIDR`"))
    for i, taint in enumerate(as_list(spec.get("taints"))):
        taint = as_dict(taint)
        key = str(taint.get("key") or "")
        errs.extend(invalid(f"spec.taints[{i}].key", key, msg) for msg in is_qualified_name(key))
        effect = taint.get("effect")
        if effect not in TAINT_EFFECTS:
            errs.append(not_supported(f"spec.taints[{i}].effect", effect, TAINT_EFFECTS))
    return errs


def validate_node_update(new: Obj, old: Obj) -> list[FieldError]:
    errs = object_meta_update(new, old)
    errs.extend(validate_node(new))
    old_cidrs = _pod_cidrs(as_dict(old.get("spec")))
    if old_cidrs and _pod_cidrs(as_dict(new.get("spec"))) != old_cidrs:
        errs.append(forbidden("spec.podCIDRs",
                              'node updates may not change podCIDR except from "" to valid'))
    return errs


def validate_lease(obj: Obj) -> list[FieldError]:
    errs = object_meta(obj, namespaced=True)
    spec = as_dict(obj.get("spec"))
    duration = spec.get("leaseDurationSeconds")
    if duration is not None and not ((as_int(duration) or 0) > 0):
        errs.append(invalid("spec.leaseDurationSeconds", duration, "must be greater than 0"))
    errs.extend(nonnegative(spec.get("leaseTransitions"), "spec.leaseTransitions"))
    return errs


def validate_lease_update(new: Obj, old: Obj) -> list[FieldError]:
    return [*object_meta_update(new, old), *validate_lease(new)]


def validate_event(obj: Obj) -> list[FieldError]:
    errs = object_meta(obj, namespaced=True)
    namespace = as_dict(obj.get("metadata")).get("namespace") or ""
    involved = as_dict(obj.get("involvedObject"))
    involved_ns = involved.get("namespace") or ""
    # Kubernetes' legacyValidateEvent: a namespaced object's events live in its namespace;
    # a cluster-scoped object's events live in "default" (or no namespace).
    if involved_ns:
        if involved_ns != namespace:
            errs.append(invalid("involvedObject.namespace", involved_ns,
                                "does not match event.namespace"))
    elif namespace not in ("", "default"):
        errs.append(invalid("involvedObject.namespace", involved_ns,
                            "does not match event.namespace"))
    event_type = obj.get("type")
    if event_type and event_type not in ("Normal", "Warning"):
        errs.append(not_supported("type", event_type, ["Normal", "Warning"]))
    return errs


def validate_event_update(new: Obj, old: Obj) -> list[FieldError]:
    return [*object_meta_update(new, old), *validate_event(new)]
