"""What `netplane ctl port-forward` forwards, decided without I/O: the TYPE/NAME it names,
its [LOCAL:]REMOTE arguments, the pod it picks for a service or deployment, and kubectl's
translation of service ports and named ports into the port numbers of that pod."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from netplane.model.core import Service
from netplane.model.pod import Pod


class ForwardSpecError(ValueError):
    """An argument, or the objects it names, cannot be forwarded; says why in one line."""


# kubectl's resource names for the kinds it can attach to, of those netplane runs.
_KINDS = {
    "pod": "pod", "pods": "pod", "po": "pod",
    "service": "service", "services": "service", "svc": "service",
    "deployment": "deployment", "deployments": "deployment", "deploy": "deployment",
    "deployment.apps": "deployment", "deployments.apps": "deployment",
}
# IANA_SVC_NAME, what Kubernetes allows as a port name: 1-15 of [a-z0-9-], a letter among
# them, no leading, trailing or doubled hyphen.
_PORT_NAME = re.compile(r"^(?=.*[a-z])(?!-)(?!.*--)[a-z0-9-]{1,15}(?<!-)$")
# ASCII digits only: str.isdigit() also takes "¹", which int() refuses.
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class Target:
    """The object named on the command line: kind is "pod", "service" or "deployment"."""

    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class PortSpec:
    """One [LOCAL:]REMOTE argument as written: `remote` may still be a port name; `local`
    None means "as the remote port once it is a number", 0 means "any free port"."""

    local: int | None
    remote: int | str


@dataclass(frozen=True)
class ForwardedPort:
    """A local port (0: pick a free one) forwarded to a port of the pod."""

    local: int
    remote: int


def parse_target(text: str) -> Target:
    """`NAME` (a pod), `pod/NAME`, `svc/NAME`, `service/NAME`, `deploy/NAME`, ..."""
    kind, sep, name = text.partition("/")
    if not sep:
        kind, name = "pod", text
    resolved = _KINDS.get(kind.lower())
    if resolved is None:
        raise ForwardSpecError(f'cannot forward to a "{kind}": name a pod (NAME or pod/NAME), '
                               f"a service (svc/NAME) or a deployment (deploy/NAME)")
    if not name or "/" in name:
        raise ForwardSpecError(f"{text!r} is not TYPE/NAME")
    return Target(resolved, name)


def _port_number(text: str, what: str, *, allow_zero: bool = False) -> int:
    if not _DIGITS.fullmatch(text):
        raise ForwardSpecError(f"{what} {text!r} is not a port number")
    port = int(text)
    if port > 65535 or (port == 0 and not allow_zero):
        raise ForwardSpecError(f"{what} {text!r} is out of range (1-65535)")
    return port


def parse_port(text: str) -> PortSpec:
    """kubectl's port argument: `REMOTE`, `LOCAL:REMOTE` or `:REMOTE` (a free local port);
    REMOTE is a number or a port name."""
    local_text, sep, remote_text = text.rpartition(":")
    if ":" in local_text:
        raise ForwardSpecError(f"invalid port format {text!r}: want [LOCAL_PORT:]REMOTE_PORT")
    remote: int | str
    if _DIGITS.fullmatch(remote_text):
        remote = _port_number(remote_text, "remote port")
    elif _PORT_NAME.match(remote_text):
        remote = remote_text
    else:
        raise ForwardSpecError(f"remote port {remote_text!r} is neither a port number nor a port name")
    if not sep:
        return PortSpec(None, remote)
    return PortSpec(_port_number(local_text, "local port", allow_zero=True) if local_text else 0, remote)


def split_addresses(values: Iterable[str]) -> list[str]:
    """--address values, each possibly comma-separated as kubectl's string slice; in order,
    without repeats."""
    out: list[str] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part:
                raise ForwardSpecError(f"--address {value!r} has an empty entry")
            if part not in out:
                out.append(part)
    return out


# -- the pod ------------------------------------------------------------------------------

def forwardable_pods(pods: Iterable[Pod]) -> list[Pod]:
    """The pods worth forwarding to, best first: running, ready, on a node and not being
    deleted; the one ready the longest first, then the most restarted, then the oldest, as
    kubectl's ByLogging order prefers."""
    usable = [p for p in pods if p.status.phase == "Running" and p.is_ready() and p.spec.node_name
              and p.metadata.deletion_timestamp is None]

    def ready_since(p: Pod) -> str:
        ready = next(c for c in p.status.conditions if c.type == "Ready")
        return ready.last_transition_time or "~"  # no time sorts after every timestamp

    def restarts(p: Pod) -> int:
        return sum(c.restart_count for c in p.status.container_statuses)

    return sorted(usable, key=lambda p: (ready_since(p), -restarts(p), p.metadata.creation_timestamp or "~",
                                         p.metadata.name))


