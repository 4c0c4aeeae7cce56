"""Folds Service and EndpointSlice events into one pending change of the proxy state
(kube-proxy's ServiceChangeTracker and EndpointsChangeTracker together).

The tracker keeps the proxy's view service by service: an event marks its service dirty,
and `take()` recomputes only the dirty services and diffs them, so a sync costs what
changed, not the size of the cluster. Pure: no I/O, no event loop; the clock is injected.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from netplane.model import EndpointSlice, ProxyState, Service, StateChange, diff
from netplane.model.discovery import TRIGGER_TIME_ANNOTATION
from netplane.model.servicemap import (
    Endpoint,
    ServicePort,
    ServicePortName,
    build_endpoints_map,
    service_ports,
)


def parse_trigger_time(text: str) -> float | None:
    """Epoch seconds of an RFC 3339 time as the controller writes it, or None."""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True)
class Update:
    """What one sync applies: the whole desired state and what changed since the last
    `take()`. `trigger_times` holds, per service ("namespace/name"), the earliest time
    (epoch seconds) of a change folded into this update."""

    state: ProxyState
    changes: StateChange
    trigger_times: Mapping[str, float] = field(default_factory=dict)
    service_events: int = 0
    endpoint_events: int = 0


class ChangeTracker:
    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self._services: dict[str, Service] = {}
        self._slices: dict[str, dict[str, EndpointSlice]] = {}  # service key -> slice name -> slice
        self._slice_owner: dict[str, str] = {}  # slice key -> service key
        # What the last take() handed out, per service and merged.
        self._ports: dict[str, dict[ServicePortName, ServicePort]] = {}
        self._endpoints: dict[str, dict[ServicePortName, tuple[Endpoint, ...]]] = {}
        self._service_map: dict[ServicePortName, ServicePort] = {}
        self._endpoints_map: dict[ServicePortName, tuple[Endpoint, ...]] = {}
        self._dirty: set[str] = set()
        self._triggers: dict[str, float] = {}
        self.pending_service_events = 0
        self.pending_endpoint_events = 0

    @property
    def has_pending(self) -> bool:
        return bool(self._dirty)

    def _mark(self, key: str, when: float | None = None) -> None:
        self._dirty.add(key)
        at = when if when is not None else self._now()
        previous = self._triggers.get(key)
        if previous is None or at < previous:
            self._triggers[key] = at

    # -- events ---------------------------------------------------------------------------

    def service_changed(self, svc: Service) -> None:
        key = f"{svc.metadata.namespace}/{svc.metadata.name}"
        self._services[key] = svc
        self.pending_service_events += 1
        self._mark(key)

    def service_deleted(self, svc: Service) -> None:
        key = f"{svc.metadata.namespace}/{svc.metadata.name}"
        if self._services.pop(key, None) is not None:
            self.pending_service_events += 1
            self._mark(key)

    def slice_changed(self, es: EndpointSlice) -> None:
        slice_key = f"{es.metadata.namespace}/{es.metadata.name}"
        owner = f"{es.metadata.namespace}/{es.service_name}" if es.service_name else ""
        when = None
        raw = (es.metadata.annotations or {}).get(TRIGGER_TIME_ANNOTATION)
        if raw:
            when = parse_trigger_time(raw)
        previous = self._slice_owner.get(slice_key)
        if previous is not None and previous != owner:
            # The slice's service-name label changed: it leaves its old service.
            self._drop_slice(slice_key, previous, when)
        if not owner:
            return  # kube-proxy ignores slices without the service-name label
        self._slices.setdefault(owner, {})[es.metadata.name] = es
        self._slice_owner[slice_key] = owner
        self.pending_endpoint_events += 1
        self._mark(owner, when)

    def slice_deleted(self, es: EndpointSlice) -> None:
        slice_key = f"{es.metadata.namespace}/{es.metadata.name}"
        owner = self._slice_owner.get(slice_key)
        if owner is not None:
            self._drop_slice(slice_key, owner, None)

    def _drop_slice(self, slice_key: str, owner: str, when: float | None) -> None:
        slices = self._slices.get(owner, {})
        slices.pop(slice_key.split("/", 1)[1], None)
        if not slices:
            self._slices.pop(owner, None)
        del self._slice_owner[slice_key]
        self.pending_endpoint_events += 1
        self._mark(owner, when)

    # -- the update -----------------------------------------------------------------------

    def state(self) -> ProxyState:
        """The state as of the last `take()`."""
        return ProxyState(MappingProxyType(dict(self._service_map)),
                          MappingProxyType(dict(self._endpoints_map)))

    def take(self) -> Update:
        """Applies every pending event; returns the new state and the change from the
        state the previous `take()` returned."""
        change = StateChange()
        for key in self._dirty:
            old = ProxyState(self._ports.get(key, {}), self._endpoints.get(key, {}))
            svc = self._services.get(key)
            ports = service_ports(svc) if svc is not None else {}
            endpoints = dict(build_endpoints_map(self._slices.get(key, {}).values()))
            change = change | diff(old, ProxyState(ports, endpoints))
            for name in old.services:
                self._service_map.pop(name, None)
            for name in old.endpoints:
                self._endpoints_map.pop(name, None)
            self._service_map.update(ports)
            self._endpoints_map.update(endpoints)
            _store(self._ports, key, ports)
            _store(self._endpoints, key, endpoints)
        update = Update(self.state(), change, dict(self._triggers),
                        self.pending_service_events, self.pending_endpoint_events)
        self._dirty.clear()
        self._triggers.clear()
        self.pending_service_events = self.pending_endpoint_events = 0
        return update


def _store(table: dict[str, dict], key: str, value: dict) -> None:  # type: ignore[type-arg]
    if value:
        table[key] = value
    else:
        table.pop(key, None)
