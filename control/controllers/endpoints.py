"""The legacy core/v1 Endpoints object of every Service with a selector.

Computed from the Service and its Pods as Kubernetes' endpoints controller does
(pkg/controller/endpoint): one address per pod and service port, not-ready pods under
`notReadyAddresses` (all ready with publishNotReadyAddresses; terminating pods only
then), subsets repacked so that addresses sharing the same ports share a subset, and
at most 1000 addresses with the `endpoints.kubernetes.io/over-capacity: truncated`
annotation beyond that. The pure part comes first; the controller is a thin shell.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Any

import msgspec

from control.controllers.base import QueueController, RetryError, split_key
from control.controllers.informers import NAMESPACE_INDEX, InformerSet, namespace_of
from control.controllers.slicing import (
    find_port,
    is_ipv6,
    is_service_ip_set,
    pod_ips,
    pod_reference,
    should_pod_be_in_endpoints,
    should_set_hostname,
)
from netplane.client.rest import ApiClient, ApiError, resource_path
from netplane.model import Endpoints, Pod, Service, selector_from_set
from netplane.model.core import EndpointAddress, EndpointPort, EndpointSubset
from netplane.model.meta import ObjectMeta

log = logging.getLogger(__name__)

MAX_CAPACITY = 1000
OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"
HEADLESS_LABEL = "service.kubernetes.io/headless"

# --- Pure: Service + Pods -> subsets -----------------------------------------------------


def pod_address(service: Service, pod: Pod) -> EndpointAddress | None:
    """podToEndpointAddressForService: the pod IP of the service's (first) family."""
    if service.spec.ip_families:
        want_v6 = service.spec.ip_families[0] == "IPv6"
    elif is_service_ip_set(service):
        want_v6 = is_ipv6(service.spec.cluster_ip)
    else:
        want_v6 = is_ipv6(pod.status.pod_ip)
    ip = next((i for i in pod_ips(pod) if is_ipv6(i) == want_v6), None)
    if ip is None:
        return None
    return EndpointAddress(ip=ip, hostname=pod.spec.hostname if should_set_hostname(pod, service) else "",
                           node_name=pod.spec.node_name or None, target_ref=pod_reference(pod))


def _address_sort_key(a: EndpointAddress) -> tuple[str, str]:
    return a.ip, a.target_ref.uid if a.target_ref else ""


def _port_sort_key(p: EndpointPort) -> tuple[str, int, str]:
    return p.name, p.port or 0, p.protocol


def sort_subsets(subsets: Iterable[EndpointSubset]) -> list[EndpointSubset]:
    out = [EndpointSubset(addresses=sorted(s.addresses, key=_address_sort_key),
                          not_ready_addresses=sorted(s.not_ready_addresses, key=_address_sort_key),
                          ports=sorted(s.ports, key=_port_sort_key)) for s in subsets]
    return sorted(out, key=lambda s: ([_port_sort_key(p) for p in s.ports],
                                      [_address_sort_key(a) for a in s.addresses],
                                      [_address_sort_key(a) for a in s.not_ready_addresses]))


def repack_subsets(subsets: Iterable[tuple[EndpointAddress, bool, EndpointPort | None]]
                   ) -> list[EndpointSubset]:
    """endpoints.RepackSubsets over (address, ready, port) triples: addresses that offer
    the same set of ports share one subset; not-ready wins over ready for a port."""
    readiness: dict[Any, dict[tuple[str, str], bool]] = {}
    addrs: dict[tuple[str, str], EndpointAddress] = {}
    for addr, ready, port in subsets:
        key = _address_sort_key(addr)
        addrs.setdefault(key, addr)
        per_port = readiness.setdefault(port, {})
        per_port[key] = per_port.get(key, True) and ready
    groups: dict[frozenset[tuple[tuple[str, str], bool]], list[EndpointPort]] = {}
    for port, members in readiness.items():
        ports = groups.setdefault(frozenset(members.items()), [])
        if port is not None:
            ports.append(port)
    final = []
    for members, ports in groups.items():
        ready = [addrs[k] for k, ok in members if ok]
        not_ready = [addrs[k] for k, ok in members if not ok]
        final.append(EndpointSubset(addresses=ready, not_ready_addresses=not_ready, ports=ports))
    return sort_subsets(final)


def endpoint_subsets(service: Service, pods: Iterable[Pod]) -> list[EndpointSubset]:
    publish = service.spec.publish_not_ready_addresses
    triples: list[tuple[EndpointAddress, bool, EndpointPort | None]] = []
    for pod in pods:
        if not should_pod_be_in_endpoints(pod, include_terminating=publish):
            continue
        addr = pod_address(service, pod)
        if addr is None:
            continue
        ready = publish or pod.is_ready()
        if not service.spec.ports:
            # A headless service may have no ports: its addresses are still listed.
            if service.spec.cluster_ip == "None":
                triples.append((addr, ready, None))
            continue
        for sp in service.spec.ports:
            number = find_port(pod, sp)
            if number is None:
                continue
            port = EndpointPort(name=sp.name, port=number, protocol=sp.protocol, app_protocol=sp.app_protocol)
            triples.append((addr, ready, port))
    return repack_subsets(triples)


