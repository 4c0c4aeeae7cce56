"""Naming resources as kubectl users do: `svc`, `Service`, `services`, `deployments.apps`,
`svc/web`; and finding the resource that serves a manifest's apiVersion and kind."""

from __future__ import annotations

from collections.abc import Sequence

from netplane.client.rest import ResourceRef


class ResourceError(Exception):
    """A resource name or a kind the server does not serve, said as kubectl says it."""


def group_of(ref: ResourceRef) -> str:
    return ref.group_version.rpartition("/")[0]


class Resolver:
    """Lookups over the server's discovery (`ApiClient.discover()`)."""

    def __init__(self, refs: dict[str, ResourceRef]) -> None:
        self._refs = refs
        self._all = sorted(set(refs.values()), key=lambda r: (r.group_version, r.plural))

    def resource(self, name: str) -> ResourceRef:
        """The resource a command line names: a kind, plural, singular or short name,
        optionally qualified by its group (`deployments.apps`)."""
        ref = self._refs.get(name) or self._refs.get(name.lower())
        if ref is not None:
            return ref
        short, _, group = name.lower().partition(".")
        if group:
            qualified = self._refs.get(short)
            if qualified is not None and group_of(qualified) == group:
                return qualified
            for ref in self._all:
                if group_of(ref) == group and short in (ref.plural, ref.kind.lower()):
                    return ref
        raise ResourceError(f'the server doesn\'t have a resource type "{name}"')

    def for_object(self, api_version: str, kind: str) -> ResourceRef:
        """The resource serving objects of `kind` in `api_version` (a manifest's)."""
        for ref in self._all:
            if ref.group_version == api_version and ref.kind == kind:
                return ref
        served = [r.group_version for r in self._all if r.kind == kind]
        hint = f" (it serves {kind} as {', '.join(served)})" if served else ""
        raise ResourceError(f'no kind "{kind}" in version "{api_version}" on this server{hint}')


def split_args(args: Sequence[str]) -> list[tuple[str, list[str]]]:
    """`get KIND[,KIND] [NAME...]` or `get KIND/NAME...` as (kind, names) pairs, in order."""
    if not args:
        raise ResourceError("name a resource type, e.g. `pods` or `svc/web`")
    if any("/" in a for a in args):
        if not all("/" in a for a in args):
            raise ResourceError("there is no need to specify a resource type as a separate argument "
                                "when passing arguments in resource/name form (e.g. `svc/web`)")
        pairs: list[tuple[str, list[str]]] = []
        for arg in args:
            kind, _, name = arg.partition("/")
            if not kind or not name:
                raise ResourceError(f"{arg!r} is not of the form KIND/NAME")
            if pairs and pairs[-1][0] == kind:
                pairs[-1][1].append(name)
            else:
                pairs.append((kind, [name]))
        return pairs
    kinds = [k for k in args[0].split(",") if k]
    if not kinds:
        raise ResourceError(f"{args[0]!r} names no resource type")
    return [(k, list(args[1:])) for k in kinds]
