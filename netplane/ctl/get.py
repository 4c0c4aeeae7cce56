"""`netplane ctl get`: the server's Tables for humans, yaml/json/name for programs."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from netplane.client.rest import TABLE_ACCEPT, ApiClient, ApiError, ResourceRef, resource_path
from netplane.ctl import printers
from netplane.ctl.durations import age
from netplane.ctl.errors import CtlError, api_error_text
from netplane.ctl.resources import Resolver, split_args


@dataclass(frozen=True)
class GetRequest:
    args: list[str]
    namespace: str
    all_namespaces: bool = False
    selector: str | None = None
    field_selector: str | None = None
    output: str | None = None  # None (table), wide, yaml, json, name
    show_labels: bool = False
    no_headers: bool = False


@dataclass
class _Result:
    ref: ResourceRef
    docs: list[dict[str, Any]] = field(default_factory=list)  # Tables, or objects
    errors: list[str] = field(default_factory=list)


def _as_table(doc: dict[str, Any]) -> dict[str, Any]:
    """A Table from a server that sent plain objects: kubectl's default NAME and AGE."""
    if doc.get("kind") == "Table":
        return doc
    items = doc.get("items") if isinstance(doc.get("items"), list) else [doc]
    return {"kind": "Table", "columnDefinitions": [{"name": "Name", "priority": 0},
                                                   {"name": "Age", "priority": 0}],
            "rows": [{"cells": [i["metadata"]["name"], age(i["metadata"].get("creationTimestamp"))],
                      "object": {"metadata": i["metadata"]}} for i in items]}


async def _fetch(api: ApiClient, ref: ResourceRef, names: list[str], req: GetRequest,
                 table: bool) -> _Result:
    scope = None if (req.all_namespaces or not ref.namespaced) else req.namespace
    accept = TABLE_ACCEPT if table else None
    result = _Result(ref)
    if names:
        for name in names:
            try:
                doc = await api.get(resource_path(ref.group_version, ref.plural, scope, name), accept=accept)
            except ApiError as exc:
                if exc.code != 404:
                    raise CtlError(api_error_text(exc)) from None
                result.errors.append(api_error_text(exc))
                continue
            result.docs.append(_as_table(doc) if table else doc)
        return result
    params = {"labelSelector": req.selector, "fieldSelector": req.field_selector}
    try:
        doc = await api.get(resource_path(ref.group_version, ref.plural, scope), params, accept=accept)
    except ApiError as exc:
        raise CtlError(api_error_text(exc)) from None
    if table:
        result.docs.append(_as_table(doc))
    else:
        for item in doc.get("items") or []:
            item.setdefault("apiVersion", ref.group_version)
            item.setdefault("kind", ref.kind)
            result.docs.append(item)
    return result


def _nothing_found(req: GetRequest, results: list[_Result]) -> str:
    namespaced = any(r.ref.namespaced for r in results)
    if req.all_namespaces or not namespaced:
        return "No resources found"
    return f"No resources found in {req.namespace} namespace."


async def get(api: ApiClient, resolver: Resolver, req: GetRequest) -> int:
    """Prints what `kubectl get` would; the exit code (1 if a named object was missing)."""
    pairs = split_args(req.args)
    named = any(names for _, names in pairs)
    if named and (req.selector or req.field_selector):
        raise CtlError("name cannot be provided when a selector is specified")
    if named and req.all_namespaces:
        raise CtlError("a resource cannot be retrieved by name across all namespaces")
    table = req.output in (None, "wide")
    refs = [(resolver.resource(kind), names) for kind, names in pairs]
    results = [await _fetch(api, ref, names, req, table) for ref, names in refs]
    with_kind = len(refs) > 1 or any("/" in a for a in req.args)
    out: list[str] = []
    if table:
        for r in results:
            text = printers.table(r.docs, printers.TableOptions(
                wide=req.output == "wide", with_namespace=req.all_namespaces and r.ref.namespaced,
                with_kind=printers.qualified_kind(r.ref) if with_kind else "",
                show_labels=req.show_labels, no_headers=req.no_headers))
            if text:
                out.append(text)
        sys.stdout.write("\n".join(out))
    else:
        items = [d for r in results for d in r.docs]
        if req.output == "name":
            sys.stdout.write("".join(printers.name_lines(r.ref, r.docs) for r in results))
        elif items or not named:
            single = named and len(items) == 1 and len(req.args) <= 2 and "," not in req.args[0]
            sys.stdout.write(printers.structured(items, req.output or "yaml", single=single))
    sys.stdout.flush()
    errors = [e for r in results for e in r.errors]
    for error in errors:
        print(f"netplane ctl: {error}", file=sys.stderr)
    if not errors and table and not out:
        print(_nothing_found(req, results), file=sys.stderr)
    return 1 if errors else 0
