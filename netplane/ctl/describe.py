"""`netplane ctl describe`: fetches an object and what its page shows beside it (its
events; a Service's EndpointSlices, a Deployment's ReplicaSets, a Node's pods and lease),
then prints kubectl's page for its kind, or the generic page."""

from __future__ import annotations

import logging
import sys
from typing import Any

from netplane.client.rest import ApiClient, ApiError, ResourceRef, resource_path
from netplane.ctl import describe_cluster, describe_network, describe_workloads, page
from netplane.ctl.errors import CtlError, api_error_text
from netplane.ctl.resources import Resolver, group_of, split_args

log = logging.getLogger(__name__)
Obj = dict[str, Any]


async def _list(api: ApiClient, path: str, params: dict[str, Any] | None = None) -> list[Obj] | None:
    """Items of a list the page only adds to: None (the section is left out) if it fails."""
    try:
        return list((await api.list(path, params)).get("items") or [])
    except ApiError as exc:
        log.info("describe: listing %s failed: %s", path, api_error_text(exc))
        return None


async def _events(api: ApiClient, ref: ResourceRef, obj: Obj) -> list[Obj] | None:
    meta = obj["metadata"]
    ns = meta.get("namespace")
    selector = [f"involvedObject.kind={ref.kind}", f"involvedObject.name={meta['name']}"]
    if ns:
        selector.append(f"involvedObject.namespace={ns}")
    uids = [meta.get("uid")] + ([meta["name"]] if ref.kind == "Node" else [])
    events: list[Obj] = []
    for uid in uids:
        found = await _list(api, resource_path("v1", "events", ns),
                            {"fieldSelector": ",".join([*selector, f"involvedObject.uid={uid}"])})
        if found is None:
            return None
        events.extend(found)
    return events


async def _get_or_none(api: ApiClient, path: str) -> Obj | None:
    try:
        return await api.get(path)
    except ApiError as exc:
        log.info("describe: reading %s failed: %s", path, api_error_text(exc))
        return None


async def render(api: ApiClient, ref: ResourceRef, obj: Obj) -> str:
    """The describe page of `obj` (a `ref` object), with what it needs fetched."""
    meta = obj["metadata"]
    events = await _events(api, ref, obj)
    ns, name = meta.get("namespace"), meta["name"]
    kind = (group_of(ref), ref.kind)
    if kind == ("", "Service"):
        slices = await _list(api, resource_path("discovery.k8s.io/v1", "endpointslices", ns),
                             {"labelSelector": f"kubernetes.io/service-name={name}"})
        return describe_network.service(obj, slices, events)
    if kind == ("discovery.k8s.io", "EndpointSlice"):
        return describe_network.endpoint_slice(obj, events)
    if kind == ("", "Pod"):
        return describe_workloads.pod(obj, events)
    if kind == ("apps", "Deployment"):
        sets = await _list(api, resource_path("apps/v1", "replicasets", ns))
        return describe_workloads.deployment(obj, sets, events)
    if kind == ("", "Namespace"):
        return describe_cluster.namespace(obj)
    if kind == ("", "Node"):
        pods = await _list(api, resource_path("v1", "pods"), {"fieldSelector": f"spec.nodeName={name}"})
        running = None if pods is None else [
            p for p in pods if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
        lease = await _get_or_none(api, resource_path("coordination.k8s.io/v1", "leases",
                                                      "kube-node-lease", name))
        return describe_cluster.node(obj, running, lease, events)
    return page.generic(obj, events)


async def _named(api: ApiClient, ref: ResourceRef, scope: str | None, name: str) -> list[Obj]:
    """The object `name`, or — as kubectl's describe does — those whose name starts with it."""
    try:
        return [await api.get(resource_path(ref.group_version, ref.plural, scope, name))]
    except ApiError as exc:
        if exc.code != 404:
            raise CtlError(api_error_text(exc)) from None
        listed = await _list(api, resource_path(ref.group_version, ref.plural, scope))
        matches = [o for o in listed or [] if o["metadata"]["name"].startswith(name)]
        if not matches:
            raise CtlError(api_error_text(exc)) from None
        return matches


async def describe(api: ApiClient, resolver: Resolver, args: list[str], namespace: str, *,
                   selector: str | None = None, all_namespaces: bool = False) -> int:
    pages: list[str] = []
    any_namespaced = False
    for kind, names in split_args(args):
        ref = resolver.resource(kind)
        any_namespaced |= ref.namespaced
        scope = None if (all_namespaces or not ref.namespaced) else namespace
        objects: list[Obj] = []
        if names:
            for name in names:
                objects.extend(await _named(api, ref, scope, name))
        else:
            try:
                listed = await api.list(resource_path(ref.group_version, ref.plural, scope),
                                        {"labelSelector": selector})
            except ApiError as exc:
                raise CtlError(api_error_text(exc)) from None
            objects = listed.get("items") or []
        for obj in objects:
            obj.setdefault("apiVersion", ref.group_version)
            obj.setdefault("kind", ref.kind)
            pages.append(await render(api, ref, obj))
    if not pages:
        in_ns = not all_namespaces and any_namespaced
        print(f"No resources found in {namespace} namespace." if in_ns else "No resources found",
              file=sys.stderr)
        return 0
    sys.stdout.write("\n\n".join(pages))
    sys.stdout.flush()
    return 0
