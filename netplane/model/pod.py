"""core/v1 Pod and the container, probe and template types it is built from."""

from __future__ import annotations

import msgspec

from netplane.model.meta import IntOrString, KubeStruct, ObjectMeta, Quantity, TypedObject


class ObjectFieldSelector(KubeStruct, frozen=True):
    api_version: str = ""
    field_path: str = ""


class KeySelector(KubeStruct, frozen=True):
    """configMapKeyRef / secretKeyRef."""

    name: str = ""
    key: str = ""
    optional: bool | None = None


class EnvVarSource(KubeStruct, frozen=True):
    field_ref: ObjectFieldSelector | None = None
    config_map_key_ref: KeySelector | None = None
    secret_key_ref: KeySelector | None = None


class EnvVar(KubeStruct, frozen=True):
    name: str = ""
    value: str = ""
    value_from: EnvVarSource | None = None


class ContainerPort(KubeStruct, frozen=True):
    name: str = ""
    container_port: int = 0
    host_port: int = 0
    host_ip: str = msgspec.field(default="", name="hostIP")
    protocol: str = "TCP"


class HTTPHeader(KubeStruct, frozen=True):
    name: str = ""
    value: str = ""


class HTTPGetAction(KubeStruct, frozen=True):
    path: str = "/"
    port: IntOrString = 0
    host: str = ""
    scheme: str = "HTTP"
    http_headers: list[HTTPHeader] = msgspec.field(default_factory=list)


class TCPSocketAction(KubeStruct, frozen=True):
    port: IntOrString = 0
    host: str = ""


class ExecAction(KubeStruct, frozen=True):
    command: list[str] = msgspec.field(default_factory=list)


class Probe(KubeStruct, frozen=True):
    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    exec: ExecAction | None = None
    initial_delay_seconds: int = 0
    timeout_seconds: int = 1
    period_seconds: int = 10
    success_threshold: int = 1
    failure_threshold: int = 3
    termination_grace_period_seconds: int | None = None


class ResourceRequirements(KubeStruct, frozen=True):
    requests: dict[str, Quantity] = msgspec.field(default_factory=dict)
    limits: dict[str, Quantity] = msgspec.field(default_factory=dict)


class Container(KubeStruct, frozen=True):
    name: str = ""
    image: str = ""
    command: list[str] = msgspec.field(default_factory=list)
    args: list[str] = msgspec.field(default_factory=list)
    working_dir: str = ""
    env: list[EnvVar] = msgspec.field(default_factory=list)
    ports: list[ContainerPort] = msgspec.field(default_factory=list)
    resources: ResourceRequirements = msgspec.field(default_factory=ResourceRequirements)
    readiness_probe: Probe | None = None
    liveness_probe: Probe | None = None
    startup_probe: Probe | None = None
    image_pull_policy: str = ""
    termination_message_path: str = ""
    termination_message_policy: str = ""


class Toleration(KubeStruct, frozen=True):
    key: str = ""
    operator: str = ""
    value: str = ""
    effect: str = ""
    toleration_seconds: int | None = None


class PodDNSConfigOption(KubeStruct, frozen=True):
    name: str = ""
    value: str | None = None


class PodDNSConfig(KubeStruct, frozen=True):
    nameservers: list[str] = msgspec.field(default_factory=list)
    searches: list[str] = msgspec.field(default_factory=list)
    options: list[PodDNSConfigOption] = msgspec.field(default_factory=list)


class PodSpec(KubeStruct, frozen=True):
    containers: list[Container] = msgspec.field(default_factory=list)
    init_containers: list[Container] = msgspec.field(default_factory=list)
    restart_policy: str = "Always"
    termination_grace_period_seconds: int | None = None
    active_deadline_seconds: int | None = None
    dns_policy: str = "ClusterFirst"
    dns_config: PodDNSConfig | None = None
    node_selector: dict[str, str] = msgspec.field(default_factory=dict)
    node_name: str = ""
    service_account_name: str = ""
    host_network: bool = False
    hostname: str = ""
    subdomain: str = ""
    scheduler_name: str = ""
    tolerations: list[Toleration] = msgspec.field(default_factory=list)
    priority: int | None = None
    enable_service_links: bool | None = None


class PodCondition(KubeStruct, frozen=True):
    type: str = ""
    status: str = ""
    reason: str = ""
    message: str = ""
    last_transition_time: str | None = None


class PodIP(KubeStruct, frozen=True):
    ip: str = ""


class ContainerStateDetail(KubeStruct, frozen=True):
    """Union of running/waiting/terminated details; absent fields stay default."""

    started_at: str | None = None
    finished_at: str | None = None
    reason: str = ""
    message: str = ""
    exit_code: int | None = None


class ContainerState(KubeStruct, frozen=True):
    running: ContainerStateDetail | None = None
    waiting: ContainerStateDetail | None = None
    terminated: ContainerStateDetail | None = None


class ContainerStatus(KubeStruct, frozen=True):
    name: str = ""
    ready: bool = False
    started: bool | None = None
    restart_count: int = 0
    image: str = ""
    state: ContainerState = msgspec.field(default_factory=ContainerState)


class PodStatus(KubeStruct, frozen=True):
    phase: str = ""
    conditions: list[PodCondition] = msgspec.field(default_factory=list)
    host_ip: str = msgspec.field(default="", name="hostIP")
    pod_ip: str = msgspec.field(default="", name="podIP")
    pod_ips: list[PodIP] = msgspec.field(default_factory=list, name="podIPs")
    start_time: str | None = None
    container_statuses: list[ContainerStatus] = msgspec.field(default_factory=list)
    reason: str = ""
    message: str = ""


class Pod(TypedObject, frozen=True):
    spec: PodSpec = msgspec.field(default_factory=PodSpec)
    status: PodStatus = msgspec.field(default_factory=PodStatus)

    def is_ready(self) -> bool:
        """Kubernetes' podutil.IsPodReady: the Ready condition is True."""
        return any(c.type == "Ready" and c.status == "True" for c in self.status.conditions)


class PodTemplateSpec(KubeStruct, frozen=True):
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: PodSpec = msgspec.field(default_factory=PodSpec)
