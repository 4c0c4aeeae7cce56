"""NodeInfo: a node, the pods assigned (or assumed) to it, and what they request.

Everything a filter or score reads is precomputed here when the node or its pods
change, so that checking one pod against one node is a few integer comparisons."""

from __future__ import annotations

import logging

from control.scheduler.podinfo import CPU, MEMORY, PODS, PodInfo
from control.scheduler.quantity import QuantityError, int_value, milli_value
from netplane.model import Node
from netplane.model.core import Taint

log = logging.getLogger(__name__)

NO_SCHEDULE, NO_EXECUTE, PREFER_NO_SCHEDULE = "NoSchedule", "NoExecute", "PreferNoSchedule"
TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"


def _allocatable(node: Node) -> tuple[int, int, int, dict[str, int]]:
    cpu = mem = pods = 0
    scalars: dict[str, int] = {}
    for name, quantity in node.status.allocatable.items():
        try:
            if name == CPU:
                cpu = milli_value(quantity)
            elif name == MEMORY:
                mem = int_value(quantity)
            elif name == PODS:
                pods = int_value(quantity)
            else:
                scalars[name] = int_value(quantity)
        except QuantityError as exc:
            log.warning("node %s: allocatable %s: %s; counting it as 0", node.name, name, exc)
    return cpu, mem, pods, scalars


def readiness_taint(node: Node) -> Taint | None:
    """The taint the node lifecycle controller puts on a node whose Ready condition is
    False (not-ready) or Unknown/missing (unreachable), unless the node carries it
    already; the scheduler applies it itself so that it never waits for that controller."""
    status = next((c.status for c in node.status.conditions if c.type == "Ready"), "Unknown")
    if status == "True":
        return None
    key = TAINT_NOT_READY if status == "False" else TAINT_UNREACHABLE
    if any(t.key == key and t.effect in (NO_SCHEDULE, NO_EXECUTE) for t in node.spec.taints):
        return None
    return Taint(key=key, effect=NO_SCHEDULE)


class NodeInfo:
    __slots__ = (
        "alloc_cpu", "alloc_memory", "alloc_pods", "alloc_scalars", "hard_taints", "labels",
        "name", "node", "non_zero_cpu", "non_zero_memory", "owner_counts", "pods",
        "readiness", "requested_cpu", "requested_memory", "requested_scalars", "soft_taints",
        "unschedulable",
    )

    def __init__(self, name: str, node: Node | None = None) -> None:
        self.name = name
        self.node: Node | None = None
        self.labels: dict[str, str] = {}
        self.alloc_cpu = self.alloc_memory = self.alloc_pods = 0
        self.alloc_scalars: dict[str, int] = {}
        self.hard_taints: tuple[Taint, ...] = ()  # NoSchedule/NoExecute
        self.readiness: Taint | None = None  # see readiness_taint
        self.soft_taints: tuple[Taint, ...] = ()  # PreferNoSchedule
        self.unschedulable = False
        self.pods: dict[str, PodInfo] = {}
        self.requested_cpu = self.requested_memory = 0
        self.requested_scalars: dict[str, int] = {}
        self.non_zero_cpu = self.non_zero_memory = 0
        self.owner_counts: dict[str, int] = {}
        if node is not None:
            self.set_node(node)

    def set_node(self, node: Node) -> None:
        self.node = node
        self.labels = dict(node.metadata.labels)
        self.alloc_cpu, self.alloc_memory, self.alloc_pods, self.alloc_scalars = _allocatable(node)
        self.hard_taints = tuple(t for t in node.spec.taints if t.effect in (NO_SCHEDULE, NO_EXECUTE))
        self.readiness = readiness_taint(node)
        self.soft_taints = tuple(t for t in node.spec.taints if t.effect == PREFER_NO_SCHEDULE)
        self.unschedulable = node.spec.unschedulable

    def add_pod(self, pi: PodInfo) -> None:
        old = self.pods.get(pi.key)
        if old is not None:
            self.remove_pod(old.key)
        self.pods[pi.key] = pi
        self._account(pi, 1)

    def remove_pod(self, key: str) -> PodInfo | None:
        pi = self.pods.pop(key, None)
        if pi is not None:
            self._account(pi, -1)
        return pi

    def _account(self, pi: PodInfo, sign: int) -> None:
        req = pi.requests
        self.requested_cpu += sign * req.milli_cpu
        self.requested_memory += sign * req.memory
        for name, value in req.scalars:
            self.requested_scalars[name] = self.requested_scalars.get(name, 0) + sign * value
        self.non_zero_cpu += sign * pi.non_zero_cpu
        self.non_zero_memory += sign * pi.non_zero_memory
        if pi.owner_uid:
            count = self.owner_counts.get(pi.owner_uid, 0) + sign
            if count:
                self.owner_counts[pi.owner_uid] = count
            else:
                self.owner_counts.pop(pi.owner_uid, None)

    def __repr__(self) -> str:
        return (f"NodeInfo({self.name!r}, pods={len(self.pods)}, "
                f"cpu={self.requested_cpu}/{self.alloc_cpu}m, "
                f"memory={self.requested_memory}/{self.alloc_memory})")