def container_port_by_name(pod: Pod, name: str) -> int:
    for container in pod.spec.containers:
        for port in container.ports:
            if port.name == name:
                return port.container_port
    raise ForwardSpecError(f"Pod '{pod.metadata.name}' does not have a named port '{name}'")


def _udp_only(ports: Iterable[tuple[int, str]]) -> set[int]:
    by_number: dict[int, set[str]] = {}
    for number, protocol in ports:
        by_number.setdefault(number, set()).add(protocol or "TCP")
    return {n for n, protocols in by_number.items() if protocols == {"UDP"}}


def pod_ports(specs: Sequence[PortSpec], pod: Pod) -> list[ForwardedPort]:
    """kubectl's convertPodNamedPortToNumber: a remote name is the number of the container
    port of that name, which is also the local port when none is given."""
    udp_only = _udp_only((p.container_port, p.protocol) for c in pod.spec.containers for p in c.ports)
    out: list[ForwardedPort] = []
    for spec in specs:
        remote = spec.remote if isinstance(spec.remote, int) else container_port_by_name(pod, spec.remote)
        if remote in udp_only:
            raise ForwardSpecError(f"UDP protocol is not supported for {spec.remote}")
        out.append(ForwardedPort(remote if spec.local is None else spec.local, remote))
    return out


def service_port(remote: int | str, service: Service) -> int:
    """The number of the service port that REMOTE names (its number or its name)."""
    ports = service.spec.ports
    if isinstance(remote, str):
        for p in ports:
            if p.name == remote:
                return p.port
        raise ForwardSpecError(f"Service '{service.metadata.name}' does not have a named port "
                               f"'{remote}'")
    if not any(p.port == remote for p in ports):
        raise ForwardSpecError(f"Service {service.metadata.name} does not have a service port {remote}")
    return remote


def check_service_ports(specs: Sequence[PortSpec], service: Service) -> None:
    """Fails, before any pod is looked for, for a port the service does not expose or one it
    exposes only over UDP (kubectl's checkUDPPorts)."""
    udp_only = _udp_only((p.port, p.protocol) for p in service.spec.ports)
    for spec in specs:
        if service_port(spec.remote, service) in udp_only:
            raise ForwardSpecError(f"UDP protocol is not supported for {spec.remote}")


def service_ports(specs: Sequence[PortSpec], service: Service, pod: Pod) -> list[ForwardedPort]:
    """kubectl's translateServicePortToTargetPort: REMOTE names a service port; the pod's port
    is its targetPort (the port itself when omitted; a named one resolved through the pod's
    container ports). Without LOCAL the local port is the service port, as in kubectl."""
    check_service_ports(specs, service)
    out: list[ForwardedPort] = []
    for spec in specs:
        number = service_port(spec.remote, service)
        entry = next(p for p in service.spec.ports if p.port == number)
        target = entry.target_port
        if isinstance(target, str) and _DIGITS.fullmatch(target):
            target = int(target)
        if isinstance(target, str):
            remote = container_port_by_name(pod, target)
        else:
            remote = target or number
        out.append(ForwardedPort(number if spec.local is None else spec.local, remote))
    return out
