"""The verbs of `netplane ctl`, over one ApiClient."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from netplane.client.kubeconfig import ClusterConfig
from netplane.client.rest import TABLE_ACCEPT, ApiClient, ApiError, ResourceRef, resource_path
from netplane.ctl import describe as describer
from netplane.ctl import manifests, podio, printers
from netplane.ctl.apply import ApplyError, apply_one, delete_one


class UsageError(Exception):
    """A command line that names something the server does not have."""


def _resolve(refs: dict[str, ResourceRef], kind: str) -> ResourceRef:
    ref = refs.get(kind.lower())
    if ref is None:
        raise UsageError(f'the server doesn\'t have a resource type "{kind}"')
    return ref


def _split(kind: str, names: list[str]) -> tuple[str, list[str]]:
    """`get svc/web` is `get svc web`."""
    if "/" in kind:
        kind, name = kind.split("/", 1)
        return kind, [name, *names]
    return kind, names


async def run(config: ClusterConfig, args: argparse.Namespace) -> int:
    ns = args.namespace or config.namespace
    async with ApiClient(config) as api:
        if args.verb == "logs":
            await podio.logs(api, ns, args.pod, container=args.container, follow=args.follow,
                             tail=args.tail, previous=args.previous)
            return 0
        if args.verb == "exec":
            stdin = sys.stdin.buffer.read() if args.stdin else None
            return await podio.exec_in(api, ns, args.pod, args.command, container=args.container,
                                       stdin=stdin)
        refs = await api.discover()
        if args.verb == "apply":
            return await _apply(api, refs, args.filename, ns)
        if args.verb == "get":
            return await _get(api, refs, args, ns)
        if args.verb == "describe":
            return await _describe(api, refs, args.kind, args.name, ns)
        return await _delete(api, refs, args, ns)


async def _apply(api: ApiClient, refs: dict[str, ResourceRef], files: list[str], ns: str) -> int:
    failed = 0
    for obj in manifests.load(files):
        try:
            print(await apply_one(api, refs, obj, ns), flush=True)
        except ApplyError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


async def _get(api: ApiClient, refs: dict[str, ResourceRef], args: argparse.Namespace, ns: str) -> int:
    kind, names = _split(args.kind, args.names)
    ref = _resolve(refs, kind)
    scope = None if (args.all_namespaces or not ref.namespaced) else ns
    params = {"labelSelector": args.selector} if args.selector else None
    table_mode = args.output in (None, "wide")
    accept = TABLE_ACCEPT if table_mode else None
    if names:
        docs = [await api.get(resource_path(ref.group_version, ref.plural, scope, n), accept=accept)
                for n in names]
    else:
        docs = [await api.get(resource_path(ref.group_version, ref.plural, scope), params, accept=accept)]
    if table_mode:
        out = printers.table(docs, wide=args.output == "wide",
                             namespace_column=bool(args.all_namespaces and ref.namespaced))
        if not out:
            where = "" if scope is None else f" in {scope} namespace"
            print(f"No resources found{where}.", file=sys.stderr)
        sys.stdout.write(out)
        return 0
    items = docs if names else docs[0].get("items", [])
    for item in items:
        item.setdefault("apiVersion", ref.group_version)
        item.setdefault("kind", ref.kind)
    if args.output == "name":
        sys.stdout.write(printers.name_lines(ref, items))
    else:
        sys.stdout.write(printers.structured(items, args.output, single=len(names) == 1))
    return 0


async def _describe(api: ApiClient, refs: dict[str, ResourceRef], kind: str, name: str, ns: str) -> int:
    ref = _resolve(refs, kind)
    obj = await api.get(resource_path(ref.group_version, ref.plural, ns if ref.namespaced else None, name))
    related: list[dict[str, Any]] = []
    if ref.kind == "Service":
        slices = await api.list(resource_path("discovery.k8s.io/v1", "endpointslices", ns),
                                {"labelSelector": f"kubernetes.io/service-name={name}"})
        related = slices.get("items", [])
    sys.stdout.write(describer.describe(obj, related))
    return 0


async def _delete(api: ApiClient, refs: dict[str, ResourceRef], args: argparse.Namespace, ns: str) -> int:
    objects: list[dict[str, Any]] = []
    if args.filename:
        objects = manifests.load(args.filename)
    elif args.kind:
        kind, names = _split(args.kind, args.names)
        if not names:
            raise UsageError("delete needs names (or -f FILE): netplane ctl delete KIND NAME...")
        ref = _resolve(refs, kind)
        objects = [{"apiVersion": ref.group_version, "kind": ref.kind, "metadata": {"name": n}}
                   for n in names]
    else:
        raise UsageError("delete needs KIND NAME... or -f FILE")
    failed = 0
    for obj in objects:
        try:
            line = await delete_one(api, refs, obj, ns, ignore_not_found=args.ignore_not_found)
        except (ApplyError, ApiError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        if line:
            print(line, flush=True)
    return 1 if failed else 0
