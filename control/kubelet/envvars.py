"""A container's environment: its own `env` (with `valueFrom.fieldRef`), and the
Docker-links service variables Kubernetes' kubelet writes (pkg/kubelet/envvars)."""

from __future__ import annotations

from typing import Any


def _name(text: str) -> str:
    return text.upper().replace("-", "_")


def _url_host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def service_env(services: list[dict[str, Any]]) -> dict[str, str]:
    """The variables for every service with a cluster IP (headless and ExternalName skip)."""
    env: dict[str, str] = {}
    for svc in services:
        spec = svc.get("spec") or {}
        ip = spec.get("clusterIP") or ""
        ports = spec.get("ports") or []
        if not ip or ip == "None" or not ports:
            continue
        name = _name(svc["metadata"]["name"])
        env[f"{name}_SERVICE_HOST"] = ip
        env[f"{name}_SERVICE_PORT"] = str(ports[0]["port"])
        for p in ports:
            if p.get("name"):
                env[f"{name}_SERVICE_PORT_{_name(p['name'])}"] = str(p["port"])
        first = ports[0]
        env[f"{name}_PORT"] = f"{first.get('protocol', 'TCP').lower()}://{_url_host(ip)}:{first['port']}"
        for p in ports:
            proto = p.get("protocol", "TCP")
            prefix = f"{name}_PORT_{p['port']}_{proto.upper()}"
            env[prefix] = f"{proto.lower()}://{_url_host(ip)}:{p['port']}"
            env[f"{prefix}_PROTO"] = proto.lower()
            env[f"{prefix}_PORT"] = str(p["port"])
            env[f"{prefix}_ADDR"] = ip
    return env


def services_for(pod: dict[str, Any], services: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The services whose variables the pod gets: its namespace's (unless
    enableServiceLinks is false) and the master `kubernetes` service; the pod's own
    namespace wins on a name clash, as in the kubelet."""
    ns = pod["metadata"].get("namespace", "default")
    links = (pod.get("spec") or {}).get("enableServiceLinks", True) is not False
    chosen: dict[str, dict[str, Any]] = {}
    for svc in services:
        meta = svc["metadata"]
        if meta.get("namespace") == "default" and meta["name"] == "kubernetes":
            chosen.setdefault(meta["name"], svc)
    for svc in services:
        meta = svc["metadata"]
        if links and meta.get("namespace") == ns:
            chosen[meta["name"]] = svc
    return list(chosen.values())


def _field(pod: dict[str, Any], path: str, pod_ip: str, host_ip: str) -> str:
    meta, spec = pod["metadata"], pod.get("spec") or {}
    values = {
        "metadata.name": meta.get("name", ""), "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""), "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": pod_ip, "status.podIPs": pod_ip, "status.hostIP": host_ip,
    }
    if path.startswith("metadata.labels['") or path.startswith("metadata.annotations['"):
        section, key = path.split("['", 1)
        return str((meta.get(section.split(".")[1]) or {}).get(key.rstrip("']"), ""))
    return values.get(path, "")


def container_env(pod: dict[str, Any], container: dict[str, Any], services: list[dict[str, Any]], *,
                  pod_ip: str, host_ip: str) -> dict[str, str]:
    """Service variables first, then the container's own env (which may refer to earlier
    variables with $(NAME), as Kubernetes expands them)."""
    env = service_env(services_for(pod, services))
    for var in container.get("env") or []:
        if "value" in var:
            value = str(var["value"])
            for key, known in env.items():
                value = value.replace(f"$({key})", known)
            env[var["name"]] = value
        elif (ref := (var.get("valueFrom") or {}).get("fieldRef")) is not None:
            env[var["name"]] = _field(pod, ref.get("fieldPath", ""), pod_ip, host_ip)
    return env
