"""The EndpointSlice reconciler's pure core: Service + Pods + existing slices -> a plan.

A port of Kubernetes' `k8s.io/endpointslice` reconciler (reconciler.go, utils.go):
one slice set per address family; pods grouped by the ports they resolve (a named
targetPort is looked up per pod, so pods without it land in slices with other
ports); existing slices keep their endpoints where possible, changed ones are
updated in place, leftovers fill the fullest changed slice first, then the unchanged
slice that ends up closest to full, and only then new slices; a service with no
endpoints of a family gets one empty placeholder slice; creates paired with deletes
become updates. Nothing here does I/O; `EndpointSliceController` applies the plan.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import msgspec

from netplane.model import EndpointSlice, Node, OwnerReference, Pod, Service
from netplane.model.core import EndpointPort, ServicePortSpec
from netplane.model.discovery import MANAGED_BY_LABEL, SERVICE_NAME_LABEL, Endpoint, EndpointConditions
from netplane.model.meta import ObjectMeta, ObjectReference

CONTROLLER_NAME = "endpointslice-controller.k8s.io"
HEADLESS_LABEL = "service.kubernetes.io/headless"
ZONE_LABEL = "topology.kubernetes.io/zone"
IPV4, IPV6 = "IPv4", "IPv6"
_RESERVED_LABELS = frozenset({SERVICE_NAME_LABEL, MANAGED_BY_LABEL, HEADLESS_LABEL})

NodeLookup = Callable[[str], Node | None]
PortKey = frozenset[tuple[str, int | None, str, str | None]]
EndpointKey = tuple[tuple[str, ...], str, str, str]


@dataclass
class SlicePlan:
    """What to write: creates carry generateName, updates the existing name and
    resourceVersion. `skipped_pods` are pods whose Node is unknown (retry later)."""

    create: list[EndpointSlice] = field(default_factory=list)
    update: list[EndpointSlice] = field(default_factory=list)
    delete: list[EndpointSlice] = field(default_factory=list)
    skipped_pods: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.create or self.update or self.delete)


# --- Pods to endpoints --------------------------------------------------------------


def is_ipv6(ip: str) -> bool:
    return ":" in ip


def is_service_ip_set(service: Service) -> bool:
    return service.spec.cluster_ip not in ("", "None")


def address_types(service: Service) -> list[str]:
    """getAddressTypesForService: spec.ipFamilies, else the clusterIP's family, else
    (headless, undefaulted) both families."""
    types = [IPV4 if f == "IPv4" else IPV6 for f in service.spec.ip_families if f in ("IPv4", "IPv6")]
    if types:
        return list(dict.fromkeys(types))
    if is_service_ip_set(service):
        return [IPV6 if is_ipv6(service.spec.cluster_ip) else IPV4]
    return [IPV4, IPV6]


def pod_ips(pod: Pod) -> list[str]:
    ips = [p.ip for p in pod.status.pod_ips if p.ip]
    if not ips and pod.status.pod_ip:
        ips = [pod.status.pod_ip]
    return ips


def should_pod_be_in_endpoints(pod: Pod, include_terminating: bool) -> bool:
    """endpointsliceutil.ShouldPodBeInEndpoints: not terminal, has an IP, and not
    terminating unless `include_terminating`."""
    if pod.status.phase in ("Succeeded", "Failed"):
        return False
    if not pod_ips(pod):
        return False
    return include_terminating or pod.metadata.deletion_timestamp is None


def find_port(pod: Pod, port: ServicePortSpec) -> int | None:
    """podutil.FindPort: a numeric targetPort as is; a named one looked up in the pod's
    containers by name and protocol (None when the pod does not declare it)."""
    target = port.target_port
    if isinstance(target, int):
        return target or port.port
    for container in pod.spec.containers:
        for cport in container.ports:
            if cport.name == target and cport.protocol == port.protocol:
                return cport.container_port
    return None


def endpoint_ports(service: Service, pod: Pod) -> list[EndpointPort]:
    ports = []
    for sp in service.spec.ports:
        number = find_port(pod, sp)
        if number is None:
            continue
        ports.append(EndpointPort(name=sp.name, port=number, protocol=sp.protocol,
                                  app_protocol=sp.app_protocol))
    return ports


def should_set_hostname(pod: Pod, service: Service) -> bool:
    """endpointutil.ShouldSetHostname: the pod's subdomain names this service."""
    return (bool(pod.spec.hostname) and pod.spec.subdomain == service.name
            and pod.namespace == service.namespace)


def pod_reference(pod: Pod) -> ObjectReference:
    return ObjectReference(kind="Pod", namespace=pod.namespace, name=pod.name, uid=pod.metadata.uid)


