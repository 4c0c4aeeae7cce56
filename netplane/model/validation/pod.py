"""core/v1 Pod and pod template validation (the parts of Kubernetes' ValidatePodSpec that
netplane's kubelet and scheduler rely on)."""

from __future__ import annotations

import copy
import re
from typing import Any

from netplane.model.fielderrors import (
    FieldError,
    duplicate,
    forbidden,
    invalid,
    not_supported,
    required,
)
from netplane.model.names import (
    is_dns1123_label,
    is_dns1123_subdomain,
    is_env_var_name,
    is_qualified_name,
    is_valid_port_name,
    is_valid_port_num,
)
from netplane.model.validation.meta import (
    Obj,
    annotations,
    as_dict,
    as_int,
    as_list,
    labels,
    nonnegative,
    object_meta,
    object_meta_update,
)
from netplane.model.validation.service import port_num_or_name, protocol

RESTART_POLICIES = ["Always", "OnFailure", "Never"]
DNS_POLICIES = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"]
PROBE_SCHEMES = ["HTTP", "HTTPS"]
TOLERATION_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"]
_FIELD_REF_PATHS = [
    "metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
    "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP",
    "status.podIPs",
]
_FIELD_REF_SUBSCRIPT = re.compile(r"metadata\.(labels|annotations)\['(.+)'\]")
_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
UPDATABLE_POD_FIELDS = (
    "`spec.containers[*].image`,`spec.initContainers[*].image`,"
    "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
    "tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it "
    "was previously negative)")


