"""Small builders of the objects the gateway reads, for the routing core's unit tests."""

from __future__ import annotations

from typing import Any

from netplane.ingress.config import Config, Options, build_config
from netplane.model import EndpointSlice, Ingress, IngressClass, Secret, Service, decode
from netplane.model.gateway import HTTPRoute


def service(name: str, ports: dict[str, int] | None = None, ns: str = "default") -> Service:
    ports = ports or {"http": 80}
    return decode(Service, {"metadata": {"name": name, "namespace": ns},
                            "spec": {"clusterIP": "10.96.0.1", "ports": [
                                {"name": n, "port": p, "protocol": "TCP", "targetPort": 8000 + p}
                                for n, p in ports.items()]}})


def endpoints(name: str, ips: list[str], ports: dict[str, int] | None = None, ns: str = "default",
              ready: bool = True) -> EndpointSlice:
    ports = ports or {"http": 80}
    return decode(EndpointSlice, {
        "metadata": {"name": f"{name}-x", "namespace": ns, "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}} for ip in ips],
        "ports": [{"name": n, "port": 8000 + p, "protocol": "TCP"} for n, p in ports.items()]})


def backend(svc: str, port: int | str = 80) -> dict[str, Any]:
    ref = {"number": port} if isinstance(port, int) else {"name": port}
    return {"service": {"name": svc, "port": ref}}


def path(p: str, svc: str, kind: str = "Prefix", port: int | str = 80) -> dict[str, Any]:
    return {"path": p, "pathType": kind, "backend": backend(svc, port)}


def ingress(name: str, rules: list[dict[str, Any]] | None = None, *, ns: str = "default",
            cls: str | None = "netplane", default: dict[str, Any] | None = None,
            annotations: dict[str, str] | None = None, tls: list[dict[str, Any]] | None = None,
            created: str = "2026-01-01T00:00:00Z") -> Ingress:
    spec: dict[str, Any] = {"rules": rules or []}
    if cls is not None:
        spec["ingressClassName"] = cls
    if default is not None:
        spec["defaultBackend"] = default
    if tls is not None:
        spec["tls"] = tls
    return decode(Ingress, {"metadata": {"name": name, "namespace": ns, "annotations": annotations or {},
                                         "creationTimestamp": created}, "spec": spec})


def rule(host: str, *paths: dict[str, Any]) -> dict[str, Any]:
    return {"host": host, "http": {"paths": list(paths)}}


def ingress_class(name: str = "netplane", default: bool = False) -> IngressClass:
    ann = {"ingressclass.kubernetes.io/is-default-class": "true"} if default else {}
    return decode(IngressClass, {"metadata": {"name": name, "annotations": ann},
                                 "spec": {"controller": "netplane.io/ingress"}})


def tls_secret(name: str, cert: bytes, key: bytes, ns: str = "default") -> Secret:
    import base64

    return decode(Secret, {"metadata": {"name": name, "namespace": ns}, "type": "kubernetes.io/tls",
                           "data": {"tls.crt": base64.b64encode(cert).decode(),
                                    "tls.key": base64.b64encode(key).decode()}})


def http_route(name: str, rules: list[dict[str, Any]], hostnames: list[str] | None = None, *,
               ns: str = "default", parent: str = "netplane",
               created: str = "2026-01-01T00:00:00Z") -> HTTPRoute:
    return decode(HTTPRoute, {"metadata": {"name": name, "namespace": ns, "creationTimestamp": created},
                              "spec": {"parentRefs": [{"name": parent}], "hostnames": hostnames or [],
                                       "rules": rules}})


def config(*objs: Any, options: Options | None = None) -> Config:
    """A configuration from any mix of objects (services get endpoints 10.0.0.x unless
    EndpointSlices for them are given)."""
    kinds: dict[type, list[Any]] = {}
    for o in objs:
        kinds.setdefault(type(o), []).append(o)
    services = kinds.get(Service, [])
    slices = kinds.get(EndpointSlice, [])
    sliced = {s.metadata.labels["kubernetes.io/service-name"] for s in slices}
    for i, s in enumerate(services):
        if s.metadata.name not in sliced:
            ports = {p.name: p.port for p in s.spec.ports}
            slices.append(endpoints(s.metadata.name, [f"10.0.{i}.1"], ports, s.metadata.namespace))
    return build_config(ingresses=kinds.get(Ingress, []), classes=kinds.get(IngressClass, []),
                        services=services, slices=slices,
                        secrets={(s.metadata.namespace, s.metadata.name): s for s in kinds.get(Secret, [])},
                        http_routes=kinds.get(HTTPRoute, []), options=options)


def served_by(cfg: Config, host: str, p: str, **kw: Any) -> str | None:
    """The service that answers host + path ("" for a route without backends), or None (404)."""
    route = cfg.table.lookup(host, p, **kw)
    if route is None:
        return None
    return route.backends[0].service if route.backends else ""
