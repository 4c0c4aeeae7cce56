"""The verbs of `netplane ctl` over one ApiClient: what each prints, and its exit code.

A failure of the whole command raises CtlError (one line, exit 1); a failure of one
object among several is reported on its own line and the others go on, as kubectl does.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from netplane.client.kubeconfig import ClusterConfig
from netplane.client.rest import ApiClient, ApiError, resource_path
from netplane.ctl import describe as describer
from netplane.ctl import manifests, podio, portforward
from netplane.ctl.apply import SchemaFor, Scope, apply_one, locate
from netplane.ctl.delete import DeleteOptions, Target, delete_one, wait_deleted
from netplane.ctl.errors import CtlError, api_error_text
from netplane.ctl.get import GetRequest, get
from netplane.ctl.resources import Resolver, split_args


def report(message: str) -> None:
    print(f"netplane ctl: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Session:
    api: ApiClient
    resolver: Resolver
    scope: Scope


async def run(config: ClusterConfig, args: argparse.Namespace, schema_for: SchemaFor) -> int:
    namespace = args.namespace or config.namespace
    scope = Scope(namespace, explicit=args.namespace is not None)
    async with ApiClient(config) as api:
        if args.verb == "logs":
            await podio.logs(api, namespace, args.pod, container=args.container, follow=args.follow,
                             tail=args.tail, previous=args.previous)
            return 0
        if args.verb == "exec":
            stdin = sys.stdin.buffer.read() if args.stdin else None
            return await podio.exec_in(api, namespace, args.pod, args.command, container=args.container,
                                       stdin=stdin)
        if args.verb == "port-forward":
            return await portforward.port_forward(api, namespace, args.target, args.ports, args.address,
                                                  report)
        try:
            resolver = Resolver(await api.discover())
        except ApiError as exc:
            raise CtlError(f"reading the apiserver's discovery: {api_error_text(exc)}") from None
        session = Session(api, resolver, scope)
        if args.verb == "apply":
            return await _apply(session, args, schema_for)
        if args.verb == "get":
            return await get(api, resolver, GetRequest(
                args=args.resources, namespace=namespace, all_namespaces=args.all_namespaces,
                selector=args.selector, field_selector=args.field_selector, output=args.output,
                show_labels=args.show_labels, no_headers=args.no_headers))
        if args.verb == "describe":
            return await describer.describe(api, resolver, args.resources, namespace,
                                            selector=args.selector, all_namespaces=args.all_namespaces)
        return await _delete(session, args)


async def _apply(s: Session, args: argparse.Namespace, schema_for: SchemaFor) -> int:
    failed = 0
    for m in manifests.load(args.filename):
        try:
            obj = locate(s.resolver, m, s.scope)
            print(await apply_one(s.api, obj, schema_for, dry_run=args.dry_run), flush=True)
        except CtlError as exc:
            report(str(exc))
            failed += 1
    return 1 if failed else 0


async def _targets(s: Session, args: argparse.Namespace) -> list[Target]:
    if args.filename:
        if args.resources:
            raise CtlError("give either -f FILE or KIND NAME..., not both")
        located = [locate(s.resolver, m, s.scope) for m in manifests.load(args.filename)]
        return [Target(o.ref, o.namespace, o.manifest.name) for o in located]
    if not args.resources:
        raise CtlError("name what to delete: KIND NAME..., KIND/NAME, KIND -l SELECTOR, KIND --all "
                       "or -f FILE")
    targets: list[Target] = []
    for kind, names in split_args(args.resources):
        ref = s.resolver.resource(kind)
        namespace = s.scope.namespace if ref.namespaced else None
        if names and (args.selector or args.all):
            raise CtlError("name cannot be provided when a selector or --all is specified")
        if names:
            targets += [Target(ref, namespace, n) for n in names]
            continue
        if not (args.selector or args.all):
            raise CtlError(f'"{kind}" names no object: add NAME..., -l SELECTOR or --all')
        try:
            listed = await s.api.list(resource_path(ref.group_version, ref.plural, namespace),
                                      {"labelSelector": args.selector})
        except ApiError as exc:
            raise CtlError(api_error_text(exc)) from None
        targets += [Target(ref, namespace, o["metadata"]["name"]) for o in listed.get("items") or []]
    return targets


async def _delete(s: Session, args: argparse.Namespace) -> int:
    grace = 1 if args.now else args.grace_period
    options = DeleteOptions(grace_period=grace, propagation=args.cascade.capitalize(),
                            ignore_not_found=args.ignore_not_found or args.all or bool(args.selector),
                            wait=args.wait, timeout=args.timeout, dry_run=args.dry_run)
    targets = await _targets(s, args)
    if not targets:
        print("No resources found", file=sys.stderr)
        return 0
    failed = 0
    pending: list[tuple[Target, str | None]] = []
    for target in targets:
        try:
            uid, line = await delete_one(s.api, target, options)
        except CtlError as exc:
            report(str(exc))
            failed += 1
            continue
        if line:
            print(line, flush=True)
            pending.append((target, uid))
    if options.wait and options.dry_run == "none" and pending:
        await wait_deleted(s.api, pending, options.timeout)
    return 1 if failed else 0
