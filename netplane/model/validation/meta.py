"""ObjectMeta, labels, annotations and label selectors (Kubernetes' ValidateObjectMeta and
metav1 validation), plus the raw-dict accessors every validator shares."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from netplane.model.fielderrors import (
    FIELD_IMMUTABLE,
    FieldError,
    forbidden,
    invalid,
    required,
    too_long,
)
from netplane.model.names import (
    is_dns1035_label,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_qualified_name,
    is_valid_label_value,
)

Obj = dict[str, Any]
NameCheck = Callable[[str], list[str]]

TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024
STANDARD_FINALIZERS = ("kubernetes", "orphan", "foregroundDeletion")


def as_dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_int(value: Any) -> int | None:
    """An integer field's value; None when absent or not an integer (bools excluded)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def immutable(new: Any, old: Any, path: str) -> list[FieldError]:
    """Kubernetes' ValidateImmutableField."""
    return [] if new == old else [invalid(path, new, FIELD_IMMUTABLE)]


def nonnegative(value: Any, path: str) -> list[FieldError]:
    number = as_int(value)
    if value is None or (number is not None and number >= 0):
        return []
    return [invalid(path, value, "must be greater than or equal to 0")]


def _masked(check: NameCheck) -> NameCheck:
    # A generateName prefix may end in '-' (Kubernetes' maskTrailingDash).
    def run(prefix: str) -> list[str]:
        if len(prefix) > 1 and prefix.endswith("-"):
            prefix = prefix[:-1] + "a"
        return check(prefix)
    return run


NAME_CHECKS: dict[str, NameCheck] = {
    "subdomain": is_dns1123_subdomain,
    "label": is_dns1123_label,
    "dns1035": is_dns1035_label,
}


def labels(value: Any, path: str) -> list[FieldError]:
    """Label keys are qualified names, values label values; errors sit on the map's path."""
    errs: list[FieldError] = []
    if value is None:
        return errs
    if not isinstance(value, dict):
        return [invalid(path, value, "must be a map of string keys to string values")]
    for key, val in value.items():
        errs.extend(invalid(path, key, msg) for msg in is_qualified_name(key))
        if not isinstance(val, str):
            errs.append(invalid(path, val, "must be a string"))
            continue
        errs.extend(invalid(path, val, msg) for msg in is_valid_label_value(val))
    return errs


def annotations(value: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if value is None:
        return errs
    if not isinstance(value, dict):
        return [invalid(path, value, "must be a map of string keys to string values")]
    size = 0
    for key, val in value.items():
        # Kubernetes lower-cases annotation keys before checking them.
        errs.extend(invalid(path, key, msg) for msg in is_qualified_name(key.lower()))
        size += len(key) + len(val if isinstance(val, str) else "")
    if size > TOTAL_ANNOTATION_SIZE_LIMIT:
        errs.append(too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT))
    return errs


