"""gateway.networking.k8s.io/v1 HTTPRoute (Gateway API), the fields a gateway routes by."""

from __future__ import annotations

import msgspec

from netplane.model.meta import KubeStruct, TypedObject

GATEWAY_GROUP = "gateway.networking.k8s.io"


class ParentReference(KubeStruct, frozen=True):
    group: str = GATEWAY_GROUP
    kind: str = "Gateway"
    namespace: str | None = None
    name: str = ""
    section_name: str | None = None
    port: int | None = None


class HTTPPathMatch(KubeStruct, frozen=True):
    type: str = "PathPrefix"  # Exact | PathPrefix | RegularExpression
    value: str = "/"


class HTTPHeaderMatch(KubeStruct, frozen=True):
    type: str = "Exact"  # Exact | RegularExpression
    name: str = ""
    value: str = ""


class HTTPQueryParamMatch(KubeStruct, frozen=True):
    type: str = "Exact"
    name: str = ""
    value: str = ""


class HTTPRouteMatch(KubeStruct, frozen=True):
    path: HTTPPathMatch | None = None
    headers: list[HTTPHeaderMatch] = msgspec.field(default_factory=list)
    query_params: list[HTTPQueryParamMatch] = msgspec.field(default_factory=list)
    method: str | None = None


class HTTPHeader(KubeStruct, frozen=True):
    name: str = ""
    value: str = ""


class HTTPHeaderFilter(KubeStruct, frozen=True):
    set: list[HTTPHeader] = msgspec.field(default_factory=list)
    add: list[HTTPHeader] = msgspec.field(default_factory=list)
    remove: list[str] = msgspec.field(default_factory=list)


class HTTPPathModifier(KubeStruct, frozen=True):
    type: str = ""  # ReplaceFullPath | ReplacePrefixMatch
    replace_full_path: str | None = None
    replace_prefix_match: str | None = None


class HTTPRequestRedirectFilter(KubeStruct, frozen=True):
    scheme: str | None = None
    hostname: str | None = None
    path: HTTPPathModifier | None = None
    port: int | None = None
    status_code: int = 302


class HTTPURLRewriteFilter(KubeStruct, frozen=True):
    hostname: str | None = None
    path: HTTPPathModifier | None = None


class HTTPRouteFilter(KubeStruct, frozen=True):
    type: str = ""
    request_header_modifier: HTTPHeaderFilter | None = None
    response_header_modifier: HTTPHeaderFilter | None = None
    request_redirect: HTTPRequestRedirectFilter | None = None
    url_rewrite: HTTPURLRewriteFilter | None = msgspec.field(default=None, name="urlRewrite")


class HTTPBackendRef(KubeStruct, frozen=True):
    group: str = ""
    kind: str = "Service"
    name: str = ""
    namespace: str | None = None
    port: int | None = None
    weight: int = 1


class HTTPRouteTimeouts(KubeStruct, frozen=True):
    request: str | None = None
    backend_request: str | None = None


class HTTPRouteRule(KubeStruct, frozen=True):
    name: str | None = None
    matches: list[HTTPRouteMatch] = msgspec.field(default_factory=list)
    filters: list[HTTPRouteFilter] = msgspec.field(default_factory=list)
    backend_refs: list[HTTPBackendRef] = msgspec.field(default_factory=list)
    timeouts: HTTPRouteTimeouts | None = None


class HTTPRouteSpec(KubeStruct, frozen=True):
    parent_refs: list[ParentReference] = msgspec.field(default_factory=list)
    hostnames: list[str] = msgspec.field(default_factory=list)
    rules: list[HTTPRouteRule] = msgspec.field(default_factory=list)


class HTTPRoute(TypedObject, frozen=True):
    spec: HTTPRouteSpec = msgspec.field(default_factory=HTTPRouteSpec)
