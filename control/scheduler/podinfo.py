"""What the scheduler knows about a pod, computed once when the pod is decoded: its
effective resource requests, its controller, tolerations and compiled node affinity."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from control.scheduler.affinity import (
    CompiledTerm,
    RequiredNodeAffinity,
    decode_affinity,
    preferred_terms,
    required_affinity,
)
from control.scheduler.quantity import QuantityError, int_value, milli_value
from netplane.model import Pod
from netplane.model import decode as decode_as
from netplane.model.pod import Container, Toleration

CPU, MEMORY, PODS = "cpu", "memory", "pods"
# Kubernetes' schedutil.DefaultMilliCPURequest / DefaultMemoryRequest: what a container
# without requests counts as when *scoring*, so that such pods still spread.
DEFAULT_MILLI_CPU = 100
DEFAULT_MEMORY = 200 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Resources:
    """Requests in integer units: millicores, bytes, and other resources by name."""

    milli_cpu: int = 0
    memory: int = 0
    scalars: tuple[tuple[str, int], ...] = ()

    @property
    def zero(self) -> bool:
        return not self.milli_cpu and not self.memory and not any(v for _, v in self.scalars)


def _amount(name: str, quantity: Any) -> int:
    return milli_value(quantity) if name == CPU else int_value(quantity)


def _container_requests(c: Container) -> dict[str, int]:
    return {name: _amount(name, q) for name, q in c.resources.requests.items()}


def _add(total: dict[str, int], more: Mapping[str, int]) -> None:
    for name, value in more.items():
        total[name] = total.get(name, 0) + value


def pod_requests(pod: Pod) -> tuple[dict[str, int], tuple[int, int]]:
    """resourcehelper.PodRequests: max(sum of containers, each init container) per
    resource; and the non-zero cpu/memory used for scoring. Raises QuantityError."""
    total: dict[str, int] = {}
    non_zero_cpu = non_zero_mem = 0
    for c in pod.spec.containers:
        req = _container_requests(c)
        _add(total, req)
        non_zero_cpu += req.get(CPU) or DEFAULT_MILLI_CPU
        non_zero_mem += req.get(MEMORY) or DEFAULT_MEMORY
    for c in pod.spec.init_containers:
        req = _container_requests(c)
        for name, value in req.items():
            if value > total.get(name, 0):
                total[name] = value
        non_zero_cpu = max(non_zero_cpu, req.get(CPU) or DEFAULT_MILLI_CPU)
        non_zero_mem = max(non_zero_mem, req.get(MEMORY) or DEFAULT_MEMORY)
    return total, (non_zero_cpu, non_zero_mem)


@dataclass(frozen=True, slots=True)
class PodInfo:
    pod: Pod
    key: str  # "namespace/name"
    requests: Resources = field(default_factory=Resources)
    non_zero_cpu: int = DEFAULT_MILLI_CPU
    non_zero_memory: int = DEFAULT_MEMORY
    owner_uid: str = ""  # the controller's uid: pods of one controller spread
    tolerations: tuple[Toleration, ...] = ()
    required: RequiredNodeAffinity = field(default_factory=RequiredNodeAffinity)
    preferred: tuple[tuple[int, CompiledTerm], ...] = ()
    # Why the pod cannot be scheduled anywhere whatever the nodes (bad quantities).
    invalid: str = ""

    @property
    def name(self) -> str:
        return self.pod.metadata.name

    @property
    def namespace(self) -> str:
        return self.pod.metadata.namespace

    @property
    def uid(self) -> str:
        return self.pod.metadata.uid

    @property
    def node_name(self) -> str:
        return self.pod.spec.node_name

    @property
    def metadata(self) -> Any:
        return self.pod.metadata


def pod_info(pod: Pod, affinity: Any = None) -> PodInfo:
    """The PodInfo of a typed pod (`affinity`: its decoded spec.affinity, if any)."""
    invalid = ""
    try:
        requests, (nz_cpu, nz_mem) = pod_requests(pod)
    except QuantityError as exc:
        requests, (nz_cpu, nz_mem) = {}, (DEFAULT_MILLI_CPU, DEFAULT_MEMORY)
        invalid = f"invalid resource requests: {exc}"
    cpu = requests.pop(CPU, 0)
    mem = requests.pop(MEMORY, 0)
    requests.pop(PODS, None)
    ref = pod.metadata.controller_ref()
    return PodInfo(
        pod=pod, key=f"{pod.metadata.namespace}/{pod.metadata.name}",
        requests=Resources(cpu, mem, tuple(sorted(requests.items()))),
        non_zero_cpu=nz_cpu, non_zero_memory=nz_mem,
        owner_uid=ref.uid if ref is not None else "",
        tolerations=tuple(pod.spec.tolerations),
        required=required_affinity(pod.spec.node_selector, affinity),
        preferred=preferred_terms(affinity), invalid=invalid)


def decode_pod_info(raw: bytes | str | dict[str, Any]) -> PodInfo:
    """Raw pod JSON (bytes or parsed) -> PodInfo; the scheduler's informer decode."""
    if isinstance(raw, PodInfo):
        return raw
    if isinstance(raw, Pod):
        return pod_info(raw)
    pod = decode_as(Pod, raw)
    if isinstance(raw, dict) and "affinity" not in (raw.get("spec") or {}):
        return pod_info(pod)  # most pods: no second decode
    return pod_info(pod, decode_affinity(raw))
