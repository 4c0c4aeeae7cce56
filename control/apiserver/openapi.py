"""A minimal OpenAPI v3 index: enough for kubectl to see that the server validates.

kubectl (1.27+) validates a manifest on the client only when the server does not
advertise the `fieldValidation` query parameter on the kind's PATCH operation in
/openapi/v3; otherwise it leaves validation to the server, which is where netplane
validates. Without this document kubectl refuses `create`/`apply` ("failed to download
openapi"). Schemas are deliberately absent: kubectl then computes client-side apply
patches from its compiled-in types, as it does for any built-in kind.
"""

from __future__ import annotations

import hashlib
from functools import cache
from typing import Any

import orjson

from control.apiserver.discovery import VERSION
from control.apiserver.resources import RESOURCES, ResourceInfo


def _gv_path(res: ResourceInfo) -> str:
    return f"apis/{res.group}/{res.version}" if res.group else f"api/{res.version}"


def _item_path(res: ResourceInfo) -> str:
    scope = "/namespaces/{namespace}" if res.namespaced else ""
    return f"/{_gv_path(res)}{scope}/{res.plural}/{{name}}"


def _patch_operation(res: ResourceInfo) -> dict[str, Any]:
    return {
        "operationId": f"patch{res.kind}",
        "x-kubernetes-group-version-kind": {"group": res.group, "version": res.version,
                                            "kind": res.kind},
        "parameters": [{"name": name, "in": "query", "schema": {"type": "string"}}
                       for name in ("dryRun", "fieldManager", "fieldValidation")],
        "responses": {"200": {"description": "OK"}},
    }


@cache
def documents() -> dict[str, bytes]:
    """Group-version path ("api/v1", "apis/apps/v1") → its OpenAPI v3 document."""
    paths: dict[str, dict[str, Any]] = {}
    for res in RESOURCES:
        if "patch" in res.verbs:
            paths.setdefault(_gv_path(res), {})[_item_path(res)] = {"patch": _patch_operation(res)}
    return {gv: orjson.dumps({"openapi": "3.0.0",
                              "info": {"title": "Kubernetes", "version": VERSION},
                              "paths": doc}, option=orjson.OPT_SORT_KEYS)
            for gv, doc in paths.items()}


@cache
def root() -> bytes:
    """/openapi/v3: each group-version with a content-hashed URL (kubectl caches by it)."""
    index = {gv: {"serverRelativeURL": f"/openapi/v3/{gv}?hash="
                  f"{hashlib.sha512(body).hexdigest()[:64].upper()}"}
             for gv, body in documents().items()}
    return orjson.dumps({"paths": index}, option=orjson.OPT_SORT_KEYS)
