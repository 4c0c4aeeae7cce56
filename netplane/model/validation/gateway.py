"""gateway.networking.k8s.io/v1 HTTPRoute validation: the Gateway API CRD's schema and CEL
rules that a gateway depends on (enums, path forms, limits, filter combinations)."""

from __future__ import annotations

import re
from typing import Any

from netplane.model.fielderrors import FieldError, invalid, not_supported, required, too_many
from netplane.model.names import is_dns1123_subdomain, is_wildcard_dns1123_subdomain, parse_ip
from netplane.model.validation.meta import Obj, as_dict, as_int, as_list, object_meta, object_meta_update

PATH_TYPES = ["Exact", "PathPrefix", "RegularExpression"]
VALUE_TYPES = ["Exact", "RegularExpression"]
METHODS = ["CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"]
FILTER_FIELDS = {"RequestHeaderModifier": "requestHeaderModifier",
                 "ResponseHeaderModifier": "responseHeaderModifier",
                 "RequestRedirect": "requestRedirect", "URLRewrite": "urlRewrite",
                 "RequestMirror": "requestMirror", "ExtensionRef": "extensionRef"}
MODIFIER_TYPES = ["ReplaceFullPath", "ReplacePrefixMatch"]
MAX_WEIGHT = 1_000_000
# The CRD's list limits.
MAX_HOSTNAMES, MAX_RULES, MAX_MATCHES, MAX_FILTERS, MAX_BACKENDS, MAX_PARENTS = 16, 16, 64, 16, 16, 32
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")
_BAD_PATH = ("//", "/./", "/../", "%2f", "%2F", "#")


def _hostname(host: str, at: str) -> list[FieldError]:
    if parse_ip(host) is not None:
        return [invalid(at, host, "must be a DNS name, not an IP address")]
    check = is_wildcard_dns1123_subdomain if host.startswith("*.") else is_dns1123_subdomain
    return [invalid(at, host, msg) for msg in check(host)]


def _path(match: Obj, at: str) -> list[FieldError]:
    kind = match.get("type", "PathPrefix")
    value = str(match.get("value", "/"))
    if kind not in PATH_TYPES:
        return [not_supported(f"{at}.type", kind, PATH_TYPES)]
    if kind == "RegularExpression":
        return []
    errs = []
    if not value.startswith("/"):
        errs.append(invalid(f"{at}.value", value, "must be an absolute path"))
    errs.extend(invalid(f"{at}.value", value,
                        f"must not contain '{seq}'") for seq in _BAD_PATH if seq in value)
    return errs


