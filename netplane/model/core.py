"""core/v1 kinds other than Pod: Namespace, Service, Endpoints, Node, Secret, ConfigMap,
Event."""

from __future__ import annotations

import msgspec

from netplane.model.meta import IntOrString, KubeStruct, ObjectReference, Quantity, TypedObject


class NamespaceSpec(KubeStruct, frozen=True):
    finalizers: list[str] = msgspec.field(default_factory=list)


class NamespaceStatus(KubeStruct, frozen=True):
    phase: str = ""


class Namespace(TypedObject, frozen=True):
    spec: NamespaceSpec = msgspec.field(default_factory=NamespaceSpec)
    status: NamespaceStatus = msgspec.field(default_factory=NamespaceStatus)


class ServicePortSpec(KubeStruct, frozen=True):
    """One entry of Service spec.ports (named apart from the proxy's ServicePort)."""

    name: str = ""
    protocol: str = "TCP"
    app_protocol: str | None = None
    port: int = 0
    target_port: IntOrString = 0
    node_port: int = 0


class ClientIPConfig(KubeStruct, frozen=True):
    timeout_seconds: int | None = None


class SessionAffinityConfig(KubeStruct, frozen=True):
    client_ip: ClientIPConfig | None = msgspec.field(default=None, name="clientIP")


class ServiceSpec(KubeStruct, frozen=True):
    ports: list[ServicePortSpec] = msgspec.field(default_factory=list)
    # None (absent) and {} differ for selectors: absent means "endpoints are managed
    # by someone else", so no EndpointSlice controller output.
    selector: dict[str, str] | None = None
    cluster_ip: str = msgspec.field(default="", name="clusterIP")
    cluster_ips: list[str] = msgspec.field(default_factory=list, name="clusterIPs")
    type: str = "ClusterIP"
    external_ips: list[str] = msgspec.field(default_factory=list, name="externalIPs")
    session_affinity: str = "None"
    session_affinity_config: SessionAffinityConfig | None = None
    load_balancer_ip: str = msgspec.field(default="", name="loadBalancerIP")
    load_balancer_source_ranges: list[str] = msgspec.field(default_factory=list)
    external_name: str = ""
    external_traffic_policy: str = ""
    internal_traffic_policy: str = ""
    health_check_node_port: int = 0
    publish_not_ready_addresses: bool = False
    ip_families: list[str] = msgspec.field(default_factory=list, name="ipFamilies")
    ip_family_policy: str = msgspec.field(default="", name="ipFamilyPolicy")
    allocate_load_balancer_node_ports: bool | None = None


class LoadBalancerIngress(KubeStruct, frozen=True):
    ip: str = ""
    hostname: str = ""


class LoadBalancerStatus(KubeStruct, frozen=True):
    ingress: list[LoadBalancerIngress] = msgspec.field(default_factory=list)


class ServiceStatus(KubeStruct, frozen=True):
    load_balancer: LoadBalancerStatus = msgspec.field(default_factory=LoadBalancerStatus)


class Service(TypedObject, frozen=True):
    spec: ServiceSpec = msgspec.field(default_factory=ServiceSpec)
    status: ServiceStatus = msgspec.field(default_factory=ServiceStatus)


class EndpointAddress(KubeStruct, frozen=True):
    ip: str = ""
    hostname: str = ""
    node_name: str | None = None
    target_ref: ObjectReference | None = None


class EndpointPort(KubeStruct, frozen=True):
    """A port of legacy core/v1 Endpoints and of discovery/v1 EndpointSlice (port may be
    null in a slice, meaning "all ports")."""

    name: str = ""
    port: int | None = None
    protocol: str = "TCP"
    app_protocol: str | None = None


class EndpointSubset(KubeStruct, frozen=True):
    addresses: list[EndpointAddress] = msgspec.field(default_factory=list)
    not_ready_addresses: list[EndpointAddress] = msgspec.field(default_factory=list)
    ports: list[EndpointPort] = msgspec.field(default_factory=list)


class Endpoints(TypedObject, frozen=True):
    subsets: list[EndpointSubset] = msgspec.field(default_factory=list)


class Taint(KubeStruct, frozen=True):
    key: str = ""
    value: str = ""
    effect: str = ""
    time_added: str | None = None


class NodeSpec(KubeStruct, frozen=True):
    pod_cidr: str = msgspec.field(default="", name="podCIDR")
    pod_cidrs: list[str] = msgspec.field(default_factory=list, name="podCIDRs")
    unschedulable: bool = False
    taints: list[Taint] = msgspec.field(default_factory=list)
    provider_id: str = msgspec.field(default="", name="providerID")


class NodeAddress(KubeStruct, frozen=True):
    type: str = ""
    address: str = ""


class NodeCondition(KubeStruct, frozen=True):
    type: str = ""
    status: str = ""
    reason: str = ""
    message: str = ""
    last_heartbeat_time: str | None = None
    last_transition_time: str | None = None


class NodeStatus(KubeStruct, frozen=True):
    capacity: dict[str, Quantity] = msgspec.field(default_factory=dict)
    allocatable: dict[str, Quantity] = msgspec.field(default_factory=dict)
    conditions: list[NodeCondition] = msgspec.field(default_factory=list)
    addresses: list[NodeAddress] = msgspec.field(default_factory=list)


class Node(TypedObject, frozen=True):
    spec: NodeSpec = msgspec.field(default_factory=NodeSpec)
    status: NodeStatus = msgspec.field(default_factory=NodeStatus)

    def is_ready(self) -> bool:
        return any(c.type == "Ready" and c.status == "True" for c in self.status.conditions)

    def internal_ip(self) -> str:
        for addr in self.status.addresses:
            if addr.type == "InternalIP":
                return addr.address
        return ""


class Secret(TypedObject, frozen=True):
    type: str = "Opaque"
    # Values stay base64 text as on the wire; whoever needs bytes decodes the one key.
    data: dict[str, str] = msgspec.field(default_factory=dict)
    string_data: dict[str, str] = msgspec.field(default_factory=dict)
    immutable: bool | None = None


class ConfigMap(TypedObject, frozen=True):
    data: dict[str, str] = msgspec.field(default_factory=dict)
    binary_data: dict[str, str] = msgspec.field(default_factory=dict)
    immutable: bool | None = None


class EventSource(KubeStruct, frozen=True):
    component: str = ""
    host: str = ""


class Event(TypedObject, frozen=True):
    involved_object: ObjectReference = msgspec.field(default_factory=ObjectReference)
    reason: str = ""
    message: str = ""
    type: str = ""
    count: int = 0
    source: EventSource = msgspec.field(default_factory=EventSource)
    first_timestamp: str | None = None
    last_timestamp: str | None = None
    event_time: str | None = None
    reporting_component: str = ""
    reporting_instance: str = ""
