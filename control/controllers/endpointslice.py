"""The EndpointSlice controller: Services x Pods -> EndpointSlices, as Kubernetes'.

The plan comes from the pure `slicing.reconcile`; this shell reads the caches, writes
the plan and guards against its own stale cache: slices it created or updated may not
be in the informer yet when the next sync of the same service runs, and acting on such
a cache would create duplicates (Kubernetes' EndpointSliceTracker), so the sync waits
(re-queues) until the cache has caught up with the controller's own writes.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import msgspec

from control.controllers.base import QueueController, RetryError, split_key
from control.controllers.informers import NAMESPACE_INDEX, InformerSet, namespace_of
from control.controllers.slicing import CONTROLLER_NAME, ZONE_LABEL, SlicePlan, reconcile
from netplane.client.rest import ApiClient, ApiError, resource_path
from netplane.model import EndpointSlice, Node, Pod, Service, selector_from_set
from netplane.model.discovery import MANAGED_BY_LABEL, SERVICE_NAME_LABEL, TRIGGER_TIME_ANNOTATION

log = logging.getLogger(__name__)

SLICES_BY_SERVICE = "endpointslice:service"
_DELETED = -1
# An expectation the informer never meets (e.g. a slice created and deleted by someone
# else between two relists) is given up after this long.
_EXPECTATION_TTL = 30.0


def _managed_service_key(slice_: EndpointSlice) -> list[str]:
    labels = slice_.metadata.labels
    if labels.get(MANAGED_BY_LABEL) != CONTROLLER_NAME or not labels.get(SERVICE_NAME_LABEL):
        return []
    return [f"{slice_.metadata.namespace}/{labels[SERVICE_NAME_LABEL]}"]


def _rv(obj: Any) -> int:
    rv = obj.metadata.resource_version if not isinstance(obj, dict) else \
        obj.get("metadata", {}).get("resourceVersion", "")
    try:
        return int(rv)
    except (TypeError, ValueError):
        return 0


class StaleCache(Exception):
    """The slice cache does not yet show this controller's own last writes."""


class SliceTracker:
    """The resourceVersion each slice had after this controller's last write to it
    (or _DELETED), per service, until the informer shows it."""

    def __init__(self) -> None:
        self._expected: dict[str, dict[str, tuple[int, float]]] = {}

    def wrote(self, service_key: str, name: str, rv: int) -> None:
        self._expected.setdefault(service_key, {})[name] = (rv, time.monotonic())

    def is_own_write(self, service_key: str, slice_: EndpointSlice) -> bool:
        want = self._expected.get(service_key, {}).get(slice_.metadata.name)
        return want is not None and want[0] == _rv(slice_)

    def forget(self, service_key: str, name: str | None = None) -> None:
        if name is None:
            self._expected.pop(service_key, None)
        else:
            self._expected.get(service_key, {}).pop(name, None)

    def check(self, service_key: str, cached: list[EndpointSlice]) -> None:
        """Raises StaleCache unless every write is visible; forgets the visible ones."""
        expected = self._expected.get(service_key)
        if not expected:
            return
        by_name = {s.metadata.name: _rv(s) for s in cached}
        now = time.monotonic()
        for name, (rv, at) in list(expected.items()):
            seen = by_name.get(name)
            met = seen is None if rv == _DELETED else seen is not None and seen >= rv
            if met or now - at > _EXPECTATION_TTL:
                del expected[name]
        if expected:
            raise StaleCache(f"slice cache of {service_key} is behind: waiting for {sorted(expected)}")
        del self._expected[service_key]