def _field_ref(ref: Obj, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if not ref.get("apiVersion"):
        errs.append(required(f"{path}.apiVersion"))
    field_path = ref.get("fieldPath") or ""
    if not field_path:
        return [*errs, required(f"{path}.fieldPath")]
    match = _FIELD_REF_SUBSCRIPT.fullmatch(field_path)
    if match:
        errs.extend(invalid(f"{path}.fieldPath", field_path, msg)
                    for msg in is_qualified_name(match.group(2).lower()))
    elif field_path not in _FIELD_REF_PATHS:
        supported = [*_FIELD_REF_PATHS, "metadata.annotations", "metadata.labels"]
        errs.append(not_supported(f"{path}.fieldPath", field_path, sorted(supported)))
    return errs


def _env(env: list[Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, var in enumerate(env):
        var = as_dict(var)
        at = f"{path}[{i}]"
        name = var.get("name") or ""
        if not name:
            errs.append(required(f"{at}.name"))
        else:
            errs.extend(invalid(f"{at}.name", name, msg) for msg in is_env_var_name(name))
        source = var.get("valueFrom")
        if source is None:
            continue
        source = as_dict(source)
        kinds = [k for k in ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef")
                 if source.get(k) is not None]
        if var.get("value"):
            errs.append(invalid(f"{at}.valueFrom", "",
                                "may not be specified when `value` is not empty"))
        if not kinds:
            errs.append(invalid(f"{at}.valueFrom", "", "must specify one of: `fieldRef`, "
                                "`resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"))
        elif len(kinds) > 1:
            errs.append(invalid(f"{at}.valueFrom", "",
                                "may not have more than one field specified at a time"))
        elif kinds[0] == "fieldRef":
            errs.extend(_field_ref(as_dict(source["fieldRef"]), f"{at}.valueFrom.fieldRef"))
    return errs


def _container_ports(ports: list[Any], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    names: set[str] = set()
    for i, port in enumerate(ports):
        port = as_dict(port)
        at = f"{path}[{i}]"
        name = port.get("name") or ""
        if name:
            msgs = is_valid_port_name(name)
            errs.extend(invalid(f"{at}.name", name, msg) for msg in msgs)
            if not msgs and name in names:
                errs.append(duplicate(f"{at}.name", name))
            names.add(name)
        number = port.get("containerPort")
        if not number:
            errs.append(required(f"{at}.containerPort"))
        else:
            errs.extend(invalid(f"{at}.containerPort", number, msg)
                        for msg in _port_msgs(number))
        host_port = port.get("hostPort")
        if host_port:
            errs.extend(invalid(f"{at}.hostPort", host_port, msg) for msg in _port_msgs(host_port))
        errs.extend(protocol(port.get("protocol"), f"{at}.protocol"))
    return errs


def _port_msgs(value: Any) -> list[str]:
    number = as_int(value)
    return is_valid_port_num(number if number is not None else 0)


def _probe(probe: Any, path: str, liveness: bool) -> list[FieldError]:
    if probe is None:
        return []
    probe = as_dict(probe)
    errs: list[FieldError] = []
    handlers = [h for h in _HANDLERS if probe.get(h) is not None]
    if not handlers:
        errs.append(required(path, "must specify a handler type"))
    for extra in handlers[1:]:
        errs.append(forbidden(f"{path}.{extra}", "may not specify more than 1 handler type"))
    if handlers:
        errs.extend(_handler(handlers[0], as_dict(probe[handlers[0]]), f"{path}.{handlers[0]}"))
    for key in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold",
                "failureThreshold"):
        errs.extend(nonnegative(probe.get(key), f"{path}.{key}"))
    if liveness and probe.get("successThreshold", 1) != 1:
        errs.append(invalid(f"{path}.successThreshold", probe.get("successThreshold"),
                            "must be 1"))
    return errs


def _handler(kind: str, handler: Obj, path: str) -> list[FieldError]:
    if kind == "exec":
        return [] if as_list(handler.get("command")) else [required(f"{path}.command")]
    errs = port_num_or_name(handler.get("port"), f"{path}.port")
    if kind == "httpGet":
        if not handler.get("path"):
            errs.append(required(f"{path}.path"))
        scheme = handler.get("scheme")
        if scheme not in PROBE_SCHEMES:
            errs.append(not_supported(f"{path}.scheme", scheme, PROBE_SCHEMES))
    return errs


def _containers(items: Any, path: str, names: set[str], need_one: bool) -> list[FieldError]:
    containers = as_list(items)
    if need_one and not containers:
        return [required(path)]
    errs: list[FieldError] = []
    for i, container in enumerate(containers):
        container = as_dict(container)
        at = f"{path}[{i}]"
        name = container.get("name") or ""
        if not name:
            errs.append(required(f"{at}.name"))
        else:
            errs.extend(invalid(f"{at}.name", name, msg) for msg in is_dns1123_label(name))
            if name in names:
                errs.append(duplicate(f"{at}.name", name))
            names.add(name)
        image = container.get("image") or ""
        if not image:
            errs.append(required(f"{at}.image"))
        elif image != image.strip():
            errs.append(invalid(f"{at}.image", image,
                                "must not have leading or trailing whitespace"))
        errs.extend(_container_ports(as_list(container.get("ports")), f"{at}.ports"))
        errs.extend(_env(as_list(container.get("env")), f"{at}.env"))
        errs.extend(_probe(container.get("livenessProbe"), f"{at}.livenessProbe", True))
        errs.extend(_probe(container.get("readinessProbe"), f"{at}.readinessProbe", False))
        errs.extend(_probe(container.get("startupProbe"), f"{at}.startupProbe", False))
    return errs


def _tolerations(items: Any, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, tol in enumerate(as_list(items)):
        tol = as_dict(tol)
        at = f"{path}[{i}]"
        key = tol.get("key") or ""
        if key:
            errs.extend(invalid(f"{at}.key", key, msg) for msg in is_qualified_name(key))
        operator = tol.get("operator") or "Equal"
        if operator == "Exists" and tol.get("value"):
            errs.append(invalid(f"{at}.operator", tol.get("value"),
                                "value must be empty when `operator` is 'Exists'"))
        elif operator not in ("Equal", "Exists"):
            errs.append(not_supported(f"{at}.operator", operator, ["Equal", "Exists"]))
        effect = tol.get("effect")
        if effect and effect not in TOLERATION_EFFECTS:
            errs.append(not_supported(f"{at}.effect", effect, TOLERATION_EFFECTS))
    return errs


def validate_pod_spec(spec: Obj, path: str) -> list[FieldError]:
    names: set[str] = set()
    errs = _containers(spec.get("containers"), f"{path}.containers", names, need_one=True)
    errs.extend(_containers(spec.get("initContainers"), f"{path}.initContainers", names, False))
    restart = spec.get("restartPolicy")
    if not restart:
        errs.append(required(f"{path}.restartPolicy"))
    elif restart not in RESTART_POLICIES:
        errs.append(not_supported(f"{path}.restartPolicy", restart, RESTART_POLICIES))
    dns = spec.get("dnsPolicy")
    if not dns:
        errs.append(required(f"{path}.dnsPolicy"))
    elif dns not in DNS_POLICIES:
        errs.append(not_supported(f"{path}.dnsPolicy", dns, DNS_POLICIES))
    elif dns == "None" and spec.get("dnsConfig") is None:
        errs.append(required(f"{path}.dnsConfig",
                             "must provide `dnsConfig` when `dnsPolicy` is None"))
    errs.extend(labels(spec.get("nodeSelector"), f"{path}.nodeSelector"))
    errs.extend(nonnegative(spec.get("terminationGracePeriodSeconds"),
                            f"{path}.terminationGracePeriodSeconds"))
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and not (as_int(deadline) is not None and 1 <= deadline < 2**31):
        errs.append(invalid(f"{path}.activeDeadlineSeconds", deadline,
                            "must be between 1 and 2147483647, inclusive"))
    for key, check in (("hostname", is_dns1123_label), ("subdomain", is_dns1123_label)):
        if spec.get(key):
            errs.extend(invalid(f"{path}.{key}", spec[key], msg) for msg in check(spec[key]))
    node_name = spec.get("nodeName")
    if node_name:
        errs.extend(invalid(f"{path}.nodeName", node_name, msg)
                    for msg in is_dns1123_subdomain(node_name))
    errs.extend(_tolerations(spec.get("tolerations"), f"{path}.tolerations"))
    return errs


def validate_pod_template(template: Any, path: str) -> list[FieldError]:
    if not isinstance(template, dict):
        return [required(path)]
    meta = as_dict(template.get("metadata"))
    errs = labels(meta.get("labels"), f"{path}.metadata.labels")
    errs.extend(annotations(meta.get("annotations"), f"{path}.metadata.annotations"))
    errs.extend(validate_pod_spec(as_dict(template.get("spec")), f"{path}.spec"))
    return errs


def validate_pod(obj: Obj) -> list[FieldError]:
    errs = object_meta(obj, namespaced=True, name_rule="subdomain")
    errs.extend(validate_pod_spec(as_dict(obj.get("spec")), "spec"))
    return errs


def _mutable_fields_masked(new_spec: Obj, old_spec: Obj) -> Obj:
    """new_spec with every field a pod update may change copied from old_spec, so what is
    left differing is a forbidden change."""
    masked = copy.deepcopy(new_spec)
    for key in ("containers", "initContainers"):
        old_items, new_items = as_list(old_spec.get(key)), as_list(masked.get(key))
        if len(old_items) == len(new_items):
            for new_c, old_c in zip(new_items, old_items, strict=True):
                if isinstance(new_c, dict) and isinstance(old_c, dict) and new_c.get("image"):
                    new_c["image"] = old_c.get("image")
    _copy_key(masked, old_spec, "activeDeadlineSeconds")
    old_tols, new_tols = as_list(old_spec.get("tolerations")), as_list(masked.get("tolerations"))
    if all(t in new_tols for t in old_tols):
        _copy_key(masked, old_spec, "tolerations")
    old_grace = old_spec.get("terminationGracePeriodSeconds")
    if isinstance(old_grace, int) and old_grace < 0 and masked.get(
            "terminationGracePeriodSeconds") == 1:
        _copy_key(masked, old_spec, "terminationGracePeriodSeconds")
    return masked


def _copy_key(dst: Obj, src: Obj, key: str) -> None:
    if key in src:
        dst[key] = copy.deepcopy(src[key])
    else:
        dst.pop(key, None)


def _deadline_update(new_spec: Obj, old_spec: Obj) -> list[FieldError]:
    """activeDeadlineSeconds may be set or lowered, never raised or removed."""
    new_deadline = as_int(new_spec.get("activeDeadlineSeconds"))
    old_deadline = as_int(old_spec.get("activeDeadlineSeconds"))
    if new_deadline is None:
        if old_deadline is not None:
            return [invalid("spec.activeDeadlineSeconds", None,
                            "must not update from a positive integer to nil value")]
        return []
    if old_deadline is not None and old_deadline < new_deadline:
        return [invalid("spec.activeDeadlineSeconds", new_deadline,
                        "must be less than or equal to previous value")]
    return []


def validate_pod_update(new: Obj, old: Obj) -> list[FieldError]:
    errs = object_meta_update(new, old)
    errs.extend(validate_pod(new))
    new_spec, old_spec = as_dict(new.get("spec")), as_dict(old.get("spec"))
    errs.extend(_deadline_update(new_spec, old_spec))
    if _mutable_fields_masked(new_spec, old_spec) != old_spec:
        errs.append(forbidden("spec", "pod updates may not change fields other than "
                              + UPDATABLE_POD_FIELDS))
    return errs
