"""networking/v1 Ingress and IngressClass validation."""

from __future__ import annotations

import re
from typing import Any

from netplane.model.fielderrors import FieldError, invalid, not_supported, required, too_long
from netplane.model.names import (
    is_dns1035_label,
    is_dns1123_subdomain,
    is_valid_port_name,
    is_valid_port_num,
    is_wildcard_dns1123_subdomain,
    parse_ip,
    regex_error,
)
from netplane.model.validation.meta import (
    Obj,
    as_dict,
    as_int,
    as_list,
    immutable,
    object_meta,
    object_meta_update,
)

PATH_TYPES = ["Exact", "ImplementationSpecific", "Prefix"]
_INVALID_PATH_SEQUENCES = ("//", "/./", "/../", "%2f", "%2F")
_INVALID_PATH_SUFFIXES = ("/..", "/.")
MAX_CONTROLLER_LENGTH = 250
_HTTP_PATH_FMT = "[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+"
_HTTP_PATH_RE = re.compile(_HTTP_PATH_FMT)


def _host_errors(host: str) -> list[str]:
    if "*" in host:
        return is_wildcard_dns1123_subdomain(host)
    return is_dns1123_subdomain(host)


def _backend(backend: Obj, path: str) -> list[FieldError]:
    resource, service = backend.get("resource"), backend.get("service")
    if resource is not None and service is not None:
        return [invalid(path, "", "cannot set both resource and service backends")]
    if resource is not None:
        ref = as_dict(resource)
        errs: list[FieldError] = []
        if not ref.get("kind"):
            errs.append(required(f"{path}.resource.kind"))
        if not ref.get("name"):
            errs.append(required(f"{path}.resource.name"))
        return errs
    if service is None:
        return [invalid(path, "", "resource or service backend is required")]
    service = as_dict(service)
    errs = []
    name = service.get("name") or ""
    if not name:
        errs.append(required(f"{path}.service.name"))
    else:
        errs.extend(invalid(f"{path}.service.name", name, msg) for msg in is_dns1035_label(name))
    port = as_dict(service.get("port"))
    port_name, port_number = port.get("name") or "", port.get("number") or 0
    if port_name and port_number:
        errs.append(invalid(path, "", "cannot set both port name & port number"))
    elif port_name:
        errs.extend(invalid(f"{path}.service.port.name", port_name, msg)
                    for msg in is_valid_port_name(port_name))
    elif port_number:
        number = as_int(port_number)
        errs.extend(invalid(f"{path}.service.port.number", port_number, msg)
                    for msg in is_valid_port_num(number if number is not None else 0))
    else:
        errs.append(required(path, "port name or number is required"))
    return errs


def _http_path(item: Obj, path: str) -> list[FieldError]:
    path_type = item.get("pathType")
    if path_type is None:
        return [required(f"{path}.pathType", "pathType must be specified")]
    value = str(item.get("path") or "")
    errs: list[FieldError] = []
    if path_type in ("Exact", "Prefix"):
        if not value.startswith("/"):
            errs.append(invalid(f"{path}.path", value, "must be an absolute path"))
        errs.extend(invalid(f"{path}.path", value, f"must not contain '{seq}'")
                    for seq in _INVALID_PATH_SEQUENCES if seq in value)
        errs.extend(invalid(f"{path}.path", value, f"cannot end with '{suffix}'")
                    for suffix in _INVALID_PATH_SUFFIXES if value.endswith(suffix))
    elif path_type == "ImplementationSpecific":
        if value and not value.startswith("/"):
            errs.append(invalid(f"{path}.path", value, "must be an absolute path"))
    else:
        errs.append(not_supported(f"{path}.pathType", path_type, PATH_TYPES))
    errs.extend(_backend(as_dict(item.get("backend")), f"{path}.backend"))
    return errs


def _rules(rules: list[Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, rule in enumerate(rules):
        rule = as_dict(rule)
        at = f"spec.rules[{i}]"
        host = str(rule.get("host") or "")
        if host:
            if parse_ip(host) is not None:
                errs.append(invalid(f"{at}.host", host, "must be a DNS name, not an IP address"))
            errs.extend(invalid(f"{at}.host", host, msg) for msg in _host_errors(host))
        http = rule.get("http")
        if http is not None:
            paths = as_list(as_dict(http).get("paths"))
            if not paths:
                errs.append(required(f"{at}.http.paths"))
            for j, item in enumerate(paths):
                errs.extend(_http_path(as_dict(item), f"{at}.http.paths[{j}]"))
    return errs


def _tls(tls: list[Any]) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, entry in enumerate(tls):
        entry = as_dict(entry)
        for j, host in enumerate(as_list(entry.get("hosts"))):
            errs.extend(invalid(f"spec.tls[{i}].hosts[{j}]", host, msg)
                        for msg in _host_errors(str(host)))
        secret = entry.get("secretName") or ""
        if secret:
            errs.extend(invalid(f"spec.tls[{i}].secretName", secret, msg)
                        for msg in is_dns1123_subdomain(secret))
    return errs


def validate_ingress(obj: Obj) -> list[FieldError]:
    errs = object_meta(obj, namespaced=True)
    spec = as_dict(obj.get("spec"))
    rules = as_list(spec.get("rules"))
    default_backend = spec.get("defaultBackend")
    if not rules and default_backend is None:
        errs.append(invalid("spec", rules, "either `defaultBackend` or `rules` must be "
                            "specified"))
    if default_backend is not None:
        errs.extend(_backend(as_dict(default_backend), "spec.defaultBackend"))
    errs.extend(_rules(rules))
    errs.extend(_tls(as_list(spec.get("tls"))))
    class_name = spec.get("ingressClassName")
    if class_name is not None:
        errs.extend(invalid("spec.ingressClassName", class_name, msg)
                    for msg in is_dns1123_subdomain(str(class_name)))
    return errs


def validate_ingress_update(new: Obj, old: Obj) -> list[FieldError]:
    return [*object_meta_update(new, old), *validate_ingress(new)]


def _controller(value: str, path: str) -> list[FieldError]:
    """Kubernetes' IsDomainPrefixedPath ("example.com/ingress-controller")."""
    if not value:
        return [required(path)]
    errs: list[FieldError] = []
    if len(value) > MAX_CONTROLLER_LENGTH:
        errs.append(too_long(path, MAX_CONTROLLER_LENGTH))
    host, slash, rest = value.partition("/")
    if not slash or not host or not rest:
        return [*errs, invalid(path, value, 'must be a domain-prefixed path (such as '
                               '"acme.io/foo")')]
    errs.extend(invalid(path, host, msg) for msg in is_dns1123_subdomain(host))
    if _HTTP_PATH_RE.fullmatch(rest) is None:
        errs.append(invalid(path, rest, regex_error("Invalid path", _HTTP_PATH_FMT)))
    return errs


def validate_ingress_class(obj: Obj) -> list[FieldError]:
    errs = object_meta(obj, namespaced=False)
    spec = as_dict(obj.get("spec"))
    errs.extend(_controller(str(spec.get("controller") or ""), "spec.controller"))
    return errs


def validate_ingress_class_update(new: Obj, old: Obj) -> list[FieldError]:
    errs = object_meta_update(new, old)
    errs.extend(validate_ingress_class(new))
    errs.extend(immutable(as_dict(new.get("spec")).get("controller"),
                          as_dict(old.get("spec")).get("controller"), "spec.controller"))
    return errs