def pod_to_endpoint(pod: Pod, node: Node | None, service: Service, address_type: str) -> Endpoint:
    serving = pod.is_ready()
    terminating = pod.metadata.deletion_timestamp is not None
    # Kubernetes: "ready" is never true for a terminating pod unless
    # publishNotReadyAddresses says to publish it anyway.
    ready = service.spec.publish_not_ready_addresses or (serving and not terminating)
    want_v6 = address_type == IPV6
    addresses = [str(ipaddress.ip_address(ip)) for ip in pod_ips(pod) if is_ipv6(ip) == want_v6]
    zone = node.metadata.labels.get(ZONE_LABEL) if node is not None else None
    return Endpoint(
        addresses=addresses,
        conditions=EndpointConditions(ready=ready, serving=serving, terminating=terminating),
        hostname=pod.spec.hostname if should_set_hostname(pod, service) else None,
        node_name=pod.spec.node_name or None,
        zone=zone or None,
        target_ref=pod_reference(pod),
    )


def endpoint_key(ep: Endpoint) -> EndpointKey:
    """The endpoint's identity across syncs (endpointsliceutil's hashEndpoint)."""
    ref = ep.target_ref or ObjectReference()
    return tuple(sorted(ep.addresses)), ep.hostname or "", ref.namespace, ref.name


def port_key(ports: Iterable[EndpointPort]) -> PortKey:
    return frozenset((p.name, p.port, p.protocol, p.app_protocol) for p in ports)


# --- Slices ------------------------------------------------------------------------------


def slice_labels(service: Service) -> dict[str, str]:
    """setEndpointSliceLabels: the service's labels (minus the reserved ones), the
    headless marker, service-name and managed-by."""
    labels = {k: v for k, v in service.metadata.labels.items() if k not in _RESERVED_LABELS}
    if not is_service_ip_set(service):
        labels[HEADLESS_LABEL] = ""
    labels[SERVICE_NAME_LABEL] = service.name
    labels[MANAGED_BY_LABEL] = CONTROLLER_NAME
    return labels


def service_owner_reference(service: Service) -> OwnerReference:
    return OwnerReference(api_version="v1", kind="Service", name=service.name, uid=service.metadata.uid,
                          controller=True, block_owner_deletion=True)


def owned_by(slice_: EndpointSlice, service: Service) -> bool:
    return any(o.uid == service.metadata.uid and o.kind == "Service" and o.api_version == "v1"
               for o in slice_.metadata.owner_references)


def new_slice(service: Service, address_type: str, ports: list[EndpointPort],
              endpoints: list[Endpoint] | None = None) -> EndpointSlice:
    meta = ObjectMeta(generate_name=f"{service.name}-", namespace=service.namespace,
                      labels=slice_labels(service), owner_references=[service_owner_reference(service)])
    return EndpointSlice(api_version="discovery.k8s.io/v1", kind="EndpointSlice", metadata=meta,
                         address_type=address_type, ports=list(ports), endpoints=list(endpoints or []))


def _with(slice_: EndpointSlice, *, endpoints: list[Endpoint] | None = None,
          labels: dict[str, str] | None = None) -> EndpointSlice:
    meta = slice_.metadata
    if labels is not None:
        meta = msgspec.structs.replace(meta, labels=labels)
    return msgspec.structs.replace(slice_, metadata=meta,
                                   endpoints=slice_.endpoints if endpoints is None else endpoints)


def _is_placeholder_of(slice_: EndpointSlice, placeholder: EndpointSlice) -> bool:
    # reconciler.go's placeholderSliceCompare: namespace, labels, address type, no
    # ports and no endpoints.
    return (slice_.namespace == placeholder.namespace
            and slice_.metadata.labels == placeholder.metadata.labels
            and slice_.address_type == placeholder.address_type
            and not slice_.ports and not slice_.endpoints)


def reconcile(service: Service, pods: Iterable[Pod], existing: Iterable[EndpointSlice],
              node_lookup: NodeLookup, max_endpoints_per_slice: int = 100) -> SlicePlan:
    """The writes that make the service's managed slices match its pods."""
    plan = SlicePlan()
    families = address_types(service)
    by_family: dict[str, list[EndpointSlice]] = {f: [] for f in families}
    for s in existing:
        if s.address_type in by_family:
            by_family[s.address_type].append(s)
        else:
            plan.delete.append(s)
    pods = sorted(pods, key=lambda p: p.name)
    for family in families:
        _reconcile_family(plan, service, pods, by_family[family], family, node_lookup,
                          max_endpoints_per_slice)
    plan.skipped_pods = sorted(set(plan.skipped_pods))
    return plan


