"""apps/v1 ReplicaSet and Deployment validation."""

from __future__ import annotations

import re
from typing import Any

from netplane.model.fielderrors import FieldError, forbidden, invalid, not_supported, required
from netplane.model.names import is_valid_percent
from netplane.model.selectors import SelectorError, selector_from_label_selector
from netplane.model.validation.meta import (
    Obj,
    as_dict,
    as_int,
    immutable,
    label_selector,
    nonnegative,
    object_meta,
    object_meta_update,
)
from netplane.model.validation.pod import validate_pod_template

STRATEGY_TYPES = ["Recreate", "RollingUpdate"]


def _selector_and_template(spec: Obj) -> list[FieldError]:
    errs: list[FieldError] = []
    selector = spec.get("selector")
    if selector is None:
        errs.append(required("spec.selector"))
    else:
        errs.extend(label_selector(selector, "spec.selector"))
        sel = as_dict(selector)
        if not sel.get("matchLabels") and not sel.get("matchExpressions"):
            # Kubernetes says "deployment" for ReplicaSets too.
            errs.append(invalid("spec.selector", selector, "empty selector is invalid for "
                                "deployment"))
    try:
        parsed = selector_from_label_selector(selector)
    except SelectorError:
        return [*errs, invalid("spec.selector", selector, "invalid label selector")]
    template = spec.get("template")
    if not isinstance(template, dict):
        return [*errs, required("spec.template")]
    template_labels = as_dict(as_dict(template.get("metadata")).get("labels"))
    if not parsed.empty and not parsed.matches(template_labels):
        errs.append(invalid("spec.template.metadata.labels", template_labels,
                            "`selector` does not match template `labels`"))
    errs.extend(validate_pod_template(template, "spec.template"))
    template_spec = as_dict(template.get("spec"))
    restart = template_spec.get("restartPolicy")
    if restart and restart != "Always":
        errs.append(not_supported("spec.template.spec.restartPolicy", restart, ["Always"]))
    if template_spec.get("activeDeadlineSeconds") is not None:
        errs.append(invalid("spec.template.spec.activeDeadlineSeconds",
                            template_spec["activeDeadlineSeconds"],
                            "activeDeadlineSeconds in ReplicaSet is not Supported"))
    return errs


def validate_replica_set(obj: Obj) -> list[FieldError]:
    errs = object_meta(obj, namespaced=True)
    spec = as_dict(obj.get("spec"))
    errs.extend(nonnegative(spec.get("replicas"), "spec.replicas"))
    errs.extend(nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds"))
    errs.extend(_selector_and_template(spec))
    return errs


def validate_replica_set_update(new: Obj, old: Obj) -> list[FieldError]:
    errs = object_meta_update(new, old)
    errs.extend(validate_replica_set(new))
    errs.extend(immutable(as_dict(new.get("spec")).get("selector"),
                          as_dict(old.get("spec")).get("selector"), "spec.selector"))
    return errs


_PERCENT = re.compile(r"([0-9]+)%")


def _int_or_percent_value(value: Any) -> int | None:
    if isinstance(value, str):
        match = _PERCENT.fullmatch(value)
        return int(match.group(1)) if match else None
    return as_int(value)


def _positive_int_or_percent(value: Any, path: str) -> list[FieldError]:
    if isinstance(value, str):
        return [invalid(path, value, msg) for msg in is_valid_percent(value)]
    return nonnegative(value, path)


def _strategy(strategy: Obj) -> list[FieldError]:
    kind = strategy.get("type")
    rolling = strategy.get("rollingUpdate")
    if kind == "Recreate":
        if rolling is not None:
            return [forbidden("spec.strategy.rollingUpdate",
                              "may not be specified when strategy `type` is 'Recreate'")]
        return []
    if kind != "RollingUpdate":
        return [not_supported("spec.strategy.type", kind, STRATEGY_TYPES)]
    if not isinstance(rolling, dict):
        return [required("spec.strategy.rollingUpdate",
                         "this should be defaulted and never be nil")]
    path = "spec.strategy.rollingUpdate"
    unavailable, surge = rolling.get("maxUnavailable"), rolling.get("maxSurge")
    errs = _positive_int_or_percent(unavailable, f"{path}.maxUnavailable")
    errs.extend(_positive_int_or_percent(surge, f"{path}.maxSurge"))
    if _int_or_percent_value(unavailable) == 0 and _int_or_percent_value(surge) == 0:
        errs.append(invalid(f"{path}.maxUnavailable", unavailable,
                            "may not be 0 when `maxSurge` is 0"))
    if isinstance(unavailable, str) and (_int_or_percent_value(unavailable) or 0) > 100:
        errs.append(invalid(f"{path}.maxUnavailable", unavailable,
                            "must not be greater than 100%"))
    return errs


def validate_deployment(obj: Obj) -> list[FieldError]:
    errs = object_meta(obj, namespaced=True)
    spec = as_dict(obj.get("spec"))
    errs.extend(nonnegative(spec.get("replicas"), "spec.replicas"))
    errs.extend(_selector_and_template(spec))
    errs.extend(_strategy(as_dict(spec.get("strategy"))))
    errs.extend(nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds"))
    errs.extend(nonnegative(spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit"))
    deadline = spec.get("progressDeadlineSeconds")
    if deadline is not None:
        errs.extend(nonnegative(deadline, "spec.progressDeadlineSeconds"))
        number, min_ready = as_int(deadline), as_int(spec.get("minReadySeconds")) or 0
        if number is not None and number <= min_ready:
            errs.append(invalid("spec.progressDeadlineSeconds", deadline,
                                "must be greater than minReadySeconds"))
    return errs


def validate_deployment_update(new: Obj, old: Obj) -> list[FieldError]:
    errs = object_meta_update(new, old)
    errs.extend(validate_deployment(new))
    errs.extend(immutable(as_dict(new.get("spec")).get("selector"),
                          as_dict(old.get("spec")).get("selector"), "spec.selector"))
    return errs