def _named_values(items: list[Any], at: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for k, item in enumerate(items):
        item = as_dict(item)
        if item.get("type", "Exact") not in VALUE_TYPES:
            errs.append(not_supported(f"{at}[{k}].type", item.get("type"), VALUE_TYPES))
        name = str(item.get("name") or "")
        if not name:
            errs.append(required(f"{at}[{k}].name"))
        elif _HEADER_NAME.match(name) is None:
            errs.append(invalid(f"{at}[{k}].name", name, "must be an HTTP token"))
    return errs


def _match(match: Obj, at: str) -> list[FieldError]:
    errs = _path(as_dict(match.get("path")), f"{at}.path") if match.get("path") is not None else []
    errs += _named_values(as_list(match.get("headers")), f"{at}.headers")
    errs += _named_values(as_list(match.get("queryParams")), f"{at}.queryParams")
    method = match.get("method")
    if method is not None and method not in METHODS:
        errs.append(not_supported(f"{at}.method", method, METHODS))
    return errs


def _modifier(mod: Obj, at: str, prefix_matches_only: bool) -> list[FieldError]:
    kind = mod.get("type")
    if kind not in MODIFIER_TYPES:
        return [not_supported(f"{at}.type", kind, MODIFIER_TYPES)]
    field = "replaceFullPath" if kind == "ReplaceFullPath" else "replacePrefixMatch"
    if mod.get(field) is None:
        return [required(f"{at}.{field}", f"must be set when type is {kind}")]
    if kind == "ReplacePrefixMatch" and not prefix_matches_only:
        # The CRD's CEL rule: a prefix can only be replaced where the match is a prefix.
        return [invalid(at, kind, "ReplacePrefixMatch needs every match of the rule to be a PathPrefix")]
    return []


def _filter(flt: Obj, at: str, prefix_matches_only: bool) -> list[FieldError]:
    kind = flt.get("type")
    if kind not in FILTER_FIELDS:
        return [not_supported(f"{at}.type", kind, sorted(FILTER_FIELDS))]
    errs: list[FieldError] = []
    field = FILTER_FIELDS[kind]
    if flt.get(field) is None:
        errs.append(required(f"{at}.{field}", f"must be set for filter type {kind}"))
    errs.extend(invalid(f"{at}.{other}", "", f"must not be set for filter type {kind}")
                for other in FILTER_FIELDS.values() if other != field and flt.get(other) is not None)
    body = as_dict(flt.get(field))
    if kind == "RequestRedirect":
        code = body.get("statusCode", 302)
        if code not in (301, 302):
            errs.append(not_supported(f"{at}.requestRedirect.statusCode", code, ["301", "302"]))
        if body.get("scheme") not in (None, "http", "https"):
            errs.append(not_supported(f"{at}.requestRedirect.scheme", body.get("scheme"), ["http", "https"]))
    if kind in ("RequestRedirect", "URLRewrite"):
        if body.get("hostname"):
            errs.extend(_hostname(str(body["hostname"]), f"{at}.{field}.hostname"))
        if body.get("path") is not None:
            errs.extend(_modifier(as_dict(body["path"]), f"{at}.{field}.path", prefix_matches_only))
    return errs


def _backend(ref: Obj, at: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if not ref.get("name"):
        errs.append(required(f"{at}.name"))
    kind, group = ref.get("kind", "Service"), ref.get("group", "")
    if kind == "Service" and group in ("", "core") and ref.get("port") is None:
        errs.append(required(f"{at}.port", "must be specified when the backend is a Service"))
    weight = as_int(ref.get("weight", 1))
    if weight is None or not 0 <= weight <= MAX_WEIGHT:
        errs.append(invalid(f"{at}.weight", ref.get("weight"), f"must be between 0 and {MAX_WEIGHT}"))
    return errs


def _rule(rule: Obj, at: str) -> list[FieldError]:
    errs: list[FieldError] = []
    matches = as_list(rule.get("matches"))
    filters = as_list(rule.get("filters"))
    backends = as_list(rule.get("backendRefs"))
    for name, items, limit in (("matches", matches, MAX_MATCHES), ("filters", filters, MAX_FILTERS),
                               ("backendRefs", backends, MAX_BACKENDS)):
        if len(items) > limit:
            errs.append(too_many(f"{at}.{name}", len(items), limit))
    prefix_only = all((as_dict(as_dict(m).get("path")).get("type", "PathPrefix")) == "PathPrefix"
                      for m in matches)
    for j, match in enumerate(matches):
        errs.extend(_match(as_dict(match), f"{at}.matches[{j}]"))
    kinds = [as_dict(f).get("type") for f in filters]
    for j, flt in enumerate(filters):
        errs.extend(_filter(as_dict(flt), f"{at}.filters[{j}]", prefix_only))
    if "RequestRedirect" in kinds and "URLRewrite" in kinds:
        errs.append(invalid(f"{at}.filters", "", "may not contain both RequestRedirect and URLRewrite"))
    if "RequestRedirect" in kinds and backends:
        errs.append(invalid(f"{at}.backendRefs", "", "must be empty when a RequestRedirect filter is used"))
    for kind in ("RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect", "URLRewrite"):
        if kinds.count(kind) > 1:
            errs.append(invalid(f"{at}.filters", kind, "may appear at most once"))
    for j, ref in enumerate(backends):
        errs.extend(_backend(as_dict(ref), f"{at}.backendRefs[{j}]"))
    return errs


def validate_http_route(obj: Obj) -> list[FieldError]:
    errs = object_meta(obj, namespaced=True)
    spec = as_dict(obj.get("spec"))
    parents, hosts, rules = (as_list(spec.get(k)) for k in ("parentRefs", "hostnames", "rules"))
    for name, items, limit in (("parentRefs", parents, MAX_PARENTS), ("hostnames", hosts, MAX_HOSTNAMES),
                               ("rules", rules, MAX_RULES)):
        if len(items) > limit:
            errs.append(too_many(f"spec.{name}", len(items), limit))
    for i, ref in enumerate(parents):
        if not as_dict(ref).get("name"):
            errs.append(required(f"spec.parentRefs[{i}].name"))
    for i, host in enumerate(hosts):
        errs.extend(_hostname(str(host), f"spec.hostnames[{i}]"))
    for i, rule in enumerate(rules):
        errs.extend(_rule(as_dict(rule), f"spec.rules[{i}]"))
    return errs


def validate_http_route_update(new: Obj, old: Obj) -> list[FieldError]:
    return [*object_meta_update(new, old), *validate_http_route(new)]