class EndpointSliceController(QueueController):
    name = "endpointslice"
    max_retries = 15

    def __init__(self, client: ApiClient, informers: InformerSet, *, max_endpoints_per_slice: int = 100,
                 **options: Any) -> None:
        super().__init__(client, informers, **options)
        self.max_endpoints_per_slice = max_endpoints_per_slice
        self.tracker = SliceTracker()
        # service key -> when the oldest change not yet written to its slices was seen
        # (Kubernetes' TriggerTimeTracker, by observation time): written to the slices as
        # endpoints.kubernetes.io/last-change-trigger-time, from which the proxies measure
        # network programming latency.
        self._changed_at: dict[str, float] = {}
        self.services = informers.ensure_index("/api/v1/services", NAMESPACE_INDEX, namespace_of)
        self.pods = informers.ensure_index("/api/v1/pods", NAMESPACE_INDEX, namespace_of)
        self.nodes = informers.get("/api/v1/nodes")
        self.slices = informers.ensure_index("/apis/discovery.k8s.io/v1/endpointslices",
                                             SLICES_BY_SERVICE, _managed_service_key)
        self.services.add_handler(on_add=self._service_changed,
                                  on_update=lambda _o, n: self._service_changed(n),
                                  on_delete=self._service_changed)
        self.pods.add_handler(on_add=self._pod_changed, on_update=self._pod_updated,
                              on_delete=self._pod_changed)
        self.slices.add_handler(on_add=self._slice_changed, on_update=lambda _o, n: self._slice_changed(n),
                                on_delete=self._slice_deleted)
        self.nodes.add_handler(on_add=self._node_changed, on_update=self._node_updated,
                               on_delete=self._node_changed)

    # --- event handlers: which services to sync ---

    def _services_for(self, pod: Pod) -> set[str]:
        keys = set()
        for svc in self.services.cache.by_index(NAMESPACE_INDEX, pod.metadata.namespace):
            if svc.spec.selector is not None and selector_from_set(svc.spec.selector).matches(
                    pod.metadata.labels):
                keys.add(f"{svc.metadata.namespace}/{svc.metadata.name}")
        return keys

    def _changed(self, key: str) -> None:
        self._changed_at.setdefault(key, time.time())
        self.queue.add(key)

    def _service_changed(self, svc: Service) -> None:
        self._changed(f"{svc.metadata.namespace}/{svc.metadata.name}")

    def _pod_changed(self, pod: Pod) -> None:
        for key in self._services_for(pod):
            self._changed(key)

    def _pod_updated(self, old: Pod, new: Pod) -> None:
        if _endpoint_view(old) == _endpoint_view(new):
            return
        for key in self._services_for(old) | self._services_for(new):
            self._changed(key)

    def _slice_changed(self, slice_: EndpointSlice) -> None:
        for key in _managed_service_key(slice_):
            if not self.tracker.is_own_write(key, slice_):
                self.queue.add(key)

    def _slice_deleted(self, slice_: EndpointSlice) -> None:
        for key in _managed_service_key(slice_):
            # Deleted by someone else (or by us): nothing more to wait for on this name.
            self.tracker.forget(key, slice_.metadata.name)
            self.queue.add(key)

    def _node_changed(self, _node: Node) -> None:
        # A node appearing or going changes which pods are skipped; rare, so resync all.
        for svc in self.services.cache.list():
            self.enqueue(svc)

    def _node_updated(self, old: Node, new: Node) -> None:
        if old.metadata.labels.get(ZONE_LABEL) != new.metadata.labels.get(ZONE_LABEL):
            self._node_changed(new)

    # --- the sync ---

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        service: Service | None = self.services.cache.get(key)
        existing: list[EndpointSlice] = list(self.slices.cache.by_index(SLICES_BY_SERVICE, key))
        if service is None:
            self._changed_at.pop(key, None)
            # Kubernetes leaves these to the garbage collector (ownerReferences); deleting
            # them here too means they never outlive their service when no collector runs.
            self.tracker.forget(key)
            for s in existing:
                await self._delete(key, s)
            return
        if service.spec.selector is None or service.spec.type == "ExternalName":
            return  # slices of such services are managed by someone else
        try:
            self.tracker.check(key, existing)
        except StaleCache as exc:
            log.debug("%s", exc)
            self.queue.add_after(key, 0.05)
            return
        selector = selector_from_set(service.spec.selector)
        pods = [p for p in self.pods.cache.by_index(NAMESPACE_INDEX, namespace)
                if selector.matches(p.metadata.labels)]
        plan = reconcile(service, pods, existing, self.nodes.cache.get, self.max_endpoints_per_slice)
        changed_at = self._changed_at.pop(key, None)
        try:
            await self._apply(key, service, plan, changed_at)
        except BaseException:
            if changed_at is not None:
                self._changed_at.setdefault(key, changed_at)  # still to be written: keep its age
            raise
        if plan.skipped_pods:
            shown = ", ".join(plan.skipped_pods[:5])
            more = f" and {len(plan.skipped_pods) - 5} more" if len(plan.skipped_pods) > 5 else ""
            raise RetryError(f"pods {shown}{more} of service {name} are on nodes that do not exist "
                             "(yet); left out of its slices, will retry")

    async def _apply(self, key: str, service: Service, plan: SlicePlan, changed_at: float | None) -> None:
        collection = resource_path("discovery.k8s.io/v1", "endpointslices", service.namespace)
        # As Kubernetes: no new slices for a service being deleted (the GC removes them).
        if service.metadata.deletion_timestamp is None:
            for s in plan.create:
                created = await self.client.create(collection, _body(s, changed_at))
                self.tracker.wrote(key, created["metadata"]["name"], _rv(created))
        for s in plan.update:
            path = resource_path("discovery.k8s.io/v1", "endpointslices", service.namespace, s.metadata.name)
            updated = await self.client.update(path, _body(s, changed_at))
            self.tracker.wrote(key, s.metadata.name, _rv(updated))
        for s in plan.delete:
            await self._delete(key, s)

    async def _delete(self, key: str, slice_: EndpointSlice) -> None:
        path = resource_path("discovery.k8s.io/v1", "endpointslices", slice_.metadata.namespace,
                             slice_.metadata.name)
        try:
            await self.client.delete(path)
        except ApiError as exc:
            if exc.code != 404:
                raise
        self.tracker.wrote(key, slice_.metadata.name, _DELETED)


def _body(slice_: EndpointSlice, changed_at: float | None = None) -> dict[str, Any]:
    body = msgspec.to_builtins(slice_)
    body["apiVersion"], body["kind"] = "discovery.k8s.io/v1", "EndpointSlice"
    if changed_at is not None:
        meta = body.setdefault("metadata", {})
        meta.setdefault("annotations", {})[TRIGGER_TIME_ANNOTATION] = rfc3339_nano(changed_at)
    # A slice always carries its endpoints list, even when empty (the placeholder).
    body.setdefault("endpoints", [])
    return body


def rfc3339_nano(t: float) -> str:
    """Go's time.RFC3339Nano in UTC (trailing zeros of the fraction dropped, as Go does)."""
    whole = datetime.fromtimestamp(int(t), UTC).strftime("%Y-%m-%dT%H:%M:%S")
    frac = f"{t - int(t):.9f}"[2:].rstrip("0")
    return f"{whole}.{frac}Z" if frac else f"{whole}Z"


def _endpoint_view(pod: Pod) -> tuple[Any, ...]:
    """What of a pod can change its endpoints; other updates (container statuses,
    annotations) need no sync."""
    return (pod.metadata.labels, pod.metadata.deletion_timestamp, pod.status.phase, pod.status.pod_ip,
            pod.status.pod_ips, pod.is_ready(), pod.spec.node_name, pod.spec.hostname, pod.spec.subdomain,
            [c.ports for c in pod.spec.containers])
