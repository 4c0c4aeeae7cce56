"""A container's environment as the kubelet builds it (makeEnvironmentVariables): the
Docker-links service variables (pkg/kubelet/envvars), then the container's own `env` with
`valueFrom` and `$(VAR)` expansion. Pure: ConfigMaps and Secrets are handed in."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from netplane.model import Container, Pod, Service

MASTER_NAMESPACE = "default"
MASTER_SERVICES = frozenset({"kubernetes"})
_LABEL_REF = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


class EnvError(Exception):
    """The environment cannot be built (a missing ConfigMap key, an unsupported field): the
    container waits with CreateContainerConfigError and this message."""


def env_name(name: str) -> str:
    """makeEnvVariableName: upper case, '-' → '_'."""
    return name.upper().replace("-", "_")


def _is_service_ip_set(svc: Service) -> bool:
    return svc.spec.cluster_ip not in ("", "None")


def service_env(services: Iterable[Service]) -> dict[str, str]:
    """FromServices: the variables of each service with a cluster IP, in Kubernetes' order."""
    env: dict[str, str] = {}
    for svc in services:
        spec = svc.spec
        if not _is_service_ip_set(svc) or not spec.ports:
            continue
        ip, prefix = spec.cluster_ip, env_name(svc.metadata.name)
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(spec.ports[0].port)
        for sp in spec.ports:  # only the first port may be unnamed
            if sp.name:
                env[f"{prefix}_SERVICE_PORT_{env_name(sp.name)}"] = str(sp.port)
        host = f"[{ip}]" if ":" in ip else ip  # net.JoinHostPort
        for i, sp in enumerate(spec.ports):
            proto = sp.protocol or "TCP"
            url = f"{proto.lower()}://{host}:{sp.port}"
            if i == 0:
                env[f"{prefix}_PORT"] = url  # Docker special-cases the first port
            port_prefix = f"{prefix}_PORT_{sp.port}_{proto.upper()}"
            env[port_prefix] = url
            env[f"{port_prefix}_PROTO"] = proto.lower()
            env[f"{port_prefix}_PORT"] = str(sp.port)
            env[f"{port_prefix}_ADDR"] = ip
    return env


def services_for(pod: Pod, services: Iterable[Service]) -> list[Service]:
    """getServiceEnvVarMap: the master services from `default` always, and the pod's own
    namespace's unless enableServiceLinks is false (which then wins a name clash)."""
    links = pod.spec.enable_service_links is not False
    ns = pod.metadata.namespace or "default"
    chosen: dict[str, Service] = {}
    for svc in services:
        if not _is_service_ip_set(svc):
            continue
        name = svc.metadata.name
        if svc.metadata.namespace == MASTER_NAMESPACE and name in MASTER_SERVICES:
            chosen.setdefault(name, svc)
        elif svc.metadata.namespace == ns and links:
            chosen[name] = svc
    return [chosen[k] for k in sorted(chosen)]


def expand(text: str, lookup: Callable[[str], str | None]) -> str:
    """Kubernetes' $(VAR) expansion (third_party/forked/golang/expansion): `$$` is a literal
    `$`, an unknown or unterminated reference stays as written."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c != "$" or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
        elif nxt == "(":
            end = text.find(")", i + 2)
            if end < 0:
                out.append("$(")
                i += 2
                continue
            name = text[i + 2:end]
            value = lookup(name)
            out.append(value if value is not None else f"$({name})")
            i = end + 1
        else:
            out.append("$" + nxt)
            i += 2
    return "".join(out)


@dataclass(frozen=True)
class PodRuntimeInfo:
    """What `valueFrom.fieldRef` may read besides the pod object itself."""

    pod_ips: Sequence[str] = ()
    host_ips: Sequence[str] = ()


def field_value(pod: Pod, path: str, info: PodRuntimeInfo) -> str:
    """podFieldSelectorRuntimeValue for the paths env vars may use."""
    meta, spec = pod.metadata, pod.spec
    match path:
        case "metadata.name":
            return meta.name
        case "metadata.namespace":
            return meta.namespace
        case "metadata.uid":
            return meta.uid
        case "spec.nodeName":
            return spec.node_name
        case "spec.serviceAccountName":
            return spec.service_account_name
        case "status.podIP":
            return info.pod_ips[0] if info.pod_ips else ""
        case "status.podIPs":
            return ",".join(info.pod_ips)
        case "status.hostIP":
            return info.host_ips[0] if info.host_ips else ""
        case "status.hostIPs":
            return ",".join(info.host_ips)
    if m := _LABEL_REF.match(path):
        source = meta.labels if m.group(1) == "labels" else meta.annotations
        return source.get(m.group(2), "")
    raise EnvError(f"unsupported fieldRef fieldPath {path!r}")


@dataclass(frozen=True)
class EnvSources:
    """ConfigMaps' data and Secrets' (base64) data of the pod's namespace, by name, as far as
    the container's env refers to them; a name missing here does not exist."""

    config_maps: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    secrets: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


def referenced_sources(container: Container) -> tuple[set[str], set[str]]:
    """The ConfigMap and Secret names the container's env refers to."""
    cms, secrets = set(), set()
    for var in container.env:
        src = var.value_from
        if src is not None and src.config_map_key_ref is not None:
            cms.add(src.config_map_key_ref.name)
        if src is not None and src.secret_key_ref is not None:
            secrets.add(src.secret_key_ref.name)
    return cms, secrets


def container_env(pod: Pod, container: Container, services: Iterable[Service], info: PodRuntimeInfo,
                  sources: EnvSources | None = None) -> dict[str, str]:
    """The container's own variables (expanded against earlier ones and the service
    variables), then every service variable it did not define itself."""
    sources = sources or EnvSources()
    svc_env = service_env(services_for(pod, services))
    own: dict[str, str] = {}

    def lookup(name: str) -> str | None:
        return own.get(name, svc_env.get(name))

    ns = pod.metadata.namespace
    for var in container.env:
        src = var.value_from
        if src is None:
            own[var.name] = expand(var.value, lookup) if var.value else ""
        elif src.field_ref is not None:
            own[var.name] = field_value(pod, src.field_ref.field_path, info)
        elif (ref := src.config_map_key_ref) is not None:
            data = sources.config_maps.get(ref.name)
            if data is None or ref.key not in data:
                if ref.optional:
                    continue
                raise EnvError(f'configmap "{ref.name}" not found' if data is None
                               else f"couldn't find key {ref.key} in ConfigMap {ns}/{ref.name}")
            own[var.name] = data[ref.key]
        elif (ref := src.secret_key_ref) is not None:
            data = sources.secrets.get(ref.name)
            if data is None or ref.key not in data:
                if ref.optional:
                    continue
                raise EnvError(f'secret "{ref.name}" not found' if data is None
                               else f"couldn't find key {ref.key} in Secret {ns}/{ref.name}")
            own[var.name] = base64.b64decode(data[ref.key]).decode(errors="replace")
        else:
            raise EnvError(f"env {var.name}: unsupported valueFrom (resourceFieldRef is not supported)")
    return {**own, **{k: v for k, v in svc_env.items() if k not in own}}
