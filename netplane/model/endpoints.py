"""Which endpoints a proxy sends a service port's traffic to (kube-proxy's
CategorizeEndpoints, without topology hints)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from netplane.model.servicemap import Endpoint, ServicePort


class CategorizedEndpoints(NamedTuple):
    cluster: tuple[Endpoint, ...]
    local: tuple[Endpoint, ...]
    all_reachable: tuple[Endpoint, ...]
    has_any_endpoints: bool


def categorize_endpoints(
    endpoints: Iterable[Endpoint], svc_port: ServicePort, node_name: str,
) -> CategorizedEndpoints:
    """Split a service port's endpoints for the proxy on `node_name`.

    cluster: ready endpoints, or, when none is ready anywhere, the serving+terminating
    ones (best effort to keep connections alive during a rollout). Empty unless the
    port uses cluster endpoints.
    local: this node's ready endpoints, or, when none is ready here, this node's
    serving+terminating ones. Local traffic never falls back to remote endpoints: with
    none here it is dropped. Empty unless the port uses local endpoints.
    all_reachable: the union, i.e. every endpoint some rule may send to.
    has_any_endpoints: some usable endpoint exists anywhere in the cluster, which is
    what decides between "drop" and "reject" for traffic with no endpoint here."""
    eps = tuple(endpoints)
    cluster: tuple[Endpoint, ...] = ()
    has_any = False
    if svc_port.uses_cluster_endpoints:
        cluster = tuple(ep for ep in eps if ep.ready)
        if not cluster:
            cluster = tuple(ep for ep in eps if ep.serving and ep.terminating)
        has_any = bool(cluster)
    if not svc_port.uses_local_endpoints:
        return CategorizedEndpoints(cluster, (), cluster, has_any)

    local_ready = False
    local_terminating = False
    for ep in eps:
        if ep.ready:
            has_any = True
            local_ready = local_ready or ep.is_local(node_name)
        elif ep.serving and ep.terminating:
            has_any = True
            local_terminating = local_terminating or ep.is_local(node_name)
    local: tuple[Endpoint, ...] = ()
    uses_terminating = False
    if local_ready:
        local = tuple(ep for ep in eps if ep.is_local(node_name) and ep.ready)
    elif local_terminating:
        uses_terminating = True
        local = tuple(ep for ep in eps
                      if ep.is_local(node_name) and ep.serving and ep.terminating)
    if not svc_port.uses_cluster_endpoints:
        return CategorizedEndpoints(cluster, local, local, has_any)
    if not uses_terminating:
        # local holds only ready endpoints, all of which are already in cluster.
        return CategorizedEndpoints(cluster, local, cluster, has_any)
    merged = {str(ep): ep for ep in cluster}
    merged.update((str(ep), ep) for ep in local)
    return CategorizedEndpoints(cluster, local, tuple(merged.values()), has_any)
