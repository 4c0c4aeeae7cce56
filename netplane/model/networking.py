"""networking.k8s.io/v1 Ingress and IngressClass."""

from __future__ import annotations

import msgspec

from netplane.model.meta import KubeStruct, TypedObject


class ServiceBackendPort(KubeStruct, frozen=True):
    # Exactly one of the two is set in a valid object.
    name: str = ""
    number: int = 0


class IngressServiceBackend(KubeStruct, frozen=True):
    name: str = ""
    port: ServiceBackendPort = msgspec.field(default_factory=ServiceBackendPort)


class TypedLocalObjectReference(KubeStruct, frozen=True):
    api_group: str | None = None
    kind: str = ""
    name: str = ""


class IngressBackend(KubeStruct, frozen=True):
    service: IngressServiceBackend | None = None
    resource: TypedLocalObjectReference | None = None


class HTTPIngressPath(KubeStruct, frozen=True):
    path: str = ""
    path_type: str = ""
    backend: IngressBackend = msgspec.field(default_factory=IngressBackend)


class HTTPIngressRuleValue(KubeStruct, frozen=True):
    paths: list[HTTPIngressPath] = msgspec.field(default_factory=list)


class IngressRule(KubeStruct, frozen=True):
    host: str = ""
    http: HTTPIngressRuleValue | None = None


class IngressTLS(KubeStruct, frozen=True):
    hosts: list[str] = msgspec.field(default_factory=list)
    secret_name: str = ""


class IngressSpec(KubeStruct, frozen=True):
    ingress_class_name: str | None = None
    default_backend: IngressBackend | None = None
    rules: list[IngressRule] = msgspec.field(default_factory=list)
    tls: list[IngressTLS] = msgspec.field(default_factory=list)


class IngressLoadBalancerIngress(KubeStruct, frozen=True):
    ip: str = ""
    hostname: str = ""


class IngressLoadBalancerStatus(KubeStruct, frozen=True):
    ingress: list[IngressLoadBalancerIngress] = msgspec.field(default_factory=list)


class IngressStatus(KubeStruct, frozen=True):
    load_balancer: IngressLoadBalancerStatus = msgspec.field(
        default_factory=IngressLoadBalancerStatus)


class Ingress(TypedObject, frozen=True):
    spec: IngressSpec = msgspec.field(default_factory=IngressSpec)
    status: IngressStatus = msgspec.field(default_factory=IngressStatus)


class IngressClassSpec(KubeStruct, frozen=True):
    controller: str = ""
    parameters: TypedLocalObjectReference | None = None


class IngressClass(TypedObject, frozen=True):
    spec: IngressClassSpec = msgspec.field(default_factory=IngressClassSpec)

    @property
    def is_default(self) -> bool:
        return (self.metadata.annotations.get("ingressclass.kubernetes.io/is-default-class")
                == "true")