def truncate(subsets: list[EndpointSubset], max_capacity: int = MAX_CAPACITY
             ) -> tuple[list[EndpointSubset], bool]:
    """truncateEndpoints: keep at most `max_capacity` addresses, each subset keeping its
    share; not-ready addresses go first, ready ones only if they alone are too many."""
    total_ready = sum(len(s.addresses) for s in subsets)
    total_not_ready = sum(len(s.not_ready_addresses) for s in subsets)
    if total_ready + total_not_ready <= max_capacity:
        return subsets, False
    truncate_ready = total_ready > max_capacity
    budget = max_capacity if truncate_ready else max_capacity - total_ready
    total = total_ready if truncate_ready else total_not_ready
    left = budget
    out = []
    for s in subsets:
        count = len(s.addresses) if truncate_ready else len(s.not_ready_addresses)
        take = min(math.ceil(count / total * budget), left) if total else 0
        if truncate_ready:
            s = msgspec.structs.replace(s, addresses=s.addresses[:take], not_ready_addresses=[])
            left -= len(s.addresses)
        else:
            s = msgspec.structs.replace(s, not_ready_addresses=s.not_ready_addresses[:take])
            left -= len(s.not_ready_addresses)
        out.append(s)
    return out, True


def desired_endpoints(service: Service, pods: Iterable[Pod], current: Endpoints | None) -> Endpoints | None:
    """The Endpoints object to write, or None when `current` already matches."""
    subsets, truncated = truncate(endpoint_subsets(service, pods))
    labels = dict(service.metadata.labels)
    labels.pop(HEADLESS_LABEL, None)
    if not is_service_ip_set(service):
        labels[HEADLESS_LABEL] = ""
    base = current or Endpoints(api_version="v1", kind="Endpoints",
                                metadata=ObjectMeta(name=service.name, namespace=service.namespace))
    annotations = dict(base.metadata.annotations)
    if truncated:
        annotations[OVER_CAPACITY] = "truncated"
    else:
        annotations.pop(OVER_CAPACITY, None)
    if (current is not None and sort_subsets(current.subsets) == subsets
            and current.metadata.labels == labels and current.metadata.annotations == annotations):
        return None
    meta = msgspec.structs.replace(base.metadata, labels=labels, annotations=annotations)
    return msgspec.structs.replace(base, api_version="v1", kind="Endpoints", metadata=meta, subsets=subsets)


# --- The controller ------------------------------------------------------------------------


class EndpointsController(QueueController):
    """Keeps `Endpoints/<service>` equal to `desired_endpoints` for every selector service."""

    name = "endpoints"
    max_retries = 15

    def __init__(self, client: ApiClient, informers: InformerSet, **options: Any) -> None:
        super().__init__(client, informers, **options)
        self.services = informers.ensure_index("/api/v1/services", NAMESPACE_INDEX, namespace_of)
        self.pods = informers.ensure_index("/api/v1/pods", NAMESPACE_INDEX, namespace_of)
        self.endpoints = informers.get("/api/v1/endpoints")
        # The object as this controller last wrote it, until the informer catches up: a
        # sync working from the older cached copy would only earn a 409 Conflict.
        self._written: dict[str, Endpoints] = {}
        self.services.add_handler(on_add=self.enqueue, on_update=lambda _o, n: self.enqueue(n),
                                  on_delete=self.enqueue)
        self.pods.add_handler(on_add=self._pod_changed, on_update=self._pod_updated,
                              on_delete=self._pod_changed)
        self.endpoints.add_handler(on_delete=self._endpoints_deleted)

    def _endpoints_deleted(self, endpoints: Endpoints) -> None:
        key = f"{endpoints.metadata.namespace}/{endpoints.metadata.name}"
        self._written.pop(key, None)
        self.queue.add(key)

    def _current(self, key: str) -> Endpoints | None:
        cached: Endpoints | None = self.endpoints.cache.get(key)
        written = self._written.get(key)
        if written is None:
            return cached
        if cached is not None and _rv(cached) >= _rv(written):
            del self._written[key]
            return cached
        return written

    def _services_for(self, pod: Pod) -> list[str]:
        keys = []
        for svc in self.services.cache.by_index(NAMESPACE_INDEX, pod.metadata.namespace):
            if svc.spec.selector is not None and selector_from_set(svc.spec.selector).matches(
                    pod.metadata.labels):
                keys.append(f"{svc.metadata.namespace}/{svc.metadata.name}")
        return keys

    def _pod_changed(self, pod: Pod) -> None:
        for key in self._services_for(pod):
            self.queue.add(key)

    def _pod_updated(self, old: Pod, new: Pod) -> None:
        for key in {*self._services_for(old), *self._services_for(new)}:
            self.queue.add(key)

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        path = resource_path("v1", "endpoints", namespace, name)
        service: Service | None = self.services.cache.get(key)
        current = self._current(key)
        if service is None:
            self._written.pop(key, None)
            if current is not None:
                try:
                    await self.client.delete(path)
                except ApiError as exc:
                    if exc.code != 404:
                        raise
            return
        if service.spec.selector is None:
            return  # endpoints of a selector-less service are the user's
        selector = selector_from_set(service.spec.selector)
        pods = [p for p in self.pods.cache.by_index(NAMESPACE_INDEX, namespace)
                if selector.matches(p.metadata.labels)]
        want = desired_endpoints(service, pods, current)
        if want is None:
            return
        body = msgspec.to_builtins(want)
        try:
            if current is None:
                written = await self.client.create(resource_path("v1", "endpoints", namespace), body)
            else:
                written = await self.client.update(path, body)
        except ApiError as exc:
            self._written.pop(key, None)
            if exc.code == 409:
                raise RetryError(f"Endpoints {key} changed meanwhile ({exc.reason}); retrying") from exc
            raise
        self._written[key] = msgspec.convert(written, Endpoints) if isinstance(written, dict) else want


def _rv(obj: Endpoints) -> int:
    try:
        return int(obj.metadata.resource_version)
    except ValueError:
        return 0
