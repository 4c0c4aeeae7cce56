"""The REST surface: Kubernetes paths and verbs, mapped onto the registry.

One handler parses every `/api/...` and `/apis/...` path itself: Kubernetes' path
grammar is ambiguous for a router (`/api/v1/namespaces/x/pods` lists pods,
`/api/v1/namespaces/x/status` is a namespace's status).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import yaml
from aiohttp import web

from control.apiserver import discovery, errors, podlogs, scale, tables, watch
from control.apiserver.config import AUTHORIZE, INFO, METRICS, WATCH_SLOTS
from control.apiserver.patch import (
    PatchError,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
    meta_for,
)
from control.apiserver.registry import Registry
from control.apiserver.resources import ResourceInfo, lookup
from control.apiserver.selection import ObjectFilter
from control.apiserver.strategies import validate_delete_options

_JSON = "application/json"
_TRUE = ("1", "true", "True")
# Go's strconv.ParseBool, which Kubernetes' parameter codec uses for boolean options.
_PARSE_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_PARSE_FALSE = ("0", "f", "F", "FALSE", "false", "False")


@dataclass
class RequestInfo:
    """What a request is about, for authorization, metrics and dispatch."""

    verb: str
    res: ResourceInfo | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None
    group: str = ""
    version: str = ""

    @property
    def resource_label(self) -> str:
        if self.res is None:
            return ""
        return f"{self.res.plural}/{self.subresource}" if self.subresource else self.res.plural


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type=_JSON)


def parse_path(path: str, method: str, query: Any) -> tuple[RequestInfo, str | None]:
    """Returns the request info and, for discovery paths, which document is asked for."""
    parts = [p for p in path.split("/") if p]
    if parts[0] == "api":
        if len(parts) == 1:
            return RequestInfo("get"), "api"
        group, version, rest = "", parts[1], parts[2:]
    else:
        if len(parts) == 1:
            return RequestInfo("get"), "apis"
        if len(parts) == 2:
            return RequestInfo("get", group=parts[1]), "group"
        group, version, rest = parts[1], parts[2], parts[3:]
    info = RequestInfo("get", group=group, version=version)
    if not rest:
        return info, "resources"
    ns: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        candidate = lookup(group, version, rest[2])
        if candidate is not None and candidate.namespaced:
            ns, rest = rest[1], rest[2:]
    res = lookup(group, version, rest[0])
    if res is None or len(rest) > 3:
        raise errors.not_found_path()
    info.res, info.namespace = res, ns
    if res.namespaced is False and ns is not None:
        raise errors.not_found_path()
    if len(rest) >= 2:
        info.name = rest[1]
    if len(rest) == 3:
        if rest[2] not in res.subresources:
            raise errors.not_found_path()
        info.subresource = rest[2]
    watching = query.get("watch", "") in _TRUE
    if info.name is None:
        info.verb = {"GET": "watch" if watching else "list", "POST": "create",
                     "DELETE": "deletecollection"}.get(method, "")
    elif info.subresource == "binding":
        info.verb = "create" if method == "POST" else ""
    elif info.subresource == "log":
        info.verb = "get" if method == "GET" else ""
    else:
        info.verb = {"GET": "get", "PUT": "update", "PATCH": "patch",
                     "DELETE": "delete"}.get(method, "")
    if not info.verb:
        raise errors.method_not_allowed(f"the server does not allow this method on the requested "
                                        f"resource ({method} {path})")
    return info, None


async def read_body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        return {}
    ctype = request.content_type
    if "protobuf" in ctype or "cbor" in ctype:
        # Kubernetes' binary encodings are not served (discovery and /openapi/v3 advertise
        # JSON only); kubectl's typed generators (`create service ...`) send protobuf.
        raise errors.unsupported_media_type(ctype)
    try:
        if "yaml" in ctype:
            return yaml.safe_load(raw)
        return orjson.loads(raw)
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        raise errors.bad_request(f"the request body is not valid JSON: {exc}") from exc


class ApiHandlers:
    def __init__(self, registry: Registry, codec: watch.EventCodec, *,
                 bookmark_interval: float = 10.0, server_address: str = "") -> None:
        self.registry = registry
        self.codec = codec
        self.bookmark_interval = bookmark_interval
        self.server_address = server_address

    async def handle(self, request: web.Request) -> web.StreamResponse:
        info, doc = parse_path(request.path, request.method, request.query)
        request[INFO] = info
        if doc is not None:
            return self._discovery(doc, info)
        assert info.res is not None
        request.app[AUTHORIZE](request, info)
        if info.subresource == "log":
            return await podlogs.serve(request, self.registry, info.namespace or "", info.name or "")
        if info.subresource == "scale":
            return await self._scale(request, info, info.res)
        return await getattr(self, f"_{info.verb}")(request, info, info.res)

    def _discovery(self, doc: str, info: RequestInfo) -> web.Response:
        body: Any
        if doc == "api":
            body = discovery.api_versions(self.server_address)
        elif doc == "apis":
            body = discovery.api_group_list()
        elif doc == "group":
            body = discovery.api_group(info.group)
        else:
            body = discovery.resource_list(info.group, info.version)
        if body is None:
            raise errors.not_found_path()
        return json_response(body)

    # -- verbs -------------------------------------------------------------------------

    async def _scale(self, request: web.Request, info: RequestInfo, res: ResourceInfo) -> web.Response:
        ns, name, dry_run = info.namespace, info.name or "", _dry_run(request)
        if info.verb == "get":
            return json_response(await scale.get(self.registry, res, ns, name))
        body = await read_body(request)
        if info.verb == "update":
            return json_response(await scale.update(self.registry, res, ns, name, body, dry_run=dry_run))
        return json_response(await scale.patch(self.registry, res, ns, name, body, request.content_type,
                                               dry_run=dry_run))

    async def _get(self, request: web.Request, info: RequestInfo, res: ResourceInfo) -> web.Response:
        obj = await self.registry.get(res, info.namespace, info.name or "")
        if tables.wants_table(request.headers.get("Accept", "")):
            return json_response(tables.to_table(
                res, [obj], include_object=request.query.get("includeObject", "Metadata"),
                resource_version=obj["metadata"]["resourceVersion"]))
        return json_response(obj)

    async def _list(self, request: web.Request, info: RequestInfo, res: ResourceInfo) -> web.Response:
        q = request.query
        flt = ObjectFilter(res, q.get("labelSelector", ""), q.get("fieldSelector", ""))
        try:
            limit = int(q.get("limit", "0") or 0)
        except ValueError:
            raise errors.bad_request(f"invalid limit: {q.get('limit')!r}") from None
        table = tables.wants_table(request.headers.get("Accept", ""))
        page = await self.registry.list(
            res, info.namespace, flt, limit=max(limit, 0), continue_token=q.get("continue", ""),
            resource_version=q.get("resourceVersion", ""),
            resource_version_match=q.get("resourceVersionMatch", ""), raw=not table)
        rv = str(page.resource_version)
        if table:
            return json_response(tables.to_table(
                res, page.items, include_object=q.get("includeObject", "Metadata"),
                resource_version=rv, continue_token=page.continue_token))
        meta: dict[str, Any] = {"resourceVersion": rv}
        if page.continue_token:
            meta["continue"] = page.continue_token
        if page.remaining is not None:
            meta["remainingItemCount"] = page.remaining
        if page.raw is not None:
            head = orjson.dumps({"kind": res.list_kind, "apiVersion": res.api_version,
                                 "metadata": meta})
            return web.Response(body=b"".join((head[:-1], b',"items":[', b",".join(page.raw), b"]}")),
                                content_type="application/json")
        body = {"kind": res.list_kind, "apiVersion": res.api_version, "metadata": meta,
                "items": page.items}
        return json_response(body)

    async def _watch(self, request: web.Request, info: RequestInfo,
                     res: ResourceInfo) -> web.StreamResponse:
        q = request.query
        flt = ObjectFilter(res, q.get("labelSelector", ""), q.get("fieldSelector", ""))
        if info.name:  # a watch of one object is a watch with a name field selector
            flt = ObjectFilter(res, q.get("labelSelector", ""),
                               ",".join(filter(None, [q.get("fieldSelector", ""),
                                                      f"metadata.name={info.name}"])))
        try:
            timeout = float(q["timeoutSeconds"]) if q.get("timeoutSeconds") else \
                watch.default_timeout()
        except ValueError:
            raise errors.bad_request(f"invalid timeoutSeconds: {q['timeoutSeconds']!r}") from None
        params = watch.WatchParams(
            resource_version=q.get("resourceVersion", ""), timeout=timeout,
            bookmarks=q.get("allowWatchBookmarks", "") in _TRUE,
            send_initial_events=q.get("sendInitialEvents", "") in _TRUE,
            bookmark_interval=self.bookmark_interval)
        render = None
        if tables.wants_table(request.headers.get("Accept", "")):
            include = q.get("includeObject", "Metadata")

            def render(kind: bytes, obj: dict[str, Any], _json: bytes) -> bytes:
                table = tables.to_table(res, [obj], include_object=include,
                                        resource_version=obj["metadata"]["resourceVersion"])
                return watch.line(kind, orjson.dumps(table))

        gauge = request.app[METRICS].watchers.labels(res.plural)
        gauge.inc()
        try:
            async with request.app[WATCH_SLOTS]:
                return await watch.serve(request, self.registry.store, res,
                                         res.namespace_prefix(info.namespace), flt, params,
                                         self.codec, render)
        finally:
            gauge.dec()

    async def _create(self, request: web.Request, info: RequestInfo,
                      res: ResourceInfo) -> web.Response:
        body = await read_body(request)
        if info.subresource == "binding":
            await self.registry.bind(info.namespace or "", info.name or "", body)
            return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {},
                                  "status": "Success", "code": 201}, 201)
        obj = await self.registry.create(res, info.namespace, body, dry_run=_dry_run(request))
        return json_response(obj, 201)

    async def _update(self, request: web.Request, info: RequestInfo,
                      res: ResourceInfo) -> web.Response:
        body = await read_body(request)
        obj, created = await self.registry.update(
            res, info.namespace, info.name or "", body, subresource=info.subresource,
            dry_run=_dry_run(request))
        return json_response(obj, 201 if created else 200)

    async def _patch(self, request: web.Request, info: RequestInfo,
                     res: ResourceInfo) -> web.Response:
        ctype = request.content_type
        patch = await read_body(request)
        if ctype == "application/apply-patch+yaml":
            raise errors.unsupported_media_type(
                f"{ctype}: server-side apply is not supported; use client-side apply "
                "(kubectl apply without --server-side)")

        def mutate(old: dict[str, Any]) -> dict[str, Any]:
            try:
                if ctype == "application/json-patch+json":
                    if not isinstance(patch, list):
                        raise PatchError("a JSON patch must be a list of operations")
                    return apply_json_patch(old, patch)
                if not isinstance(patch, dict):
                    raise PatchError("a merge patch must be a JSON object")
                if ctype == "application/merge-patch+json":
                    return apply_merge_patch(old, patch)
                if ctype == "application/strategic-merge-patch+json":
                    return apply_strategic_merge_patch(old, patch, meta_for(res.group, res.kind))
            except PatchError as exc:
                raise errors.ApiError(422, "Invalid", f"the patch could not be applied: {exc}",
                                      name=info.name, kind=res.kind) from exc
            raise errors.unsupported_media_type(ctype)

        obj = await self.registry.guaranteed_update(
            res, info.namespace, info.name or "", mutate, subresource=info.subresource,
            dry_run=_dry_run(request))
        return json_response(obj)

    async def _delete(self, request: web.Request, info: RequestInfo,
                      res: ResourceInfo) -> web.Response:
        options = await _delete_options(request)
        obj = await self.registry.delete(res, info.namespace, info.name or "", options,
                                         dry_run=_dry_run(request))
        # Kubernetes answers 200 even for a graceful or finalizer-held deletion, and 202
        # only when the client explicitly asked for cascading with orphanDependents=false
        # (changing that would break existing clients, says the upstream handler).
        pending = bool(obj["metadata"].get("deletionTimestamp"))
        cascading = options.get("orphanDependents") is False
        return json_response(obj, 202 if pending and cascading else 200)

    async def _deletecollection(self, request: web.Request, info: RequestInfo,
                                res: ResourceInfo) -> web.Response:
        q = request.query
        flt = ObjectFilter(res, q.get("labelSelector", ""), q.get("fieldSelector", ""))
        options = await _delete_options(request)
        items = await self.registry.delete_collection(res, info.namespace, flt, options,
                                                      dry_run=_dry_run(request))
        return json_response({"kind": res.list_kind, "apiVersion": res.api_version,
                              "metadata": {}, "items": items})


def _dry_run(request: web.Request) -> bool:
    values = request.query.getall("dryRun", [])
    for v in values:
        if v != "All":
            raise errors.bad_request(f'unsupported dryRun value {v!r}: only "All" is supported')
    return bool(values)


async def _delete_options(request: web.Request) -> dict[str, Any]:
    options = await read_body(request)
    if not isinstance(options, dict):
        raise errors.bad_request("DeleteOptions must be a JSON object")
    q = request.query
    if "gracePeriodSeconds" in q:
        try:
            options["gracePeriodSeconds"] = int(q["gracePeriodSeconds"])
        except ValueError:
            raise errors.bad_request("gracePeriodSeconds must be an integer") from None
    if "propagationPolicy" in q:
        options["propagationPolicy"] = q["propagationPolicy"]
    if "orphanDependents" in q:
        value = q["orphanDependents"]
        if value not in _PARSE_TRUE + _PARSE_FALSE:
            raise errors.bad_request(f"orphanDependents must be true or false, not {value!r}")
        options["orphanDependents"] = value in _PARSE_TRUE
    # Checked before the object is read, as Kubernetes' DELETE handler does.
    validate_delete_options(options)
    return options
