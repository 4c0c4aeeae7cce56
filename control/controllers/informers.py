"""Shared informers: one list-watch per collection, however many controllers read it.

As in client-go's SharedInformerFactory, every controller asks the set for the
collection it needs ("/api/v1/pods", "/apis/apps/v1/replicasets", or a namespaced
collection such as "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"),
registers its handlers, and the manager starts them all and waits for their caches.

Caches hold typed model objects for the kinds netplane models (`Pod`, `Service`,
`EndpointSlice`, ...), so that all controllers sharing a collection agree on what the
cache holds; other collections keep the informer's raw form unless a `decode` is given.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from netplane.client.informer import Informer
from netplane.model import (
    ConfigMap,
    Deployment,
    Endpoints,
    EndpointSlice,
    Event,
    Ingress,
    IngressClass,
    Lease,
    Namespace,
    Node,
    Pod,
    ReplicaSet,
    Secret,
    Service,
)
from netplane.model import decode as decode_as

if TYPE_CHECKING:
    from netplane.client.rest import ApiClient

log = logging.getLogger(__name__)

Decoder = Callable[[Any], Any]

NAMESPACE_INDEX = "namespace"
NODE_NAME_INDEX = "spec.nodeName"


def namespace_of(obj: Any) -> list[str]:
    """Index function of NAMESPACE_INDEX (typed objects or raw dicts)."""
    if isinstance(obj, dict):
        return [obj.get("metadata", {}).get("namespace") or ""]
    return [obj.metadata.namespace]


def node_name_of(pod: Any) -> list[str]:
    """Index function of NODE_NAME_INDEX for pods: the node it is bound to ("" unbound)."""
    if isinstance(pod, dict):
        return [pod.get("spec", {}).get("nodeName") or ""]
    return [pod.spec.node_name]

# (apiVersion, plural) -> typed view: the default decode of a collection path.
_TYPED: dict[tuple[str, str], type] = {
    ("v1", "pods"): Pod,
    ("v1", "services"): Service,
    ("v1", "endpoints"): Endpoints,
    ("v1", "nodes"): Node,
    ("v1", "namespaces"): Namespace,
    ("v1", "secrets"): Secret,
    ("v1", "configmaps"): ConfigMap,
    ("v1", "events"): Event,
    ("discovery.k8s.io/v1", "endpointslices"): EndpointSlice,
    ("apps/v1", "replicasets"): ReplicaSet,
    ("apps/v1", "deployments"): Deployment,
    ("coordination.k8s.io/v1", "leases"): Lease,
    ("networking.k8s.io/v1", "ingresses"): Ingress,
    ("networking.k8s.io/v1", "ingressclasses"): IngressClass,
}


@functools.cache
def typed_decoder(cls: type) -> Decoder:
    """The decode function for a typed view; the same object for the same class, so that
    two controllers passing `typed_decoder(Pod)` share one informer."""
    return functools.partial(decode_as, cls)


def parse_collection_path(path: str) -> tuple[str, str, str | None]:
    """"/api/v1/namespaces/ns/pods" -> ("v1", "pods", "ns"); raises ValueError otherwise."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3 and parts[0] == "api":
        api_version, rest = parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        api_version, rest = f"{parts[1]}/{parts[2]}", parts[3:]
    else:
        raise ValueError(f"not a collection path: {path!r}")
    if len(rest) == 1:
        return api_version, rest[0], None
    if len(rest) == 3 and rest[0] == "namespaces":
        return api_version, rest[2], rest[1]
    raise ValueError(f"not a collection path: {path!r}")


def default_decoder(path: str) -> Decoder | None:
    api_version, plural, _ = parse_collection_path(path)
    cls = _TYPED.get((api_version, plural))
    return typed_decoder(cls) if cls is not None else None


class InformerSet:
    """The informers of one process, keyed by collection path; owns their tasks."""

    def __init__(self, client: ApiClient) -> None:
        self._client = client
        self._informers: dict[str, Informer] = {}
        self._decoders: dict[str, Decoder | None] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._indexes: dict[str, set[str]] = {}
        self._started = False

    def __contains__(self, path: str) -> bool:
        return path in self._informers

    def get(self, path: str, *, decode: Decoder | None = None) -> Informer:
        """The shared informer of `path`, created on first use.

        `decode=None` means the default for the path (the typed model view for the kinds
        netplane models). A different `decode` for an existing path is a programming
        error (two controllers would disagree on what the cache holds): ValueError."""
        want = decode if decode is not None else default_decoder(path)
        informer = self._informers.get(path)
        if informer is not None:
            if decode is not None and self._decoders[path] is not want:
                raise ValueError(f"informer for {path} already exists with another decode")
            return informer
        informer = Informer(self._client, path, decode=want)
        self._informers[path] = informer
        self._decoders[path] = want
        if self._started:
            self._spawn(path, informer)
        return informer

    def ensure_index(self, path: str, name: str, func: Callable[[Any], list[str]]) -> Informer:
        """Adds the index `name` to the informer of `path` unless it has it already, so
        that controllers sharing an informer can share an index (e.g. NAMESPACE_INDEX)."""
        informer = self.get(path)
        names = self._indexes.setdefault(path, set())
        if name not in names:
            informer.cache.add_index(name, func)
            names.add(name)
        return informer

    def paths(self) -> list[str]:
        return list(self._informers)

    async def start(self) -> None:
        """Runs every informer (and any created later) as a task owned by this set."""
        self._started = True
        for path, informer in self._informers.items():
            if path not in self._tasks:
                self._spawn(path, informer)

    async def wait_synced(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Returns once every informer's cache holds its first full list.

        Raises TimeoutError after `timeout`, or the error of an informer that died."""
        async with asyncio.timeout(timeout):
            while not self.synced:
                for path, task in self._tasks.items():
                    if task.done():
                        cause = None if task.cancelled() else task.exception()
                        raise RuntimeError(f"informer {path} stopped before its cache synced") from cause
                waits = {asyncio.ensure_future(i.synced.wait())
                         for i in self._informers.values() if not i.synced.is_set()}
                try:
                    await asyncio.wait(waits | set(self._tasks.values()),
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for w in waits:
                        w.cancel()

    @property
    def synced(self) -> bool:
        return all(i.synced.is_set() for i in self._informers.values())

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._started = False

    def _spawn(self, path: str, informer: Informer) -> None:
        task = asyncio.create_task(informer.run(), name=f"informer {path}")
        task.add_done_callback(functools.partial(self._on_done, path))
        self._tasks[path] = task

    @staticmethod
    def _on_done(path: str, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("informer %s stopped", path, exc_info=task.exception())
