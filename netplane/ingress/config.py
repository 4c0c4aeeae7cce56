"""One gateway configuration from everything the informers hold: both front ends' routes in
one table, and the TLS certificates by host. Pure; the controller builds a new Config on
every change and the proxy swaps it in with a single assignment."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from netplane.ingress.backends import Cluster
from netplane.ingress.httproutes import GatewayOptions, compile_http_routes, is_attached
from netplane.ingress.ingresses import IngressOptions, compile_ingresses, is_ours
from netplane.ingress.routes import RouteTable, build_table
from netplane.model import EndpointSlice, Ingress, IngressClass, Secret, Service, build_endpoints_map
from netplane.model.gateway import HTTPRoute

TLS_SECRET_TYPE = "kubernetes.io/tls"


@dataclass(frozen=True)
class Certificate:
    """A certificate chain and key (PEM) from a kubernetes.io/tls Secret."""

    namespace: str
    name: str
    cert_pem: bytes
    key_pem: bytes

    @property
    def fingerprint(self) -> str:
        """Identifies the content, so an unchanged Secret keeps its TLS context."""
        return hashlib.sha256(self.cert_pem + b"\0" + self.key_pem).hexdigest()


@dataclass(frozen=True)
class Options:
    ingress: IngressOptions = field(default_factory=IngressOptions)
    gateway: GatewayOptions = field(default_factory=GatewayOptions)


@dataclass(frozen=True)
class Config:
    table: RouteTable = field(default_factory=RouteTable)
    certificates: Mapping[str, Certificate] = field(default_factory=dict)  # host pattern -> cert
    problems: tuple[str, ...] = ()
    ingresses: int = 0
    http_routes: int = 0


def certificate(secret: Secret | None, namespace: str, name: str) -> tuple[Certificate | None, str]:
    """The certificate in a Secret, or None and why not."""
    if secret is None:
        return None, f"TLS secret {namespace}/{name} not found"
    if secret.type != TLS_SECRET_TYPE:
        return None, f"secret {namespace}/{name} is of type {secret.type}, not {TLS_SECRET_TYPE}"
    try:
        cert = base64.b64decode(secret.data.get("tls.crt", ""), validate=True)
        key = base64.b64decode(secret.data.get("tls.key", ""), validate=True)
    except (binascii.Error, ValueError):
        return None, f"secret {namespace}/{name}: tls.crt or tls.key is not base64"
    if b"-----BEGIN" not in cert or b"-----BEGIN" not in key:
        return None, f"secret {namespace}/{name}: tls.crt and tls.key must hold PEM data"
    return Certificate(namespace, name, cert, key), ""


def build_config(*, ingresses: Iterable[Ingress] = (), classes: Iterable[IngressClass] = (),
                 services: Iterable[Service] = (), slices: Iterable[EndpointSlice] = (),
                 secrets: Mapping[tuple[str, str], Secret] | None = None,
                 http_routes: Iterable[HTTPRoute] = (), options: Options | None = None) -> Config:
    options = options or Options()
    classes = list(classes)
    cluster = Cluster({(s.metadata.namespace, s.metadata.name): s for s in services},
                      build_endpoints_map(slices))
    ours = [i for i in ingresses if is_ours(i, classes, options.ingress)]
    compiled = compile_ingresses(ours, cluster, options.ingress)
    attached = [r for r in http_routes if is_attached(r, options.gateway)]
    gateway = compile_http_routes(attached, cluster, options.gateway)
    problems = [*compiled.problems, *gateway.problems]
    certs: dict[str, Certificate] = {}
    for host, namespace, name in compiled.tls:
        if host in certs:
            continue  # the oldest Ingress's certificate for a host wins
        cert, why = certificate((secrets or {}).get((namespace, name)), namespace, name)
        if cert is None:
            problems.append(f"TLS for {host}: {why}; the default certificate is served")
        else:
            certs[host] = cert
    tls_hosts = frozenset(h for h, _ns, _n in compiled.tls) | frozenset(
        r.host for r in compiled.routes if r.tls)
    table: RouteTable = build_table([*compiled.routes, *gateway.routes], compiled.host_defaults,
                                    compiled.catch_all, tls_hosts)
    return Config(table, certs, tuple(problems), len(ours), len(attached))
