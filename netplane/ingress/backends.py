"""Service backends resolved to endpoint addresses, straight from EndpointSlices (as
ingress-nginx does: no ClusterIP hop, so the gateway balances and retries per endpoint)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from netplane.ingress.routes import Backend, Upstream
from netplane.model import Endpoint, EndpointsMap, Service, ServicePortName


@dataclass(frozen=True)
class Cluster:
    """What the builders read: Services by (namespace, name) and the endpoints map."""

    services: Mapping[tuple[str, str], Service]
    endpoints: EndpointsMap


def _usable(endpoints: tuple[Endpoint, ...]) -> tuple[Upstream, ...]:
    # kube-proxy's rule: ready endpoints; when none is ready, the serving ones that are
    # terminating (best effort during a rollout) rather than nothing.
    ready = tuple(Upstream(ep.ip, ep.port) for ep in endpoints if ep.ready)
    if ready:
        return ready
    return tuple(Upstream(ep.ip, ep.port) for ep in endpoints if ep.serving and ep.terminating)


def resolve(cluster: Cluster, namespace: str, service: str, port: int | str, weight: int = 1) -> Backend:
    """The backend for a service port named by number (the Service's `port`) or by name."""
    label = str(port)
    svc = cluster.services.get((namespace, service))
    if svc is None:
        return Backend(namespace, service, label, weight, problem=f"service {namespace}/{service} not found")
    if svc.spec.type == "ExternalName":
        return Backend(namespace, service, label, weight,
                       problem=f"service {namespace}/{service} is ExternalName, which is not proxied")
    for p in svc.spec.ports:
        if (p.port == port if isinstance(port, int) else p.name == port) and (p.protocol or "TCP") == "TCP":
            eps = cluster.endpoints.get(ServicePortName(namespace, service, p.name, "TCP"), ())
            usable = _usable(eps)
            problem = "" if usable else f"service {namespace}/{service} has no ready endpoints"
            return Backend(namespace, service, label, weight, usable, problem)
    return Backend(namespace, service, label, weight,
                   problem=f"service {namespace}/{service} has no TCP port {label}")