def _owner_references(refs: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    controllers: list[str] = []
    for i, ref in enumerate(as_list(refs)):
        ref = as_dict(ref)
        at = f"{path}[{i}]"
        api_version = str(ref.get("apiVersion") or "")
        if not api_version or api_version.endswith("/"):
            errs.append(invalid(f"{at}.apiVersion", api_version, "version must not be empty"))
        if not ref.get("kind"):
            errs.append(invalid(f"{at}.kind", ref.get("kind", ""), "kind must not be empty"))
        if not ref.get("name"):
            errs.append(invalid(f"{at}.name", ref.get("name", ""), "name must not be empty"))
        if not ref.get("uid"):
            errs.append(invalid(f"{at}.uid", ref.get("uid", ""), "uid must not be empty"))
        if ref.get("controller") is True:
            controllers.append(f"{ref.get('kind')}/{ref.get('name')}")
    if len(controllers) > 1:
        errs.append(invalid(path, as_list(refs), "Only one reference can have Controller set "
                            "to true. Found \"true\" in references for "
                            + " and ".join(controllers)))
    return errs


def finalizers(value: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, name in enumerate(as_list(value)):
        at = f"{path}[{i}]"
        msgs = is_qualified_name(str(name))
        errs.extend(invalid(at, name, msg) for msg in msgs)
        if not msgs and "/" not in str(name) and name not in STANDARD_FINALIZERS:
            errs.append(invalid(at, name, "name is neither a standard finalizer name nor is "
                                "it fully qualified"))
    return errs


def object_meta(obj: Obj, namespaced: bool, name_rule: str = "subdomain",
                path: str = "metadata") -> list[FieldError]:
    """Kubernetes' ValidateObjectMeta; `name_rule` picks the kind's name syntax."""
    meta = as_dict(obj.get("metadata"))
    check = NAME_CHECKS[name_rule]
    errs: list[FieldError] = []
    generate_name = meta.get("generateName") or ""
    if generate_name:
        errs.extend(invalid(f"{path}.generateName", generate_name, msg)
                    for msg in _masked(check)(generate_name))
    name = meta.get("name") or ""
    if not name:
        errs.append(required(f"{path}.name", "name or generateName is required"))
    else:
        errs.extend(invalid(f"{path}.name", name, msg) for msg in check(name))
    namespace = meta.get("namespace") or ""
    if namespaced:
        if not namespace:
            errs.append(required(f"{path}.namespace"))
        else:
            errs.extend(invalid(f"{path}.namespace", namespace, msg)
                        for msg in is_dns1123_label(namespace))
    elif namespace:
        errs.append(forbidden(f"{path}.namespace", "not allowed on this type"))
    errs.extend(nonnegative(meta.get("generation"), f"{path}.generation"))
    errs.extend(labels(meta.get("labels"), f"{path}.labels"))
    errs.extend(annotations(meta.get("annotations"), f"{path}.annotations"))
    errs.extend(_owner_references(meta.get("ownerReferences"), f"{path}.ownerReferences"))
    errs.extend(finalizers(meta.get("finalizers"), f"{path}.finalizers"))
    return errs


def object_meta_update(new: Obj, old: Obj, path: str = "metadata") -> list[FieldError]:
    """Kubernetes' ValidateObjectMetaUpdate: identity fields never change."""
    new_meta, old_meta = as_dict(new.get("metadata")), as_dict(old.get("metadata"))
    errs: list[FieldError] = []
    for key in ("name", "namespace", "uid", "creationTimestamp"):
        errs.extend(immutable(new_meta.get(key) or "", old_meta.get(key) or "",
                              f"{path}.{key}"))
    if old_meta.get("deletionTimestamp") and (
            new_meta.get("deletionTimestamp") != old_meta.get("deletionTimestamp")):
        errs.append(invalid(f"{path}.deletionTimestamp", new_meta.get("deletionTimestamp"),
                            FIELD_IMMUTABLE))
    if old_meta.get("deletionGracePeriodSeconds") is not None and (
            new_meta.get("deletionGracePeriodSeconds")
            != old_meta.get("deletionGracePeriodSeconds")):
        errs.append(invalid(f"{path}.deletionGracePeriodSeconds",
                            new_meta.get("deletionGracePeriodSeconds"), FIELD_IMMUTABLE))
    return errs


_SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def label_selector(value: Any, path: str) -> list[FieldError]:
    """metav1 ValidateLabelSelector for a LabelSelector object."""
    errs: list[FieldError] = []
    selector = as_dict(value)
    for i, expr in enumerate(as_list(selector.get("matchExpressions"))):
        expr = as_dict(expr)
        at = f"{path}.matchExpressions[{i}]"
        operator = expr.get("operator", "")
        values = as_list(expr.get("values"))
        if operator in ("In", "NotIn"):
            if not values:
                errs.append(required(f"{at}.values", "must be specified when `operator` is "
                                     "'In' or 'NotIn'"))
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                errs.append(forbidden(f"{at}.values", "may not be specified when `operator` "
                                      "is 'Exists' or 'DoesNotExist'"))
        else:
            errs.append(invalid(f"{at}.operator", operator, "not a valid selector operator"))
        key = str(expr.get("key", ""))
        errs.extend(invalid(f"{at}.key", key, msg) for msg in is_qualified_name(key))
        for j, val in enumerate(values):
            errs.extend(invalid(f"{at}.values[{j}]", val, msg)
                        for msg in is_valid_label_value(str(val)))
    errs.extend(labels(selector.get("matchLabels"), f"{path}.matchLabels"))
    return errs