def _reconcile_family(plan: SlicePlan, service: Service, pods: list[Pod], existing: list[EndpointSlice],
                      family: str, node_lookup: NodeLookup, max_eps: int) -> None:
    to_create: list[EndpointSlice] = []
    to_update: list[EndpointSlice] = []
    to_delete: list[EndpointSlice] = []
    existing_by_ports: dict[PortKey, list[EndpointSlice]] = {}
    for s in existing:
        if owned_by(s, service):
            existing_by_ports.setdefault(port_key(s.ports), []).append(s)
        else:
            to_delete.append(s)

    desired_ports: dict[PortKey, list[EndpointPort]] = {}
    desired: dict[PortKey, dict[EndpointKey, Endpoint]] = {}
    for pod in pods:
        if not should_pod_be_in_endpoints(pod, include_terminating=True):
            continue
        ports = endpoint_ports(service, pod)
        key = port_key(ports)
        desired_ports.setdefault(key, ports)
        endpoints = desired.setdefault(key, {})
        node = node_lookup(pod.spec.node_name) if pod.spec.node_name else None
        if node is None and not service.spec.publish_not_ready_addresses:
            # Kubernetes leaves the pod out and retries the service until its Node exists.
            plan.skipped_pods.append(pod.name)
            continue
        ep = pod_to_endpoint(pod, node, service, family)
        if ep.addresses:
            endpoints[endpoint_key(ep)] = ep

    for key, endpoints in desired.items():
        c, u, d = _reconcile_ports(service, existing_by_ports.get(key, []), endpoints,
                                   family, desired_ports[key], max_eps)
        to_create += c
        to_update += u
        to_delete += d
    for key, slices in existing_by_ports.items():
        if key not in desired:
            to_delete += slices

    if len(existing) == len(to_delete) and not to_create:
        placeholder = new_slice(service, family, [])
        if len(to_delete) == 1 and _is_placeholder_of(to_delete[0], placeholder):
            to_delete = []
        else:
            to_create.append(placeholder)

    # finalize(): turn creates into updates of slices that would be deleted.
    reusable = [s for s in to_delete if s.address_type == family and owned_by(s, service)]
    while to_create and reusable:
        old = reusable.pop(0)
        new = to_create.pop()
        to_delete.remove(old)
        meta = msgspec.structs.replace(old.metadata, labels=new.metadata.labels,
                                       owner_references=new.metadata.owner_references)
        to_update.append(msgspec.structs.replace(new, metadata=meta))

    plan.create += to_create
    plan.update += to_update
    plan.delete += to_delete


def _reconcile_ports(service: Service, existing: list[EndpointSlice], desired: dict[EndpointKey, Endpoint],
                     family: str, ports: list[EndpointPort], max_eps: int
                     ) -> tuple[list[EndpointSlice], list[EndpointSlice], list[EndpointSlice]]:
    """reconcileByPortMapping, for the slices of one address family and port set."""
    desired = dict(desired)
    labels = slice_labels(service)
    by_name: dict[str, EndpointSlice] = {}
    unchanged: list[str] = []
    to_update: list[str] = []
    to_delete: list[EndpointSlice] = []

    # 1. Keep desired endpoints where they are; drop undesired ones.
    for s in existing:
        by_name[s.metadata.name] = s
        kept: list[Endpoint] = []
        changed = False
        for ep in s.endpoints:
            want = desired.pop(endpoint_key(ep), None)
            if want is not None:
                kept.append(want)
                changed = changed or want != ep
        if changed or len(kept) != len(s.endpoints):
            if not kept:
                to_delete.append(s)
            else:
                by_name[s.metadata.name] = _with(s, endpoints=kept, labels=labels)
                to_update.append(s.metadata.name)
        elif s.metadata.labels != labels:
            by_name[s.metadata.name] = _with(s, labels=labels)
            to_update.append(s.metadata.name)
        else:
            unchanged.append(s.metadata.name)

    remaining = list(desired.values())

    # 2. Fill the slices that are being written anyway, fullest first.
    if remaining and to_update:
        for name in sorted(to_update, key=lambda n: -len(by_name[n].endpoints)):
            s = by_name[name]
            room = max_eps - len(s.endpoints)
            if room > 0:
                by_name[name] = _with(s, endpoints=[*s.endpoints, *remaining[:room]])
                remaining = remaining[room:]

    # 3. Fit the rest into the unchanged slice closest to full, else new slices.
    to_create: list[EndpointSlice] = []
    while remaining:
        target: EndpointSlice | None = None
        if len(remaining) < max_eps and unchanged:
            target = _slice_to_fill([by_name[n] for n in unchanged], len(remaining), max_eps)
        if target is None:
            target = new_slice(service, family, ports)
        room = max_eps - len(target.endpoints)
        target = _with(target, endpoints=[*target.endpoints, *remaining[:room]])
        remaining = remaining[room:]
        if target.metadata.name:
            by_name[target.metadata.name] = target
            to_update.append(target.metadata.name)
            unchanged.remove(target.metadata.name)
        else:
            to_create.append(target)

    return to_create, [by_name[n] for n in to_update], to_delete


def _slice_to_fill(slices: list[EndpointSlice], count: int, max_eps: int) -> EndpointSlice | None:
    """getSliceToFill: the slice that ends up closest to full after taking `count`."""
    best, best_diff = None, max_eps
    for s in slices:
        diff = max_eps - (count + len(s.endpoints))
        if 0 <= diff < best_diff:
            best, best_diff = s, diff
            if diff == 0:
                break
    return best
